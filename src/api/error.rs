//! Typed errors of the Training API client. Every error names the operation and the URL, with
//! any key or SAS signature stripped, and carries the service's own `code` and `message`.

use std::time::Duration;

/// What went wrong talking to Custom Vision or to its blob storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the training key is wrong, or belongs to another resource.
    #[error("{op}: the key was refused by {endpoint} (HTTP {status}: {message})")]
    KeyRefused { op: &'static str, endpoint: String, status: u16, message: String },

    /// The endpoint answered, but not as the Custom Vision Training API does.
    #[error(
        "{op}: {endpoint} does not speak the Custom Vision Training API ({detail}; url {url}); {EXPECTED_ENDPOINT}"
    )]
    NotCustomVision { op: &'static str, endpoint: String, url: String, detail: String },

    /// 404 from the gateway in front of the service (`{"error":{"code":"404","message":"Resource
    /// not found"}}`): it routes no such path, most often because the endpoint or the API path
    /// is wrong. It says nothing about whether the thing asked for exists.
    #[error(
        "{op}: HTTP 404 \"{message}\" for {url}: the gateway at {endpoint} routes no such path, which says \
         nothing about the resource; check that the endpoint is the training resource's own, with no path: \
         {EXPECTED_ENDPOINT}"
    )]
    NoSuchPath { op: &'static str, endpoint: String, url: String, message: String },

    /// The service answered with an error body.
    #[error("{op} failed: HTTP {}: {message} (url {url})", status_and_code(*status, code))]
    Service {
        op: &'static str,
        status: u16,
        code: String,
        message: String,
        url: String,
        /// How long the service asked us to wait (from `Retry-After` or the message).
        retry_after: Option<Duration>,
    },

    /// A blob or artifact download was refused because its link expired or its signature is
    /// no longer valid (403 `AuthenticationFailed`, or `se` in the past).
    #[error("{op}: the download link expired or was refused (HTTP {status}; url {url})")]
    LinkExpired { op: &'static str, status: u16, url: String },

    /// The request never got an answer: connection refused or reset, DNS, TLS, timeout.
    #[error("{op}: no answer from {url}: {detail}")]
    Transport { op: &'static str, url: String, detail: String, timeout: bool },

    /// The server's TLS certificate was not trusted; not retried, as trying again changes nothing.
    #[error(
        "{op}: the server's certificate is not trusted: {problem} (url {url}); if your network inspects \
         TLS, pass --ca-cert FILE (its root certificate, PEM) or set SSL_CERT_FILE"
    )]
    Untrusted { op: &'static str, url: String, problem: String },

    /// The answer's body ended early, ran long, or failed its Content-MD5.
    #[error("{op}: damaged body from {url}: {detail}")]
    Integrity { op: &'static str, url: String, detail: String },

    /// The answer was larger than anything the service really sends.
    #[error("{op}: the answer from {url} is larger than {limit} bytes; refusing to read it")]
    TooLarge { op: &'static str, url: String, limit: u64 },

    /// A 2xx answer whose body does not match the API's schema.
    #[error("{op}: the answer from {url} is not what the API describes: {detail}")]
    Decode { op: &'static str, url: String, detail: String },

    /// The request could not even be formed (a bad endpoint, say).
    #[error("{op}: {detail}")]
    Request { op: &'static str, detail: String },

    /// The caller's arguments break one of the API's limits (more ids than one call takes, a page
    /// larger than the service serves): refused before anything is sent, not by the service.
    #[error("{op}: {detail}")]
    Argument { op: &'static str, detail: String },

    /// The call, its retries and their waits together reached the overall bound
    /// ([`RetryPolicy::max_total`](super::RetryPolicy)) without an answer.
    #[error("{op}: no answer from {endpoint} within {} s ({attempts} attempt(s))", after.as_secs())]
    Deadline { op: &'static str, endpoint: String, after: Duration, attempts: u32 },

    /// The client was cancelled (Ctrl-C, SIGTERM) while the call was in flight or waiting.
    #[error("{op}: interrupted")]
    Interrupted { op: &'static str },

    /// An answer redirected to another origin (scheme, host and port). Not followed: an API
    /// call carries the key, which goes to the endpoint's origin and nowhere else, and a
    /// download goes only where its checked link said.
    #[error("{op}: {from} redirected to another origin, {to}; not followed (requests go only to the origin they were meant for)")]
    CrossOriginRedirect { op: &'static str, from: String, to: String },

    /// A link from the service that is not fetched: not http(s), or pointing at a link-local
    /// or platform address, or at a loopback or private one while the endpoint is not one.
    #[error("{op}: not fetching {url}: {reason}")]
    LinkRefused { op: &'static str, url: String, reason: &'static str },
}

/// What an endpoint looks like, for the hints of errors that suggest a wrong one.
pub const EXPECTED_ENDPOINT: &str = "expected https://NAME.cognitiveservices.azure.com, the training resource's \
                                     Endpoint in the Azure portal";

/// `404 NotFoundProject`, or `404` alone when the code is empty or the status again (the
/// gateway's codes are the status itself: "HTTP 404 404" says nothing twice).
fn status_and_code(status: u16, code: &str) -> String {
    let code = code.trim();
    if code.is_empty() || code == status.to_string() {
        status.to_string()
    } else {
        format!("{status} {code}")
    }
}

/// The kinds of transient failure that are retried, for counting them.
/// In JSON (`retry` events, the export summary's `retries`) a kind is camelCase: `throttled`,
/// `serverError`, `connection`, `timeout`, `damaged`, `expiredLink` ([`RetryKind::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RetryKind {
    /// 429 Too Many Requests.
    Throttled,
    /// 500, 502, 503, 504.
    ServerError,
    /// Connection refused, reset or closed mid-answer.
    Connection,
    /// No answer in time.
    Timeout,
    /// A body shorter or longer than announced, or a Content-MD5 mismatch.
    Damaged,
    /// A download link that expired and was refreshed.
    ExpiredLink,
}

impl RetryKind {
    /// All kinds, in display order.
    pub const ALL: [RetryKind; 6] = [
        RetryKind::Throttled,
        RetryKind::ServerError,
        RetryKind::Connection,
        RetryKind::Timeout,
        RetryKind::Damaged,
        RetryKind::ExpiredLink,
    ];

    /// The name in JSON: `serverError`, `expiredLink`...
    pub fn key(self) -> &'static str {
        match self {
            RetryKind::Throttled => "throttled",
            RetryKind::ServerError => "serverError",
            RetryKind::Connection => "connection",
            RetryKind::Timeout => "timeout",
            RetryKind::Damaged => "damaged",
            RetryKind::ExpiredLink => "expiredLink",
        }
    }

    /// A short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            RetryKind::Throttled => "throttled (429)",
            RetryKind::ServerError => "server error (5xx)",
            RetryKind::Connection => "connection",
            RetryKind::Timeout => "timeout",
            RetryKind::Damaged => "damaged body",
            RetryKind::ExpiredLink => "expired link",
        }
    }
}

impl Error {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::KeyRefused { status, .. } | Error::Service { status, .. } | Error::LinkExpired { status, .. } => {
                Some(*status)
            }
            Error::NoSuchPath { .. } => Some(404),
            _ => None,
        }
    }

    /// The service's error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the answer was a 404 of any kind, the gateway's included, or carried a
    /// `NotFound…` code: the thing may be missing, worth asking the service again. Not proof
    /// that it is gone; for that see [`Error::is_gone`].
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404) || self.code().is_some_and(|c| c.starts_with("NotFound"))
    }

    /// Whether the service itself said the thing asked for does not exist: a 404 with a
    /// `NotFound…` code (NotFoundProject, NotFoundIteration, NotFoundTag, NotFoundImage...).
    /// The gateway's 404 ([`Error::NoSuchPath`]) and a 404 without such a code prove nothing.
    /// NotFoundApimSubscription (the key's subscription) and NotFoundInvalid (the enum's
    /// placeholder, like ForbiddenInvalid) name no resource, so they are not taken as proof.
    pub fn is_gone(&self) -> bool {
        matches!(self, Error::Service { status: 404, code, .. }
            if code.starts_with("NotFound") && !matches!(code.as_str(), "NotFoundApimSubscription" | "NotFoundInvalid"))
    }

    /// If this failure is transient, the kind of retry it calls for.
    pub fn retry_kind(&self) -> Option<RetryKind> {
        match self {
            Error::Service { status: 429, .. } => Some(RetryKind::Throttled),
            Error::Service { status: 500 | 502 | 503 | 504, .. } => Some(RetryKind::ServerError),
            Error::Transport { timeout: true, .. } => Some(RetryKind::Timeout),
            Error::Transport { .. } => Some(RetryKind::Connection),
            Error::Integrity { .. } => Some(RetryKind::Damaged),
            Error::LinkExpired { .. } => Some(RetryKind::ExpiredLink),
            _ => None,
        }
    }

    /// This error with every credential in its text redacted: the service's messages and the
    /// URLs it named may echo a SAS signature, URL userinfo or `key` itself (see
    /// [`crate::secret::redact`]). The client returns only errors that went through this.
    pub fn redacted(mut self, key: &crate::secret::TrainingKey) -> Error {
        let clean = |s: &mut String| *s = crate::secret::redact(s, Some(key));
        match &mut self {
            Error::KeyRefused { endpoint, message, .. } => {
                clean(endpoint);
                clean(message);
            }
            Error::NotCustomVision { endpoint, url, detail, .. } => {
                clean(endpoint);
                clean(url);
                clean(detail);
            }
            Error::NoSuchPath { endpoint, url, message, .. } => {
                clean(endpoint);
                clean(url);
                clean(message);
            }
            Error::Service { code, message, url, .. } => {
                clean(code);
                clean(message);
                clean(url);
            }
            Error::Transport { url, detail, .. }
            | Error::Untrusted { url, problem: detail, .. }
            | Error::Integrity { url, detail, .. }
            | Error::Decode { url, detail, .. } => {
                clean(url);
                clean(detail);
            }
            Error::LinkExpired { url, .. } | Error::TooLarge { url, .. } | Error::LinkRefused { url, .. } => clean(url),
            Error::Request { detail, .. } | Error::Argument { detail, .. } => clean(detail),
            Error::Deadline { endpoint, .. } => clean(endpoint),
            Error::CrossOriginRedirect { from, to, .. } => {
                clean(from);
                clean(to);
            }
            Error::Interrupted { .. } => {}
        }
        self
    }

    /// The wait the service asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> Error {
        Error::Service {
            op: "GetProject",
            status,
            code: code.into(),
            message: "m".into(),
            url: "u".into(),
            retry_after: None,
        }
    }

    #[test]
    fn a_status_is_said_once() {
        assert_eq!(service(404, "404").to_string(), "GetProject failed: HTTP 404: m (url u)");
        assert_eq!(service(429, "").to_string(), "GetProject failed: HTTP 429: m (url u)");
        assert_eq!(
            service(404, "NotFoundProject").to_string(),
            "GetProject failed: HTTP 404 NotFoundProject: m (url u)"
        );
    }

    #[test]
    fn only_the_services_not_found_codes_mean_gone() {
        assert!(service(404, "NotFoundProject").is_gone());
        assert!(service(404, "NotFoundImage").is_gone());
        let gateway =
            Error::NoSuchPath { op: "DeleteProject", endpoint: "e".into(), url: "u".into(), message: "m".into() };
        assert!(!gateway.is_gone() && gateway.is_not_found(), "a 404 worth a second look, not proof");
        assert!(!service(404, "").is_gone());
        assert!(!service(404, "NotFoundApimSubscription").is_gone());
        assert!(!service(400, "NotFoundProject").is_gone());
    }
}
