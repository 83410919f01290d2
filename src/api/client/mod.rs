//! The Training API client: its options, construction and transport (pacing, retries with
//! backoff, typed errors). The read and delete operations, one method each, are in
//! `operations`; blob downloads in [`blob`]; the create operations (for restore) in [`create`].

mod blob;
mod create;
mod links;
mod operations;
mod query;
mod tls;
mod wire;

pub use blob::{link_has_expired, Blob};
pub use create::{batch_tags, upload_timeout, NewProject, MAX_BATCH_TAGS, MAX_UPLOAD_BATCH, MAX_UPLOAD_BATCH_BYTES};
pub use links::{link_refusal, reach, Reach};
use query::page_query;
pub use query::{DeleteImages, ImageQuery, OrderBy};
use wire::{describe_body, header_retry_after, parse_error_body, read_limited, snippet, transport};

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use super::error::{Error, RetryKind, EXPECTED_ENDPOINT};
use super::model::parse_count;
use super::retry::{parse_retry_after_message, race, Raced, RateLimiter, RetryPolicy, RetryStats};
use crate::progress::{Event, NoProgress, Progress};
use crate::secret::{redact_url, TrainingKey};

/// The most ids GetImagesByIds and DeleteImages take in one call.
pub const MAX_IMAGE_IDS: usize = 256;
/// The most ids DeletePrediction takes in one call.
pub const MAX_PREDICTION_IDS: usize = 64;
/// Attempts at a connection to an endpoint that has never answered (a wrong endpoint fails in
/// about a second instead of after minutes of backoff).
const FIRST_CONTACT_ATTEMPTS: u32 = 3;
/// The largest page the list operations serve.
pub const MAX_TAKE: u32 = 256;
/// The default connect and first-byte timeouts: far beyond any answer of the real service (its
/// slowest pages come in a few seconds), short enough that a silent server costs little.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach the service and how hard to push it.
#[derive(Clone)]
pub struct ClientOptions {
    /// `https://{resource}.cognitiveservices.azure.com` or a region endpoint; a trailing
    /// `/customvision/...` path is tolerated and dropped.
    pub endpoint: String,
    /// The training key.
    pub key: TrainingKey,
    /// API calls per second (the S0 limit is 10); `None` for no pacing.
    pub api_rate: Option<f64>,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long to wait for the first byte of an answer, and then between any two reads of it.
    pub read_timeout: Duration,
    /// The largest JSON answer accepted; real pages are well under a megabyte.
    pub max_json_bytes: u64,
    /// The path prefix version, `v3.3` unless testing another.
    pub api_version: String,
    /// Told of every retry (before its wait) and every refreshed download link, as
    /// [`Event::Retry`] and [`Event::LinkRefreshed`]: the same progress the command reports to.
    pub progress: Arc<dyn Progress>,
    /// A PEM file of certificate authorities to trust besides the bundled roots and the
    /// operating system's store (or `SSL_CERT_FILE` / `SSL_CERT_DIR`), e.g. the root of a
    /// network's TLS inspection.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Stops the client: once cancelled, every call in flight, retry wait and rate-limiter wait
    /// ends at once with [`Error::Interrupted`], and so does every later call.
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("endpoint", &self.endpoint)
            .field("api_rate", &self.api_rate)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// Options with the defaults for the real service.
    pub fn new(endpoint: impl Into<String>, key: TrainingKey) -> ClientOptions {
        ClientOptions {
            endpoint: endpoint.into(),
            key,
            api_rate: Some(10.0),
            retry: RetryPolicy::default(),
            connect_timeout: DEFAULT_TIMEOUT,
            read_timeout: DEFAULT_TIMEOUT,
            max_json_bytes: 64 << 20,
            api_version: super::API_VERSION.to_owned(),
            progress: Arc::new(NoProgress),
            ca_cert: None,
            cancel: CancellationToken::new(),
        }
    }
}

