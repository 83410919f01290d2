//! A local Custom Vision Training service (API v3.3, also served as v3.4-preview) on a real
//! socket, faithful to the real one's shapes and quirks, for our tests and for users' scripts.
//!
//! [`start`] binds a port and returns an [`Emulator`] handle that stops the server when dropped.
//! The account it holds is the bundled fixture, a generated account ([`GenerateSpec`]) or an
//! empty one. Faults (rate limits, 503s, cut blob bodies, latency) come from a [`FaultConfig`]
//! that tests can change at runtime, and every request served is recorded.
//!
//! # Layout
//!
//! - `state`: the account model and its operations (paging, counts, deletes).
//! - `iteration`: an iteration, its exports and the training set it keeps its own copy of.
//! - `filter`: GetImages' `$filter` metadata expressions.
//! - `ops`: the operations: path shapes, query parameters and limits, what each does.
//! - `create`: the create operations a restore needs (projects, tags, image uploads, metadata).
//! - `render`: account records -> wire types of [`crate::api::model`], with their links.
//! - `routes`: the HTTP edge: [`app`], parsing, status codes, error bodies, recording.
//! - `blob`: signed expiring blob URLs and the blob answers (Azure Storage's shapes).
//! - `fixture`: the bundled fixture account (`fixtures/account.json` and images).
//! - `generate`: generated accounts and on-the-fly image bytes.
//! - `faults`: rate limiting and injected failures.
//! - `requests`: the request log.
//! - `tls`: serving over HTTPS ([`start_tls`]).

mod blob;
mod create;
mod faults;
mod filter;
mod fixture;
mod generate;
mod iteration;
mod ops;
mod query;
mod render;
mod requests;
mod routes;
mod state;
mod tls;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use faults::{FaultConfig, Hostile, ListingMutation};
pub use requests::RecordedRequest;
pub use routes::{app, AppState};
pub use tls::TlsFiles;

/// The Training-Key the emulator accepts unless told otherwise: a fixed, well-known value (like
/// Azurite's account key), so scripts can hard-code it. Never a real key.
pub const DEFAULT_KEY: &str = "cvarchive-emulator-0000000000000000";

/// The default lifetime of blob links: 24 hours, like the real service.
pub const DEFAULT_SAS_TTL: Duration = Duration::from_secs(24 * 3600);

/// The default approximate size of a generated image, in bytes.
pub const DEFAULT_IMAGE_BYTES: usize = 40 * 1024;

/// Errors of starting or describing an emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `--generate` specification could not be read.
    #[error("bad account specification {spec:?}: {reason}")]
    BadGenerateSpec {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate or key to serve HTTPS with could not be used.
    #[error("cannot serve HTTPS with {}: {reason}", path.display())]
    Tls {
        /// The file at fault.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The bundled fixture account could not be loaded (a build defect).
    #[error("the bundled fixture account is invalid: {0}")]
    Fixture(String),
}

/// Everything an emulator needs to start.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Which account it holds.
    pub account: AccountSpec,
    /// The Training-Key it accepts.
    pub key: String,
    /// The lifetime of the blob links it hands out.
    pub sas_ttl: Duration,
    /// Injected failures and limits.
    pub faults: FaultConfig,
}

impl Default for EmulatorOptions {
    fn default() -> EmulatorOptions {
        EmulatorOptions {
            account: AccountSpec::Fixture,
            key: DEFAULT_KEY.to_owned(),
            sas_ttl: DEFAULT_SAS_TTL,
            faults: FaultConfig::default(),
        }
    }
}

/// The account an emulator holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountSpec {
    /// The bundled fixture account: small but complete (see `fixtures/account.json`).
    Fixture,
    /// An account generated from a seed, of any size.
    Generated(GenerateSpec),
    /// No projects at all.
    Empty,
}

