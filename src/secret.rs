//! Secrets: the training key that never prints, and URLs with their signatures stripped.
//!
//! Everything that might reach a log, an error, a progress line or an archive goes through
//! [`redact`] (or [`redact_url`]) first; the key itself lives only in a [`TrainingKey`], whose `Debug` and
//! `Display` print a placeholder.

use std::fmt;

/// Query parameters whose values are credentials: SAS signatures and keys.
const SECRET_PARAMS: &[&str] = &["sig", "signature", "key", "training-key", "code", "token", "access_token"];

/// The placeholder written where a secret was.
pub const REDACTED: &str = "REDACTED";

/// A Custom Vision training key. Its value is reachable only through [`TrainingKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct TrainingKey(String);

impl TrainingKey {
    /// Wraps a key, trimming the whitespace a key file usually ends with.
    pub fn new(key: impl Into<String>) -> TrainingKey {
        TrainingKey(key.into().trim().to_owned())
    }

    /// The key itself, for the `Training-Key` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for TrainingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrainingKey(REDACTED)")
    }
}

impl fmt::Display for TrainingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A URL (absolute or relative), or any text, with every credential in it replaced by
/// `REDACTED`: see [`redact`], without a key to look for.
pub fn redact_url(url: &str) -> String {
    redact(url, None)
}

/// Keys shorter than this are not searched for in text: they would match ordinary words, and
/// the service's keys are 32 hexadecimal characters.
const MIN_KEY_LEN: usize = 8;

/// Free text (an error message, a body snippet, a URL) with every credential replaced by
/// `REDACTED`: the values of credential parameters (`sig=`, `key=`... see `SECRET_PARAMS`)
/// wherever they stand, in any number of URLs or query strings; the userinfo of every URL
/// (`https://user:pass@host` -> `https://REDACTED@host`); and `key`'s value itself, as is or
/// percent-encoded, in any letter case. Text entering our data from the service goes through
/// this once, so everything downstream (messages, `account.json`, the browse page) is clean.
pub fn redact(text: &str, key: Option<&TrainingKey>) -> String {
    let mut out = text.to_owned();
    if let Some(key) = key.map(TrainingKey::expose).filter(|k| k.len() >= MIN_KEY_LEN) {
        let encoded = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
        out = replace_ignoring_case(&out, key);
        if encoded != key {
            out = replace_ignoring_case(&out, &encoded);
        }
    }
    redact_params(&redact_userinfo(&out))
}

/// `text` with every occurrence of `needle` (ASCII case ignored) replaced by `REDACTED`.
fn replace_ignoring_case(text: &str, needle: &str) -> String {
    // ASCII lowercasing keeps every byte where it was, so offsets found in the lowered copy
    // are offsets in `text`, and on char boundaries since the needle starts with its first char.
    let (lower, needle) = (text.to_ascii_lowercase(), needle.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle) {
        out.push_str(&text[at..at + found]);
        out.push_str(REDACTED);
        at += found + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// Whether `c` ends a credential's value in free text.
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '&' | '#' | '"' | '\'' | '<' | '>' | '\\' | ',' | ';' | ')' | ']' | '}')
}

/// The values of credential parameters replaced, wherever `name=` starts a word.
fn redact_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let name_start = rest[..eq]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let name = &rest[name_start..eq];
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            let end = rest.find(ends_value).unwrap_or(rest.len());
            if end > 0 {
                out.push_str(REDACTED);
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The userinfo of every `scheme://user:pass@host` in `text` replaced.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let start = sep + 3;
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let authority_end = rest.find(|c: char| ends_value(c) || matches!(c, '/' | '?')).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            out.push_str(REDACTED);
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    out
}

/// A URL with its query removed altogether: what an archive records of a download link.
pub fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_prints() {
        let k = TrainingKey::new(" abc123 \n");
        assert_eq!(k.expose(), "abc123");
        assert!(!format!("{k} {k:?}").contains("abc123"));
    }

    #[test]
    fn signatures_are_stripped() {
        let u = "https://a.blob.core.windows.net/i-1/i-2?sv=2017-04-17&sr=b&sig=abc%2Bdef%3D&se=2020-06-07T16%3A45%3A22Z&sp=r";
        let r = redact_url(u);
        assert!(!r.contains("abc%2B"), "{r}");
        assert!(r.contains("sig=REDACTED") && r.contains("sv=2017-04-17") && r.contains("sp=r"));
        assert_eq!(redact_url("/i-1/i-2"), "/i-1/i-2");
        assert_eq!(strip_query(u), "https://a.blob.core.windows.net/i-1/i-2");
        assert!(redact_url("http://x/?Key=1&x=2").contains("Key=REDACTED&x=2"));
    }

    #[test]
    fn every_credential_in_free_text_is_redacted() {
        let key = TrainingKey::new("0123456789abcdef0123456789ABCDEF");
        let text = "failed for https://u:p%40ss@a.blob.core.windows.net/c/b?sv=1&sig=AAA%2Bb%3D&se=2 \
                    (see http://x/y?a=1&SIG=BBB); key 0123456789ABCDEF0123456789abcdef, \
                    sig=CCC and \"signature=DDD\" and training-key=EEE";
        let r = redact(text, Some(&key));
        for secret in ["AAA", "BBB", "CCC", "DDD", "EEE", "u:p%40ss", "0123456789"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("https://REDACTED@a.blob.core.windows.net/c/b?sv=1&sig=REDACTED&se=2"), "{r}");
        assert!(r.contains("a=1&SIG=REDACTED)"), "{r}");
        let odd = TrainingKey::new("key with/odd+chars=1");
        let r = redact("echo key%20with%2Fodd%2Bchars%3D1 and key with/odd+chars=1", Some(&odd));
        assert_eq!(r, "echo REDACTED and REDACTED");
        assert_eq!(redact("short k stays", Some(&TrainingKey::new("k"))), "short k stays");
        assert_eq!(redact("no secrets: a=b, design=1", None), "no secrets: a=b, design=1");
        assert_eq!(redact("ünïcode sig=ö€ end", None), "ünïcode sig=REDACTED end");
    }
}
