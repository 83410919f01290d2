//! The browse page's code: a browser that opens `data/index.html` runs what the archive holds,
//! so a re-bagged archive with a consistent manifest could carry any script. The page's code
//! (`index.html`, `browse/app.js`, `browse/style.css`) must be byte for byte what this version
//! of cvarchive writes, and every other `.js` file in the payload a pure data call
//! (`window.__cv_push("<key>","<json>");`, two JSON strings and nothing else), which runs no code
//! of its own; `app.js` loads nothing but such files. Anything else is a
//! [`FindingKind::PageCodeDiffers`]: not damage to the data, but a reason not to open the page.
//! An archive written by another version of cvarchive differs legitimately; the finding says so.

use std::io::{BufRead, BufReader};

use super::finding::Findings;
use super::{Bag, Finding, FindingKind};
use crate::browse::{page_code, DATA_CALL_PREFIX};

/// What every finding of this kind says about older archives and what to do.
const ADVICE: &str = "an archive written by another version of cvarchive differs legitimately; \
    do not open index.html unless you trust where the archive came from";

/// Checks the page's code files and, with `data_files` (the full check; `--fast` leaves it out),
/// that every other script is a pure data call, adding a finding for each that differs.
pub(super) fn check(bag: &Bag<'_>, data_files: bool, findings: &mut Findings) {
    let version = env!("CARGO_PKG_VERSION");
    let code = page_code();
    for (rel, expected) in code {
        let path = format!("data/{rel}");
        let Some(entry) = bag.payload.get(&path) else { continue };
        // Unreadable entries are the payload layer's findings; only readable code is compared.
        let same = entry.size == expected.len() as u64
            && matches!(bag.reader.read_entry(entry, expected.len() as u64), Ok(b) if b == expected);
        if !same {
            findings.push(
                Finding::new(FindingKind::PageCodeDiffers, path)
                    .detail(format!("differs from the page code cvarchive {version} writes; {ADVICE}")),
            );
        }
    }
    if !data_files {
        return;
    }
    let mut scripts: Vec<&String> = bag
        .payload
        .keys()
        .filter(|p| p.to_ascii_lowercase().ends_with(".js"))
        .filter(|p| !code.iter().any(|(rel, _)| p.strip_prefix("data/") == Some(rel)))
        .collect();
    scripts.sort();
    for path in scripts {
        let entry = bag.payload[path];
        let Ok(input) = bag.reader.open_entry(entry) else { continue };
        if let Err(why) = data_call(BufReader::with_capacity(64 << 10, input)) {
            findings.push(Finding::new(FindingKind::PageCodeDiffers, path.as_str()).detail(format!(
                "not a data file as cvarchive {version} writes them ({why}): a browser opening index.html could run it; {ADVICE}"
            )));
        }
    }
}

/// Whether `input` is exactly `window.__cv_push(<JSON string>,<JSON string>);` and an optional
/// line feed, read as a stream (memory stays flat however large the file).
fn data_call(mut input: impl BufRead) -> Result<(), String> {
    let mut prefix = vec![0u8; DATA_CALL_PREFIX.len()];
    input.read_exact(&mut prefix).map_err(|_| "it ends before the data call".to_string())?;
    if prefix != DATA_CALL_PREFIX.as_bytes() {
        return Err(format!("it does not start with {DATA_CALL_PREFIX}"));
    }
    json_string(&mut input)?;
    expect(&mut input, b",")?;
    json_string(&mut input)?;
    expect(&mut input, b");")?;
    let mut rest = [0u8; 2];
    match input.read(&mut rest) {
        Ok(0) => Ok(()),
        Ok(1) if rest[0] == b'\n' => match input.read(&mut rest) {
            Ok(0) => Ok(()),
            _ => Err("something follows the data call".into()),
        },
        Ok(_) => Err("something follows the data call".into()),
        Err(e) => Err(format!("read error: {e}")),
    }
}

fn next(input: &mut impl BufRead) -> Result<u8, String> {
    let mut b = [0u8; 1];
    match input.read(&mut b) {
        Ok(1) => Ok(b[0]),
        Ok(_) => Err("it ends inside the data call".into()),
        Err(e) => Err(format!("read error: {e}")),
    }
}

