//! Text from outside (names, messages, archive paths) made safe to print on a terminal.
//!
//! A project name with `ESC[2J` or a `\r` can clear or rewrite the terminal, and an archive
//! entry named `x\rintact` can make a report read "intact"; every human line the CLI prints goes
//! through [`escape_control`]. JSON output needs nothing more: serde escapes control characters.
//!
//! Also the one place an error and its causes become one line, [`error_chain`]: every error's
//! message says only its own part and holds its cause as its `source`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0, DEL, C1) and every bidirectional override or
/// isolate (which reorder what follows them on screen) written as an escape: `\r`, `\n`, `\t`,
/// `\x1b`, `\u{202e}`. Text without them is returned as is.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `err` and each of its sources, outermost first, joined by ": ". Each error's message says
/// only its own part (never its source's text), so every part is said once, in order. The CLI's
/// stderr line and `--json` error line are this, as is any cause kept as text.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape_control("plain ünïcode 名前"), Cow::Borrowed(_)));
        assert_eq!(escape_control("a\x1b[2Jb\rintact\n\t\x7f\u{9b}"), "a\\x1b[2Jb\\rintact\\n\\t\\x7f\\x9b");
        assert_eq!(escape_control("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
    }

    #[test]
    fn an_error_chain_says_each_part_once_in_order() {
        use crate::export::{Error, SinkError};
        let api = crate::api::Error::Service {
            op: "GetProjects",
            status: 503,
            code: "ServiceUnavailable".into(),
            message: "try again later".into(),
            url: "https://x.example/projects".into(),
            retry_after: None,
        };
        let api_text = api.to_string();
        let stopped = |cause| Error::Resumable { partial: "out.zip.partial".into(), cause: Box::new(cause) };
        let err = stopped(Error::Api(api));
        assert!(!err.to_string().contains("try again later"), "a message says only its own part: {err}");
        assert_eq!(error_chain(&err), format!("{err}: {api_text}"));
        assert_eq!(error_chain(&err).matches("try again later").count(), 1);

        let full = std::io::Error::other("No space left on device");
        let archive = crate::archive::Error::Io { path: "out.zip.partial".into(), source: full };
        let err = stopped(Error::Sink(SinkError { path: "out.zip".into(), source: archive }));
        let text = error_chain(&err);
        let parts: Vec<&str> = text.split(": ").collect();
        assert_eq!(parts.len(), 4, "{text}");
        assert!(
            parts[0].starts_with("the export stopped") && parts[0].contains("run the same command again"),
            "{text}"
        );
        assert_eq!(
            &parts[1..],
            ["cannot write the archive out.zip", "archive out.zip.partial", "No space left on device"]
        );
    }
}
