//! What a backup holds of each project's images and stored predictions, in bounded memory: each
//! project's records sorted by id and written as one block to an anonymous temporary file
//! beside the backup (or in the system's temporary folder), read back one project at a time
//! while the plan is checked against it.
//!
//! Memory per image: nothing account-wide (a block's place is 16 bytes a project); while one
//! project is indexed or checked, 38 bytes for each of its images (the id and its
//! [`ImageContent`], no padding), looked up by binary search.

use std::fs::File;
use std::io;
use std::path::Path;

use uuid::Uuid;

use super::content::ImageContent;
use crate::platform::{read_exact_at, write_all_at};

/// Bytes of one record: the id, then the content.
const RECORD: usize = 16 + ImageContent::BYTES;

/// One project's images (or stored predictions) as a backup holds them: one record per id,
/// sorted by id.
#[derive(Debug, Clone, Default)]
pub struct HeldImages(Vec<(Uuid, ImageContent)>);

impl HeldImages {
    /// From records in any order; of records with the same id, the first is kept.
    pub fn new(mut records: Vec<(Uuid, ImageContent)>) -> HeldImages {
        // Stable: the first of equal ids stays first, and dedup keeps it.
        records.sort_by_key(|(id, _)| *id);
        records.dedup_by_key(|(id, _)| *id);
        HeldImages(records)
    }

    /// What the backup holds of image `id`, if it holds it.
    pub fn get(&self, id: &Uuid) -> Option<&ImageContent> {
        self.0.binary_search_by_key(id, |(i, _)| *i).ok().map(|at| &self.0[at].1)
    }

    /// Whether the backup holds `id`.
    pub fn contains(&self, id: &Uuid) -> bool {
        self.get(id).is_some()
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where one project's records are in a [`HeldFile`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    offset: u64,
    count: u64,
}

impl Block {
    /// How many records.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The temporary file of every project's records, written once, block after block.
#[derive(Debug)]
pub struct HeldFile {
    /// Created on the first non-empty block.
    file: Option<File>,
    /// Beside the backup, so that it shares its disk rather than a memory-backed `/tmp`.
    dir: Option<std::path::PathBuf>,
    len: u64,
}

impl HeldFile {
    /// An empty file to be made in `dir` (or, if that cannot be written, the system's
    /// temporary folder) once there is something to write.
    pub fn new(dir: Option<&Path>) -> HeldFile {
        HeldFile { file: None, dir: dir.map(Path::to_path_buf), len: 0 }
    }

    /// Writes `held` as the next block.
    pub fn append(&mut self, held: &HeldImages) -> io::Result<Block> {
        let block = Block { offset: self.len, count: held.len() as u64 };
        if held.is_empty() {
            return Ok(block);
        }
        let file = match &mut self.file {
            Some(file) => file,
            none => none.insert(create(self.dir.as_deref())?),
        };
        // In slices of records, so that the bytes written never cost more than a few hundred KB.
        let mut at = self.len;
        for chunk in held.0.chunks(8192) {
            let mut bytes = Vec::with_capacity(chunk.len() * RECORD);
            for (id, content) in chunk {
                bytes.extend_from_slice(id.as_bytes());
                bytes.extend_from_slice(&content.to_bytes());
            }
            write_all_at(file, &bytes, at)?;
            at += bytes.len() as u64;
        }
        self.len = at;
        Ok(block)
    }

    /// Reads a block back.
    pub fn load(&self, block: Block) -> io::Result<HeldImages> {
        let (Some(file), false) = (&self.file, block.is_empty()) else { return Ok(HeldImages::default()) };
        let mut out = Vec::with_capacity(block.count as usize);
        let mut buf = vec![0; 8192 * RECORD];
        let mut left = block.count as usize;
        let mut at = block.offset;
        while left > 0 {
            let n = left.min(8192);
            let bytes = &mut buf[..n * RECORD];
            read_exact_at(file, bytes, at)?;
            for record in bytes.chunks_exact(RECORD) {
                let id = Uuid::from_slice(&record[..16]).expect("16 bytes");
                out.push((id, ImageContent::from_bytes(record[16..].try_into().expect("a record's content"))));
            }
            at += bytes.len() as u64;
            left -= n;
        }
        Ok(HeldImages(out))
    }
}

/// An anonymous temporary file in `dir`, or in the system's temporary folder when `dir` cannot
/// take one (a read-only folder).
fn create(dir: Option<&Path>) -> io::Result<File> {
    match dir.map(tempfile::tempfile_in) {
        Some(Ok(file)) => Ok(file),
        _ => tempfile::tempfile(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(n: u8) -> ImageContent {
        let meta = std::collections::BTreeMap::from([("n".to_owned(), n.to_string())]);
        ImageContent::of(None, None, Some(&meta))
    }

    #[test]
    fn blocks_read_back_sorted_with_the_first_of_each_id() {
        let mut file = HeldFile::new(None);
        let first = HeldImages::new(vec![(Uuid::from_u128(3), content(1)), (Uuid::from_u128(1), content(2))]);
        let records: Vec<_> = (0..20_000u128).rev().map(|i| (Uuid::from_u128(i), content(i as u8))).collect();
        let mut second = records.clone();
        second.push((Uuid::from_u128(5), content(99)));
        let a = file.append(&first).unwrap();
        let empty = file.append(&HeldImages::default()).unwrap();
        let b = file.append(&HeldImages::new(second)).unwrap();
        let back = file.load(a).unwrap();
        assert_eq!(back.0, first.0);
        assert_eq!(back.get(&Uuid::from_u128(1)), Some(&content(2)));
        assert!(!back.contains(&Uuid::from_u128(2)));
        assert!(file.load(empty).unwrap().is_empty());
        let back = file.load(b).unwrap();
        assert_eq!(back.len(), 20_000);
        assert_eq!(back.get(&Uuid::from_u128(5)), Some(&content(5)), "the first record of an id is kept");
        assert_eq!(back.get(&Uuid::from_u128(19_999)), Some(&content(19_999u128 as u8)));
    }
}