/// The shape of a generated account. Everything in it derives from `seed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSpec {
    /// How many projects (every second one is ObjectDetection).
    pub projects: usize,
    /// How many training images per project.
    pub images: usize,
    /// The seed of ids, timestamps, tags and bytes.
    pub seed: u64,
    /// Approximate size of each image in bytes.
    pub image_bytes: usize,
    /// VNET mode: `originalImageUri` and export links are relative paths.
    pub relative_uris: bool,
    /// Images per project that only the trained iteration holds (deleted from the workspace
    /// after training, without `allIterations`), on top of `images`.
    pub iteration_only: usize,
}

impl Default for GenerateSpec {
    fn default() -> GenerateSpec {
        GenerateSpec {
            projects: 2,
            images: 600,
            seed: 1,
            image_bytes: DEFAULT_IMAGE_BYTES,
            relative_uris: false,
            iteration_only: 0,
        }
    }
}

impl FromStr for GenerateSpec {
    type Err = Error;

    /// Reads `projects=2,images=600,seed=1[,size=262144][,relative=true][,iteration_only=5]`; missing keys keep
    /// their defaults.
    fn from_str(text: &str) -> Result<GenerateSpec, Error> {
        let bad = |reason: String| Error::BadGenerateSpec { spec: text.to_owned(), reason };
        let mut spec = GenerateSpec::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not name=value")))?;
            let number =
                || value.trim().parse::<u64>().map_err(|_| bad(format!("{name}={value:?} is not a whole number")));
            match name.trim() {
                "projects" => spec.projects = number()? as usize,
                "images" => spec.images = number()? as usize,
                "seed" => spec.seed = number()?,
                "size" | "image_bytes" => spec.image_bytes = number()? as usize,
                "iteration_only" => spec.iteration_only = number()? as usize,
                "relative" => {
                    spec.relative_uris = match value.trim() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        other => return Err(bad(format!("relative={other:?} is not true or false"))),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown key {other:?} (known: projects, images, seed, size, relative, iteration_only)"
                    )))
                }
            }
        }
        if spec.images > generate::MAX_IMAGES {
            return Err(bad(format!("at most {} images per project", generate::MAX_IMAGES)));
        }
        if spec.image_bytes > generate::MAX_IMAGE_BYTES {
            return Err(bad(format!("size is at most {} bytes", generate::MAX_IMAGE_BYTES)));
        }
        Ok(spec)
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    endpoint: String,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Binds `listen` (port 0 picks a free port) and serves the account described by `opts`.
pub async fn start(listen: SocketAddr, opts: EmulatorOptions) -> Result<Emulator, Error> {
    start_with(listen, opts, None).await
}

/// [`start`], served over HTTPS with the certificate and key of `tls` (for testing a client's
/// trust settings, as behind a network that inspects TLS): the endpoint is `https://...`.
pub async fn start_tls(listen: SocketAddr, opts: EmulatorOptions, tls: &TlsFiles) -> Result<Emulator, Error> {
    start_with(listen, opts, Some(tls)).await
}

async fn start_with(listen: SocketAddr, opts: EmulatorOptions, tls: Option<&TlsFiles>) -> Result<Emulator, Error> {
    let acceptor = tls.map(TlsFiles::acceptor).transpose()?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| Error::Bind { addr: listen, source })?;
    let local = listener.local_addr().map_err(|source| Error::Bind { addr: listen, source })?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{local}");
    let state = AppState::new(&opts, endpoint.clone())?;
    let router = app(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = match acceptor {
        None => serve(listener, router, stopped),
        Some(acceptor) => {
            let listener =
                tls::TlsListener::new(listener, acceptor).map_err(|source| Error::Bind { addr: listen, source })?;
            serve(listener, router, stopped)
        }
    };
    tracing::debug!(%endpoint, "emulator listening");
    Ok(Emulator { endpoint, state, stop: Some(stop), task: Some(task) })
}

fn serve<L: axum::serve::Listener>(listener: L, router: axum::Router, stopped: oneshot::Receiver<()>) -> JoinHandle<()>
where
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!("emulator server stopped with an error: {e}");
        }
    })
}

impl Emulator {
    /// The base URL, e.g. `http://127.0.0.1:7070`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The Training-Key it accepts.
    pub fn key(&self) -> &str {
        self.state.key()
    }

