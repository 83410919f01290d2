//! The journal beside a partial archive (`<partial>.journal`): one JSON object per line, appended
//! in batches, each batch written only after the zip bytes it describes reached the OS, so after
//! `kill -9` the journal never names bytes that are not in the file.
//!
//! Lines, by `op`: `begin` (format, bag name, the caller's fingerprint; always first), `add` (one
//! entry: path, offset of its local header, sizes, CRC-32, SHA-256, method, whether the local
//! header has ZIP64 sizes), `forget` (a payload path left out of the finished bag) and
//! `checkpoint` (every entry above was fsynced before this line was written). A crash can leave
//! a torn last line; readers stop at the first line that is incomplete or does not parse.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::zipconst::Compression;

/// The journal format this code writes and reads.
pub const JOURNAL_FORMAT: &str = "cvarchive-journal/1";
/// Journal lines are written once this many are waiting ... (each batch costs a flush of the
/// archive's buffer and one journal write; what a `kill -9` loses is at most one batch plus the
/// downloads in flight, so batches stay small)
const BATCH_LINES: usize = 8;
/// ... or once the oldest waiting line is this old.
const BATCH_AGE: Duration = Duration::from_millis(200);
/// A longer line is damage, not a line we wrote.
const MAX_LINE: u64 = 1 << 20;

/// One entry written to a partial archive, as its journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenEntry {
    /// The path below `data/` (for tag files: their name in the bag folder).
    pub data_path: String,
    /// Offset of the entry's local header in the archive.
    pub offset: u64,
    /// Bytes of entry data in the archive.
    pub compressed_size: u64,
    /// Bytes of content.
    pub size: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// How the data is stored (only stored and deflated are ever written).
    pub compression: Compression,
    /// The local header carries the sizes in a ZIP64 extra field.
    pub zip64: bool,
    /// A data descriptor follows the data (the local header has zeros for CRC-32 and sizes).
    pub descriptor: bool,
}

impl WrittenEntry {
    /// The method number in the zip headers.
    pub(super) fn method(&self) -> u16 {
        self.compression.method()
    }

