//! The writer's index of payload entries, in bounded memory.
//!
//! Every entry's record (offsets, sizes, CRC-32, SHA-256, path) is appended to an anonymous
//! temporary file beside the archive as it is committed; memory keeps one `u64` per live entry:
//! the top 24 bits of a hash of its path and its record's position in the file (40 bits: a
//! terabyte of records), in an open-addressing table (`hashbrown`'s `HashTable`: 8 bytes a slot
//! and a control byte, at most 7/8 full, so 10-21 bytes an entry, never the 17-39 of a
//! `HashMap<u64, u64>`). A lookup reads back the records whose 24-bit hash matches, to compare
//! the path, so equal hashes are told apart exactly, at the cost of a read. Whether a record is
//! live needs no read: its hash and position are the table's element. The table is cut into
//! [`SHARDS`] by the tag's top bits, each growing on its own: a growing table briefly holds its
//! old and new slots (half as much again), and so that moment costs a sixteenth of that at a
//! time, not half of the whole index at once. The manifest and the
//! central directory stream the live records back in the order they were written, which is the
//! archive's order.

use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

use hashbrown::HashTable;

use super::journal::WrittenEntry;
use super::zipconst::Compression;
use super::zipdir::read_exact_at;
use crate::platform::write_all_at;

/// Records are written out once this many bytes of them are pending.
const PENDING: usize = 64 << 10;
/// Tables the live entries are spread over (by the tag's top 4 bits).
const SHARDS: usize = 16;
/// Record positions this large and over do not fit an element (a terabyte of records).
const MAX_POS: u64 = 1 << 40;
/// The fixed part of a record: offset, compressed size, size (u64), CRC-32 (u32), SHA-256,
/// method (u16), ZIP64 flag (u8) and the path's length (u32), little-endian; then the path.
const FIXED: usize = 8 + 8 + 8 + 4 + 32 + 2 + 1 + 4;

/// Live payload entries of one bag. See the module docs.
#[derive(Debug, Default)]
pub(super) struct EntryIndex {
    /// Where the temporary file goes (`None`: the system's temporary directory).
    dir: Option<PathBuf>,
    /// The records written out so far; created on the first write.
    file: Option<File>,
    /// Bytes of records in `file`.
    written: u64,
    /// Records not yet written out; they follow `written`.
    pending: Vec<u8>,
    /// Per live entry: its path's hash tag (top 24 bits) and its record's position (low 40).
    live: [HashTable<u64>; SHARDS],
    /// Keys the path hash, so that paths chosen to collide cannot be prepared.
    keys: std::collections::hash_map::RandomState,
    files: u64,
    bytes: u64,
    /// Tests force every path to one hash tag, to exercise the comparison of paths.
    #[cfg(test)]
    one_tag: bool,
}

impl EntryIndex {
    /// An empty index whose temporary file will go in `dir` (the archive's directory, so it
    /// shares its disk and not a memory-backed `/tmp`), or the system's temporary directory.
    pub fn new(dir: Option<PathBuf>) -> EntryIndex {
        EntryIndex { dir, ..EntryIndex::default() }
    }

    /// Number of live entries.
    pub fn len(&self) -> u64 {
        self.files
    }

    /// Total content bytes of the live entries.
    pub fn content_bytes(&self) -> u64 {
        self.bytes
    }

    /// The live entry at `data_path`, if any.
    pub fn get(&self, data_path: &str) -> std::io::Result<Option<WrittenEntry>> {
        Ok(self.find(data_path)?.map(|(_, e)| e))
    }

    /// Records a new entry; its path must not be live (the writer checks with [`Self::get`]).
    /// On an error nothing is recorded.
    pub fn insert(&mut self, e: &WrittenEntry) -> std::io::Result<()> {
        let pos = self.written + self.pending.len() as u64;
        if pos >= MAX_POS {
            return Err(std::io::Error::other("the entry index is full (a terabyte of records)"));
        }
        let start = self.pending.len();
        encode(&mut self.pending, e);
        if self.pending.len() >= PENDING {
            if let Err(err) = self.write_out() {
                self.pending.truncate(start);
                return Err(err);
            }
        }
        let tag = self.tag(&e.data_path);
        self.live[shard(tag)].insert_unique(spread(tag), tag << 40 | pos, |&el| spread(el >> 40));
        self.files += 1;
        self.bytes += e.size;
        Ok(())
    }

    /// Drops the live entry at `data_path` and returns it, if there was one. Its record stays in
    /// the file, no longer live.
    pub fn remove(&mut self, data_path: &str) -> std::io::Result<Option<WrittenEntry>> {
        let Some((pos, e)) = self.find(data_path)? else { return Ok(None) };
        let tag = self.tag(data_path);
        if let Ok(found) = self.live[shard(tag)].find_entry(spread(tag), |&el| el == tag << 40 | pos) {
            found.remove();
        }
        self.files -= 1;
        self.bytes -= e.size;
        Ok(Some(e))
    }

