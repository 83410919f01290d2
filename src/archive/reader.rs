//! Reading an untrusted archive in place: its entries (from [`super::zipdir`]), the single
//! top-level folder, and one entry's bytes either streamed (hashing, line-by-line JSONL) or read
//! into memory under a limit. Never writes, never resolves entry names against the file system,
//! never inflates past an entry's declared size.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;

use super::digest;
use super::zipconst::Compression;
use super::zipdir::{self, read_at, Entry};
use super::{EntryProblem, Error};

/// An entry's actual content digest, size and CRC-32, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryDigest {
    /// SHA-256 of the uncompressed bytes.
    pub sha256: [u8; 32],
    /// CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// Number of uncompressed bytes.
    pub size: u64,
}

/// An archive opened for reading. Cheap to share between threads: reads are positional.
#[derive(Debug)]
pub struct BagReader {
    path: PathBuf,
    file: File,
    len: u64,
    entries: Vec<Entry>,
    recovered: Option<String>,
    by_name: HashMap<String, usize>,
    bag_name: Option<String>,
}

impl BagReader {
    /// Opens `path` and reads its zip directory. `Err` means the file cannot be read as a zip at
    /// all; everything else (odd names, duplicates, damage) is left for the caller to judge.
    pub fn open(path: &Path) -> Result<BagReader, Error> {
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        BagReader::from_file(file, path)
    }

    /// Reads the zip directory of a file already open (`path` only names it in messages), so
    /// that a caller can check, hash and read the very bytes it opened, whatever happens to the
    /// path meanwhile.
    pub fn from_file(file: File, path: &Path) -> Result<BagReader, Error> {
        let len = file.metadata().map_err(|source| Error::Io { path: path.to_path_buf(), source })?.len();
        let dir =
            zipdir::read_directory(&file, len).map_err(|reason| Error::NotZip { path: path.to_path_buf(), reason })?;
        let mut by_name = HashMap::with_capacity(dir.entries.len());
        let mut tops: HashMap<&str, usize> = HashMap::new();
        for e in &dir.entries {
            by_name.entry(e.name.clone()).or_insert(e.index);
            if let Some((top, _)) = e.name.split_once('/') {
                *tops.entry(top).or_default() += 1;
            }
        }
        let bag_name = tops.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))).map(|(t, _)| t.to_string());
        Ok(BagReader {
            path: path.to_path_buf(),
            file,
            len,
            entries: dir.entries,
            recovered: dir.recovered,
            by_name,
            bag_name,
        })
    }

    /// The archive file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open archive file. Reads through it must be positional (as every read here is) or
    /// start with a seek.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The archive file's length in bytes.
    pub fn archive_len(&self) -> u64 {
        self.len
    }

    /// Every entry, in directory order (duplicates included).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// If the central directory was unusable and entries were recovered from local headers: why.
    pub fn recovered(&self) -> Option<&str> {
        self.recovered.as_deref()
    }

    /// The top-level folder most entries live in (the bag), if any entry has a folder.
    pub fn bag_name(&self) -> Option<&str> {
        self.bag_name.as_deref()
    }

    /// The first entry with exactly this name.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The first entry named `<bag>/<rel>`.
    pub fn bag_entry(&self, rel: &str) -> Option<&Entry> {
        self.entry(&format!("{}/{rel}", self.bag_name.as_deref()?))
    }

    /// Opens an entry's uncompressed bytes as a stream that fails (with an [`EntryProblem`]
    /// inside an `InvalidData` io error) past the declared size or short of it.
    pub fn open_entry(&self, entry: &Entry) -> Result<EntryRead<'_>, EntryProblem> {
        let raw = self.raw_data(entry)?;
        let inner: Box<dyn Read + Send + '_> = match entry.compression {
            Compression::Stored => Box::new(raw),
            Compression::Deflated => Box::new(DeflateDecoder::new_with_buf(raw, vec![0u8; 256 << 10])),
            Compression::Other(m) => return Err(EntryProblem::UnsupportedMethod(m)),
        };
        Ok(EntryRead { inner, declared: entry.size, produced: 0 })
    }

    /// An entry's data as stored (compressed or not), after checking its local header agrees
    /// with the directory and the data lies inside the file.
    pub(super) fn raw_data(&self, entry: &Entry) -> Result<RangeRead<'_>, EntryProblem> {
        if entry.flags & 0x1 != 0 {
            return Err(EntryProblem::Encrypted);
        }
        let (local, data_offset) = zipdir::read_local_header(&self.file, entry.header_offset, self.len)
            .map_err(EntryProblem::BadLocalHeader)?;
        if local.raw_name != entry.raw_name {
            return Err(EntryProblem::BadLocalHeader(format!("local header names {:?}", local.name)));
        }
        if data_offset.checked_add(entry.compressed_size).is_none_or(|end| end > self.len) {
            return Err(EntryProblem::Corrupt(format!(
                "{} compressed bytes at offset {data_offset} run past the end of the file",
                entry.compressed_size
            )));
        }
        Ok(RangeRead::new(&self.file, data_offset, entry.compressed_size))
    }

    /// Reads a whole entry into memory if it declares at most `limit` bytes.
    pub fn read_entry(&self, entry: &Entry, limit: u64) -> Result<Vec<u8>, EntryProblem> {
        if entry.size > limit {
            return Err(EntryProblem::TooLarge { declared: entry.size, limit });
        }
        let mut out = Vec::with_capacity(entry.size as usize);
        self.open_entry(entry)?.read_to_end(&mut out).map_err(entry_problem)?;
        Ok(out)
    }

    /// Streams an entry through SHA-256 and CRC-32 using `buf` as the read buffer.
    pub fn hash_entry(&self, entry: &Entry, buf: &mut [u8]) -> Result<EntryDigest, EntryProblem> {
        self.hash_entry_with(entry, buf, |_| {})
    }

    /// Like [`BagReader::hash_entry`], handing `each` every chunk as it is hashed (so a caller can
    /// check the bytes too without reading the entry twice).
    pub fn hash_entry_with(
        &self,
        entry: &Entry,
        buf: &mut [u8],
        mut each: impl FnMut(&[u8]),
    ) -> Result<EntryDigest, EntryProblem> {
        let mut reader = self.open_entry(entry)?;
        digest::hash_reader(&mut reader, buf, |_, chunk| {
            each(chunk);
            Ok(())
        })
        .map_err(entry_problem)
    }
}