    /// Where the entry's bytes end: header, data and data descriptor.
    pub(super) fn end(&self, name_len: usize) -> u64 {
        let descriptor = if self.descriptor { super::zipwrite::DESCRIPTOR_LEN } else { 0 };
        self.offset + super::zipwrite::local_header_len(name_len, self.zip64) + self.compressed_size + descriptor
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(super) enum JournalLine {
    Begin {
        format: String,
        bag: String,
        fingerprint: String,
    },
    Add {
        path: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tag: bool,
        offset: u64,
        csize: u64,
        size: u64,
        crc32: u32,
        sha256: String,
        method: u16,
        zip64: bool,
        /// A data descriptor follows the data (archives written for a store only).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dd: bool,
    },
    Forget {
        path: String,
    },
    Checkpoint,
    /// Bytes from the end of the last entry up to `end` belong to no entry: an entry that failed
    /// after reaching a file that is written strictly forward (an archive for a store), left
    /// where it was instead of cut off.
    Gap {
        end: u64,
    },
}

impl JournalLine {
    /// The `add` line for an entry (writers use the faster `JournalWriter::push_add`).
    #[cfg(test)]
    pub fn add(e: &WrittenEntry, tag: bool) -> JournalLine {
        JournalLine::Add {
            path: e.data_path.clone(),
            tag,
            offset: e.offset,
            csize: e.compressed_size,
            size: e.size,
            crc32: e.crc32,
            sha256: hex::encode(e.sha256),
            method: e.method(),
            zip64: e.zip64,
            dd: e.descriptor,
        }
    }

    /// The entry an `add` line describes, and whether it is a tag file; `None` for other lines
    /// or a malformed hash or method.
    pub fn entry(&self) -> Option<(WrittenEntry, bool)> {
        let JournalLine::Add { path, tag, offset, csize, size, crc32, sha256, method, zip64, dd } = self else {
            return None;
        };
        let mut sha = [0u8; 32];
        hex::decode_to_slice(sha256, &mut sha).ok()?;
        let compression = match Compression::from_method(*method) {
            Compression::Other(_) => return None,
            known => known,
        };
        let entry = WrittenEntry {
            data_path: path.clone(),
            offset: *offset,
            compressed_size: *csize,
            size: *size,
            crc32: *crc32,
            sha256: sha,
            compression,
            zip64: *zip64,
            descriptor: *dd,
        };
        Some((entry, *tag))
    }

    fn render(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("journal lines serialise");
        out.push(b'\n');
    }
}

/// The appending side: lines wait in memory until [`JournalWriter::due`], then go out together.
#[derive(Debug)]
pub(super) struct JournalWriter {
    file: File,
    path: PathBuf,
    /// Bytes of whole lines in the file.
    len: u64,
    pending: Vec<u8>,
    pending_lines: usize,
    oldest: Option<Instant>,
}

impl JournalWriter {
    /// Starts a journal at `path` (replacing a plain file, never writing through a link) with
    /// its `begin` line, written at once.
    pub fn create(path: &Path, bag: &str, fingerprint: &str) -> std::io::Result<JournalWriter> {
        let file = crate::sidefile::open(path, true)?;
        file.set_len(0)?;
        let mut j = JournalWriter::append(file, path, 0);
        j.push(&JournalLine::Begin { format: JOURNAL_FORMAT.into(), bag: bag.into(), fingerprint: fingerprint.into() });
        j.write_pending()?;
        Ok(j)
    }

    /// Continues a journal whose first `len` bytes are whole lines; the file's cursor is there.
    pub fn append(file: File, path: &Path, len: u64) -> JournalWriter {
        JournalWriter { file, path: path.to_path_buf(), len, pending: Vec::new(), pending_lines: 0, oldest: None }
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a line.
    pub fn push(&mut self, line: &JournalLine) {
        line.render(&mut self.pending);
        self.queued();
    }

    /// Queues the `add` line of an entry (rendered by hand: this runs once per entry).
    pub fn push_add(&mut self, e: &WrittenEntry, tag: bool) {
        render_add(&mut self.pending, e, tag);
        self.queued();
    }

    fn queued(&mut self) {
        self.pending_lines += 1;
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Whether the lines will be due once one more is pushed: the archive's buffer must then be
    /// flushed before that line is pushed, since the lines are written right after.
    pub fn due_after_one(&self) -> bool {
        self.pending_lines + 1 >= BATCH_LINES || self.oldest.is_some_and(|t| t.elapsed() >= BATCH_AGE)
    }

    /// Writes the waiting lines. Call only once the zip bytes they describe are written. On
    /// failure the file is cut back to whole lines and the lines keep waiting.
    pub fn write_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // Best effort: a torn line is harmless to readers, but lines appended after it would
            // be lost to them.
            let _ = self.file.set_len(self.len);
            let _ = std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(self.len));
            return Err(e);
        }
        self.len += self.pending.len() as u64;
        self.pending.clear();
        self.pending_lines = 0;
        self.oldest = None;
        Ok(())
    }

    /// Writes the waiting lines and fsyncs the journal.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.write_pending()?;
        self.file.sync_data()
    }
}

