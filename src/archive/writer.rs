//! The bag writer: payload files go into the zip as they come (images stored, JSON deflated),
//! each hashed as it is written, through one large buffer with no flush or seek per entry;
//! `bag-info.txt`, the manifests, the tag manifest and the central directory go last.
//!
//! A resumable writer ([`BagWriter::create`], [`BagWriter::resume`]) writes `<partial>` plus a
//! [`journal`](super::journal) beside it, holding an exclusive lock on the partial file. Dropping
//! it without [`BagWriter::finish`] leaves both behind, ready to resume. One owner (the export's
//! writer thread) drives it; it is not shared.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::write::DeflateEncoder;
use sha2::{Digest, Sha256};

use super::bagit::{
    render_bag_info, render_manifest_line, BagInfo, PayloadOxum, BAGIT_TXT, BAGIT_TXT_NAME, BAG_INFO_NAME,
    MANIFEST_NAME, TAGMANIFEST_NAME,
};
use super::index::EntryIndex;
use super::journal::{JournalLine, JournalWriter, WrittenEntry};
use super::layout::unsafe_path_reason;
use super::zipconst::{Compression, DEFLATED, STORED};
use super::zipwrite::{self, ArchiveFile, Header, Zip64Limits};
use super::Error;
use crate::store::upload::Watcher;

mod central;

/// Write buffer: large, so the disk sees few, big writes.
const WRITE_BUFFER: usize = 4 << 20;
/// The deflate level of metadata and tag files. On the 47 MB `images.jsonl` of a 100,000-image
/// project, zlib-rs at level 2 writes 9.1 MB in 0.44 s where level 6 (the default) writes 8.6 MB
/// in 0.82 s. The big ones are deflated one after another at the end of an export, on one core.
const DEFLATE_LEVEL: flate2::Compression = flate2::Compression::new(2);
/// Chunk for copying from readers.
pub(super) const COPY_CHUNK: usize = 1 << 20;

/// What the finished bag holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BagSummary {
    /// Total bytes of payload files (the first half of `Payload-Oxum`).
    pub payload_bytes: u64,
    /// Number of payload files.
    pub payload_files: u64,
    /// The SHA-256 of the whole archive file, hashed as it was written; `None` when it could not
    /// be (a resumed archive, or an entry rolled back from the file): hash the file then.
    pub archive_sha256: Option<[u8; 32]>,
    /// The archive file's size.
    pub archive_bytes: u64,
}

/// Writes one bag into a zip file. See the module docs.
pub struct BagWriter {
    pub(super) out: ArchiveFile,
    pub(super) path: PathBuf,
    pub(super) bag_name: String,
    pub(super) journal: Option<JournalWriter>,
    /// Live payload entries (forgotten ones removed), kept in a temporary file beside the
    /// archive so memory does not grow with their number.
    pub(super) entries: EntryIndex,
    /// Tag files written so far, in order.
    pub(super) tags: Vec<WrittenEntry>,
    pub(super) limits: Zip64Limits,
    scratch: Vec<u8>,
    deflated: Vec<u8>,
    /// Set when a failed entry could not be rolled back: the writer refuses further work.
    broken: Option<String>,
    /// Set when the file is shipped as it grows ([`BagWriter::ship`]): written strictly forward.
    shipped: Option<Arc<dyn Watcher>>,
    finished: bool,
}

impl std::fmt::Debug for BagWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BagWriter")
            .field("path", &self.path)
            .field("bag_name", &self.bag_name)
            .field("payload_files", &self.entries.len())
            .field("resumable", &self.journal.is_some())
            .finish_non_exhaustive()
    }
}

/// The journal path for a partial archive: `<partial>.journal`.
pub fn journal_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

