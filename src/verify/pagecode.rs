//! The browse page's code: a browser that opens `data/index.html` runs what the archive holds,
//! so a re-bagged archive with a consistent manifest could carry any script. The page's code
//! (`index.html`, `browse/app.js`, `browse/style.css`) must be byte for byte what this version
//! of cvarchive writes, and every other `.js` file in the payload a pure data call
//! (`window.__cv_push("<key>","<json>");`, two JSON strings and nothing else), which runs no code
//! of its own; `app.js` loads nothing but such files. Anything else is a
//! [`FindingKind::PageCodeDiffers`]: not damage to the data, but a reason not to open the page.
//! An archive written by another version of cvarchive differs legitimately; the finding says so.

use super::finding::{Findings, Ranked};
use super::{Bag, Finding, FindingKind};
use crate::browse::{page_code, DATA_CALL_PREFIX};

/// What every finding of this kind says about older archives and what to do.
const ADVICE: &str = "an archive written by another version of cvarchive differs legitimately; \
    do not open index.html unless you trust where the archive came from";

/// Whether the payload file at `path` is a script that must be a pure data call: a `.js` file
/// other than the page's own code.
pub(super) fn is_data_script(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".js")
        && !page_code().iter().any(|(rel, _)| path.strip_prefix("data/") == Some(rel))
}

/// Checks the page's code files and, with `scripts` (the findings the full check's hashing pass
/// made on data scripts that are not pure data calls, see [`DataCall`]; `--fast` has none),
/// reports those after them.
pub(super) fn check(bag: &Bag<'_>, scripts: Option<Ranked>, findings: &mut Findings) {
    let version = env!("CARGO_PKG_VERSION");
    for (rel, expected) in page_code() {
        let path = format!("data/{rel}");
        let Some(index) = bag.find_payload(&path) else { continue };
        // Unreadable entries are the payload layer's findings; only readable code is compared.
        let same = bag.sizes[index] == expected.len() as u64
            && matches!(bag.entry(index).and_then(|e| bag.reader.read_entry(&e, expected.len() as u64)),
                Ok(b) if b == expected);
        if !same {
            findings.push(
                Finding::new(FindingKind::PageCodeDiffers, path)
                    .detail(format!("differs from the page code cvarchive {version} writes; {ADVICE}")),
            );
        }
    }
    if let Some(mut scripts) = scripts {
        scripts.drain_into(findings);
    }
}

/// The finding for the data script at `path` that is not a pure data call, and why.
pub(super) fn script_finding(path: &str, why: &str) -> Finding {
    let version = env!("CARGO_PKG_VERSION");
    Finding::new(FindingKind::PageCodeDiffers, path).detail(format!(
        "not a data file as cvarchive {version} writes them ({why}): a browser opening index.html could run it; {ADVICE}"
    ))
}

/// Proves a script is exactly `window.__cv_push(<JSON string>,<JSON string>);` and an optional
/// line feed, fed its bytes a buffer at a time as they are hashed: each byte is inflated once,
/// and memory stays flat however large the file.
#[derive(Debug)]
pub(super) struct DataCall {
    state: State,
    failed: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Bytes of [`DATA_CALL_PREFIX`] matched so far.
    Prefix(usize),
    /// Before the opening quote of argument 0 or 1.
    Open(u8),
    /// Inside argument 0 or 1.
    Str(u8, Escape),
    /// Between the two arguments.
    Comma,
    /// Bytes of `);` matched so far.
    Close(usize),
    /// After the call; whether its line feed was seen.
    End(bool),
}

/// Where a string is in an escape (RFC 8259 section 7).
#[derive(Debug, Clone, Copy)]
enum Escape {
    None,
    Backslash,
    /// Hex digits of a `\u` escape still to come.
    Hex(u8),
}

impl Default for DataCall {
    fn default() -> Self {
        DataCall { state: State::Prefix(0), failed: None }
    }
}

