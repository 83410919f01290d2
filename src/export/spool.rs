//! A JSONL spool on disk: lines arrive in completion order and leave in listing order, so that
//! `images.jsonl` is the same whatever the download order.
//!
//! Memory holds nothing per line. Lines are numbered densely by the caller (the listing's
//! sequence numbers); each line's place in the data file (offset and length, 12 bytes) goes to a
//! second temporary file, the index, at slot `seq × 12`. Reading the index file front to back is
//! then reading the lines in sequence order: no sort, in memory or on disk. A number never pushed
//! leaves a slot of zeros (a hole in a sparse file), which reads as "no line". Slots are gathered
//! a few thousand at a time and written in runs of consecutive numbers, so that the nearly
//! ordered completion order costs few writes. A finished spool can also be read line by line
//! in any order ([`SpoolLines`]), as a table on disk keyed by number.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use crate::platform::{read_exact_at, write_all_at};

/// Bytes of one index slot: the line's offset (u64) and length with its LF (u32), little-endian.
const SLOT: u64 = 12;
/// Slots gathered before they are written out.
const PENDING_SLOTS: usize = 4096;
/// Slots read back at once.
const READ_SLOTS: usize = 8192;
/// Bytes of consecutive lines read back at once.
const READ_BYTES: usize = 256 << 10;

/// Lines written with a sequence number, read back sorted by it.
#[derive(Debug)]
pub struct Spool {
    out: BufWriter<File>,
    index: File,
    /// Slots not yet written to `index`: (seq, offset, length).
    pending: Vec<(u64, u64, u32)>,
    /// One more than the largest sequence number pushed.
    slots: u64,
    pos: u64,
}

impl Spool {
    /// A spool in two anonymous temporary files inside `dir` (removed by the OS when dropped).
    pub fn new_in(dir: &Path) -> io::Result<Spool> {
        Ok(Spool {
            out: BufWriter::with_capacity(256 << 10, tempfile::tempfile_in(dir)?),
            index: tempfile::tempfile_in(dir)?,
            pending: Vec::with_capacity(PENDING_SLOTS),
            slots: 0,
            pos: 0,
        })
    }

    /// Adds one line (without its newline) at position `seq`; each `seq` at most once.
    pub fn push(&mut self, seq: u64, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        let len = line.len() as u32 + 1;
        self.pending.push((seq, self.pos, len));
        self.pos += u64::from(len);
        self.slots = self.slots.max(seq + 1);
        if self.pending.len() >= PENDING_SLOTS {
            self.write_slots()?;
        }
        Ok(())
    }

    /// Writes the pending slots, one write per run of consecutive sequence numbers.
    fn write_slots(&mut self) -> io::Result<()> {
        self.pending.sort_unstable_by_key(|(seq, _, _)| *seq);
        let mut run = Vec::with_capacity(self.pending.len() * SLOT as usize);
        let mut first = 0;
        for (i, &(seq, off, len)) in self.pending.iter().enumerate() {
            if i > 0 && seq != self.pending[i - 1].0 + 1 {
                write_all_at(&self.index, &run, self.pending[first].0 * SLOT)?;
                run.clear();
                first = i;
            }
            run.extend_from_slice(&off.to_le_bytes());
            run.extend_from_slice(&len.to_le_bytes());
        }
        if let Some(&(seq, _, _)) = self.pending.get(first) {
            write_all_at(&self.index, &run, seq * SLOT)?;
        }
        self.pending.clear();
        Ok(())
    }

    /// A reader of every line, in sequence order.
    pub fn into_reader(mut self) -> io::Result<SpoolReader> {
        self.write_slots()?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(SpoolReader {
            file,
            index: self.index,
            slots: self.slots,
            next_slot: 0,
            read: Vec::new(),
            read_at: 0,
            lines: Vec::new(),
            buf: Vec::new(),
            at: 0,
            rewrite: None,
        })
    }

    /// The lines by number, for reading in any order ([`SpoolLines::get`]).
    pub fn into_lines(mut self) -> io::Result<SpoolLines> {
        self.write_slots()?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(SpoolLines { file, index: self.index, slots: self.slots })
    }

    /// Like [`Spool::into_reader`], each line passed through `rewrite` (its sequence number and
    /// the line without its LF in, the new line out) as it is read back.
    pub fn into_reader_rewriting(self, rewrite: Rewrite) -> io::Result<SpoolReader> {
        let mut reader = self.into_reader()?;
        reader.rewrite = Some(rewrite);
        Ok(reader)
    }
}

/// A spool's lines, each read from the files when asked for (see [`Spool::into_lines`]).
#[derive(Debug)]
pub struct SpoolLines {
    file: File,
    index: File,
    slots: u64,
}

impl SpoolLines {
    /// The line numbered `seq`, without its LF; `None` when none was pushed.
    pub fn get(&self, seq: u64) -> io::Result<Option<Vec<u8>>> {
        if seq >= self.slots {
            return Ok(None);
        }
        let mut slot = [0u8; SLOT as usize];
        read_exact_at(&self.index, &mut slot, seq * SLOT)?;
        let off = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(slot[8..].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut line = vec![0u8; len];
        read_exact_at(&self.file, &mut line, off)?;
        line.pop();
        Ok(Some(line))
    }
}

/// A change made to each line as a spool is read back: its sequence number and the line
/// (without its LF) in, the new line appended to the buffer.
pub type Rewrite = Box<dyn FnMut(u64, &[u8], &mut Vec<u8>) + Send>;

/// Reads a spool's lines in order (see [`Spool::into_reader`]).
pub struct SpoolReader {
    file: File,
    index: File,
    slots: u64,
    /// The first slot not yet in `read`.
    next_slot: u64,
    /// Slots read from the index, and how far they are taken.
    read: Vec<u8>,
    read_at: usize,
    /// The sequence numbers and lengths of the lines in `buf`.
    lines: Vec<(u64, u32)>,
    buf: Vec<u8>,
    at: usize,
    rewrite: Option<Rewrite>,
}

impl std::fmt::Debug for SpoolReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolReader").field("slots", &self.slots).field("next_slot", &self.next_slot).finish()
    }
}

