//! Secrets: the training key that never prints, and URLs with their signatures stripped.
//!
//! Everything that might reach a log, an error, a progress line or an archive goes through
//! [`redact_url`] first; the key itself lives only in a [`TrainingKey`], whose `Debug` and
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

/// A URL (absolute or relative) with the values of credential parameters replaced by
/// `REDACTED`. Text that is not a URL comes back with the same treatment of anything shaped like
/// `name=value` after a `?` or `&`.
pub fn redact_url(url: &str) -> String {
    let Some(q) = url.find('?') else { return url.to_owned() };
    let (head, query) = url.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name)) => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}{fragment}", parts.join("&"))
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
}
