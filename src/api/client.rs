//! The Training API client: one method per operation, each paced by the rate limiter and
//! retried with backoff; blob downloads hashed while they stream.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use md5::Md5;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use url::Url;
use uuid::Uuid;

use super::error::{Error, RetryKind};
use super::model::{
    parse_count, CustomVisionError, Domain, Export, Image, ImageCreateSummary, ImageFileCreateBatch,
    ImageMetadataUpdateSummary, ImagePerformance, Iteration, IterationPerformance, PredictionQueryResult,
    PredictionQueryToken, Project, Tag,
};
use super::retry::{parse_retry_after, parse_retry_after_message, RateLimiter, RetryPolicy, RetryStats};
use crate::secret::{redact_url, TrainingKey};

/// The most ids GetImagesByIds and DeleteImages take in one call.
pub const MAX_IMAGE_IDS: usize = 256;
/// The most ids DeletePrediction takes in one call.
pub const MAX_PREDICTION_IDS: usize = 64;
/// Attempts at a connection to an endpoint that has never answered (a wrong endpoint fails in
/// about a second instead of after minutes of backoff).
const FIRST_CONTACT_ATTEMPTS: u32 = 3;
/// The most images CreateImagesFromFiles and UpdateImageMetadata take in one call.
pub const MAX_UPLOAD_BATCH: usize = 64;
/// The largest page the list operations serve.
pub const MAX_TAKE: u32 = 256;

/// How to reach the service and how hard to push it.
#[derive(Debug, Clone)]
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
    /// How long a response may go without sending a byte.
    pub read_timeout: Duration,
    /// The largest JSON answer accepted; real pages are well under a megabyte.
    pub max_json_bytes: u64,
    /// The path prefix version, `v3.3` unless testing another.
    pub api_version: String,
    /// Called before every retry wait (for progress reporting).
    pub on_retry: Option<RetryHook>,
}

/// A callback told of every retry: its kind and how long the client will wait.
#[derive(Clone)]
pub struct RetryHook(pub Arc<dyn Fn(RetryKind, Duration) + Send + Sync>);

impl std::fmt::Debug for RetryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryHook")
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
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_json_bytes: 64 << 20,
            api_version: super::API_VERSION.to_owned(),
            on_retry: None,
        }
    }
}

/// Sort order of the list operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// Newest first (the service's default).
    #[default]
    Newest,
    /// Oldest first: stable while images are being added.
    Oldest,
}

impl OrderBy {
    fn as_str(self) -> &'static str {
        match self {
            OrderBy::Newest => "Newest",
            OrderBy::Oldest => "Oldest",
        }
    }
}

/// The query of one page of a list operation.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    /// Sort order.
    pub order_by: OrderBy,
    /// Page size, at most 256.
    pub take: u32,
    /// Items to skip.
    pub skip: u32,
    /// The iteration to read; the workspace when `None`.
    pub iteration_id: Option<Uuid>,
    /// Only images with these tags (at most 20).
    pub tag_ids: Vec<Uuid>,
}

/// What CreateProject is told: a name and the settings of the project to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewProject {
    /// The project's name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its domain; the service's General (classification) when `None`.
    pub domain_id: Option<Uuid>,
    /// `Multiclass` or `Multilabel` (classification only).
    pub classification_type: Option<String>,
    /// Export platforms the model is meant for.
    pub target_export_platforms: Vec<String>,
}

/// What DeleteImages deletes.
#[derive(Debug, Clone)]
pub enum DeleteImages {
    /// These images (at most 256).
    Ids(Vec<Uuid>),
    /// Every image of the project; the service answers 202 and finishes later.
    All,
}

/// A downloaded blob, hashed while it streamed in.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The bytes.
    pub bytes: Bytes,
    /// Their SHA-256.
    pub sha256: [u8; 32],
    /// The Content-Type the server sent.
    pub content_type: Option<String>,
}

/// A client of one Custom Vision training resource. Cheap to clone; clones share the rate
/// limiter, the connection pool and the retry counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    host: String,
    base: String,
    key: TrainingKey,
    limiter: RateLimiter,
    retry: RetryPolicy,
    stats: Arc<RetryStats>,
    max_json_bytes: u64,
    on_retry: Option<RetryHook>,
    /// Whether the endpoint has ever answered; until it has, a refused connection is most
    /// likely a wrong endpoint, so it is not retried for long.
    answered: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoint", &self.inner.host).finish_non_exhaustive()
    }
}

