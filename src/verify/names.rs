//! Every entry's name in bounded memory, for lookups by name and for duplicates.
//!
//! Per entry it holds a 96-bit keyed hash of the name (12 bytes, by entry index) and the
//! entry's place in the hash order (4 bytes): a manifest line, a listing line or a tag file's
//! name is found by its hash, duplicates are neighbours in the order, and no name is kept as a
//! string. Callers that read names in directory order (the manifest of our own archives, and
//! nearly the listings) pass a hint, the entry after the last found, which is tried first. The hash is two
//! SipHash-1-3 with keys drawn at random per run (the standard library's `RandomState`), so
//! the names of an archive, however hostile, cannot be chosen to collide. The hash stands in
//! for the name without reading it back: two different names share all 96 bits with odds of
//! about n²/2⁹⁷ per run (10⁻¹⁷ at a million entries, 10⁻¹⁵ at ten million), and reading each
//! looked-up name back from the zip directory would cost a read per manifest and listing line,
//! two million reads at a million images, most of `--fast`'s time. A binary search over the
//! table costs a cache miss a step (twenty at a million entries, most of `--fast`'s time again),
//! so a lookup tries the hint's neighbours, then a bucket index by the hash's top bits (about 2
//! to 4 bytes an entry) that starts the search within an entry or two of its answer. [`Bits`] is one bit per entry.

use std::hash::{BuildHasher, Hasher, RandomState};

/// Entry names as hashes (see the module docs).
#[derive(Debug)]
pub(super) struct Names {
    first: RandomState,
    second: RandomState,
    /// By entry index: the name's hash, 64 bits and 32 more.
    keys: Vec<u64>,
    checks: Vec<u32>,
    /// Entry indices sorted by hash (entries of one name by index).
    order: Vec<u32>,
    /// Where each bucket (the hash's top `bucket_bits` bits) starts in `order`, and the end.
    buckets: Vec<u32>,
    bucket_bits: u32,
}

/// How many entries after the hint a lookup tries before it searches: the hint's neighbours are
/// in cache, and listings run nearly in directory order.
const NEAR: usize = 32;

impl Names {
    /// An empty table for about `entries` names.
    pub(super) fn with_capacity(entries: usize) -> Names {
        Names {
            first: RandomState::new(),
            second: RandomState::new(),
            keys: Vec::with_capacity(entries),
            checks: Vec::with_capacity(entries),
            order: Vec::new(),
            buckets: Vec::new(),
            bucket_bits: 0,
        }
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

    /// Adds the next entry (entries come in index order, from 0), named `name`; call
    /// [`Names::sort`] before looking up.
    pub(super) fn push(&mut self, name: &str) {
        let (key, check) = self.hash(&[name]);
        self.keys.push(key);
        self.checks.push(check);
    }

    fn at(&self, index: usize) -> (u64, u32) {
        (self.keys[index], self.checks[index])
    }

    /// Sorts the index (by hash, entries of one name by index) and indexes its buckets: about
    /// one bucket per entry.
    pub(super) fn sort(&mut self) {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (self.keys[i as usize], self.checks[i as usize], i));
        self.bucket_bits = (order.len().max(1).ilog2()).clamp(1, 32);
        let count = 1usize << self.bucket_bits;
        let mut buckets = Vec::with_capacity(count + 1);
        let mut at = 0usize;
        for b in 0..count {
            while at < order.len() && self.bucket(self.keys[order[at] as usize]) < b {
                at += 1;
            }
            buckets.push(at as u32);
        }
        buckets.push(order.len() as u32);
        self.order = order;
        self.buckets = buckets;
    }

    fn bucket(&self, key: u64) -> usize {
        (key >> (64 - self.bucket_bits)) as usize
    }

    /// The first entry named `parts` joined for which `wanted` holds, trying the entries from
    /// `hint` on first (a caller reading names in directory order passes the entry after the
    /// last it found).
    pub(super) fn find(&self, parts: &[&str], hint: usize, wanted: impl Fn(usize) -> bool) -> Option<usize> {
        let hash = self.hash(parts);
        let near = hint.min(self.keys.len())..(hint.saturating_add(NEAR)).min(self.keys.len());
        if let Some(i) = near.into_iter().find(|&i| self.at(i) == hash && wanted(i)) {
            return Some(i);
        }
        let b = self.bucket(hash.0);
        let (from, to) = match (self.buckets.get(b), self.buckets.get(b + 1)) {
            (Some(&from), Some(&to)) => (from as usize, to as usize),
            _ => (0, 0),
        };
        let bucket = &self.order[from..to];
        let start = bucket.partition_point(|&i| self.at(i as usize) < hash);
        bucket[start..].iter().map(|&i| i as usize).take_while(|&i| self.at(i) == hash).find(|&i| wanted(i))
    }

    /// Each name more than one entry has: its first entry's index and the others', in order of
    /// the first.
    pub(super) fn duplicates(&self) -> Vec<(usize, Vec<usize>)> {
        let mut out = Vec::new();
        for run in self.order.chunk_by(|&a, &b| self.at(a as usize) == self.at(b as usize)) {
            if run.len() > 1 {
                out.push((run[0] as usize, run[1..].iter().map(|&i| i as usize).collect()));
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
        for n in ["bag/a", "bag/b", "bag/a", "bag/c"] {
            names.push(n);
        }
        names.sort();
        let any = |_| true;
        assert_eq!(names.find(&["bag", "/", "a"], 0, any), Some(0));
        assert_eq!(names.find(&["bag", "/", "a"], 1, any), Some(2), "from the hint on");
        assert_eq!(names.find(&["bag", "/", "a"], 1, |i| i == 0), Some(0), "else by hash");
        assert_eq!(names.find(&["bag/c"], 99, any), Some(3));
        assert_eq!(names.find(&["bag/d"], 0, any), None);
        assert_eq!(names.duplicates(), [(0, vec![2])]);
    }

    #[test]
    fn bits() {
        let mut b = Bits::new(130);
        b.set(129);
        assert!(b.get(129) && !b.get(128) && !b.get(5000));
    }
}
