//! The archive: a zip holding one BagIt 1.0 bag (see `FORMAT.md`): the path [`layout`], the
//! BagIt text files ([`bagit`]), the [`writer`] (hash while writing, manifests last; resumable
//! through its [`journal`], with raw copies from a previous archive; its entries indexed on disk
//! by `index`) over our own zip encoding ([`zipwrite`]), and the [`reader`] of untrusted
//! archives (its raw zip directory in [`zipdir`]). What readers of untrusted archives share (the
//! limits table, the capped line reader, the manifest reader, the listing and `account.json`
//! types) lives in [`data`]; [`source`] reads an archive's projects for `convert` and `restore`.

pub mod bagit;
pub mod data;
pub mod digest;
mod index;
pub mod input;
pub mod journal;
pub mod layout;
pub mod manifest_table;
pub mod missing;
mod rawcopy;
pub mod reader;
mod resume;
pub mod source;
pub mod writer;
pub mod zipconst;
pub mod zipdir;
pub mod zipwrite;

use std::path::PathBuf;

pub use bagit::{BagInfo, PayloadOxum};
pub use journal::WrittenEntry;
pub use reader::{BagReader, EntryDigest};
pub use writer::{journal_path, BagSummary, BagWriter};
pub use zipconst::Compression;
pub use zipdir::Entry;
pub use zipwrite::Zip64Limits;

/// What can go wrong writing or reading an archive. Every variant names the archive or entry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the archive file failed (a full disk shows up here).
    #[error("archive {path}")]
    Io {
        /// The archive file (or the bag name when the writer was not told the path).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another writer holds the partial archive (its exclusive lock).
    #[error("archive {path} is being written by another cvarchive process (it is locked)")]
    Locked {
        /// The partial archive.
        path: PathBuf,
    },
    /// A partial archive cannot be resumed: no journal, a different bag, or a different job.
    #[error("cannot resume {path}: {reason}")]
    Resume {
        /// The partial archive.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Reading the content of a payload file from its source failed (nothing was added).
    #[error("reading the content for data/{data_path}")]
    Source {
        /// The payload path being written.
        data_path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A raw copy from another archive was refused (nothing was added).
    #[error("cannot copy entry {entry} from {path}: {reason}")]
    RawCopy {
        /// The archive copied from.
        path: PathBuf,
        /// The entry's name there.
        entry: String,
        /// What did not check out.
        reason: String,
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