impl BagWriter {
    /// Starts a non-resumable bag named `bag_name` (use [`super::layout::bag_name_for`]) in
    /// `file`, which should be empty; writes `bagit.txt` first so streaming readers meet it early.
    /// Open it for reading too, or the archive's hash is left to the caller whenever a streamed
    /// entry outgrows the buffer (it is read back once its header is patched).
    pub fn new(file: File, bag_name: &str) -> Result<BagWriter, Error> {
        check_bag_name(bag_name)?;
        let path = crate::platform::opened_path(&file).unwrap_or_else(|| PathBuf::from(bag_name));
        let mut w = BagWriter::assemble(file, 0, path, bag_name, None);
        w.write_bagit()?;
        Ok(w)
    }

    /// Starts a resumable bag at `partial` (e.g. `backup.zip.partial`), replacing what is there,
    /// with its journal beside it recording `fingerprint` (what [`BagWriter::resume`] will
    /// compare). Fails with [`Error::Locked`] if another writer holds `partial`. Neither file is
    /// opened through a link (see [`crate::sidefile`]).
    pub fn create(partial: &Path, bag_name: &str, fingerprint: &str) -> Result<BagWriter, Error> {
        check_bag_name(bag_name)?;
        let io = |source| Error::Io { path: partial.to_path_buf(), source };
        let file = crate::sidefile::open(partial, true).map_err(io)?;
        lock(&file, partial)?;
        file.set_len(0).map_err(io)?;
        let jpath = journal_path(partial);
        let journal = JournalWriter::create(&jpath, bag_name, fingerprint)
            .map_err(|source| Error::Io { path: jpath.clone(), source })?;
        let mut w = BagWriter::assemble(file, 0, partial.to_path_buf(), bag_name, Some(journal));
        w.write_bagit()?;
        w.checkpoint()?;
        crate::platform::sync_parent(partial).map_err(io)?;
        Ok(w)
    }

    pub(super) fn assemble(
        file: File,
        at: u64,
        path: PathBuf,
        bag_name: &str,
        journal: Option<JournalWriter>,
    ) -> BagWriter {
        BagWriter {
            out: ArchiveFile::new(file, at, WRITE_BUFFER),
            entries: EntryIndex::new(index_dir(&path)),
            path,
            bag_name: bag_name.to_string(),
            journal,
            tags: Vec::new(),
            limits: Zip64Limits::default(),
            scratch: Vec::with_capacity(512),
            deflated: Vec::new(),
            broken: None,
            shipped: None,
            finished: false,
        }
    }

    /// Writes the file strictly forward from now on, telling `watcher` what reached it and what
    /// the journal describes, for a file uploaded as it grows (`store::upload`): streamed entries
    /// get a data descriptor instead of a patched header, and a failed entry whose bytes reached
    /// the file stays there as a gap the journal records instead of being cut off.
    pub fn ship(&mut self, watcher: Arc<dyn Watcher>) {
        watcher.journaled(self.out.pos());
        // The upload hashes the archive as it sends it, across resumes too.
        self.out.stop_hashing();
        self.out.watch(Arc::clone(&watcher));
        self.shipped = Some(watcher);
    }

    /// Bytes written so far (the next entry's offset).
    pub fn written_bytes(&self) -> u64 {
        self.out.pos()
    }

    /// Lowers the ZIP64 limits so tests can exercise ZIP64 without writing 4 GiB.
    #[doc(hidden)]
    pub fn set_zip64_limits(&mut self, limits: Zip64Limits) {
        self.limits = limits;
    }

    /// The archive file being written (as errors name it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The payload entry already written at `data_path` (and not forgotten), if any.
    pub fn contains(&self, data_path: &str) -> Result<Option<WrittenEntry>, Error> {
        self.entries.get(data_path).map_err(|e| self.index_error(e))
    }

    /// Number of payload files written (and not forgotten).
    pub fn payload_files(&self) -> u64 {
        self.entries.len()
    }

    /// Leaves an already written payload entry out of the central directory and the manifest
    /// (its bytes stay in the file as dead space), e.g. an image deleted since the last run.
    /// The path may then be written again. Returns the entry, if there was one.
    pub fn forget(&mut self, data_path: &str) -> Result<Option<WrittenEntry>, Error> {
        self.usable()?;
        let gone = self.entries.remove(data_path).map_err(|e| self.index_error(e))?;
        if let (Some(_), Some(j)) = (&gone, &mut self.journal) {
            j.push(&JournalLine::Forget { path: data_path.to_string() });
        }
        Ok(gone)
    }