    /// The live entries in the order they were inserted (for the writer: archive order). Writes
    /// out pending records first.
    pub fn live(&mut self) -> std::io::Result<Live<'_>> {
        self.write_out()?;
        let reader = match &self.file {
            Some(file) => {
                let mut file = file;
                file.seek(SeekFrom::Start(0))?;
                Some(BufReader::with_capacity(PENDING, file))
            }
            None => None,
        };
        let index = &*self;
        Ok(Live { index, reader, pos: 0 })
    }

    /// The live entry at `data_path` and its record's position: each record whose hash tag
    /// matches is read back and its path compared.
    fn find(&self, data_path: &str) -> std::io::Result<Option<(u64, WrittenEntry)>> {
        let tag = self.tag(data_path);
        let mut found = None;
        let mut failed = None;
        self.live[shard(tag)].find(spread(tag), |&el| {
            if el >> 40 != tag {
                return false;
            }
            let pos = el & (MAX_POS - 1);
            match self.read_at(pos) {
                Ok(e) if e.data_path == data_path => {
                    found = Some((pos, e));
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    failed = Some(e);
                    true
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    fn is_live(&self, pos: u64, data_path: &str) -> bool {
        let tag = self.tag(data_path);
        self.live[shard(tag)].find(spread(tag), |&el| el == tag << 40 | pos).is_some()
    }

    /// The top 24 bits of the keyed hash of a path.
    fn tag(&self, data_path: &str) -> u64 {
        #[cfg(test)]
        if self.one_tag {
            return 5;
        }
        self.keys.hash_one(data_path) >> 40
    }

    fn read_at(&self, pos: u64) -> std::io::Result<WrittenEntry> {
        if pos >= self.written {
            let mut rest = &self.pending[(pos - self.written) as usize..];
            return decode(&mut rest);
        }
        let file = self.file.as_ref().expect("records before `written` are in the file");
        let mut fixed = [0u8; FIXED];
        read_exact_at(file, &mut fixed, pos)?;
        let path_len = u32::from_le_bytes(fixed[FIXED - 4..].try_into().expect("4 bytes")) as usize;
        let mut record = Vec::with_capacity(FIXED + path_len);
        record.extend_from_slice(&fixed);
        record.resize(FIXED + path_len, 0);
        read_exact_at(file, &mut record[FIXED..], pos + FIXED as u64)?;
        decode(&mut record.as_slice())
    }

    /// Writes the pending records at `written` (positioned, so a failed attempt is simply
    /// written over by the next).
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
                self.file.insert(tempfile::tempfile_in(dir)?)
            }
        };
        write_all_at(file, &self.pending, self.written)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// The live entries of an [`EntryIndex`], in insertion order.
pub(super) struct Live<'a> {
    index: &'a EntryIndex,
    reader: Option<BufReader<&'a File>>,
    pos: u64,
}

impl Iterator for Live<'_> {
    type Item = std::io::Result<WrittenEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        while self.pos < self.index.written {
            let at = self.pos;
            let e = match decode(reader) {
                Ok(e) => e,
                Err(err) => return Some(Err(err)),
            };
            self.pos += (FIXED + e.data_path.len()) as u64;
            if self.index.is_live(at, &e.data_path) {
                return Some(Ok(e));
            }
        }
        None
    }
}

impl WrittenEntry {
    /// The entry as bytes (the index's record), for a spill file ([`WrittenEntry::from_record`]
    /// reads it back).
    pub(crate) fn to_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + self.data_path.len());
        encode(&mut out, self);
        out
    }

    /// An entry from [`WrittenEntry::to_record`]'s bytes.
    pub(crate) fn from_record(mut record: &[u8]) -> std::io::Result<WrittenEntry> {
        decode(&mut record)
    }
}

/// The table of the live entries that holds those with this tag.
fn shard(tag: u64) -> usize {
    (tag >> 20) as usize % SHARDS
}

/// The table's hash of a 24-bit tag: its low 20 bits (the top 4 choose the shard) both low, for
/// the bucket `hashbrown` starts at, and top, where it takes its control byte from.
fn spread(tag: u64) -> u64 {
    (tag << 44) | (tag & 0xf_ffff)
}

fn encode(out: &mut Vec<u8>, e: &WrittenEntry) {
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.compressed_size.to_le_bytes());
    out.extend_from_slice(&e.size.to_le_bytes());
    out.extend_from_slice(&e.crc32.to_le_bytes());
    out.extend_from_slice(&e.sha256);
    out.extend_from_slice(&e.method().to_le_bytes());
    out.push(u8::from(e.zip64) | (u8::from(e.descriptor) << 1));
    out.extend_from_slice(&(e.data_path.len() as u32).to_le_bytes());
    out.extend_from_slice(e.data_path.as_bytes());
}

