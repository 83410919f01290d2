//! The payload manifest of an opened archive, by entry position: what `verify` compares each
//! entry's SHA-256 with and what [`super::source::Source`] checks every entry it reads against.
//!
//! Memory holds one bit per archive entry (whether the manifest lists it); the SHA-256 itself
//! goes to an anonymous temporary file at `32 * entry index`, read back with one positioned read
//! per lookup. A lookup is by the entry the reader resolved the path to, never by a hash of the
//! path, so it is exact: it can only return the hash the manifest gives for that very entry.
//! About 1.1 million entries cost 140 KiB of memory and 35 MB of (sparse) temporary file.

use std::fs::File;
use std::path::Path;

use crate::platform::{read_exact_at, write_all_at};

/// Hashes are written out once this many bytes of consecutive ones are pending.
const PENDING: usize = 64 << 10;

/// SHA-256 by entry index, for the entries the manifest lists. See the module docs.
#[derive(Debug)]
pub struct ManifestTable {
    /// Bit `i`: the manifest lists entry `i`.
    listed: Vec<u64>,
    file: File,
    /// Consecutive hashes not yet written, the first for entry `pending_from`.
    pending: Vec<u8>,
    pending_from: u64,
}

impl ManifestTable {
    /// An empty table for an archive of `entries` entries, its file beside `archive` (on the
    /// archive's disk, not a memory-backed `/tmp`), or in the system's temporary directory when
    /// that folder cannot take one or the archive is not a local file (`None`: in a store).
    pub fn new(archive: Option<&Path>, entries: usize) -> std::io::Result<ManifestTable> {
        let dir = archive.map(|a| a.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")));
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir).or_else(|_| tempfile::tempfile())?,
            None => tempfile::tempfile()?,
        };
        Ok(ManifestTable { listed: vec![0; entries.div_ceil(64)], file, pending: Vec::new(), pending_from: 0 })
    }

    /// Records the manifest's hash for entry `index` (a later line for the same entry wins, as
    /// it would in a map).
    pub fn insert(&mut self, index: usize, sha: &[u8; 32]) -> std::io::Result<()> {
        let next = self.pending_from + (self.pending.len() / 32) as u64;
        if index as u64 != next || self.pending.len() >= PENDING {
            self.write_out()?;
            self.pending_from = index as u64;
        }
        self.pending.extend_from_slice(sha);
        self.listed[index / 64] |= 1 << (index % 64);
        Ok(())
    }

    /// Writes out what is pending: call once every line is inserted.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.write_out()
    }

    /// The manifest's hash for entry `index`, `None` if it does not list it.
    pub fn get(&self, index: usize) -> std::io::Result<Option<[u8; 32]>> {
        let listed = self.listed.get(index / 64).is_some_and(|w| w & (1 << (index % 64)) != 0);
        if !listed {
            return Ok(None);
        }
        let mut sha = [0u8; 32];
        read_exact_at(&self.file, &mut sha, index as u64 * 32)?;
        Ok(Some(sha))
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            write_all_at(&self.file, &self.pending, self.pending_from * 32)?;
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_come_back_by_entry_and_the_last_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = ManifestTable::new(Some(&dir.path().join("a.zip")), 5000).unwrap();
        // Runs of consecutive entries, a gap, a jump back, and more than one buffer's worth.
        for i in (0..3000).chain(4000..4100) {
            table.insert(i, &[(i % 251) as u8; 32]).unwrap();
        }
        table.insert(7, &[9; 32]).unwrap();
        table.finish().unwrap();
        assert_eq!(table.get(0).unwrap(), Some([0; 32]));
        assert_eq!(table.get(2999).unwrap(), Some([(2999 % 251) as u8; 32]));
        assert_eq!(table.get(4050).unwrap(), Some([(4050 % 251) as u8; 32]));
        assert_eq!(table.get(7).unwrap(), Some([9; 32]));
        assert_eq!(table.get(3500).unwrap(), None, "an entry the manifest does not list");
        assert_eq!(table.get(99_999).unwrap(), None, "an index past the archive");
    }
}
