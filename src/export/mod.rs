//! The export pipeline: list every category of a Custom Vision account, download every image
//! with bounded concurrency, hash it as it streams, and hand everything to the single archive
//! writer. The archive is written under a temporary name beside the target and renamed only
//! when complete.

mod download;
mod project;
pub mod record;
mod sink;
mod spool;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::model::Project;
use crate::api::{self, Client, RetryKind};
use crate::archive::{layout, BagInfo};
use crate::progress::{Event, Progress};
use record::{AccountRecord, Missing, OptionsRecord, ProjectRecord, SourceRecord, ToolRecord};
pub use sink::SinkError;

/// The archive format written into `account.json`.
pub const FORMAT: &str = "cvarchive/1";

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The archive to write.
    pub out: PathBuf,
    /// Only these projects; every project when empty.
    pub projects: Vec<Uuid>,
    /// Blob downloads in flight at once.
    pub concurrency: usize,
    /// Also download finished model exports.
    pub include_models: bool,
    /// Export stored predictions and their images.
    pub predictions: bool,
    /// Replace an existing file at `out`.
    pub force: bool,
    /// The largest image accepted (the service's limit is 6 MB).
    pub max_image_bytes: u64,
    /// The largest model package accepted.
    pub max_model_bytes: u64,
}

impl ExportOptions {
    /// Defaults for writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            out: out.into(),
            projects: Vec::new(),
            concurrency: 32,
            include_models: false,
            predictions: true,
            force: false,
            max_image_bytes: 64 << 20,
            max_model_bytes: 8 << 30,
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    /// The archive written.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size.
    pub archive_bytes: u64,
    /// Projects exported.
    pub projects: usize,
    /// Training images archived.
    pub images: u64,
    /// Their bytes.
    pub image_bytes: u64,
    /// Stored predictions archived.
    pub predictions: u64,
    /// Model packages archived.
    pub models: u64,
    /// Wall time.
    pub seconds: f64,
    /// What could not be archived.
    pub missing: Vec<Missing>,
    /// What changed during the export, and count differences.
    pub notes: Vec<String>,
    /// Retries by kind.
    pub retries: Vec<(RetryKind, u64)>,
    /// Whether nothing is missing.
    pub complete: bool,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target exists and `force` was not given.
    #[error("{} already exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    /// The folder of the target cannot hold the archive.
    #[error("cannot create the archive in {}: {source}", path.display())]
    Output { path: PathBuf, source: std::io::Error },
    /// A project asked for by id is not in the account.
    #[error("project {id} does not exist at {endpoint}")]
    ProjectNotFound { id: Uuid, endpoint: String },
    /// The service failed for good.
    #[error(transparent)]
    Api(#[from] api::Error),
    /// The archive could not be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A spool file beside the archive could not be written.
    #[error("cannot write a temporary file beside the archive: {0}")]
    Spool(std::io::Error),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted; nothing was written at the target")]
    Interrupted,
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Exports the account behind `client` into `opts.out`.
pub async fn export(
    client: &Client,
    opts: &ExportOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<ExportSummary, Error> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    if opts.out.exists() && !opts.force {
        return Err(Error::Exists(opts.out.clone()));
    }
    let dir = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let output_error = |source| Error::Output { path: dir.clone(), source };
    let temp = tempfile::Builder::new()
        .prefix(".cvarchive-")
        .suffix(".zip.partial")
        .tempfile_in(&dir)
        .map_err(output_error)?;
    let file = temp.as_file().try_clone().map_err(output_error)?;

    let projects = resolve_projects(client, &opts.projects).await?;
    progress.event(Event::Started { projects: projects.len() });

    let capacity = opts.concurrency.max(1) * 2;
    let mut sink = sink::Sink::start(file, &layout::bag_name_for(&opts.out), capacity, opts.out.clone())?;
    let ctx = project::Ctx { client, opts, progress, cancel, spool_dir: &dir };
    let mut records: Vec<ProjectRecord> = Vec::with_capacity(projects.len());
    let mut account_missing = Vec::new();
    for p in projects {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let id = p.id;
        match project::export_project(&ctx, &mut sink, p).await {
            Ok(record) => records.push(record),
            Err(Error::Api(e)) if e.code() == Some("NotFoundProject") => {
                let reason = format!("the project vanished during the export: {e}");
                progress.event(Event::Warning { message: format!("project {id}: {reason}") });
                account_missing.push(Missing { kind: "project".into(), project: id, id, reason });
            }
            Err(e) => return Err(e),
        }
    }

    let finished_at = chrono::Utc::now();
    let complete = account_missing.is_empty() && records.iter().all(|r| r.missing.is_empty());
    let account = AccountRecord {
        format: FORMAT.into(),
        tool: ToolRecord { name: "cvarchive".into(), version: env!("CARGO_PKG_VERSION").into() },
        source: SourceRecord { endpoint_host: client.host().to_owned(), api_version: api::API_VERSION.into() },
        started: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished: finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        complete,
        options: OptionsRecord {
            projects: (!opts.projects.is_empty()).then(|| opts.projects.clone()),
            predictions: opts.predictions,
            include_models: opts.include_models,
        },
        projects: records,
        missing: account_missing,
    };
    let bytes = serde_json::to_vec_pretty(&account).expect("records serialise");
    sink.send(sink::Item::Deflated { path: layout::account_json().to_owned(), bytes }).await?;
    let info = BagInfo {
        source_host: client.host().to_owned(),
        api_version: api::API_VERSION.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        bagging_date: finished_at.date_naive(),
        extra: Vec::new(),
    };
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    sink.finish(info).await?;

    let (sha256, archive_bytes) =
        hash_file(temp.path()).await.map_err(|e| Error::Output { path: opts.out.clone(), source: e })?;
    publish(temp, &opts.out, opts.force)?;

    let mut missing: Vec<Missing> = account.missing.clone();
    let mut notes = Vec::new();
    for r in &account.projects {
        missing.extend(r.missing.iter().cloned());
        notes.extend(r.notes.iter().map(|n| format!("project {} ({}): {n}", r.name, r.id)));
    }
    Ok(ExportSummary {
        path: opts.out.clone(),
        sha256,
        archive_bytes,
        projects: account.projects.len(),
        images: account.projects.iter().map(|r| r.archived.tagged + r.archived.untagged).sum(),
        image_bytes: account.projects.iter().map(|r| r.archived.image_bytes).sum(),
        predictions: account.projects.iter().map(|r| r.archived.predictions).sum(),
        models: account.projects.iter().map(|r| r.archived.model_exports).sum(),
        seconds: started.elapsed().as_secs_f64(),
        missing,
        notes,
        retries: client.stats().snapshot(),
        complete,
    })
}

/// The projects to export: all of them, or the ones named (each must exist).
async fn resolve_projects(client: &Client, ids: &[Uuid]) -> Result<Vec<Project>, Error> {
    if ids.is_empty() {
        return Ok(client.get_projects().await?);
    }
    let mut projects = Vec::with_capacity(ids.len());
    for id in ids {
        match client.get_project(*id).await {
            Ok(p) => projects.push(p),
            Err(e) if e.is_not_found() => {
                return Err(Error::ProjectNotFound { id: *id, endpoint: client.host().to_owned() })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(projects)
}

/// SHA-256 and size of the finished archive.
async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            total += n as u64;
        }
        Ok((hex::encode(sha.finalize()), total))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Moves the finished archive to its final name, atomically, and makes the rename durable.
fn publish(temp: tempfile::NamedTempFile, out: &Path, force: bool) -> Result<(), Error> {
    let out_error = |e: std::io::Error| Error::Output { path: out.to_path_buf(), source: e };
    temp.as_file().sync_all().map_err(out_error)?;
    if force {
        temp.persist(out).map_err(|e| out_error(e.error))?;
    } else {
        temp.persist_noclobber(out).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(out.to_path_buf())
            } else {
                out_error(e.error)
            }
        })?;
    }
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
