//! The image ids of one project, in about 12 bytes of memory each instead of 30-40.
//!
//! An [`IdSet`] gives each distinct id an ordinal (0, 1, 2, … in insertion order) and answers
//! "seen before, and under which ordinal?". The ids themselves (16 bytes each) go to an
//! anonymous temporary file beside the archive, at `ordinal × 16`; memory holds one `u64` per id:
//! the top 32 bits of a keyed hash of the id (SipHash with a per-run random key, so ids chosen to
//! collide cannot be prepared) and the ordinal, in an open-addressing table (`hashbrown`'s
//! `HashTable`, 8 bytes a slot plus a control byte, at most 7/8 full: 10-20 bytes an id,
//! about 12 on average). Equal 32-bit hashes are expected among many ids (about one pair in
//! 100,000 ids): every candidate whose hash matches is confirmed by reading its id back, so the
//! answer is always exact, and a collision costs one 16-byte read, never a wrong answer.
//!
//! [`Bits`] is a set of ordinals, one bit each: which ids a pass or an iteration holds.
//! [`IdList`] is a list of ids kept in a temporary file, nothing in memory: the ids an
//! iteration's GetImagePerformances listed, read again once the workspace listing is done.

use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use hashbrown::HashTable;
use uuid::Uuid;

use crate::platform::{read_exact_at, write_all_at};

/// Ids are written out once this many bytes of them are pending (fewer in tests, to reach the
/// file with few ids).
const PENDING: usize = if cfg!(test) { 1 << 10 } else { 64 << 10 };

/// Distinct image ids with their ordinals. See the module docs.
#[derive(Debug)]
pub struct IdSet {
    keys: std::collections::hash_map::RandomState,
    /// `hash tag << 32 | ordinal` per id.
    table: HashTable<u64>,
    dir: PathBuf,
    /// Ids written out so far, 16 bytes each, by ordinal; created on the first write.
    file: Option<File>,
    /// Ids in `file`.
    written: u64,
    /// Ids not yet written out; they follow `written`.
    pending: Vec<u8>,
    len: u64,
    /// Tests force every id to one hash tag, to exercise the confirmation of collisions.
    #[cfg(test)]
    one_tag: bool,
}

impl IdSet {
    /// An empty set whose temporary file (created on the first write-out) goes in `dir`.
    pub fn new_in(dir: &Path) -> IdSet {
        IdSet {
            keys: Default::default(),
            table: HashTable::new(),
            dir: dir.to_path_buf(),
            file: None,
            written: 0,
            pending: Vec::new(),
            len: 0,
            #[cfg(test)]
            one_tag: false,
        }
    }

    /// Number of distinct ids.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The ordinal of `id`, if it is in the set.
    pub fn get(&self, id: &Uuid) -> io::Result<Option<u64>> {
        let tag = self.tag(id);
        let failed = std::cell::Cell::new(None);
        let found = self.table.find(spread(tag), |&e| self.holds(e, tag, id, &failed)).copied();
        match failed.take() {
            Some(e) => Err(e),
            None => Ok(found.map(ordinal)),
        }
    }

    /// Adds `id` if it is new. Returns its ordinal and whether it was new.
    pub fn insert(&mut self, id: Uuid) -> io::Result<(u64, bool)> {
        if let Some(n) = self.get(&id)? {
            return Ok((n, false));
        }
        let n = self.len;
        let Ok(small) = u32::try_from(n) else {
            return Err(io::Error::other("more than 4,294,967,295 image ids in one project"));
        };
        self.pending.extend_from_slice(id.as_bytes());
        if self.pending.len() >= PENDING {
            if let Err(e) = self.write_out() {
                self.pending.truncate(self.pending.len() - 16);
                return Err(e);
            }
        }
        let tag = self.tag(&id);
        self.table.insert_unique(spread(tag), u64::from(tag) << 32 | u64::from(small), |&e| spread((e >> 32) as u32));
        self.len += 1;
        Ok((n, true))
    }

    /// Whether table element `e` is `id`: its tag matches and the id stored at its ordinal is
    /// `id`. A failed read is kept in `failed` (and answers "no").
    fn holds(&self, e: u64, tag: u32, id: &Uuid, failed: &std::cell::Cell<Option<io::Error>>) -> bool {
        if (e >> 32) as u32 != tag {
            return false;
        }
        match self.id_at(ordinal(e)) {
            Ok(stored) => stored == *id,
            Err(err) => {
                failed.set(Some(err));
                false
            }
        }
    }