/// A client of one Custom Vision training resource. Cheap to clone; clones share the rate
/// limiter, the connection pool and the retry counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// For CreateImagesFromFiles: no read timeout, as reqwest's also runs while the body is
    /// sent; each call sets a timeout that grows with its size instead.
    uploads: reqwest::Client,
    host: String,
    /// Where the endpoint is: links the service gives are fetched only when this allows them
    /// (see [`links`]).
    reach: Reach,
    base: String,
    key: TrainingKey,
    limiter: RateLimiter,
    retry: RetryPolicy,
    stats: Arc<RetryStats>,
    max_json_bytes: u64,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    /// Whether the endpoint has ever answered; until it has, a refused connection is most
    /// likely a wrong endpoint, so it is not retried for long.
    answered: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoint", &self.inner.host).finish_non_exhaustive()
    }
}

/// What a call's attempts are, for [`Client::with_retries`].
#[derive(Debug, Clone, Copy)]
enum Attempts {
    /// An API call: paced by the rate limiter, and cut when the overall bound passes, since its
    /// answer is small and one still missing by then is not coming.
    Api,
    /// A download (or an upload): paced only through GetArtifact (uploads always); a transfer
    /// under way is never cut (a large model package or upload batch on a slow link may take
    /// longer than the bound; its own timeouts bound it), only not retried past it.
    Download { paced: bool },
}

/// A request: method, path under the API base, query pairs, optional JSON body.
struct Call {
    op: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// A long upload: sent through [`Inner::uploads`], bounded by this whole-request timeout
    /// instead of the read timeout (which would also bound the time to send the body).
    upload_timeout: Option<Duration>,
}

impl Call {
    fn get(op: &'static str, path: String) -> Call {
        Call { op, method: Method::GET, path, query: Vec::new(), body: None, upload_timeout: None }
    }

    fn with(mut self, name: &'static str, value: impl ToString) -> Call {
        self.query.push((name, value.to_string()));
        self
    }

    /// `name=true` when `on`; nothing otherwise (the service's default is false).
    fn with_flag(self, name: &'static str, on: bool) -> Call {
        if on {
            self.with(name, "true")
        } else {
            self
        }
    }

    fn with_opt(self, name: &'static str, value: Option<impl ToString>) -> Call {
        match value {
            Some(v) => self.with(name, v),
            None => self,
        }
    }
}

fn csv(ids: &[Uuid]) -> String {
    let mut s = String::with_capacity(ids.len() * 37);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s
}