impl SpoolReader {
    /// The next line's (seq, offset, length), without taking it; `None` at the end.
    fn peek(&mut self) -> io::Result<Option<(u64, u64, u32)>> {
        loop {
            if self.read_at == self.read.len() {
                if self.next_slot == self.slots {
                    return Ok(None);
                }
                let n = (self.slots - self.next_slot).min(READ_SLOTS as u64);
                self.read.resize((n * SLOT) as usize, 0);
                read_exact_at(&self.index, &mut self.read, self.next_slot * SLOT)?;
                self.next_slot += n;
                self.read_at = 0;
            }
            let slot = &self.read[self.read_at..self.read_at + SLOT as usize];
            let off = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(slot[8..].try_into().expect("4 bytes"));
            let seq = self.next_slot - ((self.read.len() - self.read_at) as u64 / SLOT);
            if len > 0 {
                return Ok(Some((seq, off, len)));
            }
            self.read_at += SLOT as usize;
        }
    }

    /// Refills `buf` with as many lines as lie one after the other in the data file and fit in
    /// [`READ_BYTES`], to keep reads large. Returns false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.buf.clear();
        self.lines.clear();
        self.at = 0;
        let Some((_, first, _)) = self.peek()? else { return Ok(false) };
        let mut len = 0usize;
        while let Some((seq, off, l)) = self.peek()? {
            if len > 0 && (off != first + len as u64 || len + l as usize > READ_BYTES) {
                break;
            }
            self.lines.push((seq, l));
            len += l as usize;
            self.read_at += SLOT as usize;
        }
        self.buf.resize(len, 0);
        read_exact_at(&self.file, &mut self.buf, first)?;
        if let Some(rewrite) = self.rewrite.as_mut() {
            let raw = std::mem::take(&mut self.buf);
            let mut rest = raw.as_slice();
            for &(seq, l) in &self.lines {
                let (line, after) = rest.split_at(l as usize);
                rewrite(seq, line.strip_suffix(b"\n").unwrap_or(line), &mut self.buf);
                self.buf.push(b'\n');
                rest = after;
            }
        }
        Ok(true)
    }
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_back_in_sequence_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new_in(dir.path()).unwrap();
        for seq in [3u64, 0, 2, 1, 5, 4] {
            s.push(seq, format!("line {seq}").as_bytes()).unwrap();
        }
        let mut text = String::new();
        s.into_reader().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\n");
    }

    #[test]
    fn lines_can_be_rewritten_as_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new_in(dir.path()).unwrap();
        for seq in [1u64, 0, 2] {
            s.push(seq, format!("{{\"n\":{seq}}}").as_bytes()).unwrap();
        }
        let rewrite: Rewrite = Box::new(|seq, line, out| {
            assert_eq!(line, format!("{{\"n\":{seq}}}").as_bytes(), "each line comes with its own number");
            out.extend_from_slice(&line[..line.len() - 1]);
            out.extend_from_slice(b",\"x\":true}");
        });
        let mut text = String::new();
        s.into_reader_rewriting(rewrite).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"n\":0,\"x\":true}\n{\"n\":1,\"x\":true}\n{\"n\":2,\"x\":true}\n");
    }

    #[test]
    fn many_lines_in_order_already() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new_in(dir.path()).unwrap();
        let mut expected = String::new();
        for seq in 0..50_000u64 {
            let line = format!("{{\"n\":{seq}}}");
            s.push(seq, line.as_bytes()).unwrap();
            expected.push_str(&line);
            expected.push('\n');
        }
        let mut text = String::new();
        s.into_reader().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, expected);
    }

    #[test]
    fn lines_are_read_by_number_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new_in(dir.path()).unwrap();
        for seq in (0..10_000u64).rev().filter(|n| n % 3 != 0) {
            s.push(seq, format!("line\n{seq}").as_bytes()).unwrap();
        }
        let lines = s.into_lines().unwrap();
        for seq in [1u64, 9_998, 5_000, 2] {
            assert_eq!(lines.get(seq).unwrap(), Some(format!("line\n{seq}").into_bytes()));
        }
        assert_eq!(lines.get(3).unwrap(), None, "a number never pushed has no line");
        assert_eq!(lines.get(10_000).unwrap(), None);
    }

    #[test]
    fn numbers_never_pushed_are_skipped_and_slots_written_in_runs_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new_in(dir.path()).unwrap();
        // Out of order across several write-outs, with gaps (failed downloads) and a far number.
        let mut seqs: Vec<u64> = (0..20_000u64).filter(|n| n % 7 != 3).collect();
        seqs.push(1_000_000);
        for chunk in seqs.chunks_mut(50) {
            chunk.reverse();
        }
        for &seq in &seqs {
            s.push(seq, format!("{seq}").as_bytes()).unwrap();
        }
        let mut text = String::new();
        s.into_reader().unwrap().read_to_string(&mut text).unwrap();
        seqs.sort_unstable();
        let expected: String = seqs.iter().map(|n| format!("{n}\n")).collect();
        assert_eq!(text, expected);
    }
}