/// Renders exactly what serde renders for [`JournalLine::add`], without the intermediate
/// `JournalLine`.
fn render_add(out: &mut Vec<u8>, e: &WrittenEntry, tag: bool) {
    out.extend_from_slice(br#"{"op":"add","path":""#);
    for c in e.data_path.chars() {
        match c {
            '"' => out.extend_from_slice(br#"\""#),
            '\\' => out.extend_from_slice(br"\\"),
            '\n' => out.extend_from_slice(br"\n"),
            '\r' => out.extend_from_slice(br"\r"),
            '\t' => out.extend_from_slice(br"\t"),
            '\u{8}' => out.extend_from_slice(br"\b"),
            '\u{c}' => out.extend_from_slice(br"\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
        }
    }
    out.push(b'"');
    if tag {
        out.extend_from_slice(br#","tag":true"#);
    }
    let _ = write!(
        out,
        r#","offset":{},"csize":{},"size":{},"crc32":{},"sha256":"{}","method":{},"zip64":{}}}"#,
        e.offset,
        e.compressed_size,
        e.size,
        e.crc32,
        hex::encode(e.sha256),
        e.method(),
        e.zip64
    );
    if e.descriptor {
        out.truncate(out.len() - 1);
        out.extend_from_slice(br#","dd":true}"#);
    }
    out.push(b'\n');
}

/// The reading side: whole, parseable lines from the start, with their byte offsets.
#[derive(Debug)]
pub(super) struct JournalReader {
    reader: BufReader<File>,
    pos: u64,
    line: Vec<u8>,
}

impl JournalReader {
    /// Reads `file` from its start.
    pub fn new(file: File) -> JournalReader {
        JournalReader { reader: BufReader::with_capacity(1 << 20, file), pos: 0, line: Vec::new() }
    }

    /// The next line and the offset it starts at; `None` at the end or at the first line that is
    /// torn (no newline), too long or unparseable. [`JournalReader::valid_len`] then says where
    /// the good part of the journal ends.
    pub fn next_line(&mut self) -> std::io::Result<Option<(JournalLine, u64)>> {
        self.line.clear();
        let n = (&mut self.reader).take(MAX_LINE).read_until(b'\n', &mut self.line)?;
        if n == 0 || self.line.last() != Some(&b'\n') {
            return Ok(None);
        }
        let Ok(line) = serde_json::from_slice::<JournalLine>(&self.line) else {
            return Ok(None);
        };
        let start = self.pos;
        self.pos += n as u64;
        Ok(Some((line, start)))
    }

    /// Bytes of whole, parsed lines read so far.
    pub fn valid_len(&self) -> u64 {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> WrittenEntry {
        WrittenEntry {
            data_path: "projects/p/images/a.jpg".into(),
            offset: 120,
            compressed_size: 10,
            size: 10,
            crc32: 0xdead_beef,
            sha256: [7; 32],
            compression: Compression::Stored,
            zip64: false,
            descriptor: false,
        }
    }

    #[test]
    fn hand_rendered_add_lines_are_serdes() {
        for path in ["plain/a.jpg", "odd \"quoted\" \\ back\nslash\u{1}\u{8}\u{c}\t\r\u{7f} é ☃"] {
            for tag in [false, true] {
                let e = WrittenEntry { data_path: path.into(), zip64: tag, ..entry() };
                let (mut fast, mut serde) = (Vec::new(), Vec::new());
                render_add(&mut fast, &e, tag);
                JournalLine::add(&e, tag).render(&mut serde);
                assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(serde).unwrap());
            }
        }
    }

    #[test]
    fn add_lines_round_trip() {
        let line = JournalLine::add(&entry(), false);
        let mut bytes = Vec::new();
        line.render(&mut bytes);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"op":"add","path":"projects/p/images/a.jpg","offset":120"#), "{text}");
        let parsed: JournalLine = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed.entry(), Some((entry(), false)));
    }

    #[test]
    fn reading_stops_at_a_torn_or_garbled_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = JournalWriter::create(&path, "bag", "fp").unwrap();
        j.push(&JournalLine::add(&entry(), false));
        j.push(&JournalLine::Checkpoint);
        j.write_pending().unwrap();
        let whole = std::fs::metadata(&path).unwrap().len();
        for tail in [&b"{\"op\":\"add\",\"pa"[..], b"\0\0\0\0\n{\"op\":\"checkpoint\"}\n"] {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.truncate(whole as usize);
            bytes.extend_from_slice(tail);
            std::fs::write(&path, &bytes).unwrap();
            let mut r = JournalReader::new(File::open(&path).unwrap());
            let mut lines = Vec::new();
            while let Some((line, _)) = r.next_line().unwrap() {
                lines.push(line);
            }
            assert_eq!(lines.len(), 3);
            assert_eq!(lines[2], JournalLine::Checkpoint);
            assert_eq!(r.valid_len(), whole);
        }
    }
}
