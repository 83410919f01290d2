//! Reading an untrusted archive in place: its entries (from [`super::zipdir`]), the single
//! top-level folder, and one entry's bytes either streamed (hashing, line-by-line JSONL) or read
//! into memory under a limit. Never writes, never resolves entry names against the file system,
//! never inflates past an entry's declared size.
//!
//! Memory per entry: 16 bytes, whatever the names. The directory keeps where each entry's record
//! is (8 bytes) and the name index one 64-bit key per entry: the top 38 bits of a keyed hash of
//! the name and the entry's 26-bit position, sorted. An entry is parsed again from the file when
//! asked for, and a lookup by name reads back the entries whose key matches to compare the name
//! itself, so a collision costs one read, never a wrong answer; the hash's key is random per
//! process, so no archive can be made to collide on purpose.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;

use super::digest;
use super::input::{Input, ReadAt};
use super::zipconst::Compression;
use super::zipdir::{self, Directory, Entry};
use super::{EntryProblem, Error};
use crate::store::{Location, RemoteFile};

/// Bits of a name key that hold the entry's position ([`zipdir::MAX_ENTRIES`] is `1 << 26`).
const INDEX_BITS: u32 = 26;

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
    file: Input,
    len: u64,
    dir: Directory,
    /// Name keys (hash bits above the position bits), sorted. See the module docs.
    names: Vec<u64>,
    hasher: RandomState,
    bag_name: Option<String>,
}

/// What opening sees of each entry: its name key, and how many entries each top-level folder
/// holds (by a hash of the folder's name, with its first entry, so no name is kept).
struct Survey<'h> {
    hasher: &'h RandomState,
    names: Vec<u64>,
    tops: HashMap<u64, (u64, usize)>,
}

impl zipdir::Visit for Survey<'_> {
    fn entry(&mut self, e: &Entry) {
        self.names.push(name_key(self.hasher, e.name.as_bytes(), e.index));
        if let Some((top, _)) = e.name.split_once('/') {
            self.tops.entry(self.hasher.hash_one(top.as_bytes())).or_insert((0, e.index)).0 += 1;
        }
    }

    fn restart(&mut self) {
        self.names.clear();
        self.tops.clear();
    }
}

fn name_key(hasher: &RandomState, name: &[u8], index: usize) -> u64 {
    (hasher.hash_one(name) << INDEX_BITS) | index as u64
}

impl BagReader {
    /// Opens `path` and reads its zip directory. `Err` means the file cannot be read as a zip at
    /// all; everything else (odd names, duplicates, damage) is left for the caller to judge.
    pub fn open(path: &Path) -> Result<BagReader, Error> {
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        BagReader::from_file(file, path)
    }

    /// Opens the archive at `location`: a local file, or an object in a store read by ranged
    /// GETs (credentials from the environment). Its zip directory is read either way.
    pub fn open_location(location: &Location) -> Result<BagReader, Error> {
        match location {
            Location::Local(path) => BagReader::open(path),
            Location::Remote(url) => {
                let path = location.display_path();
                let remote =
                    RemoteFile::open(url).map_err(|e| Error::Io { path: path.clone(), source: e.into_io() })?;
                BagReader::from_input(Input::Remote(remote), &path)
            }
        }
    }

    /// Reads the zip directory of a file already open (`path` only names it in messages), so
    /// that a caller can check, hash and read the very bytes it opened, whatever happens to the
    /// path meanwhile.
    pub fn from_file(file: File, path: &Path) -> Result<BagReader, Error> {
        BagReader::from_input(Input::Local(file), path)
    }

    /// Reads the zip directory of an archive already open, local or remote (`path` only names
    /// it in messages).
    pub fn from_input(file: Input, path: &Path) -> Result<BagReader, Error> {
        let not_zip = |reason| Error::NotZip { path: path.to_path_buf(), reason };
        let len = file.size().map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let hasher = RandomState::new();
        let mut survey = Survey { hasher: &hasher, names: Vec::new(), tops: HashMap::new() };
        let dir = zipdir::read_directory(&file, len, &mut survey).map_err(not_zip)?;
        let Survey { mut names, tops, .. } = survey;
        names.sort_unstable();
        names.shrink_to_fit();
        // The bag is the folder most entries live in; a tie goes to the name that sorts first.
        let most = tops.values().map(|(n, _)| *n).max();
        let mut bag_name: Option<String> = None;
        for (_, first) in tops.values().filter(|(n, _)| Some(*n) == most) {
            let entry = dir.entry_at(&file, len, *first).map_err(not_zip)?;
            let top = entry.name.split_once('/').map_or(entry.name.as_str(), |(t, _)| t);
            if bag_name.as_deref().is_none_or(|b| top < b) {
                bag_name = Some(top.to_string());
            }
        }
        Ok(BagReader { path: path.to_path_buf(), file, len, dir, names, hasher, bag_name })
    }

    /// The archive file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive's path on the local file system: `None` for an archive in a store (whose
    /// [`BagReader::path`] only names it), so that nothing is put "beside" a remote archive.
    pub fn local_path(&self) -> Option<&Path> {
        self.file.local().map(|_| self.path.as_path())
    }

    /// The open archive, local or remote, read by position.
    pub fn input(&self) -> &Input {
        &self.file
    }

    /// The archive file's length in bytes.
    pub fn archive_len(&self) -> u64 {
        self.len
    }

    /// How many entries the directory lists (duplicates included).
    pub fn entry_count(&self) -> usize {
        self.dir.len()
    }