    fn id_at(&self, n: u64) -> io::Result<Uuid> {
        let mut bytes = [0u8; 16];
        if n >= self.written {
            let at = ((n - self.written) * 16) as usize;
            bytes.copy_from_slice(&self.pending[at..at + 16]);
        } else {
            let file = self.file.as_ref().expect("ids before `written` are in the file");
            read_exact_at(file, &mut bytes, n * 16)?;
        }
        Ok(Uuid::from_bytes(bytes))
    }

    fn write_out(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(tempfile::tempfile_in(&self.dir)?),
        };
        write_all_at(file, &self.pending, self.written * 16)?;
        self.written += (self.pending.len() / 16) as u64;
        self.pending.clear();
        Ok(())
    }

    fn tag(&self, id: &Uuid) -> u32 {
        #[cfg(test)]
        if self.one_tag {
            return 7;
        }
        (self.keys.hash_one(id.as_u128()) >> 32) as u32
    }
}

fn ordinal(e: u64) -> u64 {
    e & 0xffff_ffff
}

/// The table's hash of a tag: the tag in both halves, so that the bits `hashbrown` takes for the
/// bucket (low) and for its control byte (top 7) both come from the keyed hash.
fn spread(tag: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(tag)
}

/// A set of ordinals, one bit each, growing as needed.
#[derive(Debug, Default, Clone)]
pub struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// Adds `n`; returns whether it was new.
    pub fn insert(&mut self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        new
    }

    /// Whether `n` is in the set.
    pub fn contains(&self, n: u64) -> bool {
        self.words.get((n / 64) as usize).is_some_and(|w| w & (1u64 << (n % 64)) != 0)
    }

    /// Empties the set, keeping its memory.
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
}

/// Ids in a temporary file, in the order pushed. See the module docs.
#[derive(Debug)]
pub struct IdList {
    out: BufWriter<File>,
    len: u64,
}

impl IdList {
    /// An empty list in an anonymous temporary file inside `dir`.
    pub fn new_in(dir: &Path) -> io::Result<IdList> {
        Ok(IdList { out: BufWriter::new(tempfile::tempfile_in(dir)?), len: 0 })
    }

    /// Appends `id`.
    pub fn push(&mut self, id: Uuid) -> io::Result<()> {
        self.out.write_all(id.as_bytes())?;
        self.len += 1;
        Ok(())
    }

    /// The ids, in the order pushed.
    pub fn into_ids(self) -> io::Result<impl Iterator<Item = io::Result<Uuid>>> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let mut read = BufReader::new(file);
        Ok((0..self.len).map(move |_| {
            let mut bytes = [0u8; 16];
            read.read_exact(&mut bytes)?;
            Ok(Uuid::from_bytes(bytes))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (0..n).map(|i| Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ 0xABCD)).collect()
    }

    fn check(set: &mut IdSet, all: &[Uuid]) {
        for (i, id) in all.iter().enumerate() {
            assert_eq!(set.insert(*id).unwrap(), (i as u64, true));
        }
        assert_eq!(set.len(), all.len() as u64);
        for (i, id) in all.iter().enumerate() {
            assert_eq!(set.insert(*id).unwrap(), (i as u64, false), "a second insert finds the first");
            assert_eq!(set.get(id).unwrap(), Some(i as u64));
        }
        assert_eq!(set.get(&Uuid::from_u128(u128::MAX)).unwrap(), None);
        assert_eq!(set.len(), all.len() as u64);
    }

    #[test]
    fn ids_get_ordinals_and_are_found_again_from_memory_and_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = IdSet::new_in(dir.path());
        // Enough ids that most are written out and some are still pending.
        let all = ids(10_000);
        check(&mut set, &all);
        assert!(set.written > 0 && !set.pending.is_empty());
    }

    #[test]
    fn ids_with_the_same_hash_are_told_apart_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = IdSet::new_in(dir.path());
        set.one_tag = true;
        // Every id collides with every other; some are in the file, some pending.
        let all = ids(600);
        check(&mut set, &all[..30]);
        let mut more = IdSet::new_in(dir.path());
        more.one_tag = true;
        check(&mut more, &all);
        assert!(more.written > 0 && !more.pending.is_empty());
    }

    #[test]
    fn an_id_list_gives_its_ids_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut list = IdList::new_in(dir.path()).unwrap();
        let all = ids(3_000);
        all.iter().for_each(|id| list.push(*id).unwrap());
        let back: Vec<Uuid> = list.into_ids().unwrap().map(Result::unwrap).collect();
        assert_eq!(back, all);
    }

    #[test]
    fn bits_hold_ordinals() {
        let mut bits = Bits::default();
        assert!(bits.insert(3) && bits.insert(64 * 5 + 1));
        assert!(!bits.insert(3));
        assert!(bits.contains(3) && bits.contains(321) && !bits.contains(4) && !bits.contains(100_000));
        bits.clear();
        assert!(!bits.contains(3));
    }
}