impl Client {
    /// A client for `opts.endpoint`. Fails only on an endpoint that is not an http(s) URL.
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        let op = "Connect";
        let given = opts.endpoint.trim();
        // `NAME.cognitiveservices.azure.com` or `localhost:7070` (which parses as a scheme)
        let no_scheme = || Error::Request {
            op,
            detail: format!(
                "the endpoint {:?} has no scheme: write https://{} ({EXPECTED_ENDPOINT})",
                redact_url(given),
                redact_url(given.trim_start_matches('/'))
            ),
        };
        let mut endpoint = Url::parse(given).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => no_scheme(),
            e => Error::Request {
                op,
                detail: format!("the endpoint {:?} is not a URL: {e} ({EXPECTED_ENDPOINT})", redact_url(given)),
            },
        })?;
        if !given.contains("://") {
            return Err(no_scheme());
        }
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Error::Request {
                op,
                detail: format!(
                    "the endpoint {} is not an http(s) URL ({EXPECTED_ENDPOINT})",
                    redact_url(endpoint.as_str())
                ),
            });
        }
        if let Some(cut) = endpoint.path().find("/customvision") {
            let path = endpoint.path()[..cut].to_owned();
            endpoint.set_path(&path);
        }
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        let host = match endpoint.port() {
            Some(p) => format!("{}:{p}", endpoint.host_str().unwrap_or_default()),
            None => endpoint.host_str().unwrap_or_default().to_owned(),
        };
        let reach = endpoint.host().map_or(Reach::Public, |h| reach(&h));
        let root = endpoint.as_str().trim_end_matches('/').to_owned();
        let base = format!("{root}/customvision/{}/training", opts.api_version);
        let roots = tls::extra_roots(opts.ca_cert.as_deref())?;
        let http = tls::trusting(reqwest::Client::builder(), &roots)
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .user_agent(concat!("cvarchive/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .redirect(links::same_origin_redirects())
            .build()
            .map_err(|e| Error::Request { op, detail: format!("cannot build the HTTP client: {}", e.without_url()) })?;
        let uploads = create::upload_http(&opts, &roots)
            .map_err(|e| Error::Request { op, detail: format!("cannot build the HTTP client: {}", e.without_url()) })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                uploads,
                host,
                reach,
                base,
                key: opts.key,
                limiter: RateLimiter::new(opts.api_rate),
                retry: opts.retry,
                stats: Arc::new(RetryStats::default()),
                max_json_bytes: opts.max_json_bytes,
                progress: opts.progress,
                cancel: opts.cancel,
                answered: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The endpoint's host (and port), safe to print and to record in an archive.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Retry counters of this client and its clones.
    pub fn stats(&self) -> &Arc<RetryStats> {
        &self.inner.stats
    }

    /// Counts a download link that expired and was fetched afresh, and reports it.
    pub fn link_refreshed(&self) {
        self.inner.stats.record(RetryKind::ExpiredLink);
        self.inner.progress.event(Event::LinkRefreshed);
    }

    // ----- plumbing ----------------------------------------------------------------------------

    fn api_url(&self, path: &str) -> Url {
        // The base was built from a parsed URL and the path from uuids and constants.
        Url::parse(&format!("{}{path}", self.inner.base)).expect("API URLs are well formed")
    }

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let (_, headers, body, url) = self.send(&call).await?;
        serde_json::from_slice(&body)
            .map_err(|e| self.decode_error(call.op, &headers, &body, &url, &e).redacted(&self.inner.key))
    }

    async fn count(&self, call: Call) -> Result<u64, Error> {
        let (_, headers, body, url) = self.send(&call).await?;
        parse_count(&body).map_err(|e| self.decode_error(call.op, &headers, &body, &url, &e).redacted(&self.inner.key))
    }

    async fn delete(&self, op: &'static str, path: String) -> Result<(), Error> {
        let call = Call { op, method: Method::DELETE, path, query: Vec::new(), body: None, upload_timeout: None };
        self.send(&call).await.map(|_| ())
    }

    /// Sends an API call with pacing and retries; returns status, headers, body and the
    /// redacted URL.
    async fn send(&self, call: &Call) -> Result<(StatusCode, HeaderMap, Bytes, String), Error> {
        let mut url = self.api_url(&call.path);
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &call.query {
                pairs.append_pair(k, v);
            }
        }
        let url = url.to_string();
        // An upload is bounded by its own timeout, which grows with its body: the overall bound
        // of an API call would cut a large batch on a slow uplink on every attempt.
        let how = match call.upload_timeout {
            Some(_) => Attempts::Download { paced: true },
            None => Attempts::Api,
        };
        self.with_retries(call.op, how, || self.send_once(call, &url)).await
    }

    async fn send_once(&self, call: &Call, url: &str) -> Result<(StatusCode, HeaderMap, Bytes, String), Error> {
        let shown = redact_url(url);
        let http = if call.upload_timeout.is_some() { &self.inner.uploads } else { &self.inner.http };
        let mut req = http
            .request(call.method.clone(), url)
            .header("Training-Key", self.inner.key.expose())
            .header(ACCEPT, "application/json");
        match call.body.as_ref().filter(|b| !b.is_empty()) {
            Some(body) => req = req.header(CONTENT_TYPE, "application/json").body(body.clone()),
            // reqwest sends no Content-Length for an empty body (seanmonstar/reqwest#838), and the
            // Cognitive Services front end answers a POST without one with 411 Length Required
            // (MicrosoftDocs/azure-docs#25296); RFC 9110 section 8.6 says to send 0.
            None if matches!(call.method, Method::POST | Method::PUT | Method::PATCH) => {
                req = req.header(CONTENT_LENGTH, 0)
            }
            None => {}
        }
        if let Some(timeout) = call.upload_timeout {
            req = req.timeout(timeout);
        }
        let mut resp = req.send().await.map_err(|e| transport(call.op, &shown, e))?;
        self.inner.answered.store(true, std::sync::atomic::Ordering::Relaxed);
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_limited(call.op, &shown, &mut resp, self.inner.max_json_bytes, None).await?;
        if status.is_success() {
            Ok((status, headers, body, shown))
        } else {
            Err(self.error_from(call.op, status, &headers, &body, &shown))
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up. Every step (the
    /// rate limiter's wait, each attempt, each backoff) ends at once when the client is
    /// cancelled, and none runs past the policy's overall bound (see [`Attempts`]).
    async fn with_retries<T, F, Fut>(&self, op: &'static str, how: Attempts, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let policy = &self.inner.retry;
        let started = Instant::now();
        let deadline = started + policy.max_total;
        let paced = matches!(how, Attempts::Api | Attempts::Download { paced: true });
        let mut tries = 0u32;
        loop {
            if paced {
                self.step(op, tries, started, Some(deadline), self.inner.limiter.acquire()).await?;
            }
            tries += 1;
            let cut = matches!(how, Attempts::Api).then_some(deadline);
            let err = match self.step(op, tries, started, cut, attempt()).await? {
                Ok(v) => {
                    if paced {
                        self.inner.limiter.success();
                    }
                    return Ok(v);
                }
                // The service's words enter our data here: no secret they echo goes further.
                Err(e) => e.redacted(&self.inner.key),
            };
            let Some(kind) = err.retry_kind().filter(|k| *k != RetryKind::ExpiredLink) else { return Err(err) };
            // A wrong or dead endpoint fails in seconds instead of after the whole bound.
            let never_answered = matches!(kind, RetryKind::Connection | RetryKind::Timeout)
                && !self.inner.answered.load(std::sync::atomic::Ordering::Relaxed);
            let max_attempts =
                if never_answered { policy.max_attempts.min(FIRST_CONTACT_ATTEMPTS) } else { policy.max_attempts };
            let wait = policy.delay(tries, err.retry_after());
            if tries >= max_attempts || started.elapsed() + wait >= policy.max_total {
                return Err(err);
            }
            if kind == RetryKind::Throttled {
                self.inner.limiter.pause(err.retry_after().unwrap_or(Duration::from_secs(1)));
            }
            self.inner.stats.record(kind);
            self.inner.progress.event(Event::Retry {
                kind: kind.key().to_owned(),
                throttled: kind == RetryKind::Throttled,
                wait_ms: wait.as_millis() as u64,
            });
            tracing::debug!(op, kind = kind.name(), wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            self.step(op, tries, started, None, tokio::time::sleep(wait)).await?;
        }
    }

    /// Runs one step of a call, raced against cancellation and `deadline`.
    async fn step<T>(
        &self,
        op: &'static str,
        attempts: u32,
        started: Instant,
        deadline: Option<Instant>,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        match race(step, &self.inner.cancel, deadline).await {
            Raced::Done(v) => Ok(v),
            Raced::Cancelled => Err(Error::Interrupted { op }),
            Raced::TimedOut => {
                Err(Error::Deadline { op, endpoint: self.inner.host.clone(), after: started.elapsed(), attempts })
            }
        }
    }

    fn error_from(&self, op: &'static str, status: StatusCode, headers: &HeaderMap, body: &[u8], url: &str) -> Error {
        let parsed = parse_error_body(body);
        let endpoint = self.inner.host.clone();
        if status == StatusCode::UNAUTHORIZED {
            let message = parsed.map(|e| e.message).unwrap_or_else(|| snippet(body));
            return Error::KeyRefused { op, endpoint, status: status.as_u16(), message };
        }
        let retryable = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
        let Some(parsed) = parsed else {
            if retryable {
                return Error::Service {
                    op,
                    status: status.as_u16(),
                    code: String::new(),
                    message: snippet(body),
                    url: url.to_owned(),
                    retry_after: header_retry_after(headers),
                };
            }
            return Error::NotCustomVision {
                op,
                endpoint,
                url: url.to_owned(),
                detail: format!("it answered HTTP {} with {}", status.as_u16(), describe_body(headers, body)),
            };
        };
        // The gateway's code is the status itself; the service's codes are names.
        if status == StatusCode::NOT_FOUND && parsed.code == "404" {
            return Error::NoSuchPath { op, endpoint, url: url.to_owned(), message: parsed.message };
        }
        let retry_after = header_retry_after(headers).or_else(|| {
            (status == StatusCode::TOO_MANY_REQUESTS).then(|| parse_retry_after_message(&parsed.message)).flatten()
        });
        Error::Service {
            op,
            status: status.as_u16(),
            code: parsed.code,
            message: parsed.message,
            url: url.to_owned(),
            retry_after,
        }
    }

    fn decode_error(
        &self,
        op: &'static str,
        headers: &HeaderMap,
        body: &[u8],
        url: &str,
        err: &serde_json::Error,
    ) -> Error {
        if serde_json::from_slice::<serde_json::Value>(body).is_err() {
            return Error::NotCustomVision {
                op,
                endpoint: self.inner.host.clone(),
                url: url.to_owned(),
                detail: format!("it answered with {} where JSON was expected", describe_body(headers, body)),
            };
        }
        Error::Decode { op, url: url.to_owned(), detail: err.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        let c = Client::new(ClientOptions::new("https://westus.api.cognitive.microsoft.com/", TrainingKey::new("k")))
            .unwrap();
        assert_eq!(c.inner.base, "https://westus.api.cognitive.microsoft.com/customvision/v3.3/training");
        assert_eq!(c.host(), "westus.api.cognitive.microsoft.com");
        let c =
            Client::new(ClientOptions::new("http://127.0.0.1:7070/customvision/v3.3/training/", TrainingKey::new("k")))
                .unwrap();
        assert_eq!(c.inner.base, "http://127.0.0.1:7070/customvision/v3.3/training");
        assert_eq!(c.host(), "127.0.0.1:7070");
        assert!(Client::new(ClientOptions::new("ftp://x", TrainingKey::new("k"))).is_err());
        assert!(Client::new(ClientOptions::new("westus", TrainingKey::new("k"))).is_err());
    }

    /// A caller's argument over the API's limits is `Argument`, refused before anything is sent
    /// (nothing listens on port 1, so a sent call would fail as `Transport`); a bad endpoint stays
    /// `Request`.
    #[tokio::test]
    async fn arguments_over_the_limits_are_refused_as_arguments() {
        let c = Client::new(ClientOptions::new("http://127.0.0.1:1", TrainingKey::new("k"))).unwrap();
        let ids = vec![Uuid::nil(); MAX_IMAGE_IDS + 1];
        let e = c.get_images_by_ids(Uuid::nil(), &ids).await.unwrap_err();
        assert!(matches!(e, Error::Argument { op: "GetImagesByIds", .. }), "{e:?}");
        let e = Client::new(ClientOptions::new("westus", TrainingKey::new("k"))).err().unwrap();
        assert!(matches!(e, Error::Request { op: "Connect", .. }), "{e:?}");
    }

    #[test]
    fn error_bodies_of_both_layers() {
        let e = parse_error_body(br#"{"code":"NotFoundProject","message":"no"}"#).unwrap();
        assert_eq!(e.code, "NotFoundProject");
        let e = parse_error_body(br#"{"error":{"code":"429","message":"Please retry after 1 second."}}"#).unwrap();
        assert_eq!(e.code, "429");
        let e = parse_error_body(br#"{"error":{"code":401,"message":"Access denied"}}"#).unwrap();
        assert_eq!(e.code, "401");
        assert!(parse_error_body(b"<html>").is_none());
    }
}
