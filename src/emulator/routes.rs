//! The HTTP edge: [`app`], the shared [`AppState`], routing by path shape, authentication,
//! faults, response headers and the request log. The operations themselves are in `ops`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::Router;
use chrono::Utc;
use md5::{Digest as _, Md5};
use serde::Serialize;
use uuid::Uuid;

use super::blob::{self, Signer};
use super::faults::{ApiFault, BlobFault, Faults};
use super::ops::{self, Op};
use super::render::Links;
use super::requests::{RecordedRequest, RequestLog};
use super::state::{Account, ApiError, Content, Resolved};
use super::{fixture, generate, AccountSpec, EmulatorOptions, Error, FaultConfig, Hostile};
use crate::api::model::CustomVisionError;

/// The path prefixes served, one per API version the SDKs speak.
const PREFIXES: &[&str] = &["/customvision/v3.3/training", "/customvision/v3.4-preview/training"];

/// The largest request body accepted (a full CreateImagesFromFiles batch).
const MAX_BODY_BYTES: usize = 520 << 20;

const MESSAGE_401: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

/// The emulator's shared state: the account, the key, the signer, faults and the request log.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    key: String,
    endpoint: String,
    sas_ttl: Duration,
    signer: Signer,
    account: Mutex<Account>,
    faults: Mutex<Faults>,
    request_log: RequestLog,
    /// The bytes of images uploaded through CreateImagesFromFiles ([`Content::Uploaded`]).
    uploads: Mutex<Vec<Bytes>>,
    /// Content-MD5 of generated images by (key, jpeg, thumbnail): Azure Storage keeps a blob's
    /// MD5 from its upload instead of hashing it on every read, and hashing every answer made
    /// the emulator the bottleneck of the throughput benchmark. Bounded by [`MAX_MD5S`].
    md5s: Mutex<HashMap<(u64, bool, bool), [u8; 16]>>,
}

/// The most remembered MD5s (about 40 MB); the map starts over when full.
const MAX_MD5S: usize = 1 << 20;

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("endpoint", &self.inner.endpoint).finish_non_exhaustive()
    }
}

