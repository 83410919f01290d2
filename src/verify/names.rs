//! Every entry's name in bounded memory, for lookups by name and for duplicates.
//!
//! Per entry it holds a 96-bit keyed hash of the name and the entry's index, 16 bytes, in one
//! vector sorted by hash: a manifest line, a listing line or a tag file's name is found by a
//! binary search, duplicates are neighbours, and no name is kept as a string. The hash is two
//! SipHash-1-3 with keys drawn at random per run (the standard library's `RandomState`), so
//! the names of an archive, however hostile, cannot be chosen to collide. The hash stands in
//! for the name without reading it back: two different names share all 96 bits with odds of
//! about n²/2⁹⁷ per run (10⁻¹⁷ at a million entries, 10⁻¹⁵ at ten million), and reading each
//! looked-up name back from the zip directory would cost a read per manifest and listing line,
//! two million reads at a million images, most of `--fast`'s time. [`Bits`] is one bit per
//! entry.

use std::hash::{BuildHasher, Hasher, RandomState};

/// One entry: its name's hash (64 bits, then 32 more) and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    key: u64,
    check: u32,
    index: u32,
}

/// Entry names as hashes, sorted (see the module docs).
#[derive(Debug)]
pub(super) struct Names {
    first: RandomState,
    second: RandomState,
    slots: Vec<Slot>,
}

impl Names {
    /// An empty table for about `entries` names.
    pub(super) fn with_capacity(entries: usize) -> Names {
        Names { first: RandomState::new(), second: RandomState::new(), slots: Vec::with_capacity(entries) }
    }

    /// The hash of the name made of `parts` one after the other.
    fn hash(&self, parts: &[&str]) -> (u64, u32) {
        let (mut a, mut b) = (self.first.build_hasher(), self.second.build_hasher());
        for p in parts {
            // `write` is a byte stream: the parts hash as the name they make.
            a.write(p.as_bytes());
            b.write(p.as_bytes());
        }
        (a.finish(), b.finish() as u32)
    }

    /// Adds entry `index` named `name` (call [`Names::sort`] before looking up).
    pub(super) fn push(&mut self, name: &str, index: usize) {
        let (key, check) = self.hash(&[name]);
        self.slots.push(Slot { key, check, index: index as u32 });
    }

    /// Sorts the table: by hash, entries of one name by index.
    pub(super) fn sort(&mut self) {
        self.slots.sort_unstable();
    }

    /// The indices of the entries named `parts` joined, first entry first.
    pub(super) fn find(&self, parts: &[&str]) -> impl Iterator<Item = usize> + '_ {
        let (key, check) = self.hash(parts);
        let start = self.slots.partition_point(|s| (s.key, s.check) < (key, check));
        self.slots[start..].iter().take_while(move |s| (s.key, s.check) == (key, check)).map(|s| s.index as usize)
    }

    /// Each name more than one entry has: its first entry's index and the others', in order of
    /// the first.
    pub(super) fn duplicates(&self) -> Vec<(usize, Vec<usize>)> {
        let mut out = Vec::new();
        for run in self.slots.chunk_by(|a, b| (a.key, a.check) == (b.key, b.check)) {
            if run.len() > 1 {
                out.push((run[0].index as usize, run[1..].iter().map(|s| s.index as usize).collect()));
            }
        }
        out.sort_unstable_by_key(|(first, _)| *first);
        out
    }
}

/// One bit per entry.
#[derive(Debug, Clone, Default)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    /// `len` bits, all clear.
    pub(super) fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    /// Whether bit `i` is set (bits past the end are clear).
    pub(super) fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sets bit `i` (which must be in range).
    pub(super) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_by_their_parts_and_duplicates_are_neighbours() {
        let mut names = Names::with_capacity(4);
        for (i, n) in ["bag/a", "bag/b", "bag/a", "bag/c"].iter().enumerate() {
            names.push(n, i);
        }
        names.sort();
        assert_eq!(names.find(&["bag", "/", "a"]).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(names.find(&["bag/c"]).collect::<Vec<_>>(), [3]);
        assert_eq!(names.find(&["bag/d"]).count(), 0);
        assert_eq!(names.duplicates(), [(0, vec![2])]);
    }

    #[test]
    fn bits() {
        let mut b = Bits::new(130);
        b.set(129);
        assert!(b.get(129) && !b.get(128) && !b.get(5000));
    }
}