fn decode(read: &mut impl Read) -> std::io::Result<WrittenEntry> {
    let mut f = [0u8; FIXED];
    read.read_exact(&mut f)?;
    let u64_at = |at: usize| u64::from_le_bytes(f[at..at + 8].try_into().expect("8 bytes"));
    let path_len = u32::from_le_bytes(f[63..67].try_into().expect("4 bytes")) as usize;
    let mut path = vec![0u8; path_len];
    read.read_exact(&mut path)?;
    let data_path = String::from_utf8(path).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(WrittenEntry {
        data_path,
        offset: u64_at(0),
        compressed_size: u64_at(8),
        size: u64_at(16),
        crc32: u32::from_le_bytes(f[24..28].try_into().expect("4 bytes")),
        sha256: f[28..60].try_into().expect("32 bytes"),
        compression: Compression::from_method(u16::from_le_bytes([f[60], f[61]])),
        zip64: f[62] & 1 != 0,
        descriptor: f[62] & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, offset: u64, size: u64) -> WrittenEntry {
        WrittenEntry {
            data_path: path.to_string(),
            offset,
            compressed_size: size,
            size,
            crc32: offset as u32,
            sha256: [offset as u8; 32],
            compression: if size.is_multiple_of(2) { Compression::Stored } else { Compression::Deflated },
            zip64: size > 100,
            descriptor: size > 200,
        }
    }

    fn live_paths(index: &mut EntryIndex) -> Vec<String> {
        index.live().unwrap().map(|e| e.unwrap().data_path).collect()
    }

    #[test]
    fn entries_round_trip_through_the_file_and_stay_in_order() {
        let mut index = EntryIndex::new(None);
        // Enough records that most are written out and some are still pending.
        let all: Vec<WrittenEntry> = (0..3000).map(|i| entry(&format!("images/ü-{i}.jpg"), i * 10, i + 1)).collect();
        for e in &all {
            assert!(index.get(&e.data_path).unwrap().is_none());
            index.insert(e).unwrap();
        }
        assert!(index.written > 0 && !index.pending.is_empty());
        assert_eq!(index.len(), 3000);
        assert_eq!(index.content_bytes(), (1..=3000).sum::<u64>());
        for e in [&all[0], &all[1500], &all[2999]] {
            assert_eq!(index.get(&e.data_path).unwrap().as_ref(), Some(e));
        }
        let back: Vec<WrittenEntry> = index.live().unwrap().map(Result::unwrap).collect();
        assert_eq!(back, all);
    }

    #[test]
    fn removed_entries_leave_the_live_set_and_may_come_back_later() {
        let mut index = EntryIndex::new(None);
        for (i, p) in ["a", "b", "c"].iter().enumerate() {
            index.insert(&entry(p, i as u64, 1)).unwrap();
        }
        assert_eq!(index.remove("b").unwrap().map(|e| e.offset), Some(1));
        assert!(index.remove("b").unwrap().is_none());
        assert!(index.get("b").unwrap().is_none());
        assert_eq!(live_paths(&mut index), ["a", "c"]);
        index.insert(&entry("b", 9, 4)).unwrap();
        assert_eq!(live_paths(&mut index), ["a", "c", "b"]);
        assert_eq!(index.get("b").unwrap().map(|e| e.offset), Some(9));
        assert_eq!((index.len(), index.content_bytes()), (3, 6));
    }

    #[test]
    fn paths_with_the_same_hash_are_told_apart() {
        let mut index = EntryIndex::new(None);
        // Every path has the same hash; some records are written out, some pending.
        index.one_tag = true;
        let all: Vec<WrittenEntry> = (0..1200).map(|i| entry(&format!("images/{i}.jpg"), i, 1)).collect();
        for e in &all {
            assert!(index.get(&e.data_path).unwrap().is_none(), "a hash hit is checked against the path");
            index.insert(e).unwrap();
        }
        assert!(index.written > 0 && !index.pending.is_empty());
        for e in [&all[0], &all[700], &all[1199]] {
            assert_eq!(index.get(&e.data_path).unwrap().as_ref(), Some(e));
        }
        assert_eq!(index.remove("images/700.jpg").unwrap().map(|e| e.offset), Some(700));
        assert!(index.get("images/700.jpg").unwrap().is_none());
        assert_eq!(index.get("images/701.jpg").unwrap().map(|e| e.offset), Some(701));
        let live = live_paths(&mut index);
        assert_eq!(live.len(), 1199);
        assert!(!live.contains(&"images/700.jpg".to_string()));
        index.insert(&entry("images/700.jpg", 9, 1)).unwrap();
        assert_eq!(index.get("images/700.jpg").unwrap().map(|e| e.offset), Some(9));
    }
}
