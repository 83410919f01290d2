//! Human output: every line the CLI prints for people has the control characters of what it
//! holds escaped ([`crate::text::escape_control`]), so that a name, a message or an archive
//! path from outside cannot move the cursor, clear the screen or rewrite a line. JSON output is
//! written raw: serde already escapes what JSON must.

use std::fmt;
use std::io::{self, Write};

use crate::text::escape_control;

/// A writer whose formatted lines (`write!`, `writeln!`) are escaped, one call at a time: all
/// but the trailing newline of a `writeln!`, so that text can never start a line of its own;
/// with `-q` they are dropped. Raw bytes (`write_all`, serde's JSON) pass through as they are.
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        if super::progress::quiet() {
            return Ok(());
        }
        let text = fmt::format(args);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_str(), ""),
        };
        self.0.write_all(escape_control(body).as_bytes())?;
        self.0.write_all(newline.as_bytes())
    }
}

/// `println!` of one human line, its control characters escaped; nothing with `-q`.
macro_rules! println_escaped {
    () => { if !$crate::cli::progress::quiet() { println!() } };
    ($($arg:tt)*) => {
        if !$crate::cli::progress::quiet() {
            println!("{}", $crate::text::escape_control(&format!($($arg)*)))
        }
    };
}

/// `eprintln!` of one human line, its control characters escaped.
macro_rules! eprintln_escaped {
    ($($arg:tt)*) => { eprintln!("{}", $crate::text::escape_control(&format!($($arg)*))) };
}

/// `print!` of part of a human line, its control characters escaped; nothing with `-q`.
macro_rules! print_escaped {
    ($($arg:tt)*) => {
        if !$crate::cli::progress::quiet() {
            print!("{}", $crate::text::escape_control(&format!($($arg)*)))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_lines_are_escaped_and_raw_bytes_are_not() {
        let mut out = Escaping(Vec::new());
        let (name, clear) = ("data/x\rintact: no findings\n", "\x1b[2J");
        writeln!(out, "  unlisted {name}").unwrap();
        write!(out, "{clear}").unwrap();
        writeln!(out).unwrap();
        out.write_all(b"{\"a\":1}\n").unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "  unlisted data/x\\rintact: no findings\\n\n\\x1b[2J\n{\"a\":1}\n"
        );
    }
}