    /// Every entry, in directory order (duplicates included), read back from the file as the
    /// iteration goes. An `Err` means the file changed since it was opened.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry, Error>> + '_ {
        self.dir.iter(&self.file, self.len).map(|r| r.map_err(|why| self.changed(why)))
    }

    /// The entry at `index` (directory order).
    pub fn entry_at(&self, index: usize) -> Result<Entry, Error> {
        self.dir.entry_at(&self.file, self.len, index).map_err(|why| self.changed(why))
    }

    fn changed(&self, why: String) -> Error {
        Error::NotZip { path: self.path.clone(), reason: format!("the file changed while it was read: {why}") }
    }

    /// If the central directory was unusable and entries were recovered from local headers: why.
    pub fn recovered(&self) -> Option<&str> {
        self.dir.recovered.as_deref()
    }

    /// The top-level folder most entries live in (the bag), if any entry has a folder.
    pub fn bag_name(&self) -> Option<&str> {
        self.bag_name.as_deref()
    }

    /// The positions of the entries whose name key matches `name`'s, lowest first: a superset
    /// of the entries named `name` (a key is part of a hash).
    fn candidates(&self, name: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let hash = self.hasher.hash_one(name) << INDEX_BITS;
        let start = self.names.partition_point(|k| *k < hash);
        let mask = (1u64 << INDEX_BITS) - 1;
        self.names[start..].iter().take_while(move |k| *k & !mask == hash).map(move |k| (*k & mask) as usize)
    }

    /// The first entry with exactly this name.
    pub fn entry(&self, name: &str) -> Result<Option<Entry>, Error> {
        for index in self.candidates(name.as_bytes()) {
            let entry = self.entry_at(index)?;
            if entry.name == name {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// The first entry named `<bag>/<rel>`.
    pub fn bag_entry(&self, rel: &str) -> Result<Option<Entry>, Error> {
        match self.bag_name.as_deref() {
            Some(bag) => self.entry(&format!("{bag}/{rel}")),
            None => Ok(None),
        }
    }

    /// Calls `each` with every name that more than one entry has, and how many have it, in no
    /// particular order. Reads back only entries whose name key another entry shares.
    pub fn for_each_duplicate(&self, mut each: impl FnMut(&Entry, usize)) -> Result<(), Error> {
        let mask = (1u64 << INDEX_BITS) - 1;
        let mut at = 0;
        while at < self.names.len() {
            let hash = self.names[at] & !mask;
            let run = self.names[at..].iter().take_while(|k| *k & !mask == hash).count();
            if run > 1 {
                let mut group: Vec<Entry> = Vec::with_capacity(run);
                for k in &self.names[at..at + run] {
                    group.push(self.entry_at((*k & mask) as usize)?);
                }
                group.sort_by(|a, b| a.raw_name.cmp(&b.raw_name).then(a.index.cmp(&b.index)));
                for same in group.chunk_by(|a, b| a.raw_name == b.raw_name) {
                    if same.len() > 1 {
                        each(&same[0], same.len());
                    }
                }
            }
            at += run;
        }
        Ok(())
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
    file: &'a dyn ReadAt,
    pos: u64,
    end: u64,
}

impl<'a> RangeRead<'a> {
    /// The `len` bytes of `file` from `start`.
    pub(super) fn new(file: &'a dyn ReadAt, start: u64, len: u64) -> RangeRead<'a> {
        RangeRead { file, pos: start, end: start + len }
    }
}

impl Read for RangeRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{BagInfo, BagWriter};

    /// A bag with a few payload files, and its reader.
    fn bag(dir: &Path) -> BagReader {
        let path = dir.join("b.zip");
        let mut w = BagWriter::new(File::create(&path).unwrap(), "b").unwrap();
        for (name, body) in [("a.json", "{}"), ("b.json", "[]"), ("c/d.json", "1")] {
            w.add_deflated(name, body.as_bytes()).unwrap();
        }
        let info = BagInfo {
            source_host: "h".into(),
            api_version: "v3.3".into(),
            tool_version: "0".into(),
            bagging_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            extra: Vec::new(),
        };
        w.finish(&info).unwrap();
        BagReader::open(&path).unwrap()
    }

    #[test]
    fn a_lookup_compares_names_so_keys_that_all_collide_still_find_the_right_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = bag(dir.path());
        let all: Vec<Entry> = reader.entries().map(Result::unwrap).collect();
        let mask = (1u64 << INDEX_BITS) - 1;
        for wanted in &all {
            // Every entry's key now carries the hash of the name looked up.
            let same = reader.hasher.hash_one(wanted.name.as_bytes()) << INDEX_BITS;
            for k in &mut reader.names {
                *k = same | (*k & mask);
            }
            reader.names.sort_unstable();
            assert_eq!(reader.candidates(wanted.name.as_bytes()).count(), all.len(), "every key collides");
            assert_eq!(reader.entry(&wanted.name).unwrap().as_ref(), Some(wanted));
            let mut duplicates = 0;
            reader.for_each_duplicate(|_, _| duplicates += 1).unwrap();
            assert_eq!(duplicates, 0, "colliding keys are not duplicate names");
        }
        assert!(reader.entry("b/data/none.json").unwrap().is_none());
    }

    #[test]
    fn entry_finds_each_name_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let reader = bag(dir.path());
        assert_eq!(reader.bag_name(), Some("b"));
        assert_eq!(reader.entries().count(), reader.entry_count());
        for e in reader.entries() {
            let e = e.unwrap();
            assert_eq!(reader.entry(&e.name).unwrap().as_ref(), Some(&e));
            assert_eq!(reader.entry_at(e.index).unwrap(), e);
        }
        assert!(reader.bag_entry("data/a.json").unwrap().is_some());
        assert!(reader.bag_entry("data/zzz.json").unwrap().is_none());
        assert!(reader.entry("b/data/a.jso").unwrap().is_none());
    }
}