impl AppState {
    /// State for an emulator reachable at `endpoint` (used in links when a request has no
    /// `Host` header).
    pub fn new(opts: &EmulatorOptions, endpoint: impl Into<String>) -> Result<AppState, Error> {
        let account = match &opts.account {
            AccountSpec::Fixture => fixture::account().map_err(Error::Fixture)?,
            AccountSpec::Generated(spec) => generate::account(spec),
            AccountSpec::Empty => Account {
                projects: Vec::new(),
                content: super::state::ContentParams { seed: 0, image_bytes: super::DEFAULT_IMAGE_BYTES },
            },
        };
        Ok(AppState {
            inner: Arc::new(Inner {
                key: opts.key.clone(),
                endpoint: endpoint.into(),
                sas_ttl: opts.sas_ttl,
                signer: Signer::new(),
                account: Mutex::new(account),
                faults: Mutex::new(Faults::new(opts.faults.clone())),
                request_log: RequestLog::default(),
                uploads: Mutex::new(Vec::new()),
                md5s: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The Training-Key accepted.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    pub(crate) fn set_faults(&self, faults: FaultConfig) {
        *self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()) = Faults::new(faults);
    }

    /// Runs `f` on the live fault state (for faults an operation itself applies).
    pub(crate) fn with_faults<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn fault_config(&self) -> FaultConfig {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()).config().clone()
    }

    pub(crate) fn request_log(&self) -> &RequestLog {
        &self.inner.request_log
    }

    /// Runs `f` on the account under its lock.
    pub(crate) fn with_account<T>(&self, f: impl FnOnce(&Account) -> T) -> T {
        f(&self.inner.account.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the account under its lock, for changing it.
    pub(crate) fn with_account_mut<T>(&self, f: impl FnOnce(&mut Account) -> T) -> T {
        f(&mut self.inner.account.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The bytes of an image (or of its thumbnail).
    pub(crate) fn content_bytes(&self, content: Content, thumbnail: bool) -> Bytes {
        match content {
            Content::Fixture(index) => Bytes::from_static(fixture::file_bytes(index)),
            Content::Generated { key, jpeg } => {
                let params = self.with_account(|a| a.content);
                generate::image(params.seed, key, params.image_bytes, jpeg, thumbnail)
            }
            Content::Uploaded(index) => {
                let uploads = self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner());
                uploads.get(index as usize).cloned().unwrap_or_default()
            }
        }
    }

    /// Keeps the bytes of an uploaded image; returns the content that names them.
    pub(crate) fn store_upload(&self, bytes: Bytes) -> Content {
        let mut uploads = self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner());
        uploads.push(bytes);
        Content::Uploaded((uploads.len() - 1) as u32)
    }

    /// The bytes a blob path names, if any.
    pub(crate) fn resolve_bytes(&self, path: &str) -> Option<Bytes> {
        match self.with_account(|a| a.resolve(path))? {
            Resolved::Image { content, thumbnail } => Some(self.content_bytes(content, thumbnail)),
            Resolved::Bytes(bytes) => Some(bytes),
        }
    }

    /// The workspace change due after a listing page, if a fault asks for one.
    pub(crate) fn listing_mutation(&self) -> Option<super::faults::ListingMutation> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()).listing_mutation()
    }

    /// Computes and remembers the MD5 of every generated image and prediction image now, on
    /// every core, as Azure Storage does at upload; serving them later then costs no hashing.
    pub(crate) fn store_md5s(&self) {
        let keys: Vec<(u64, bool)> = self.with_account(|a| {
            let contents = a.projects.iter().flat_map(|p| {
                let only_in_iterations = p
                    .iterations
                    .iter()
                    .flat_map(|it| it.training.images())
                    .filter(|i| !p.holds(i.id))
                    .map(|i| i.content);
                p.images
                    .iter()
                    .map(|i| i.content)
                    .chain(only_in_iterations)
                    .chain(p.predictions.iter().map(|r| r.content))
            });
            contents
                .filter_map(|c| match c {
                    Content::Generated { key, jpeg } => Some((key, jpeg)),
                    Content::Fixture(_) | Content::Uploaded(_) => None,
                })
                .take(MAX_MD5S)
                .collect()
        });
        let params = self.with_account(|a| a.content);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = keys.len().div_ceil(threads).max(1);
        let digests: Vec<((u64, bool, bool), [u8; 16])> = std::thread::scope(|scope| {
            let workers: Vec<_> = keys
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&(key, jpeg)| {
                                let bytes = generate::image(params.seed, key, params.image_bytes, jpeg, false);
                                ((key, jpeg, false), <[u8; 16]>::from(Md5::digest(&bytes)))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("an MD5 worker")).collect()
        });
        let mut md5s = self.inner.md5s.lock().unwrap_or_else(|e| e.into_inner());
        md5s.clear();
        md5s.extend(digests);
    }

    /// The bytes a blob path names, if any, with their MD5.
    fn resolve_blob(&self, path: &str) -> Option<(Bytes, [u8; 16])> {
        let md5 = |bytes: &[u8]| -> [u8; 16] { Md5::digest(bytes).into() };
        match self.with_account(|a| a.resolve(path))? {
            Resolved::Image { content: content @ Content::Generated { key, jpeg }, thumbnail } => {
                let bytes = self.content_bytes(content, thumbnail);
                let known =
                    self.inner.md5s.lock().unwrap_or_else(|e| e.into_inner()).get(&(key, jpeg, thumbnail)).copied();
                let digest = known.unwrap_or_else(|| {
                    let digest = md5(&bytes);
                    let mut md5s = self.inner.md5s.lock().unwrap_or_else(|e| e.into_inner());
                    if md5s.len() >= MAX_MD5S {
                        md5s.clear();
                    }
                    md5s.insert((key, jpeg, thumbnail), digest);
                    digest
                });
                Some((bytes, digest))
            }
            Resolved::Image { content, thumbnail } => {
                let bytes = self.content_bytes(content, thumbnail);
                let digest = md5(&bytes);
                Some((bytes, digest))
            }
            Resolved::Bytes(bytes) => {
                let digest = md5(&bytes);
                Some((bytes, digest))
            }
        }
    }

    /// `https` when served over TLS (see `emulator::start_tls`), else `http`.
    fn scheme(&self) -> &'static str {
        if self.inner.endpoint.starts_with("https://") {
            "https"
        } else {
            "http"
        }
    }

    /// Links for an answer to a request with these headers.
    pub(crate) fn links(&self, headers: &HeaderMap) -> Links<'_> {
        let base = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
            .map_or_else(|| self.inner.endpoint.clone(), |h| format!("{}://{h}", self.scheme()));
        let ttl = chrono::Duration::from_std(self.inner.sas_ttl).unwrap_or(chrono::Duration::days(1));
        Links { base, signer: &self.inner.signer, expiry: Utc::now() + ttl }
    }
}

/// The emulator as a router: every path goes through one handler that routes by shape, so
/// unknown paths, bad keys and faults are answered the way the real service answers them.
pub fn app(state: AppState) -> Router {
    // A full upload batch is 64 images of up to 6 MB, base64-encoded: about 512 MiB.
    Router::new().fallback(handle).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(state)
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let received = std::time::Instant::now();
    let request_id = Uuid::new_v4().to_string();
    let had_training_key = headers.contains_key("training-key");
    let (operation, mutating, response) = match uri.path().strip_prefix("/blob/") {
        Some(path) => ("Blob", false, serve_blob(&state, &method, path, uri.query(), &headers, &request_id).await),
        None => serve_api(&state, &method, &uri, &headers, body, &request_id).await,
    };
    let status = response.status().as_u16();
    let path =
        crate::secret::redact_url(&uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.to_string()));
    tracing::debug!(%method, %path, operation, status, "emulator request");
    state.request_log().push(RecordedRequest {
        method: method.to_string(),
        path,
        operation: operation.to_owned(),
        status,
        mutating: mutating && response.status().is_success(),
        had_training_key,
        received,
        response_bytes: response_bytes(&response),
    });
    response
}

