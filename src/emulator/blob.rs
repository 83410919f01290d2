//! Signed, expiring blob links shaped like Azure Storage SAS URLs, and the blob answers in
//! Azure Storage's shapes (headers, XML errors, a body cut mid-way on request).
//!
//! A link is `{endpoint}/blob/{container}/{blob}?sv=2017-04-17&sr=b&sig=..&se=..&sp=r`; `sig` is
//! the HMAC-SHA256 of `{container}/{blob}` and `se` under a secret drawn once per emulator, so a
//! link cannot be forged, altered or used after `se`.

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;
use sha2::Sha256;

/// The storage service version the real links name.
const SAS_VERSION: &str = "2017-04-17";

/// Characters escaped in query values: what Azure escapes in its SAS links (`:`, `+`, `/`, `=`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a blob link was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// `sig` or `se` missing, or the signature does not match.
    BadSignature,
    /// `se` is in the past.
    Expired { expiry: String },
}

/// Signs and checks blob links.
pub(crate) struct Signer {
    secret: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(REDACTED)")
    }
}

impl Signer {
    /// A signer with a fresh random secret.
    pub fn new() -> Signer {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Signer { secret }
    }

    fn signature(&self, path: &str, se: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(se.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The SAS query of `path` (`container/blob`) valid until `expiry`.
    pub fn query(&self, path: &str, expiry: DateTime<Utc>) -> String {
        let se = expiry.to_rfc3339_opts(SecondsFormat::Secs, true);
        let sig = self.signature(path, &se);
        format!(
            "sv={SAS_VERSION}&sr=b&sig={}&se={}&sp=r",
            utf8_percent_encode(&sig, QUERY_VALUE),
            utf8_percent_encode(&se, QUERY_VALUE)
        )
    }

    /// Checks the decoded `sig` and `se` of a request for `path` at `now`.
    pub fn check(&self, path: &str, sig: Option<&str>, se: Option<&str>, now: DateTime<Utc>) -> Result<(), Denied> {
        let (Some(sig), Some(se)) = (sig, se) else { return Err(Denied::BadSignature) };
        let expected = self.signature(path, se);
        // Equal length and a constant-time comparison: this is a credential.
        let same = expected.len() == sig.len()
            && expected.bytes().zip(sig.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return Err(Denied::BadSignature);
        }
        let expiry = DateTime::parse_from_rfc3339(se).map_err(|_| Denied::BadSignature)?;
        if expiry.with_timezone(&Utc) <= now {
            return Err(Denied::Expired { expiry: se.to_owned() });
        }
        Ok(())
    }
}

/// The MIME type of image bytes, from their magic number.
pub(crate) fn sniff_content_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'B', b'M', ..] => "image/bmp",
        [b'P', b'K', 3, 4, ..] => "application/zip",
        _ => "application/octet-stream",
    }
}

fn storage_headers(builder: axum::http::response::Builder, request_id: &str) -> axum::http::response::Builder {
    builder
        .header("x-ms-request-id", request_id)
        .header("x-ms-version", SAS_VERSION)
        .header(header::SERVER, "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0")
}

/// A byte range of a `Range: bytes=first-[last]` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub first: usize,
    pub last: Option<usize>,
}

impl ByteRange {
    /// Reads a single-range `Range` header; `None` for anything else (then the whole blob is
    /// sent, as Azure does for ranges it ignores).
    pub fn parse(header: &str) -> Option<ByteRange> {
        let (first, last) = header.trim().strip_prefix("bytes=")?.split_once('-')?;
        let first = first.trim().parse().ok()?;
        let last = match last.trim() {
            "" => None,
            l => Some(l.parse().ok()?),
        };
        (last.is_none_or(|l| l >= first)).then_some(ByteRange { first, last })
    }
}

/// A blob answer: the bytes with `Content-Type`, `Content-Length` and `Content-MD5` (or, for a
/// range, 206 with `Content-Range` and the whole blob's MD5 in `x-ms-blob-content-md5`); when
/// `reset` is set, only part of the body is sent before the connection drops. `digest` is the
/// whole blob's MD5.
pub(crate) fn ok(
    bytes: Bytes,
    digest: [u8; 16],
    range: Option<ByteRange>,
    request_id: &str,
    reset: bool,
) -> Response<Body> {
    let md5 = base64::engine::general_purpose::STANDARD.encode(digest);
    let total = bytes.len();
    let mut builder = storage_headers(Response::builder(), request_id)
        .header(header::CONTENT_TYPE, sniff_content_type(&bytes))
        .header(header::ETAG, format!("\"0x8D{}\"", hex::encode(&digest[..7]).to_uppercase()))
        .header(header::LAST_MODIFIED, "Sat, 06 Jun 2020 16:44:43 GMT")
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-ms-blob-type", "BlockBlob");
    let body = match range {
        Some(r) if r.first >= total => {
            return error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
                None,
                request_id,
            );
        }
        Some(r) => {
            let last = r.last.unwrap_or(total - 1).min(total - 1);
            builder = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {}-{last}/{total}", r.first))
                .header("x-ms-blob-content-md5", md5.as_str());
            bytes.slice(r.first..=last)
        }
        None => {
            builder = builder.status(StatusCode::OK).header("Content-MD5", md5.as_str());
            bytes
        }
    };
    let len = body.len();
    let builder = builder.header(header::CONTENT_LENGTH, len);
    let body = if reset {
        // Half the body, then an error: hyper drops the connection short of Content-Length.
        // The pause lets the head and the first half reach the client before the cut.
        use futures::StreamExt as _;
        let part = futures::stream::iter([Ok::<Bytes, io::Error>(body.slice(..len / 2))]);
        let cut = futures::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected connection reset"))
        });
        Body::from_stream(part.chain(cut))
    } else {
        Body::from(body)
    };
    builder.body(body).expect("static headers are valid")
}

