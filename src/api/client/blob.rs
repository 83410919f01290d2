//! Downloading blobs: images, thumbnails and model packages from blob storage (no key sent, not
//! rate limited) or through GetArtifact, hashed while they stream, checked against
//! Content-Length and Content-MD5.

use bytes::Bytes;
use md5::Md5;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use super::{header_retry_after, link_refusal, read_limited, snippet, transport, Attempts, Client};
use crate::api::error::Error;
use crate::secret::{redact_url, strip_query};

/// A downloaded blob, hashed while it streamed in.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The bytes.
    pub bytes: Bytes,
    /// Their SHA-256.
    pub sha256: [u8; 32],
    /// Their CRC-32 (the zip entry's), taken in the same pass, so the archive need not read them again.
    pub crc32: u32,
    /// The Content-Type the server sent.
    pub content_type: Option<String>,
}

impl Client {
    // ----- blobs -------------------------------------------------------------------------------

    /// Downloads an image, thumbnail or model package: an absolute link straight from blob
    /// storage (no key sent, not rate limited), a relative one through GetArtifact. An absolute
    /// link that is not http(s), or points where [`link_refusal`] says no, is not fetched:
    /// [`Error::LinkRefused`]. The body is
    /// hashed while it streams, checked against Content-Length and Content-MD5, and refused past
    /// `max_bytes`. Transient failures are retried; an expired link is returned as
    /// [`Error::LinkExpired`] for the caller to refresh.
    pub async fn download(&self, project: Uuid, uri: &str, max_bytes: u64) -> Result<Blob, Error> {
        let uri = uri.trim();
        // An absolute link goes straight to blob storage, if it is one we may fetch; a relative
        // one (VNET mode) through GetArtifact, to the endpoint's own origin.
        if let Ok(link) = Url::parse(uri) {
            let op = "DownloadBlob";
            if let Some(reason) = link_refusal(&link, self.inner.reach) {
                return Err(
                    Error::LinkRefused { op, url: redact_url(strip_query(uri)), reason }.redacted(&self.inner.key)
                );
            }
            if link_has_expired(uri) {
                return Err(Error::LinkExpired { op, status: 0, url: redact_url(uri) });
            }
            self.with_retries(op, Attempts::Download { paced: false }, || self.download_once(op, uri, max_bytes)).await
        } else {
            let op = "GetArtifact";
            let mut url = self.api_url(&format!("/projects/{project}/artifacts"));
            url.query_pairs_mut().append_pair("path", uri);
            let url = url.to_string();
            self.with_retries(op, Attempts::Download { paced: true }, || self.download_once(op, &url, max_bytes)).await
        }
    }

    async fn download_once(&self, op: &'static str, url: &str, max_bytes: u64) -> Result<Blob, Error> {
        let shown = redact_url(url);
        let mut req = self.inner.http.get(url);
        if op == "GetArtifact" {
            req = req.header("Training-Key", self.inner.key.expose());
        }
        let mut resp = req.send().await.map_err(|e| transport(op, &shown, e))?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = read_limited(op, &shown, &mut resp, 64 << 10, None).await.unwrap_or_default();
            if op == "DownloadBlob" {
                if status == StatusCode::FORBIDDEN {
                    return Err(Error::LinkExpired { op, status: status.as_u16(), url: shown });
                }
                // Blob storage answers in its own XML shape, not the API's JSON.
                let (code, message) = storage_error(&body);
                let retry_after = header_retry_after(&headers);
                return Err(Error::Service { op, status: status.as_u16(), code, message, url: shown, retry_after });
            }
            return Err(self.error_from(op, status, &headers, &body, &shown));
        }
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let declared = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let md5 = resp.headers().get("content-md5").and_then(|v| v.to_str().ok()).and_then(|v| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(v.trim()).ok()
        });
        if let Some(n) = declared.filter(|n| *n > max_bytes) {
            return Err(Error::TooLarge { op, url: format!("{shown} (announced {n} bytes)"), limit: max_bytes });
        }
        let mut hash = StreamHash::new(md5.is_some());
        let mut buf = Vec::with_capacity(declared.unwrap_or(64 << 10).min(max_bytes) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() as u64 + chunk.len() as u64 > max_bytes {
                        return Err(Error::TooLarge { op, url: shown, limit: max_bytes });
                    }
                    if let Some(d) = declared.filter(|d| buf.len() as u64 + chunk.len() as u64 > *d) {
                        return Err(Error::Integrity {
                            op,
                            url: shown,
                            detail: format!("body longer than its Content-Length of {d}"),
                        });
                    }
                    hash.update(&chunk);
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Integrity {
                        op,
                        url: shown,
                        detail: format!("body cut after {} bytes: {}", buf.len(), e.without_url()),
                    })
                }
            }
        }
        if let Some(d) = declared.filter(|d| *d != buf.len() as u64) {
            return Err(Error::Integrity {
                op,
                url: shown,
                detail: format!("got {} bytes of the {d} announced", buf.len()),
            });
        }
        let (sha256, crc32, md5_of_body) = hash.finish();
        if let (Some(expected), Some(actual)) = (md5, md5_of_body) {
            if actual.as_slice() != expected.as_slice() {
                return Err(Error::Integrity { op, url: shown, detail: "Content-MD5 does not match the body".into() });
            }
        }
        Ok(Blob { bytes: Bytes::from(buf), sha256, crc32, content_type })
    }
}

