//! The archive: a zip holding one BagIt 1.0 bag (see `FORMAT.md`): the path [`layout`], the
//! BagIt text files ([`bagit`]), the [`writer`] (hash while writing, manifests last) and the
//! [`reader`] of untrusted archives (its raw zip directory in [`zipdir`]).

pub mod bagit;
pub mod layout;
pub mod reader;
pub mod writer;
pub mod zipdir;

use std::path::PathBuf;

pub use bagit::{BagInfo, PayloadOxum};
pub use reader::{BagReader, EntryDigest};
pub use writer::{BagSummary, BagWriter};
pub use zipdir::{Compression, Entry};

/// What can go wrong writing or reading an archive. Every variant names the archive or entry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the archive file failed (a full disk shows up here).
    #[error("archive {path}: {source}")]
    Io {
        /// The archive file (or the bag name when the writer was not told the path).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The zip library refused an operation on an entry.
    #[error("archive {path}: entry {entry}: {source}")]
    Zip {
        /// The archive file (or bag name).
        path: PathBuf,
        /// The entry inside the archive.
        entry: String,
        /// The underlying error.
        #[source]
        source: zip::result::ZipError,
    },
    /// The same payload path was added twice.
    #[error("duplicate payload path data/{0}")]
    DuplicatePath(String),
    /// A payload path that would escape the bag or is not a plain relative path.
    #[error("invalid payload path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The file cannot be read as a zip archive at all.
    #[error("{path}: not a readable zip archive: {reason}")]
    NotZip {
        /// The archive file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One entry cannot be read.
    #[error("{path}: entry {entry}: {reason}")]
    Entry {
        /// The archive file.
        path: PathBuf,
        /// The entry's name.
        entry: String,
        /// What is wrong.
        reason: EntryProblem,
    },
}

/// Why one entry's bytes cannot be read (each becomes a verify finding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The local header is missing, malformed or disagrees with the central directory.
    #[error("bad local header: {0}")]
    BadLocalHeader(String),
    /// A compression method other than stored (0) or deflate (8).
    #[error("unsupported compression method {0}")]
    UnsupportedMethod(u16),
    /// The entry is encrypted.
    #[error("encrypted entry")]
    Encrypted,
    /// The deflate stream is corrupt or ends early.
    #[error("corrupt compressed data: {0}")]
    Corrupt(String),
    /// The data is larger than its declared size (we stop reading there).
    #[error("data larger than the declared {declared} bytes")]
    LongerThanDeclared {
        /// The declared uncompressed size.
        declared: u64,
    },
    /// The data ends before its declared size.
    #[error("data is {actual} bytes, declared {declared}")]
    ShorterThanDeclared {
        /// The declared uncompressed size.
        declared: u64,
        /// What was there.
        actual: u64,
    },
    /// The entry is larger than we agree to hold in memory.
    #[error("declared size {declared} exceeds the {limit}-byte limit for reading into memory")]
    TooLarge {
        /// The declared uncompressed size.
        declared: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading the archive failed.
    #[error("read error: {0}")]
    Io(String),
}
