//! The zip encoding the writer needs and nothing more: local headers (sizes and CRC-32 known up
//! front, or reserved as ZIP64 fields and patched in place, or left to a data descriptor),
//! central directory records, the end records (ZIP64 when needed), and [`ArchiveFile`], one large
//! sequential write buffer over the archive file that knows its offset, can patch bytes it
//! already wrote and can roll back a failed entry.
//!
//! A local archive never has data descriptors (bit 3): every local header carries the entry's
//! real sizes and CRC-32, so a partial archive can be checked and resumed from its local headers.
//! An archive uploaded as it is written (to a store) is written strictly forward: its streamed
//! entries (the listings, the manifest) have a ZIP64 data descriptor after their data instead of a
//! patched header, since the header may already be in the store.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::store::upload::Watcher;

use sha2::{Digest, Sha256};

pub(super) use super::zipconst::DESCRIPTOR_LEN;
use super::zipconst::{
    CENTRAL_SIG, DESCRIPTOR_SIG, EOCD_SIG, FLAG_DESCRIPTOR, LOCAL_HEADER_LEN, LOCAL_SIG, ZIP64_EOCD_SIG,
    ZIP64_LOCATOR_SIG,
};
use crate::platform::{read_exact_at, write_all_at};

/// Bit 11: names are UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// MS-DOS date of 1980-01-01 (the earliest a zip can say), time 00:00: output is deterministic.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// Version made by: Unix (3), spec 4.5, so external attributes carry a Unix mode.
const MADE_BY: u16 = (3 << 8) | 45;
/// Regular file, mode 0644, in the high half of the external attributes.
const EXTERNAL_ATTRS: u32 = 0o100644 << 16;
/// A 32-bit field that says "see the ZIP64 extra field".
const MARK32: u32 = 0xFFFF_FFFF;
/// Size of a local header's ZIP64 extra field (header + both sizes).
const LOCAL_ZIP64_EXTRA: u16 = 20;
/// Offset of the CRC-32 inside a local header.
const LOCAL_CRC_AT: u64 = 14;

/// Where ZIP64 starts. The real limits are the format's; tests lower them to exercise ZIP64
/// without writing 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zip64Limits {
    /// Sizes and offsets at or above this need ZIP64 fields.
    pub size: u64,
    /// Entry counts at or above this need the ZIP64 end record.
    pub count: u64,
}

impl Default for Zip64Limits {
    fn default() -> Zip64Limits {
        Zip64Limits { size: MARK32 as u64, count: 0xFFFF }
    }
}

/// What a header says about one entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub method: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub size: u64,
    /// The local header carries a ZIP64 extra field with both sizes.
    pub zip64: bool,
    /// CRC-32 and sizes follow the data in a ZIP64 data descriptor; the local header has zeros.
    pub descriptor: bool,
}

impl Header {
    /// The general purpose flags of both headers.
    fn flags(&self) -> u16 {
        if self.descriptor {
            FLAG_UTF8 | FLAG_DESCRIPTOR
        } else {
            FLAG_UTF8
        }
    }
}

/// Appends a ZIP64 data descriptor (the entry's local header has the ZIP64 extra field).
pub(super) fn data_descriptor(out: &mut Vec<u8>, crc32: u32, compressed: u64, size: u64) {
    put32(out, DESCRIPTOR_SIG);
    put32(out, crc32);
    put64(out, compressed);
    put64(out, size);
}

/// The length of a local header for a name of `name_len` bytes.
pub(super) fn local_header_len(name_len: usize, zip64: bool) -> u64 {
    LOCAL_HEADER_LEN + name_len as u64 + if zip64 { LOCAL_ZIP64_EXTRA as u64 } else { 0 }
}

/// Appends a local header to `out`.
pub(super) fn local_header(out: &mut Vec<u8>, name: &[u8], h: &Header) {
    put32(out, LOCAL_SIG);
    put16(out, if h.zip64 { 45 } else { 20 });
    put16(out, h.flags());
    put16(out, h.method);
    put16(out, DOS_TIME);
    put16(out, DOS_DATE);
    put32(out, h.crc32);
    if h.zip64 {
        put32(out, MARK32);
        put32(out, MARK32);
    } else {
        put32(out, h.compressed_size as u32);
        put32(out, h.size as u32);
    }
    put16(out, name.len() as u16);
    put16(out, if h.zip64 { LOCAL_ZIP64_EXTRA } else { 0 });
    out.extend_from_slice(name);
    if h.zip64 {
        put16(out, 0x0001);
        put16(out, 16);
        put64(out, h.size);
        put64(out, h.compressed_size);
    }
}