/// SHA-256, CRC-32 and (when the server sent Content-MD5) MD5 of a body, taken in one pass over
/// each chunk while it is in cache. MD5 and SHA-256 take turns block by block: MD5 is one long
/// chain of dependent additions and SHA-256 runs on the SHA extensions, so the core overlaps
/// them, about a fifth faster than hashing the chunk with one and then the other.
struct StreamHash {
    sha: Sha256,
    md5: Option<Md5>,
    crc: crc32fast::Hasher,
    /// The start of a block whose end is in the next chunk.
    carry: [u8; BLOCK],
    carried: usize,
}

/// The block size of both MD5 and SHA-256.
const BLOCK: usize = 64;

impl StreamHash {
    fn new(md5: bool) -> StreamHash {
        StreamHash {
            sha: Sha256::new(),
            md5: md5.then(Md5::new),
            crc: crc32fast::Hasher::new(),
            carry: [0; BLOCK],
            carried: 0,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.crc.update(bytes);
        let Some(md5) = &mut self.md5 else {
            self.sha.update(bytes);
            return;
        };
        if self.carried > 0 {
            let n = (BLOCK - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + n].copy_from_slice(&bytes[..n]);
            self.carried += n;
            bytes = &bytes[n..];
            if self.carried < BLOCK {
                return;
            }
            md5.update(self.carry);
            self.sha.update(self.carry);
            self.carried = 0;
        }
        let mut blocks = bytes.chunks_exact(BLOCK);
        for block in &mut blocks {
            md5.update(block);
            self.sha.update(block);
        }
        let rest = blocks.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    /// SHA-256, CRC-32 and MD5 (if asked for).
    fn finish(mut self) -> ([u8; 32], u32, Option<[u8; 16]>) {
        let rest = &self.carry[..self.carried];
        self.sha.update(rest);
        let md5 = self.md5.map(|mut h| {
            h.update(rest);
            h.finalize().into()
        });
        (self.sha.finalize().into(), self.crc.finalize(), md5)
    }
}

/// Whether an absolute SAS link's `se` (signed expiry) is already in the past.
pub fn link_has_expired(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else { return false };
    let Some((_, se)) = url.query_pairs().find(|(k, _)| k == "se") else { return false };
    chrono::DateTime::parse_from_rfc3339(&se).is_ok_and(|t| t < chrono::Utc::now())
}

/// Code and message of an Azure Storage error body (`<Error><Code>…</Code><Message>…`).
fn storage_error(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let between = |open: &str, close: &str| -> Option<String> {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].trim().to_owned())
    };
    let code = between("<Code>", "</Code>").unwrap_or_default();
    let message = between("<Message>", "</Message>")
        .map(|m| m.lines().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| snippet(body));
    (code, redact_url(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_hashes_match_one_shot_hashes_however_the_body_is_cut() {
        let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cuts in [vec![], vec![1], vec![63, 64, 65], vec![64, 128], vec![10, 11, 12, 500, 999], vec![1000]] {
            for md5 in [false, true] {
                let mut hash = StreamHash::new(md5);
                let mut at = 0;
                for cut in cuts.iter().copied().chain([body.len()]) {
                    hash.update(&body[at..cut]);
                    at = cut;
                }
                let (sha256, crc32, md5_of_body) = hash.finish();
                assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(&body)), "{cuts:?}");
                assert_eq!(crc32, crc32fast::hash(&body), "{cuts:?}");
                assert_eq!(md5_of_body, md5.then(|| Md5::digest(&body).into()), "{cuts:?}");
            }
        }
    }

    #[test]
    fn storage_errors_are_read() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:1</Message></Error>";
        assert_eq!(
            storage_error(body.as_bytes()),
            ("BlobNotFound".into(), "The specified blob does not exist.".into())
        );
        assert_eq!(storage_error(b"nope").0, "");
    }

    #[test]
    fn expired_links_are_recognised() {
        assert!(link_has_expired("https://a/b?sv=1&se=2020-06-07T16%3A45%3A22Z&sig=x"));
        assert!(!link_has_expired("https://a/b?sv=1&se=2999-06-07T16%3A45%3A22Z&sig=x"));
        assert!(!link_has_expired("https://a/b"));
    }
}
