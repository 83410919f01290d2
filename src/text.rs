//! Text from outside (names, messages, archive paths) made safe to print on a terminal.
//!
//! A project name with `ESC[2J` or a `\r` can clear or rewrite the terminal, and an archive
//! entry named `x\rintact` can make a report read "intact"; every human line the CLI prints goes
//! through [`escape_control`]. JSON output needs nothing more: serde escapes control characters.

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
}