/// The length of an answer's body: exact when known, else its `Content-Length`, else 0.
fn response_bytes(response: &Response<Body>) -> u64 {
    axum::body::HttpBody::size_hint(response.body()).exact().unwrap_or_else(|| {
        response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)
    })
}

async fn serve_api(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    request_id: &str,
) -> (&'static str, bool, Response<Body>) {
    let route = PREFIXES.iter().find_map(|p| uri.path().strip_prefix(p)).and_then(|rest| Op::route(method, rest));
    if lacks_length(method, headers) {
        let name = route.as_ref().map_or("LengthRequired", Op::name);
        return (name, false, length_required());
    }
    let Some(op) = route else {
        return ("NotFound", false, gateway_not_found(request_id));
    };
    let (name, mutating) = (op.name(), op.mutating());
    if state.fault_config().hostile == Some(Hostile::GatewayNotFound { operation: name }) {
        return (name, mutating, gateway_not_found(request_id));
    }
    let key_ok = headers.get("training-key").and_then(|k| k.to_str().ok()).is_some_and(|k| k == state.key());
    if !key_ok {
        return (name, mutating, apim_error(StatusCode::UNAUTHORIZED, MESSAGE_401, request_id));
    }
    let config = state.fault_config();
    if config.hostile == Some(Hostile::SilentOperation(name)) {
        std::future::pending::<()>().await;
    }
    if config.hostile == Some(Hostile::LeakyErrors { operation: name }) {
        let e = ApiError::bad_request("BadRequest", super::faults::leaky_message(state.key()));
        return (name, mutating, api_error(&e, request_id));
    }
    if !config.api_latency.is_zero() {
        tokio::time::sleep(config.api_latency).await;
    }
    let fault = state.inner.faults.lock().unwrap_or_else(|e| e.into_inner()).api();
    match fault {
        Some(ApiFault::RateLimited { retry_after_secs }) => {
            let message = format!(
                "Requests to the {name} Operation under Custom_Vision_Training_3.3 have exceeded rate limit of your current Custom_Vision.Training S0 pricing tier. Please retry after {retry_after_secs} second{}. Please contact Azure support service if you would like to further increase the default rate limit.",
                if retry_after_secs == 1 { "" } else { "s" }
            );
            let mut response = apim_error(StatusCode::TOO_MANY_REQUESTS, &message, request_id);
            if config.retry_after_header {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            return (name, mutating, response);
        }
        Some(ApiFault::Unavailable) => {
            return (
                name,
                mutating,
                apim_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable. Please retry later.",
                    request_id,
                ),
            );
        }
        None => {}
    }
    if let Some(Hostile::HugePage { bytes }) = config.hostile {
        if matches!(name, "GetTaggedImages" | "GetUntaggedImages") {
            let mut page = Vec::with_capacity(bytes.max(2));
            page.push(b'[');
            page.resize(bytes.max(2) - 1, b' ');
            page.push(b']');
            return (name, mutating, Reply::Json(page).into_response(request_id));
        }
    }
    let query = super::query::Query::parse(uri.query());
    let response = match ops::run(state, op, &query, headers, &body).await {
        Ok(reply) => match (reply, config.hostile) {
            (Reply::Json(bytes), Some(Hostile::ForeignLinks { metadata, file })) => {
                Reply::Json(super::faults::foreign_links(bytes, metadata, file))
            }
            (reply, _) => reply,
        }
        .into_response(request_id),
        Err(e) => api_error(&e, request_id),
    };
    (name, mutating, response)
}