/// A request: method, path under the API base, query pairs, optional JSON body.
struct Call {
    op: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Call {
    fn get(op: &'static str, path: String) -> Call {
        Call { op, method: Method::GET, path, query: Vec::new(), body: None }
    }

    fn with(mut self, name: &'static str, value: impl ToString) -> Call {
        self.query.push((name, value.to_string()));
        self
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
        let mut endpoint = Url::parse(opts.endpoint.trim()).map_err(|e| Error::Request {
            op,
            detail: format!("the endpoint {:?} is not a URL: {e}", redact_url(&opts.endpoint)),
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Error::Request {
                op,
                detail: format!("the endpoint {} is not an http(s) URL", redact_url(endpoint.as_str())),
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
        let root = endpoint.as_str().trim_end_matches('/').to_owned();
        let base = format!("{root}/customvision/{}/training", opts.api_version);
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .user_agent(concat!("cvarchive/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Request { op, detail: format!("cannot build the HTTP client: {}", e.without_url()) })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                host,
                base,
                key: opts.key,
                limiter: RateLimiter::new(opts.api_rate),
                retry: opts.retry,
                stats: Arc::new(RetryStats::default()),
                max_json_bytes: opts.max_json_bytes,
                on_retry: opts.on_retry,
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

    // ----- projects, tags, iterations -------------------------------------------------------

    /// GetProjects: every project of the resource (not paged).
    pub async fn get_projects(&self) -> Result<Vec<Project>, Error> {
        self.json(Call::get("GetProjects", "/projects".into())).await
    }

    /// GetProject.
    pub async fn get_project(&self, project: Uuid) -> Result<Project, Error> {
        self.json(Call::get("GetProject", format!("/projects/{project}"))).await
    }

    /// GetTags of the workspace, or of an iteration.
    pub async fn get_tags(&self, project: Uuid, iteration: Option<Uuid>) -> Result<Vec<Tag>, Error> {
        self.json(Call::get("GetTags", format!("/projects/{project}/tags")).with_opt("iterationId", iteration)).await
    }

    /// GetIterations (not paged).
    pub async fn get_iterations(&self, project: Uuid) -> Result<Vec<Iteration>, Error> {
        self.json(Call::get("GetIterations", format!("/projects/{project}/iterations"))).await
    }

    /// GetIteration.
    pub async fn get_iteration(&self, project: Uuid, iteration: Uuid) -> Result<Iteration, Error> {
        self.json(Call::get("GetIteration", format!("/projects/{project}/iterations/{iteration}"))).await
    }

    /// GetIterationPerformance at the service's default thresholds (or the given ones).
    pub async fn get_iteration_performance(
        &self,
        project: Uuid,
        iteration: Uuid,
        threshold: Option<f64>,
        overlap_threshold: Option<f64>,
    ) -> Result<IterationPerformance, Error> {
        let call =
            Call::get("GetIterationPerformance", format!("/projects/{project}/iterations/{iteration}/performance"))
                .with_opt("threshold", threshold)
                .with_opt("overlapThreshold", overlap_threshold);
        self.json(call).await
    }

    /// One page of GetImagePerformances.
    pub async fn get_image_performances(
        &self,
        project: Uuid,
        iteration: Uuid,
        q: &ImageQuery,
    ) -> Result<Vec<ImagePerformance>, Error> {
        let call =
            Call::get("GetImagePerformances", format!("/projects/{project}/iterations/{iteration}/performance/images"));
        self.json(page_query(call, q, false)?).await
    }

    /// GetImagePerformanceCount.
    pub async fn get_image_performance_count(&self, project: Uuid, iteration: Uuid) -> Result<u64, Error> {
        self.count(Call::get(
            "GetImagePerformanceCount",
            format!("/projects/{project}/iterations/{iteration}/performance/images/count"),
        ))
        .await
    }

    /// GetExports: the model packages exported from an iteration.
    pub async fn get_exports(&self, project: Uuid, iteration: Uuid) -> Result<Vec<Export>, Error> {
        self.json(Call::get("GetExports", format!("/projects/{project}/iterations/{iteration}/export"))).await
    }

    // ----- images ----------------------------------------------------------------------------

    /// One page of GetTaggedImages.
    pub async fn get_tagged_images(&self, project: Uuid, q: &ImageQuery) -> Result<Vec<Image>, Error> {
        self.json(page_query(Call::get("GetTaggedImages", format!("/projects/{project}/images/tagged")), q, true)?)
            .await
    }

    /// One page of GetUntaggedImages.
    pub async fn get_untagged_images(&self, project: Uuid, q: &ImageQuery) -> Result<Vec<Image>, Error> {
        let mut q = q.clone();
        q.tag_ids.clear();
        self.json(page_query(Call::get("GetUntaggedImages", format!("/projects/{project}/images/untagged")), &q, true)?)
            .await
    }

    /// GetTaggedImageCount of the workspace.
    pub async fn get_tagged_image_count(&self, project: Uuid) -> Result<u64, Error> {
        self.count(Call::get("GetTaggedImageCount", format!("/projects/{project}/images/tagged/count"))).await
    }

    /// GetUntaggedImageCount of the workspace.
    pub async fn get_untagged_image_count(&self, project: Uuid) -> Result<u64, Error> {
        self.count(Call::get("GetUntaggedImageCount", format!("/projects/{project}/images/untagged/count"))).await
    }

    /// GetImagesByIds: fresh records (and fresh download links) for up to 256 images.
    pub async fn get_images_by_ids(&self, project: Uuid, ids: &[Uuid]) -> Result<Vec<Image>, Error> {
        let op = "GetImagesByIds";
        if ids.len() > MAX_IMAGE_IDS {
            return Err(Error::Request {
                op,
                detail: format!("{} ids asked for; the service takes at most {MAX_IMAGE_IDS}", ids.len()),
            });
        }
        self.json(Call::get(op, format!("/projects/{project}/images/id")).with("imageIds", csv(ids))).await
    }

    /// QueryPredictions: one page of stored predictions; feed the returned token back for more.
    pub async fn query_predictions(
        &self,
        project: Uuid,
        token: &PredictionQueryToken,
    ) -> Result<PredictionQueryResult, Error> {
        let body =
            serde_json::to_vec(token).map_err(|e| Error::Request { op: "QueryPredictions", detail: e.to_string() })?;
        let call = Call {
            op: "QueryPredictions",
            method: Method::POST,
            path: format!("/projects/{project}/predictions/query"),
            query: Vec::new(),
            body: Some(body),
        };
        self.json(call).await
    }

    // ----- creates -----------------------------------------------------------------------------

    /// GetDomains: the training domains of the resource.
    pub async fn get_domains(&self) -> Result<Vec<Domain>, Error> {
        self.json(Call::get("GetDomains", "/domains".into())).await
    }

    /// CreateProject with a name and the settings a project is created with.
    pub async fn create_project(&self, new: &NewProject) -> Result<Project, Error> {
        let mut call = Call { method: Method::POST, ..Call::get("CreateProject", "/projects".into()) }
            .with("name", &new.name)
            .with_opt("description", new.description.as_ref())
            .with_opt("domainId", new.domain_id)
            .with_opt("classificationType", new.classification_type.as_ref());
        if !new.target_export_platforms.is_empty() {
            call = call.with("targetExportPlatforms", new.target_export_platforms.join(","));
        }
        self.json(call).await
    }

    /// CreateTag (`kind`: Regular, Negative or GeneralProduct; the service's default when `None`).
    pub async fn create_tag(
        &self,
        project: Uuid,
        name: &str,
        description: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Tag, Error> {
        let call = Call { method: Method::POST, ..Call::get("CreateTag", format!("/projects/{project}/tags")) }
            .with("name", name)
            .with_opt("description", description.filter(|d| !d.is_empty()))
            .with_opt("type", kind);
        self.json(call).await
    }

    /// CreateImagesFromFiles: up to 64 images with their tags and regions. The answer (200 or
    /// 207) carries a status per image; `OKDuplicate` names the image the project already has.
    pub async fn create_images_from_files(
        &self,
        project: Uuid,
        batch: &ImageFileCreateBatch,
    ) -> Result<ImageCreateSummary, Error> {
        let op = "CreateImagesFromFiles";
        if batch.images.len() > MAX_UPLOAD_BATCH {
            return Err(Error::Request {
                op,
                detail: format!(
                    "{} images in one batch; the service takes at most {MAX_UPLOAD_BATCH}",
                    batch.images.len()
                ),
            });
        }
        let body = serde_json::to_vec(batch).map_err(|e| Error::Request { op, detail: e.to_string() })?;
        let call = Call {
            op,
            method: Method::POST,
            path: format!("/projects/{project}/images/files"),
            query: Vec::new(),
            body: Some(body),
        };
        self.json(call).await
    }

    /// UpdateImageMetadata: merges `metadata` into up to 64 images' metadata.
    pub async fn update_image_metadata(
        &self,
        project: Uuid,
        ids: &[Uuid],
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<ImageMetadataUpdateSummary, Error> {
        let op = "UpdateImageMetadata";
        if ids.len() > MAX_UPLOAD_BATCH {
            return Err(Error::Request {
                op,
                detail: format!("{} ids in one call; the service takes at most {MAX_UPLOAD_BATCH}", ids.len()),
            });
        }
        let body = serde_json::to_vec(metadata).map_err(|e| Error::Request { op, detail: e.to_string() })?;
        let call = Call {
            op,
            method: Method::POST,
            path: format!("/projects/{project}/images/metadata"),
            query: Vec::new(),
            body: Some(body),
        }
        .with("imageIds", csv(ids));
        self.json(call).await
    }

    // ----- deletes -----------------------------------------------------------------------------

    /// DeleteImages: 204 when done, 202 when the service finishes later (`All`).
    pub async fn delete_images(&self, project: Uuid, what: &DeleteImages) -> Result<StatusCode, Error> {
        let op = "DeleteImages";
        let call = Call {
            op,
            method: Method::DELETE,
            path: format!("/projects/{project}/images"),
            query: Vec::new(),
            body: None,
        };
        let call = match what {
            DeleteImages::Ids(ids) if ids.len() > MAX_IMAGE_IDS => {
                return Err(Error::Request {
                    op,
                    detail: format!("{} ids in one call; the service takes at most {MAX_IMAGE_IDS}", ids.len()),
                })
            }
            DeleteImages::Ids(ids) => call.with("imageIds", csv(ids)),
            DeleteImages::All => call.with("allImages", "true").with("allIterations", "true"),
        };
        Ok(self.send(&call).await?.0)
    }

    /// DeleteTag.
    pub async fn delete_tag(&self, project: Uuid, tag: Uuid) -> Result<(), Error> {
        self.delete("DeleteTag", format!("/projects/{project}/tags/{tag}")).await
    }

    /// UnpublishIteration.
    pub async fn unpublish_iteration(&self, project: Uuid, iteration: Uuid) -> Result<(), Error> {
        self.delete("UnpublishIteration", format!("/projects/{project}/iterations/{iteration}/publish")).await
    }

    /// DeleteIteration (unpublish first).
    pub async fn delete_iteration(&self, project: Uuid, iteration: Uuid) -> Result<(), Error> {
        self.delete("DeleteIteration", format!("/projects/{project}/iterations/{iteration}")).await
    }

    /// DeleteProject.
    pub async fn delete_project(&self, project: Uuid) -> Result<(), Error> {
        self.delete("DeleteProject", format!("/projects/{project}")).await
    }

    /// DeletePrediction: up to 64 stored predictions.
    pub async fn delete_predictions(&self, project: Uuid, ids: &[Uuid]) -> Result<(), Error> {
        let op = "DeletePrediction";
        if ids.len() > MAX_PREDICTION_IDS {
            return Err(Error::Request {
                op,
                detail: format!("{} ids in one call; the service takes at most {MAX_PREDICTION_IDS}", ids.len()),
            });
        }
        let call = Call {
            op,
            method: Method::DELETE,
            path: format!("/projects/{project}/predictions"),
            query: Vec::new(),
            body: None,
        }
        .with("ids", csv(ids));
        self.send(&call).await.map(|_| ())
    }

    // ----- blobs -------------------------------------------------------------------------------

    /// Downloads an image, thumbnail or model package: an absolute link straight from blob
    /// storage (no key sent, not rate limited), a relative one through GetArtifact. The body is
    /// hashed while it streams, checked against Content-Length and Content-MD5, and refused past
    /// `max_bytes`. Transient failures are retried; an expired link is returned as
    /// [`Error::LinkExpired`] for the caller to refresh.
    pub async fn download(&self, project: Uuid, uri: &str, max_bytes: u64) -> Result<Blob, Error> {
        let uri = uri.trim();
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let op = "DownloadBlob";
            if link_has_expired(uri) {
                return Err(Error::LinkExpired { op, status: 0, url: redact_url(uri) });
            }
            self.with_retries(op, false, || self.download_once(op, uri, max_bytes)).await
        } else {
            let op = "GetArtifact";
            let mut url = self.api_url(&format!("/projects/{project}/artifacts"));
            url.query_pairs_mut().append_pair("path", uri);
            let url = url.to_string();
            self.with_retries(op, true, || self.download_once(op, &url, max_bytes)).await
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
        let mut sha = Sha256::new();
        let mut md5_hasher = md5.as_ref().map(|_| Md5::new());
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
                    sha.update(&chunk);
                    if let Some(h) = md5_hasher.as_mut() {
                        h.update(&chunk);
                    }
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
        if let (Some(expected), Some(h)) = (md5, md5_hasher) {
            if h.finalize().as_slice() != expected.as_slice() {
                return Err(Error::Integrity { op, url: shown, detail: "Content-MD5 does not match the body".into() });
            }
        }
        Ok(Blob { bytes: Bytes::from(buf), sha256: sha.finalize().into(), content_type })
    }

    // ----- plumbing ----------------------------------------------------------------------------

    fn api_url(&self, path: &str) -> Url {
        // The base was built from a parsed URL and the path from uuids and constants.
        Url::parse(&format!("{}{path}", self.inner.base)).expect("API URLs are well formed")
    }

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let (_, headers, body, url) = self.send(&call).await?;
        serde_json::from_slice(&body).map_err(|e| self.decode_error(call.op, &headers, &body, &url, &e))
    }

    async fn count(&self, call: Call) -> Result<u64, Error> {
        let (_, headers, body, url) = self.send(&call).await?;
        parse_count(&body).map_err(|e| self.decode_error(call.op, &headers, &body, &url, &e))
    }

    async fn delete(&self, op: &'static str, path: String) -> Result<(), Error> {
        let call = Call { op, method: Method::DELETE, path, query: Vec::new(), body: None };
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
        self.with_retries(call.op, true, || self.send_once(call, &url)).await
    }

    async fn send_once(&self, call: &Call, url: &str) -> Result<(StatusCode, HeaderMap, Bytes, String), Error> {
        let shown = redact_url(url);
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url)
            .header("Training-Key", self.inner.key.expose())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            req = req.header(CONTENT_TYPE, "application/json").body(body.clone());
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

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up. `paced` calls
    /// wait for the rate limiter first.
    async fn with_retries<T, F, Fut>(&self, op: &'static str, paced: bool, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let policy = &self.inner.retry;
        let started = Instant::now();
        let mut tries = 0u32;
        loop {
            if paced {
                self.inner.limiter.acquire().await;
            }
            tries += 1;
            let err = match attempt().await {
                Ok(v) => {
                    if paced {
                        self.inner.limiter.success();
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            let Some(kind) = err.retry_kind().filter(|k| *k != RetryKind::ExpiredLink) else { return Err(err) };
            let never_answered =
                kind == RetryKind::Connection && !self.inner.answered.load(std::sync::atomic::Ordering::Relaxed);
            let max_attempts =
                if never_answered { policy.max_attempts.min(FIRST_CONTACT_ATTEMPTS) } else { policy.max_attempts };
            if tries >= max_attempts || started.elapsed() >= policy.max_total {
                return Err(err);
            }
            let wait = policy.delay(tries, err.retry_after());
            if kind == RetryKind::Throttled {
                self.inner.limiter.pause(err.retry_after().unwrap_or(Duration::from_secs(1)));
            }
            self.inner.stats.record(kind);
            if let Some(hook) = &self.inner.on_retry {
                (hook.0)(kind, wait);
            }
            tracing::debug!(op, kind = kind.name(), wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
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

fn page_query(call: Call, q: &ImageQuery, with_iteration: bool) -> Result<Call, Error> {
    if q.take > MAX_TAKE {
        return Err(Error::Request {
            op: call.op,
            detail: format!("take={} is over the service's limit of {MAX_TAKE}", q.take),
        });
    }
    let mut call = call;
    if with_iteration {
        call = call.with_opt("iterationId", q.iteration_id);
    }
    if !q.tag_ids.is_empty() {
        call = call.with("tagIds", csv(&q.tag_ids));
    }
    Ok(call.with("orderBy", q.order_by.as_str()).with("take", q.take).with("skip", q.skip))
}

/// Whether an absolute SAS link's `se` (signed expiry) is already in the past.
pub fn link_has_expired(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else { return false };
    let Some((_, se)) = url.query_pairs().find(|(k, _)| k == "se") else { return false };
    chrono::DateTime::parse_from_rfc3339(&se).is_ok_and(|t| t < chrono::Utc::now())
}

fn transport(op: &'static str, url: &str, e: reqwest::Error) -> Error {
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
    Error::Transport { op, url: url.to_owned(), detail: redact_url(&detail), timeout }
}

async fn read_limited(
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
fn parse_error_body(body: &[u8]) -> Option<CustomVisionError> {
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

fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after)
}

fn describe_body(headers: &HeaderMap, body: &[u8]) -> String {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no content type");
    if body.is_empty() {
        format!("an empty body ({ct})")
    } else {
        format!("{ct}: {}", snippet(body))
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    redact_url(&one_line)
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
