//! The wire below the calls: reading bodies within a limit, error bodies of the service and of
//! its API-management layer, transport errors without their URLs, and short safe snippets.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};

use crate::api::error::Error;
use crate::api::model::CustomVisionError;
use crate::api::retry::parse_retry_after;
use crate::secret::redact_url;

pub(super) fn transport(op: &'static str, url: &str, e: reqwest::Error) -> Error {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<super::links::CrossOrigin>() {
            return Error::CrossOriginRedirect { op, from: refused.from.clone(), to: refused.to.clone() };
        }
        source = s.source();
    }
    if let Some(problem) = super::tls::certificate_problem(&e) {
        return Error::Untrusted { op, url: url.to_owned(), problem };
    }
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            let _ = write!(detail, ": {text}");
        }
        source = s.source();
    }
    if url.starts_with("https://") && speaks_plain_http(&detail) {
        detail.push_str(
            "; the server answered in plain HTTP, not TLS: if it serves plain HTTP (a local emulator, say), use \
             http:// in the endpoint",
        );
    }
    Error::Transport { op, url: url.to_owned(), detail: redact_url(&detail), timeout }
}

/// Whether a TLS handshake failed because the server answered in plain HTTP: rustls reads the
/// answer's first bytes as a record of an unknown content type ("received corrupt message of
/// type InvalidContentType"); OpenSSL says "wrong version number" or "packet length too long".
fn speaks_plain_http(detail: &str) -> bool {
    ["InvalidContentType", "wrong version number", "packet length too long", "http request"]
        .iter()
        .any(|m| detail.contains(m))
}

pub(super) async fn read_limited(
    op: &'static str,
    url: &str,
    resp: &mut reqwest::Response,
    limit: u64,
    _hint: Option<u64>,
) -> Result<Bytes, Error> {
    let declared = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::TooLarge { op, url: url.to_owned(), limit });
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(8 << 10).min(limit) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() as u64 + chunk.len() as u64 > limit {
                    return Err(Error::TooLarge { op, url: url.to_owned(), limit });
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(transport(op, url, e)),
            Err(e) => {
                return Err(Error::Integrity {
                    op,
                    url: url.to_owned(),
                    detail: format!("body cut after {} bytes: {}", buf.len(), e.without_url()),
                })
            }
        }
    }
    if let Some(d) = declared.filter(|d| *d != buf.len() as u64) {
        return Err(Error::Integrity {
            op,
            url: url.to_owned(),
            detail: format!("got {} bytes of the {d} announced", buf.len()),
        });
    }
    Ok(Bytes::from(buf))
}

/// The service's error body: `CustomVisionError`, or the API-management layer's
/// `{"error":{"code","message"}}`.
pub(super) fn parse_error_body(body: &[u8]) -> Option<CustomVisionError> {
    #[derive(serde::Deserialize)]
    struct Wrapped {
        error: Loose,
    }
    #[derive(serde::Deserialize)]
    struct Loose {
        code: serde_json::Value,
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<CustomVisionError>(body) {
        return Some(e);
    }
    let w = serde_json::from_slice::<Wrapped>(body).ok()?;
    let code = match w.error.code {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Some(CustomVisionError { code, message: w.error.message })
}

pub(super) fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after)
}

pub(super) fn describe_body(headers: &HeaderMap, body: &[u8]) -> String {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no content type");
    if body.is_empty() {
        format!("an empty body ({ct})")
    } else {
        format!("{ct}: {}", snippet(body))
    }
}

pub(super) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    redact_url(&one_line)
}