    /// A payload file stored as is; `crc32` and `sha256` were computed while the bytes streamed
    /// in, so they are not read here again (the writer is the one sequential stage of an export).
    pub fn add_stored(&mut self, data_path: &str, bytes: &[u8], crc32: u32, sha256: [u8; 32]) -> Result<(), Error> {
        debug_assert_eq!(crc32, crc32fast::hash(bytes), "the CRC-32 given for {data_path}");
        let name = self.claim(data_path)?;
        let size = bytes.len() as u64;
        let h = Header { method: STORED, crc32, compressed_size: size, size, zip64: false, descriptor: false };
        let h = Header { zip64: size >= self.limits.size, ..h };
        let offset = self.write_whole(&name, &h, bytes)?;
        self.commit(data_path, offset, &h, sha256)
    }

    /// A payload file deflated; hashed here.
    pub fn add_deflated(&mut self, data_path: &str, bytes: &[u8]) -> Result<(), Error> {
        let name = self.claim(data_path)?;
        let (offset, h, sha) = self.write_deflated(&name, bytes)?;
        self.commit(data_path, offset, &h, sha)
    }

    /// A payload file deflated from a reader (a spooled JSONL file), hashed while copied, in
    /// bounded memory. Its size is unknown up front, so its local header reserves ZIP64 sizes,
    /// patched in place once the data is written (no data descriptor).
    pub fn add_deflated_from(&mut self, data_path: &str, reader: &mut dyn Read) -> Result<(), Error> {
        let name = self.claim(data_path)?;
        let (offset, h, sha) = self.write_streamed(&name, |buf| match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(source) => Err(Error::Source { data_path: data_path.to_string(), source }),
            Ok(n) => Ok(Some(n)),
        })?;
        self.commit(data_path, offset, &h, sha)
    }

    /// Makes everything written so far durable: flushes and fsyncs the archive, then records a
    /// checkpoint in the journal and fsyncs it.
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        self.usable()?;
        self.out.sync().map_err(|e| self.io_error(e))?;
        if let Some(j) = &mut self.journal {
            j.push(&JournalLine::Checkpoint);
            j.sync().map_err(|source| Error::Io { path: j.path().to_path_buf(), source })?;
        }
        if let Some(w) = &self.shipped {
            w.journaled(self.out.pos());
        }
        Ok(())
    }

    /// Writes `bag-info.txt` (with the computed `Payload-Oxum`), the payload manifest, the tag
    /// manifest and the central directory, fsyncs the file and removes the journal. The caller
    /// then renames the partial file to its final name.
    pub fn finish(mut self, info: &BagInfo) -> Result<BagSummary, Error> {
        self.usable()?;
        if let Some(w) = self.shipped.clone() {
            // Every entry is journaled first (flush_all tells the watcher): a resume restarts the
            // tags from there.
            self.flush_all().map_err(|e| self.io_error(e))?;
            w.finishing();
        }
        let mut summary = BagSummary {
            payload_bytes: self.entries.content_bytes(),
            payload_files: self.entries.len(),
            archive_sha256: None,
            archive_bytes: 0,
        };
        let oxum = PayloadOxum { bytes: summary.payload_bytes, files: summary.payload_files };

        self.add_tag(BAG_INFO_NAME, render_bag_info(info, oxum).as_bytes())?;
        // The manifest streams from the index, in archive order.
        let mut entries = std::mem::take(&mut self.entries);
        let written = match entries.live() {
            Ok(mut live) => {
                let (mut text, mut at) = (String::new(), 0);
                let name = self.tag_name(MANIFEST_NAME);
                let path = self.path.clone();
                self.write_streamed(&name, |buf| {
                    if at == text.len() {
                        text.clear();
                        at = 0;
                        while text.len() < COPY_CHUNK {
                            let Some(e) = live.next() else { break };
                            let e = e.map_err(|source| index_error(&path, source))?;
                            text.push_str(&render_manifest_line(&e.sha256, &format!("data/{}", e.data_path)));
                        }
                    }
                    let n = (text.len() - at).min(buf.len());
                    buf[..n].copy_from_slice(&text.as_bytes()[at..at + n]);
                    at += n;
                    Ok(Some(n))
                })
            }
            Err(e) => Err(self.index_error(e)),
        };
        self.entries = entries;
        let (offset, h, sha) = written?;
        self.tags.push(journal_entry(MANIFEST_NAME, offset, &h, sha));

        let mut tags = String::new();
        for t in &self.tags {
            tags.push_str(&render_manifest_line(&t.sha256, &t.data_path));
        }
        self.add_tag(TAGMANIFEST_NAME, tags.as_bytes())?;
        self.write_central_directory()?;
        summary.archive_sha256 = self.out.take_digest();
        summary.archive_bytes = self.out.pos();

        let file = self.out.file();
        file.sync_all().map_err(|e| self.io_error(e))?;
        if self.shipped.is_some() {
            // The journal goes with the spool once the store has committed the archive: until
            // then, a resume needs it.
            self.finished = true;
            return Ok(summary);
        }
        if let Some(j) = self.journal.take() {
            let jpath = j.path().to_path_buf();
            drop(j);
            std::fs::remove_file(&jpath).map_err(|source| Error::Io { path: jpath.clone(), source })?;
            crate::platform::sync_parent(&jpath).map_err(|source| Error::Io { path: jpath, source })?;
        }
        self.finished = true;
        Ok(summary)
    }

    pub(super) fn write_bagit(&mut self) -> Result<(), Error> {
        self.add_tag(BAGIT_TXT_NAME, BAGIT_TXT.as_bytes())?;
        if let Some(j) = &mut self.journal {
            let e = self.tags.last().expect("just written");
            j.push_add(e, true);
        }
        Ok(())
    }

    /// A tag file, deflated; tag files are never journaled but `bagit.txt` (see `write_bagit`).
    fn add_tag(&mut self, tag_name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.usable()?;
        let name = self.tag_name(tag_name);
        let (offset, h, sha) = self.write_deflated(&name, bytes)?;
        self.tags.push(journal_entry(tag_name, offset, &h, sha));
        Ok(())
    }

    pub(super) fn tag_name(&self, tag: &str) -> String {
        format!("{}/{tag}", self.bag_name)
    }

    pub(super) fn payload_name(&self, data_path: &str) -> String {
        format!("{}/data/{data_path}", self.bag_name)
    }

    /// Checks a payload path is safe and free; returns the full entry name.
    pub(super) fn claim(&mut self, data_path: &str) -> Result<String, Error> {
        self.usable()?;
        if let Some(reason) = unsafe_path_reason(data_path) {
            return Err(Error::InvalidPath { path: data_path.to_string(), reason });
        }
        if self.entries.get(data_path).map_err(|e| self.index_error(e))?.is_some() {
            return Err(Error::DuplicatePath(data_path.to_string()));
        }
        Ok(self.payload_name(data_path))
    }

    /// Writes a local header and data known in full. Returns the header's offset.
    fn write_whole(&mut self, name: &str, h: &Header, data: &[u8]) -> Result<u64, Error> {
        let offset = self.out.pos();
        self.scratch.clear();
        zipwrite::local_header(&mut self.scratch, name.as_bytes(), h);
        let result = self.out.put(&self.scratch).and_then(|_| self.out.put_direct(data));
        match result {
            Ok(()) => Ok(offset),
            Err(e) => Err(self.fail(offset, e)),
        }
    }

    fn write_deflated(&mut self, name: &str, bytes: &[u8]) -> Result<(u64, Header, [u8; 32]), Error> {
        let mut enc = DeflateEncoder::new(std::mem::take(&mut self.deflated), DEFLATE_LEVEL);
        enc.get_mut().clear();
        enc.write_all(bytes).expect("deflating into memory");
        let compressed = enc.finish().expect("deflating into memory");
        let csize = compressed.len() as u64;
        let size = bytes.len() as u64;
        let zip64 = size >= self.limits.size || csize >= self.limits.size;
        let h = Header {
            method: DEFLATED,
            crc32: crc32fast::hash(bytes),
            compressed_size: csize,
            size,
            zip64,
            descriptor: false,
        };
        let result = self.write_whole(name, &h, &compressed);
        self.deflated = compressed;
        Ok((result?, h, Sha256::digest(bytes).into()))
    }

    /// Writes a deflated entry whose content `fill` produces chunk by chunk (`Ok(Some(0))` at the
    /// end, `Ok(None)` to be called again): a ZIP64 local header with placeholders, the data,
    /// then the header patched in place. On any error the entry is rolled back.
    fn write_streamed(
        &mut self,
        name: &str,
        mut fill: impl FnMut(&mut [u8]) -> Result<Option<usize>, Error>,
    ) -> Result<(u64, Header, [u8; 32]), Error> {
        let offset = self.out.pos();
        let descriptor = self.shipped.is_some();
        if !descriptor {
            // The header is patched at the end: the archive's hash waits for it (and on a
            // rollback, which gives up the hold, for nothing).
            self.out.hold_hash();
        }
        let mut h = Header { method: DEFLATED, crc32: 0, compressed_size: 0, size: 0, zip64: true, descriptor };
        self.scratch.clear();
        zipwrite::local_header(&mut self.scratch, name.as_bytes(), &h);
        if let Err(e) = self.out.put(&self.scratch) {
            return Err(self.fail(offset, e));
        }
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut enc = DeflateEncoder::new(Vec::with_capacity(COPY_CHUNK), DEFLATE_LEVEL);
        let mut sha = Sha256::new();
        let mut crc = crc32fast::Hasher::new();
        let data_start = self.out.pos();
        loop {
            let n = match fill(&mut buf) {
                Ok(Some(0)) => break,
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) => {
                    self.rollback(offset);
                    return Err(e);
                }
            };
            sha.update(&buf[..n]);
            crc.update(&buf[..n]);
            h.size += n as u64;
            enc.write_all(&buf[..n]).expect("deflating into memory");
            if enc.get_ref().len() >= COPY_CHUNK / 2 {
                if let Err(e) = self.out.put(enc.get_ref()) {
                    return Err(self.fail(offset, e));
                }
                enc.get_mut().clear();
            }
        }
        let rest = enc.finish().expect("deflating into memory");
        if let Err(e) = self.out.put(&rest) {
            return Err(self.fail(offset, e));
        }
        h.compressed_size = self.out.pos() - data_start;
        h.crc32 = crc.finalize();
        if descriptor {
            self.scratch.clear();
            zipwrite::data_descriptor(&mut self.scratch, h.crc32, h.compressed_size, h.size);
            if let Err(e) = self.out.put(&self.scratch) {
                return Err(self.fail(offset, e));
            }
            return Ok((offset, h, sha.finalize().into()));
        }
        for (at, bytes) in zipwrite::local_header_patch(name.len(), h.crc32, h.compressed_size, h.size) {
            if let Err(e) = self.out.patch(offset + at, &bytes) {
                return Err(self.fail(offset, e));
            }
        }
        self.out.release_hash();
        Ok((offset, h, sha.finalize().into()))
    }

    /// Records a written payload entry, and writes the journal when a batch is due (data first).
    pub(super) fn commit(&mut self, data_path: &str, offset: u64, h: &Header, sha256: [u8; 32]) -> Result<(), Error> {
        // Decided once: when the batch is due, the data must reach the OS before the lines
        // naming it; if it cannot, the entry is rolled back and not recorded.
        let due = self.journal.as_ref().is_some_and(|j| j.due_after_one());
        if due {
            if let Err(e) = self.out.flush_buffer() {
                return Err(self.fail(offset, e));
            }
        }
        let entry = journal_entry(data_path, offset, h, sha256);
        if let Err(e) = self.entries.insert(&entry) {
            self.rollback(offset);
            return Err(self.index_error(e));
        }
        if let Some(j) = &mut self.journal {
            j.push_add(&entry, false);
        }
        if due {
            if let Some(j) = &mut self.journal {
                j.write_pending().map_err(|source| Error::Io { path: j.path().to_path_buf(), source })?;
            }
            if let Some(w) = &self.shipped {
                w.journaled(self.out.pos());
            }
        }
        Ok(())
    }

    /// Rolls back a failed entry (or marks the writer broken if even that fails) and returns the
    /// error naming the archive.
    pub(super) fn fail(&mut self, offset: u64, e: std::io::Error) -> Error {
        self.rollback(offset);
        self.io_error(e)
    }

    /// Drops a failed entry's bytes; if even that fails, the writer refuses further work.
    pub(super) fn rollback(&mut self, offset: u64) {
        if self.shipped.is_some() && offset < self.out.flushed() {
            // Bytes in the file may be in the store already: they stay, as a gap.
            let end = self.out.flushed();
            let kept = self.out.rollback(end).map(|()| {
                if let Some(j) = &mut self.journal {
                    j.push(&JournalLine::Gap { end });
                }
            });
            if let Err(r) = kept {
                self.broken = Some(format!("a failed entry could not be set aside: {r}"));
            }
            return;
        }
        if let Err(r) = self.out.rollback(offset) {
            self.broken = Some(format!("a failed entry could not be rolled back: {r}"));
        }
    }

    pub(super) fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io { path: self.path.clone(), source }
    }

    fn index_error(&self, source: std::io::Error) -> Error {
        index_error(&self.path, source)
    }

    pub(super) fn usable(&self) -> Result<(), Error> {
        match &self.broken {
            Some(why) => Err(self.io_error(std::io::Error::other(why.clone()))),
            None => Ok(()),
        }
    }

    /// Writes out what is buffered and the journal lines describing it (data first).
    fn flush_all(&mut self) -> std::io::Result<()> {
        self.out.flush_buffer()?;
        if let Some(j) = &mut self.journal {
            j.write_pending()?;
        }
        if let Some(w) = &self.shipped {
            w.journaled(self.out.pos());
        }
        Ok(())
    }
}