/// The patch that completes a ZIP64 local header written with placeholder CRC and sizes:
/// `(offset inside the header, bytes)` pairs.
pub(super) fn local_header_patch(name_len: usize, crc32: u32, compressed: u64, size: u64) -> [(u64, Vec<u8>); 2] {
    let mut sizes = Vec::with_capacity(16);
    put64(&mut sizes, size);
    put64(&mut sizes, compressed);
    [(LOCAL_CRC_AT, crc32.to_le_bytes().to_vec()), (LOCAL_HEADER_LEN + name_len as u64 + 4, sizes)]
}

/// Appends a central directory record to `out`. Sizes go to ZIP64 exactly when the local
/// header had them there (readers compare the two); the offset when it reaches the limit.
pub(super) fn central_header(out: &mut Vec<u8>, name: &[u8], h: &Header, offset: u64, limits: &Zip64Limits) {
    let big_offset = offset >= limits.size;
    let mut extra = Vec::new();
    if h.zip64 {
        put64(&mut extra, h.size);
        put64(&mut extra, h.compressed_size);
    }
    if big_offset {
        put64(&mut extra, offset);
    }
    put32(out, CENTRAL_SIG);
    put16(out, MADE_BY);
    put16(out, if h.zip64 || big_offset { 45 } else { 20 });
    put16(out, h.flags());
    put16(out, h.method);
    put16(out, DOS_TIME);
    put16(out, DOS_DATE);
    put32(out, h.crc32);
    put32(out, if h.zip64 { MARK32 } else { h.compressed_size as u32 });
    put32(out, if h.zip64 { MARK32 } else { h.size as u32 });
    put16(out, name.len() as u16);
    put16(out, if extra.is_empty() { 0 } else { extra.len() as u16 + 4 });
    put16(out, 0); // comment length
    put16(out, 0); // disk number
    put16(out, 0); // internal attributes
    put32(out, EXTERNAL_ATTRS);
    put32(out, if big_offset { MARK32 } else { offset as u32 });
    out.extend_from_slice(name);
    if !extra.is_empty() {
        put16(out, 0x0001);
        put16(out, extra.len() as u16);
        out.extend_from_slice(&extra);
    }
}

/// Appends the end records for `count` entries whose directory of `cd_size` bytes starts at
/// `cd_offset`: the ZIP64 end record and locator first when any value needs them.
pub(super) fn end_records(out: &mut Vec<u8>, count: u64, cd_offset: u64, cd_size: u64, limits: &Zip64Limits) {
    let zip64 = count >= limits.count || cd_offset >= limits.size || cd_size >= limits.size;
    if zip64 {
        let z_offset = cd_offset + cd_size;
        put32(out, ZIP64_EOCD_SIG);
        put64(out, 44); // size of the rest of this record
        put16(out, MADE_BY);
        put16(out, 45);
        put32(out, 0); // this disk
        put32(out, 0); // disk with the directory
        put64(out, count);
        put64(out, count);
        put64(out, cd_size);
        put64(out, cd_offset);
        put32(out, ZIP64_LOCATOR_SIG);
        put32(out, 0);
        put64(out, z_offset);
        put32(out, 1); // total disks
    }
    put32(out, EOCD_SIG);
    put16(out, 0);
    put16(out, 0);
    let count16 = if zip64 { 0xFFFF } else { count as u16 };
    put16(out, count16);
    put16(out, count16);
    put32(out, if zip64 { MARK32 } else { cd_size as u32 });
    put32(out, if zip64 { MARK32 } else { cd_offset as u32 });
    put16(out, 0); // comment length
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// From this size on, [`ArchiveFile::put_direct`] writes bytes without buffering them: few enough
/// writes still, and big ones.
const DIRECT: usize = 64 << 10;

/// The archive file behind one large buffer. `flushed` is exactly how many bytes the file holds
/// (partial writes are accounted), so a failed entry can always be rolled back and the journal
/// never gets ahead of the data.
///
/// It also hashes the file with SHA-256 as bytes reach it, so that the finished archive's hash
/// costs no second read. The hash holds only while the file was written from its first byte and
/// nothing hashed was changed: a rollback into the file, or a patch of hashed bytes, drops it,
/// and the caller hashes the file instead. An entry whose header is patched once its data is
/// written (a streamed entry larger than the buffer) holds the hash at its header
/// ([`ArchiveFile::hold_hash`]) and releases it after the patch, which hashes only that entry
/// again.
///
/// Large data written whole skips the buffer ([`ArchiveFile::put_direct`]), and every 32 MiB the
/// OS is asked to start writing the file back ([`ArchiveFile::start_writeback`]).
pub(super) struct ArchiveFile {
    file: File,
    /// Told of every byte that reaches the file, when the file is shipped as it grows.
    watcher: Option<Arc<dyn Watcher>>,
    buf: Vec<u8>,
    cap: usize,
    flushed: u64,
    hash: Option<Sha256>,
    /// Bytes from here on are not hashed as they reach the file (see [`ArchiveFile::hold_hash`]).
    hold: Option<u64>,
    /// Bytes up to which the OS was asked to start writing back (see
    /// [`ArchiveFile::start_writeback`]).
    hinted: u64,
}

/// How many written bytes at most wait in the page cache before the OS is asked to write them.
const WRITEBACK_STEP: u64 = 32 << 20;

impl std::fmt::Debug for ArchiveFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveFile")
            .field("flushed", &self.flushed)
            .field("hashing", &self.hash.is_some())
            .finish_non_exhaustive()
    }
}

