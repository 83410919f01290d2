//! A JSONL spool on disk: lines arrive in completion order and leave in listing order, so that
//! `images.jsonl` is the same whatever the download order, while memory holds only an index
//! (24 bytes a line), never the lines.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// Lines written with a sequence number, read back sorted by it.
#[derive(Debug)]
pub struct Spool {
    out: BufWriter<File>,
    index: Vec<(u64, u64, u32)>,
    pos: u64,
}

impl Spool {
    /// A spool in an anonymous temporary file inside `dir` (removed by the OS when dropped).
    pub fn new_in(dir: &Path) -> io::Result<Spool> {
        Ok(Spool { out: BufWriter::with_capacity(256 << 10, tempfile::tempfile_in(dir)?), index: Vec::new(), pos: 0 })
    }

    /// Adds one line (without its newline) at position `seq`.
    pub fn push(&mut self, seq: u64, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        let len = line.len() as u32 + 1;
        self.index.push((seq, self.pos, len));
        self.pos += u64::from(len);
        Ok(())
    }

    /// A reader of every line, in sequence order.
    pub fn into_reader(self) -> io::Result<SpoolReader> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let mut index = self.index;
        index.sort_unstable_by_key(|(seq, _, _)| *seq);
        Ok(SpoolReader { file, index, next: 0, buf: Vec::new(), at: 0, rewrite: None })
    }

    /// Like [`Spool::into_reader`], each line passed through `rewrite` (the line without its
    /// LF in, the new line out) as it is read back.
    pub fn into_reader_rewriting(self, rewrite: Rewrite) -> io::Result<SpoolReader> {
        let mut reader = self.into_reader()?;
        reader.rewrite = Some(rewrite);
        Ok(reader)
    }
}

/// Reads a spool's lines in order (see [`Spool::into_reader`]).
/// A change made to each line as a spool is read back: the line (without its LF) in, the new
/// line appended to the buffer.
pub type Rewrite = Box<dyn FnMut(&[u8], &mut Vec<u8>) + Send>;

pub struct SpoolReader {
    file: File,
    index: Vec<(u64, u64, u32)>,
    next: usize,
    buf: Vec<u8>,
    at: usize,
    rewrite: Option<Rewrite>,
}

impl std::fmt::Debug for SpoolReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolReader").field("lines", &self.index.len()).field("next", &self.next).finish()
    }
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            // Refill with as many consecutive lines as fit in 256 KiB, to keep reads large.
            let Some(&(_, first_off, _)) = self.index.get(self.next) else { return Ok(0) };
            self.buf.clear();
            self.at = 0;
            let mut off = first_off;
            let mut len = 0usize;
            while let Some(&(_, o, l)) = self.index.get(self.next) {
                if len > 0 && (o != off + len as u64 || len + l as usize > (256 << 10)) {
                    break;
                }
                if len == 0 {
                    off = o;
                }
                len += l as usize;
                self.next += 1;
            }
            self.buf.resize(len, 0);
            crate::platform::read_exact_at(&self.file, &mut self.buf, off)?;
            if let Some(rewrite) = self.rewrite.as_mut() {
                let raw = std::mem::take(&mut self.buf);
                for line in raw.split_inclusive(|b| *b == b'\n') {
                    rewrite(line.strip_suffix(b"\n").unwrap_or(line), &mut self.buf);
                    self.buf.push(b'\n');
                }
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
        let rewrite: Rewrite = Box::new(|line, out| {
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
}