impl DataCall {
    /// Reads the next bytes of the script.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.failed.is_none() {
            let used = match self.step(bytes) {
                Ok(used) => used,
                Err(why) => {
                    self.failed = Some(why);
                    return;
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// The verdict once every byte was fed.
    pub(super) fn finish(self) -> Result<(), String> {
        if let Some(why) = self.failed {
            return Err(why.into());
        }
        match self.state {
            State::End(_) => Ok(()),
            State::Prefix(_) => Err("it ends before the data call".into()),
            State::Str(..) => Err("it ends inside a string".into()),
            _ => Err("it ends inside the data call".into()),
        }
    }

    /// Consumes a prefix of `bytes` (at least one byte), or says why the script is not data.
    fn step(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        const CLOSE: &[u8] = b");";
        let b = bytes[0];
        self.state = match self.state {
            State::Prefix(k) => {
                let want = &DATA_CALL_PREFIX.as_bytes()[k..];
                let n = want.len().min(bytes.len());
                if bytes[..n] != want[..n] {
                    return Err("it does not start with the data call");
                }
                self.state = if n == want.len() { State::Open(0) } else { State::Prefix(k + n) };
                return Ok(n);
            }
            State::Open(arg) if b == b'"' => State::Str(arg, Escape::None),
            State::Open(_) => return Err("an argument of the data call is not a JSON string"),
            State::Str(arg, escape) => return self.string(arg, escape, bytes),
            State::Comma if b == b',' => State::Open(1),
            State::Comma => return Err("\",\" expected in the data call"),
            State::Close(k) if b == CLOSE[k] => {
                if k + 1 == CLOSE.len() {
                    State::End(false)
                } else {
                    State::Close(k + 1)
                }
            }
            State::Close(_) => return Err("\");\" expected in the data call"),
            State::End(false) if b == b'\n' => State::End(true),
            State::End(_) => return Err("something follows the data call"),
        };
        Ok(1)
    }

    /// Scans string bytes a buffer at a time (the data's JSON is dense in escapes), up to and
    /// including the closing quote.
    fn string(&mut self, arg: u8, mut escape: Escape, bytes: &[u8]) -> Result<usize, &'static str> {
        for (i, &b) in bytes.iter().enumerate() {
            escape = match escape {
                Escape::None => match b {
                    b'"' => {
                        self.state = if arg == 0 { State::Comma } else { State::Close(0) };
                        return Ok(i + 1);
                    }
                    b'\\' => Escape::Backslash,
                    0..0x20 => return Err("a control character inside a string"),
                    _ => Escape::None,
                },
                Escape::Backslash => match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Escape::None,
                    b'u' => Escape::Hex(4),
                    _ => return Err("an escape JSON does not have"),
                },
                Escape::Hex(n) if b.is_ascii_hexdigit() => {
                    if n == 1 {
                        Escape::None
                    } else {
                        Escape::Hex(n - 1)
                    }
                }
                Escape::Hex(_) => return Err("a \\u escape without four hex digits"),
            };
        }
        self.state = State::Str(arg, escape);
        Ok(bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict on `s` fed `chunk` bytes at a time.
    fn scan(s: &str, chunk: usize) -> Result<(), String> {
        let mut call = DataCall::default();
        for part in s.as_bytes().chunks(chunk) {
            call.feed(part);
        }
        call.finish()
    }

    fn ok(s: &str) -> bool {
        let verdicts: Vec<bool> = [1, 2, 3, 7, 64, 1 << 20].iter().map(|&c| scan(s, c).is_ok()).collect();
        assert!(verdicts.iter().all(|v| *v == verdicts[0]), "the verdict on {s:?} depends on how it is cut");
        verdicts[0]
    }

    #[test]
    fn strings_longer_than_a_buffer_are_read_whole() {
        let long = format!("window.__cv_push(\"k\",\"{}\\\"{}\\u00e9\");\n", "x".repeat(100_000), "y".repeat(70_000));
        assert_eq!(scan(&long, 64), Ok(()));
        assert_eq!(scan(&long, 5), Ok(()));
        let bad = format!("window.__cv_push(\"k\",\"{}\"+alert(1));", "x".repeat(100_000));
        assert!(scan(&bad, 64).is_err());
    }

    #[test]
    fn only_a_call_with_two_json_strings_is_data() {
        assert!(ok("window.__cv_push(\"account\",\"{\\\"a\\\":\\\"\\u00e9 \\\\ x\\\"}\");\n"));
        assert!(ok("window.__cv_push(\"k\",\"\");"));
        assert!(ok("window.__cv_push(\"k\",\"日本\");\n"));
        assert!(!ok("window.__cv_push(\"k\",\"x\");\nalert(1)"));
        assert!(!ok("window.__cv_push(\"k\",\"x\");\n\n"));
        assert!(!ok("window.__cv_push(\"k\",\"x\"+alert(1));"));
        assert!(!ok("window.__cv_push(\"k\",{\"a\":1});"));
        assert!(!ok("alert(1);window.__cv_push(\"k\",\"x\");"));
        assert!(!ok("window.__cv_push(\"k\",\"x\\q\");"));
        assert!(!ok("window.__cv_push(\"k\",\"\\u12g4\");"));
        assert!(!ok("window.__cv_push(\"k\",\"a\tb\");"));
        assert!(!ok("window.__cv_push(\"k\",\"x"));
        assert!(!ok("window.__cv_push(\"k\",\"x\")"));
        assert!(!ok("window.__cv_pu"));
        assert!(!ok(""));
    }
}