/// An answer of an operation that succeeded.
pub(crate) enum Reply {
    /// 200 with a JSON body.
    Json(Vec<u8>),
    /// 200 with raw bytes (GetArtifact).
    Octets(Bytes),
    /// A status with an empty body (204, 202).
    Empty(StatusCode),
    /// A status other than 200 with a JSON body (207 Multi-Status).
    JsonStatus(StatusCode, Vec<u8>),
}

impl Reply {
    /// 200 with `value` as JSON.
    pub fn json<T: Serialize>(value: &T) -> Reply {
        Reply::Json(serde_json::to_vec(value).expect("wire types serialise"))
    }

    fn into_response(self, request_id: &str) -> Response<Body> {
        let builder = api_headers(Response::builder(), request_id);
        let response = match self {
            Reply::Json(body) => builder
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(Body::from(body)),
            Reply::Octets(bytes) => builder
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::from(bytes)),
            Reply::JsonStatus(status, body) => builder
                .status(status)
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(Body::from(body)),
            Reply::Empty(status) => builder.status(status).header(header::CONTENT_LENGTH, 0).body(Body::empty()),
        };
        response.expect("static headers are valid")
    }
}

fn api_headers(builder: axum::http::response::Builder, request_id: &str) -> axum::http::response::Builder {
    builder
        .header("Request-Id", request_id)
        .header("apim-request-id", request_id)
        .header(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains; preload")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
}

fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Body> {
    api_headers(Response::builder().status(status), request_id)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body))
        .expect("static headers are valid")
}

/// The gateway's answer to a path it does not route to the service:
/// `{"error":{"code":"404","message":"Resource not found"}}`. Source: public threads where a
/// wrong endpoint or path got exactly this body from Cognitive Services
/// (MicrosoftDocs/azure-docs#73060, #36938; Azure/azure-sdk-for-python#8065, an endpoint with
/// a path suffix). It names no resource, so it never proves one is gone: the service's own
/// not-found answers carry a `NotFound…` code (`[spec]` CustomVisionErrorCodes).
fn gateway_not_found(request_id: &str) -> Response<Body> {
    apim_error(StatusCode::NOT_FOUND, "Resource not found", request_id)
}

/// Whether a request whose method carries a body (POST, PUT, PATCH) says neither how long the
/// body is nor that it is chunked.
fn lacks_length(method: &Method, headers: &HeaderMap) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
}

/// The front end's 411 to a POST, PUT or PATCH without `Content-Length` or
/// `Transfer-Encoding`, before the request reaches the API layer. Sources: public threads of
/// other Cognitive Services APIs behind the same front end: a body-less POST to issueToken
/// answered "411 Length Required" until `Content-length: 0` was added
/// (MicrosoftDocs/azure-docs#25296); Text Analytics answered 411 with this HTML body
/// (Azure/azure-sdk-for-net#45026); the headers (`Server: Microsoft-HTTPAPI/2.0`,
/// `text/html; charset=us-ascii`, `Connection: close`) are HTTP.sys's, as seen in
/// authorjapps/zerocode#670 against an Azure gateway. That Custom Vision's front end does the
/// same is an assumption from those threads; no recording holds a 411.
fn length_required() -> Response<Body> {
    const BODY: &str =
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n\
        <HTML><HEAD><TITLE>Length Required</TITLE>\r\n\
        <META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n\
        <BODY><h2>Length Required</h2>\r\n\
        <hr><p>HTTP Error 411. The request must be chunked or have a content length.</p>\r\n\
        </BODY></HTML>\r\n";
    Response::builder()
        .status(StatusCode::LENGTH_REQUIRED)
        .header(header::CONTENT_TYPE, "text/html; charset=us-ascii")
        .header(header::SERVER, "Microsoft-HTTPAPI/2.0")
        .header(header::CONNECTION, "close")
        .body(Body::from(BODY))
        .expect("static headers are valid")
}