/// Azure Storage's XML error answer.
pub(crate) fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: Option<&str>,
    request_id: &str,
) -> Response<Body> {
    let time = format!("{}Z", crate::api::model::Timestamp::from_instant_no_offset(Utc::now()).as_str());
    let mut xml = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}\nRequestId:{request_id}\nTime:{time}</Message>",
        xml_escape(message)
    );
    if let Some(detail) = detail {
        xml.push_str(&format!("<AuthenticationErrorDetail>{}</AuthenticationErrorDetail>", xml_escape(detail)));
    }
    xml.push_str("</Error>");
    storage_headers(Response::builder().status(status), request_id)
        .header(header::CONTENT_TYPE, "application/xml")
        .header("x-ms-error-code", HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("Unknown")))
        .body(Body::from(xml))
        .expect("static headers are valid")
}

/// The 403 of a refused link, with the service's wording.
pub(crate) fn denied(why: &Denied, now: DateTime<Utc>, request_id: &str) -> Response<Body> {
    let message = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.";
    let detail = match why {
        Denied::BadSignature => "Signature did not match. String to sign used was r".to_owned(),
        Denied::Expired { expiry } => format!(
            "Signature not valid in the specified time frame: Start [] - Expiry [{}] - Current [{}]",
            DateTime::parse_from_rfc3339(expiry)
                .map_or_else(|_| expiry.clone(), |t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
            now.format("%a, %d %b %Y %H:%M:%S GMT")
        ),
    };
    error(StatusCode::FORBIDDEN, "AuthenticationFailed", message, Some(&detail), request_id)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A body that never ends: chunked, no Content-Length, zeros forever (until the client stops).
pub(crate) fn endless(request_id: &str) -> Response<Body> {
    let chunk = Bytes::from(vec![0u8; 64 << 10]);
    let stream = futures::stream::repeat_with(move || Ok::<Bytes, io::Error>(chunk.clone()));
    storage_headers(Response::builder(), request_id)
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

/// Headers announcing a body that never comes: a server that stopped sending.
pub(crate) fn stalled(request_id: &str) -> Response<Body> {
    let stream = futures::stream::pending::<Result<Bytes, io::Error>>();
    storage_headers(Response::builder(), request_id)
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_LENGTH, 1000)
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> (String, String) {
        let mut sig = String::new();
        let mut se = String::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "sig" => sig = v.into_owned(),
                "se" => se = v.into_owned(),
                _ => {}
            }
        }
        (sig, se)
    }

    #[test]
    fn links_verify_until_they_expire_and_not_when_altered() {
        let signer = Signer::new();
        let now = Utc::now();
        let q = signer.query("i-ab/i-cd", now + chrono::Duration::hours(24));
        assert!(q.starts_with("sv=2017-04-17&sr=b&sig=") && q.ends_with("&sp=r") && q.contains("%3A"), "{q}");
        let (sig, se) = params(&q);
        assert_eq!(signer.check("i-ab/i-cd", Some(&sig), Some(&se), now), Ok(()));
        assert_eq!(signer.check("i-ab/i-ce", Some(&sig), Some(&se), now), Err(Denied::BadSignature));
        assert!(matches!(
            signer.check("i-ab/i-cd", Some(&sig), Some(&se), now + chrono::Duration::hours(25)),
            Err(Denied::Expired { .. })
        ));
        assert_eq!(Signer::new().check("i-ab/i-cd", Some(&sig), Some(&se), now), Err(Denied::BadSignature));
        assert_eq!(signer.check("i-ab/i-cd", None, Some(&se), now), Err(Denied::BadSignature));
    }

    #[test]
    fn ranges_parse_like_http() {
        assert_eq!(ByteRange::parse("bytes=10-"), Some(ByteRange { first: 10, last: None }));
        assert_eq!(ByteRange::parse("bytes=0-99"), Some(ByteRange { first: 0, last: Some(99) }));
        assert_eq!(ByteRange::parse("bytes=9-1"), None);
        assert_eq!(ByteRange::parse("bytes=-5"), None);
        assert_eq!(ByteRange::parse("items=0-1"), None);
    }
}