fn expect(input: &mut impl BufRead, want: &[u8]) -> Result<(), String> {
    for &w in want {
        if next(input)? != w {
            return Err(format!("{:?} expected in the data call", String::from_utf8_lossy(want)));
        }
    }
    Ok(())
}

/// One JSON string literal (RFC 8259 section 7), which is also a JavaScript string literal: a
/// quote, then characters other than quote, backslash and controls, or escapes, then a quote.
fn json_string(input: &mut impl BufRead) -> Result<(), String> {
    if next(input)? != b'"' {
        return Err("an argument of the data call is not a JSON string".into());
    }
    loop {
        // Scan a buffer at a time, escapes included where they fit in it (the data's JSON is
        // dense in `\"`); only an escape cut by the buffer's end goes byte by byte.
        let buf = input.fill_buf().map_err(|e| format!("read error: {e}"))?;
        let len = buf.len();
        if len == 0 {
            return Err("it ends inside a string".into());
        }
        let mut i = 0;
        let end = loop {
            match buf.get(i) {
                None => break None,
                Some(b'"') => break Some(Ok(i + 1)),
                Some(b'\\') => match buf.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') if buf.len() >= i + 6 => {
                        if !buf[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) {
                            break Some(Err("a \\u escape without four hex digits"));
                        }
                        i += 6;
                    }
                    Some(b'u') | None => break None,
                    Some(_) => break Some(Err("an escape JSON does not have")),
                },
                Some(&b) if b < 0x20 => break Some(Err("a control character inside a string")),
                Some(_) => i += 1,
            }
        };
        match end {
            Some(Ok(n)) => {
                input.consume(n);
                return Ok(());
            }
            Some(Err(why)) => return Err(why.into()),
            None => {
                input.consume(i);
                if i < len {
                    slow_escape(input)?;
                }
            }
        }
    }
}

/// One escape (the backslash not yet read) whose bytes a buffer's end cut apart.
fn slow_escape(input: &mut impl BufRead) -> Result<(), String> {
    if next(input)? != b'\\' {
        return Err("an escape expected".into());
    }
    match next(input)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
        b'u' => {
            for _ in 0..4 {
                if !next(input)?.is_ascii_hexdigit() {
                    return Err("a \\u escape without four hex digits".into());
                }
            }
            Ok(())
        }
        _ => Err("an escape JSON does not have".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        data_call(s.as_bytes()).is_ok()
    }

    #[test]
    fn strings_longer_than_the_buffer_are_read_whole() {
        let long = format!("window.__cv_push(\"k\",\"{}\\\"{}\");\n", "x".repeat(100_000), "y".repeat(70_000));
        assert_eq!(data_call(BufReader::with_capacity(64, long.as_bytes())), Ok(()));
        let bad = format!("window.__cv_push(\"k\",\"{}\"+alert(1));", "x".repeat(100_000));
        assert!(data_call(BufReader::with_capacity(64, bad.as_bytes())).is_err());
    }

    #[test]
    fn only_a_call_with_two_json_strings_is_data() {
        assert!(ok("window.__cv_push(\"account\",\"{\\\"a\\\":\\\"\\u00e9 \\\\ x\\\"}\");\n"));
        assert!(ok("window.__cv_push(\"k\",\"\");"));
        assert!(ok("window.__cv_push(\"k\",\"日本\");\n"));
        assert!(!ok("window.__cv_push(\"k\",\"x\");\nalert(1)"));
        assert!(!ok("window.__cv_push(\"k\",\"x\"+alert(1));"));
        assert!(!ok("window.__cv_push(\"k\",{\"a\":1});"));
        assert!(!ok("alert(1);window.__cv_push(\"k\",\"x\");"));
        assert!(!ok("window.__cv_push(\"k\",\"x\\q\");"));
        assert!(!ok("window.__cv_push(\"k\",\"x"));
        assert!(!ok("window.__cv_push(\"k\",\"x\")"));
        assert!(!ok(""));
    }
}