    /// Replaces the fault configuration (the fault RNG restarts from `faults.seed`).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.state.set_faults(faults);
    }

    /// Every request served, oldest first (the most recent 200,000 at most).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.request_log().all()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.request_log().clear();
    }

    /// The ids of the projects, in GetProjects order.
    pub fn projects(&self) -> Vec<Uuid> {
        self.state.with_account(|a| a.projects.iter().map(|p| p.id()).collect())
    }

    /// The current training images of a project, oldest first (empty for an unknown project).
    pub fn image_ids(&self, project: Uuid) -> Vec<Uuid> {
        self.state
            .with_account(|a| a.project(project).map(|p| p.images.iter().map(|i| i.id).collect()).unwrap_or_default())
    }

    /// The images of a project that only its iterations hold (not the workspace), each once.
    pub fn iteration_only_ids(&self, project: Uuid) -> Vec<Uuid> {
        self.state.with_account(|a| {
            let Some(p) = a.project(project) else { return Vec::new() };
            let mut ids: Vec<Uuid> = p
                .iterations
                .iter()
                .flat_map(|it| it.training.images())
                .filter(|i| !p.holds(i.id))
                .map(|i| i.id)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        })
    }

    /// The ids of the images an iteration holds, oldest first (empty for an unknown one).
    pub fn iteration_image_ids(&self, project: Uuid, iteration: Uuid) -> Vec<Uuid> {
        self.state.with_account(|a| {
            a.project(project)
                .and_then(|p| p.iteration(iteration).ok())
                .map(|it| it.training.images().iter().map(|i| i.id).collect())
                .unwrap_or_default()
        })
    }

    /// The bytes the blob link of an image's original serves, or `None` for an unknown image.
    pub fn image_bytes(&self, project: Uuid, image: Uuid) -> Option<Vec<u8>> {
        let source =
            self.state.with_account(|a| a.project(project).and_then(|p| p.find_image(image)).map(|i| i.content))?;
        Some(self.state.content_bytes(source, false).to_vec())
    }

    /// The ids of a project's stored predictions, oldest first.
    pub fn prediction_ids(&self, project: Uuid) -> Vec<Uuid> {
        self.state.with_account(|a| {
            a.project(project).map(|p| p.predictions.iter().map(|r| r.id).collect()).unwrap_or_default()
        })
    }

    /// Adds `count` tagged training images created now, as if uploaded while a backup runs.
    pub fn add_images(&self, project: Uuid, count: usize) -> Vec<Uuid> {
        self.state.with_account_mut(|a| a.add_images(project, count, chrono::Utc::now()))
    }

    /// Removes training images, as if deleted by someone else.
    pub fn remove_images(&self, project: Uuid, ids: &[Uuid]) {
        self.state.with_account_mut(|a| {
            if let Some(p) = a.project_mut(project) {
                p.delete_images(ids, false);
            }
        });
    }

    /// Replaces the tags of a workspace image, as if someone re-tagged it meanwhile (a test hook:
    /// the emulator serves no image-tagging operation). Whether the image was found.
    pub fn set_image_tags(&self, project: Uuid, image: Uuid, tags: &[Uuid]) -> bool {
        self.state.with_account_mut(|a| {
            let Some(p) = a.project_mut(project) else { return false };
            let Some(found) = p.images.iter().find(|i| i.id == image) else { return false };
            let mut changed = (**found).clone();
            changed.tags = tags.to_vec();
            p.replace(changed);
            true
        })
    }

    /// Computes the Content-MD5 of every image now (on every core) and remembers it, as Azure
    /// Storage keeps a blob's MD5 from its upload; blob answers then cost no hashing. Benchmarks
    /// call this before starting the clock, so that they measure the exporter, not the emulator.
    pub fn store_md5s(&self) {
        self.state.store_md5s();
    }

    /// Stops the server and waits for it to finish (at most a few seconds).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Idle keep-alive connections would hold a graceful shutdown open; the listener must go.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}