impl ArchiveFile {
    /// Writes into `file` from `at` on (the file's cursor must be there).
    pub fn new(file: File, at: u64, capacity: usize) -> ArchiveFile {
        let hash = (at == 0).then(Sha256::new);
        ArchiveFile {
            file,
            watcher: None,
            buf: Vec::with_capacity(capacity),
            cap: capacity,
            flushed: at,
            hash,
            hold: None,
            hinted: at,
        }
    }

    /// The SHA-256 of everything written, if it still holds (see the type's docs). Call once the
    /// buffer is flushed for the last time.
    pub fn take_digest(&mut self) -> Option<[u8; 32]> {
        if !self.buf.is_empty() {
            return None;
        }
        self.hash.take().map(|h| h.finalize().into())
    }

    /// The offset the next byte goes to.
    pub fn pos(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// How many bytes the file holds (the rest of [`ArchiveFile::pos`] is buffered).
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// Stops hashing what is written ([`ArchiveFile::take_digest`] then gives `None`).
    pub fn stop_hashing(&mut self) {
        self.hash = None;
    }

    /// Tells `watcher` of every byte that reaches the file from now on.
    pub fn watch(&mut self, watcher: Arc<dyn Watcher>) {
        self.watcher = Some(watcher);
    }

    fn tell(&self) -> std::io::Result<()> {
        match &self.watcher {
            Some(w) => w.written(self.flushed),
            None => Ok(()),
        }
    }

    /// Appends bytes; large ones bypass the buffer once it is emptied.
    pub fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + bytes.len() <= self.cap {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_buffer()?;
        if bytes.len() >= self.cap / 2 {
            self.write_through(bytes)
        } else {
            self.buf.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// Appends bytes that are written once and never patched (a whole entry's data): large ones
    /// go from the caller's memory straight to the file, after what is buffered, instead of being
    /// copied into the buffer first (a copy of every image byte, on the writer thread).
    pub fn put_direct(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() < DIRECT {
            return self.put(bytes);
        }
        self.flush_buffer()?;
        self.write_through(bytes)
    }

    /// Writes bytes to the file (the buffer must be empty), hashing what reached it.
    fn write_through(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut done = 0;
        let result = write_counted(&mut self.file, bytes, &mut done);
        self.hash_written(&bytes[..done]);
        self.flushed += done as u64;
        self.start_writeback();
        result.and_then(|()| self.tell())
    }

    /// Hands the buffer to the OS.
    pub fn flush_buffer(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        let result = write_counted(&mut self.file, &self.buf, &mut done);
        if let Some(h) = &mut self.hash {
            h.update(&self.buf[..held_from(self.hold, self.flushed, done)]);
        }
        self.buf.drain(..done);
        self.flushed += done as u64;
        self.start_writeback();
        result.and_then(|()| self.tell())
    }

    /// Hashes `bytes`, which just reached the file at `flushed`, up to the hold if there is one.
    fn hash_written(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.hash {
            h.update(&bytes[..held_from(self.hold, self.flushed, bytes.len())]);
        }
    }

    /// Stops hashing at the current position: what is written from here on may be patched until
    /// [`ArchiveFile::release_hash`]. One hold at a time.
    pub fn hold_hash(&mut self) {
        debug_assert!(self.hold.is_none(), "one hold at a time");
        if self.hash.is_some() {
            self.hold = Some(self.pos());
        }
    }

    /// Hashes what was held and reached the file, read back (it is in the page cache), and goes
    /// on hashing as bytes are written. If it cannot be read, the hash is dropped.
    pub fn release_hash(&mut self) {
        let (Some(from), Some(h)) = (self.hold.take(), &mut self.hash) else { return };
        let mut chunk = vec![0u8; (1 << 20).min(self.flushed.saturating_sub(from)) as usize];
        let mut at = from;
        while at < self.flushed {
            let n = chunk.len().min((self.flushed - at) as usize);
            if read_exact_at(&self.file, &mut chunk[..n], at).is_err() {
                self.hash = None;
                return;
            }
            h.update(&chunk[..n]);
            at += n as u64;
        }
    }

    /// Asks the OS to start writing back what was written since the last ask, once that is
    /// `WRITEBACK_STEP` or more, without waiting for it. On a machine with a lot of memory the
    /// kernel would otherwise keep a whole archive dirty in the page cache, and the final fsync
    /// would write it all while the export waits (a third of a second for 500 MB here). Only a
    /// hint: where it is not supported nothing changes.
    fn start_writeback(&mut self) {
        if self.flushed < self.hinted + WRITEBACK_STEP {
            return;
        }
        crate::platform::start_writeback(&self.file, self.hinted, self.flushed - self.hinted);
        self.hinted = self.flushed;
    }

    /// Overwrites bytes at `at` (already written, in the buffer or the file).
    pub fn patch(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        let end = at + bytes.len() as u64;
        assert!(end <= self.pos(), "patch past the end");
        let mut file_part = bytes;
        if end > self.flushed {
            let split = self.flushed.saturating_sub(at) as usize;
            let start = (at.max(self.flushed) - self.flushed) as usize;
            self.buf[start..start + bytes.len() - split].copy_from_slice(&bytes[split..]);
            file_part = &bytes[..split];
        }
        if !file_part.is_empty() {
            if self.hold.is_none_or(|hold| at < hold) {
                self.hash = None;
            }
            write_all_at(&self.file, file_part, at)?;
        }
        Ok(())
    }

    /// Forgets everything from `to` on: from the buffer, and from the file if it got there.
    pub fn rollback(&mut self, to: u64) -> std::io::Result<()> {
        if self.hold.is_some_and(|hold| to <= hold) {
            self.hold = None;
        }
        if to >= self.flushed {
            self.buf.truncate((to - self.flushed) as usize);
            return Ok(());
        }
        self.buf.clear();
        self.hash = None;
        self.hinted = self.hinted.min(to);
        self.file.set_len(to)?;
        self.file.seek(SeekFrom::Start(to))?;
        self.flushed = to;
        Ok(())
    }

    /// Flushes the buffer and makes the file's data durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.flush_buffer()?;
        self.file.sync_data()
    }
}

impl Write for ArchiveFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.put(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many of `len` bytes written at `at` come before the hold (all of them without one).
fn held_from(hold: Option<u64>, at: u64, len: usize) -> usize {
    match hold {
        Some(hold) => hold.saturating_sub(at).min(len as u64) as usize,
        None => len,
    }
}

/// `write_all`, counting in `done` what reached the file even when it fails part way.
fn write_counted(file: &mut File, bytes: &[u8], done: &mut usize) -> std::io::Result<()> {
    while *done < bytes.len() {
        match file.write(&bytes[*done..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => *done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::zipconst::DEFLATED;

    #[test]
    fn patches_reach_both_the_file_and_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = ArchiveFile::new(File::create(&path).unwrap(), 0, 16);
        out.put(b"abcdef").unwrap();
        out.put(b"ghijklmnopq").unwrap(); // flushes "abcdef", then bypasses the buffer
        out.put(b"rs").unwrap(); // buffered
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghijklmnopq");
        out.patch(15, b"XYZ").unwrap(); // two bytes in the file, one in the buffer
        out.put(b"0123456789").unwrap();
        out.rollback(21).unwrap(); // inside the buffer
        out.put(b"!").unwrap();
        out.flush_buffer().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghijklmnoXYZs01!");
        out.rollback(10).unwrap(); // inside the file
        out.put(b"#").unwrap();
        out.flush_buffer().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghij#");
        assert_eq!(out.pos(), 11);
    }

    #[test]
    fn direct_writes_keep_the_order_and_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let big = vec![7u8; DIRECT + 1];
        let mut out = ArchiveFile::new(File::create(&path).unwrap(), 0, 1 << 20);
        out.put(b"head").unwrap();
        out.put_direct(&big).unwrap(); // the buffered head goes first
        out.put_direct(b"small").unwrap(); // buffered
        assert_eq!(out.pos(), 4 + big.len() as u64 + 5);
        out.flush_buffer().unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written, [&b"head"[..], &big, b"small"].concat());
        assert_eq!(out.take_digest(), Some(Sha256::digest(&written).into()));
    }

    fn read_write(path: &std::path::Path) -> File {
        File::options().read(true).write(true).create(true).truncate(true).open(path).unwrap()
    }

    #[test]
    fn a_held_hash_survives_patches_after_the_hold_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = ArchiveFile::new(read_write(&path), 0, 16);
        out.put(b"before").unwrap();
        out.hold_hash();
        out.put(b"HEADER").unwrap();
        out.put(&[5u8; 100]).unwrap(); // past the buffer: the header is in the file
        out.patch(6, b"header").unwrap();
        out.release_hash();
        out.put(b"after").unwrap();
        out.flush_buffer().unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(&written[..12], b"beforeheader");
        assert_eq!(out.take_digest(), Some(Sha256::digest(&written).into()));

        let mut out = ArchiveFile::new(read_write(&path), 0, 16);
        out.put(&[1u8; 40]).unwrap();
        out.hold_hash();
        out.put(&[2u8; 40]).unwrap();
        out.patch(0, b"x").unwrap(); // before the hold: already hashed
        out.release_hash();
        out.flush_buffer().unwrap();
        assert_eq!(out.take_digest(), None, "a patch of hashed bytes drops the hash");

        let mut out = ArchiveFile::new(read_write(&path), 0, 16);
        out.put(&[1u8; 40]).unwrap();
        out.hold_hash();
        out.put(&[2u8; 40]).unwrap();
        out.rollback(40).unwrap(); // the held entry is given up, hold and all
        out.put(b"tail").unwrap();
        out.flush_buffer().unwrap();
        assert_eq!(out.take_digest(), None, "a rollback into the file drops the hash");
    }

    #[test]
    fn writeback_is_asked_for_past_its_step_and_changes_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = ArchiveFile::new(File::create(&path).unwrap(), 0, 1 << 20);
        out.put_direct(&vec![1u8; DIRECT]).unwrap();
        assert_eq!(out.hinted, 0, "not before a whole step was written");
        let big = vec![2u8; WRITEBACK_STEP as usize];
        out.put_direct(&big).unwrap();
        assert_eq!(out.hinted, (DIRECT + big.len()) as u64);
        out.rollback(DIRECT as u64).unwrap();
        assert_eq!(out.hinted, DIRECT as u64, "a rollback into the file moves the mark back");
        out.put_direct(&big).unwrap();
        out.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [vec![1u8; DIRECT], big].concat());
    }

    #[test]
    fn local_header_patch_targets_crc_and_zip64_sizes() {
        let h = Header { method: DEFLATED, crc32: 0, compressed_size: 0, size: 0, zip64: true, descriptor: false };
        let mut bytes = Vec::new();
        local_header(&mut bytes, b"name", &h);
        assert_eq!(bytes.len() as u64, local_header_len(4, true));
        for (at, patch) in local_header_patch(4, 0xAABBCCDD, 7, 9) {
            bytes[at as usize..at as usize + patch.len()].copy_from_slice(&patch);
        }
        let mut want = Vec::new();
        local_header(&mut want, b"name", &Header { crc32: 0xAABBCCDD, compressed_size: 7, size: 9, ..h });
        assert_eq!(bytes, want);
    }
}