/// The API-management layer's error shape (401, 404 of unknown paths, 429, 503).
fn apim_error(status: StatusCode, message: &str, request_id: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"code": status.as_u16().to_string(), "message": message}});
    json_response(status, body.to_string().into_bytes(), request_id)
}

/// The service's own error shape, `CustomVisionError`.
fn api_error(e: &ApiError, request_id: &str) -> Response<Body> {
    let body = CustomVisionError { code: e.code.to_owned(), message: e.message.clone() };
    json_response(e.status, serde_json::to_vec(&body).expect("serialises"), request_id)
}

async fn serve_blob(
    state: &AppState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    request_id: &str,
) -> Response<Body> {
    let now = Utc::now();
    if method != Method::GET && method != Method::HEAD {
        return blob::error(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
            None,
            request_id,
        );
    }
    let (mut sig, mut se) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "sig" => sig = Some(v.into_owned()),
            "se" => se = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Err(why) = state.inner.signer.check(path, sig.as_deref(), se.as_deref(), now) {
        return blob::denied(&why, now, request_id);
    }
    let config = state.fault_config();
    if !config.blob_latency.is_zero() {
        tokio::time::sleep(config.blob_latency).await;
    }
    let fault = state.inner.faults.lock().unwrap_or_else(|e| e.into_inner()).blob();
    if fault == BlobFault::Unavailable {
        return blob::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
            None,
            request_id,
        );
    }
    match config.hostile {
        Some(Hostile::EndlessBlob) => return blob::endless(request_id),
        Some(Hostile::StalledBlob) => return blob::stalled(request_id),
        _ => {}
    }
    match state.resolve_blob(path) {
        Some((bytes, md5)) if config.hostile == Some(Hostile::WrongMd5) => {
            let mut response = blob::ok(bytes, md5, None, request_id, false);
            response.headers_mut().insert("Content-MD5", HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="));
            response
        }
        Some((bytes, md5)) => {
            let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok()).and_then(blob::ByteRange::parse);
            blob::ok(bytes, md5, range, request_id, fault == BlobFault::Reset)
        }
        None => {
            blob::error(StatusCode::NOT_FOUND, "BlobNotFound", "The specified blob does not exist.", None, request_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_md5s_are_the_md5s_of_the_bytes_served() {
        let spec = super::super::GenerateSpec { projects: 2, images: 30, image_bytes: 3000, ..Default::default() };
        let opts = EmulatorOptions { account: AccountSpec::Generated(spec), ..EmulatorOptions::default() };
        let state = AppState::new(&opts, "http://127.0.0.1:1").unwrap();
        let paths: Vec<String> = state.with_account(|a| {
            a.projects
                .iter()
                .flat_map(|p| {
                    let hex = p.id().simple().to_string();
                    let images = p.images.iter().map(|i| i.id).chain(p.predictions.iter().map(|r| r.id));
                    images.map(move |id| format!("i-{hex}/i-{}", id.simple())).collect::<Vec<_>>()
                })
                .collect()
        });
        assert_eq!(paths.len(), 2 * (30 + 5));
        let fresh: Vec<_> = paths.iter().map(|p| state.resolve_blob(p).expect("a blob")).collect();
        state.store_md5s();
        assert_eq!(state.inner.md5s.lock().unwrap().len(), paths.len());
        for (path, (bytes, md5)) in paths.iter().zip(fresh) {
            assert_eq!(<[u8; 16]>::from(Md5::digest(&bytes)), md5, "{path}");
            assert_eq!(state.resolve_blob(path).expect("a blob"), (bytes, md5), "{path}");
        }
    }
}
