//! Reading lines of untrusted text with a cap on each line, so one endless "line" cannot grow
//! memory without bound.

use std::io::{BufRead, ErrorKind};

/// The outcome of reading one line.
pub(super) enum Line {
    /// A line (without its `\n`) was read into the buffer.
    Text,
    /// The line exceeded the cap; the rest of it was skipped.
    TooLong,
    /// End of input.
    End,
}

/// Reads one line into `buf` (cleared first), keeping at most `cap` bytes of it.
pub(super) fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if !any {
                Line::End
            } else if too_long {
                Line::TooLong
            } else {
                Line::Text
            });
        }
        any = true;
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let content = &chunk[..if done { used - 1 } else { used }];
        if !too_long {
            if buf.len() + content.len() > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(content);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Text });
        }
    }
}