impl Drop for BagWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Keep the resumable state as complete as possible; a failure here only means the
            // next run redoes a few entries.
            let _ = self.flush_all();
        }
    }
}

pub(super) fn journal_entry(data_path: &str, offset: u64, h: &Header, sha256: [u8; 32]) -> WrittenEntry {
    WrittenEntry {
        data_path: data_path.to_string(),
        offset,
        compressed_size: h.compressed_size,
        size: h.size,
        crc32: h.crc32,
        sha256,
        compression: Compression::from_method(h.method),
        zip64: h.zip64,
        descriptor: h.descriptor,
    }
}

/// A failure of the temporary index of entries, named after the archive it belongs to.
fn index_error(archive: &Path, source: std::io::Error) -> Error {
    let source = std::io::Error::new(source.kind(), format!("the temporary index of its entries: {source}"));
    Error::Io { path: archive.to_path_buf(), source }
}

/// Where the index of entries goes: beside the archive when its directory is known.
pub(super) fn index_dir(archive: &Path) -> Option<PathBuf> {
    archive.parent().filter(|dir| dir.is_dir()).map(Path::to_path_buf)
}

pub(super) fn check_bag_name(bag_name: &str) -> Result<(), Error> {
    match unsafe_path_reason(bag_name).or(bag_name.contains('/').then_some("contains '/'")) {
        Some(reason) => Err(Error::InvalidPath { path: bag_name.to_string(), reason }),
        None => Ok(()),
    }
}

/// Takes the exclusive lock on a partial archive, or says who has it.
pub(super) fn lock(file: &File, path: &Path) -> Result<(), Error> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: path.to_path_buf() }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}