/// Turns an io error from [`EntryRead`] back into the problem it carries.
pub fn entry_problem(e: std::io::Error) -> EntryProblem {
    if e.get_ref().is_some_and(|inner| inner.is::<EntryProblem>()) {
        let inner = e.into_inner().expect("checked");
        return *inner.downcast::<EntryProblem>().expect("checked");
    }
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            EntryProblem::Corrupt(e.to_string())
        }
        _ => EntryProblem::Io(e.to_string()),
    }
}

/// A byte range of a file, read positionally.
pub(super) struct RangeRead<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> RangeRead<'a> {
    /// The `len` bytes of `file` from `start`.
    pub(super) fn new(file: &'a File, start: u64, len: u64) -> RangeRead<'a> {
        RangeRead { file, pos: start, end: start + len }
    }
}

impl Read for RangeRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = read_at(self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// An entry's uncompressed bytes, held to the declared size.
pub struct EntryRead<'a> {
    inner: Box<dyn Read + Send + 'a>,
    declared: u64,
    produced: u64,
}

impl std::fmt::Debug for EntryRead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryRead").field("declared", &self.declared).field("produced", &self.produced).finish()
    }
}

impl Read for EntryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for at most one byte past the declared size: enough to notice a lie, no more.
        let room = (self.declared - self.produced).saturating_add(1).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.produced += n as u64;
        if self.produced > self.declared {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                EntryProblem::LongerThanDeclared { declared: self.declared },
            ));
        }
        if n == 0 && self.produced < self.declared {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                EntryProblem::ShorterThanDeclared { declared: self.declared, actual: self.produced },
            ));
        }
        Ok(n)
    }
}
