//! The export pipeline: list every category of a Custom Vision account, download every image
//! with bounded concurrency, hash it as it streams, and hand everything to the single archive
//! writer. The archive is written under a temporary name beside the target and renamed only
//! when complete.
//!
//! Memory stays a fixed budget plus a few bytes per image: per project being exported (two at
//! once), an `ids::IdSet` of its image ids (about 12 bytes an image) and a bit per image for each
//! listing pass and each trained iteration; for the whole archive, the writer's index (about 10-20
//! bytes an entry, `archive::index`). Every line of metadata, every id list and every record of
//! `--base` or of a resumed archive waits in temporary files beside the archive.

pub mod account;
mod base;
mod download;
mod ids;
mod iterations;
mod models;
mod output;
pub mod plan;
mod predictions;
mod project;
mod resume;
mod sink;
mod spool;

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::model::Project;
use crate::api::{self, Client, RetryKind};
use crate::archive::{self, layout, BagInfo, BagSummary, BagWriter};
use crate::progress::{Event, Phase, Progress};
use account::{AccountFile, AccountOptions, AccountProject, AccountSource, AccountTool, Missing};
pub use sink::SinkError;

/// The archive format written into `account.json`.
pub const FORMAT: &str = "cvarchive/1";

/// Projects exported at once.
const PROJECTS_IN_FLIGHT: usize = 2;

/// Downloads in flight by default: blob storage answers each request slowly but serves many at
/// once, so throughput grows with concurrency well past what memory notices.
pub const DEFAULT_CONCURRENCY: usize = 32;

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
    /// Discard a partial archive left by an interrupted export instead of resuming it.
    pub fresh: bool,
    /// A previous archive of the same account: images it holds are copied from it, not
    /// downloaded (an incremental backup; the result is still complete on its own). It may be
    /// in a store: its entries are then copied by ranged reads.
    pub base: Option<crate::store::Location>,
    /// Upload the archive to a store as it is written; `out` is then the local spool file.
    pub upload: Option<crate::store::upload::Target>,
    /// The largest image accepted (the service's limit is 6 MB).
    pub max_image_bytes: u64,
    /// The largest model package accepted.
    pub max_model_bytes: u64,
    /// What a survey just read (the room check's): the projects, domains and image counts are
    /// then not read again at the start.
    pub surveyed: Option<plan::Surveyed>,
}

impl ExportOptions {
    /// Defaults for writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            out: out.into(),
            projects: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            include_models: false,
            predictions: true,
            force: false,
            fresh: false,
            base: None,
            upload: None,
            max_image_bytes: 64 << 20,
            max_model_bytes: 8 << 30,
            surveyed: None,
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
    /// Training images archived (the workspace's, and those only iterations hold).
    pub images: u64,
    /// Of those, the images only trained iterations hold (deleted from the workspace).
    pub only_in_iterations: u64,
    /// Their bytes.
    pub image_bytes: u64,
    /// Stored predictions archived.
    pub predictions: u64,
    /// Model packages archived.
    pub models: u64,
    /// Image and prediction bytes downloaded by this run.
    pub downloaded_bytes: u64,
    /// Images and prediction images copied from the base archive instead of downloaded.
    pub from_base: u64,
    /// Wall time.
    pub seconds: f64,
    /// What could not be archived.
    pub missing: Vec<Missing>,
    /// What changed during the export, and count differences.
    pub notes: Vec<String>,
    /// Retries by kind; in JSON one object, `{"throttled": 3, "serverError": 1}`, the kinds
    /// spelt as in `retry` events.
    #[serde(serialize_with = "retries_as_object")]
    pub retries: Vec<(RetryKind, u64)>,
    /// Whether nothing is missing.
    pub complete: bool,
    /// For an archive uploaded to a store: its parts, and what a resume did not send again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<crate::store::upload::UploadStats>,
}

/// Retry counts as one object of kind -> count (see [`ExportSummary::retries`]).
fn retries_as_object<S: serde::Serializer>(retries: &[(RetryKind, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(retries.iter().map(|(k, n)| (k, n)))
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target exists and `force` was not given.
    #[error("{} already exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    /// The folder of the target cannot hold the archive.
    #[error("cannot create the archive in {}", path.display())]
    Output { path: PathBuf, source: std::io::Error },
    /// A project asked for by id is not in the account; `valid` are the ones it holds (id, name).
    #[error("project {id} does not exist at {endpoint}; {}", plan::describe_valid(valid))]
    ProjectNotFound { id: Uuid, endpoint: String, valid: Vec<(Uuid, String)> },
    /// `--out` names a folder; it must name the archive file.
    #[error("{} is a folder; --out names the archive file to write, e.g. {}", .0.display(), .0.join("backup.zip").display())]
    OutIsFolder(PathBuf),
    /// The folder `--out` would be written in does not exist.
    #[error("cannot write {}: the folder {} does not exist", out.display(), folder.display())]
    NoFolder { out: PathBuf, folder: PathBuf },
    /// The disk holding `--out` has less room than the archive is estimated to take.
    #[error(
        "not enough room in {}: the archive is estimated at {need} bytes and {free} bytes are free (an estimate from \
         the images' dimensions; see `cvarchive export --dry-run`); free some space, choose another --out, or pass \
         --skip-space-check",
        folder.display()
    )]
    NoRoom { folder: PathBuf, need: u64, free: u64 },
    /// The service failed for good.
    #[error(transparent)]
    Api(api::Error),
    /// The archive could not be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A spool file beside the archive could not be written.
    #[error("cannot write a temporary file beside the archive")]
    Spool(#[source] std::io::Error),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// The export stopped after it began writing; what it wrote is kept for the next run.
    #[error("the export stopped, keeping what was archived so far in {} (nothing was written at the target; run the same command again to resume)", partial.display())]
    Resumable {
        partial: PathBuf,
        #[source]
        cause: Box<Error>,
    },
    /// A partial archive is there that this export cannot continue.
    #[error("cannot resume {}: {reason}; run the same command as before, or pass --fresh to discard it and start over", path.display())]
    CannotResume { path: PathBuf, reason: String },
    /// The store refused or failed the upload.
    #[error("cannot upload the archive")]
    Store(#[source] crate::store::Error),
    /// The previous archive given for an incremental export cannot be used.
    #[error(transparent)]
    Base(base::BaseError),
    /// Another export is writing the same archive.
    #[error("another cvarchive export is writing {} right now", .0.display())]
    Busy(PathBuf),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<api::Error> for Error {
    /// A call the client's cancellation stopped is the export's interruption, whichever step it
    /// was in.
    fn from(e: api::Error) -> Error {
        match e {
            api::Error::Interrupted { .. } => Error::Interrupted,
            e => Error::Api(e),
        }
    }
}

/// Exports the account behind `client` into `opts.out`.
///
/// The archive is written to `<out>.partial` (with its journal beside it) and renamed to `out`
/// only when complete. If the export stops (Ctrl-C, an error, `kill -9`), running it again with
/// the same options continues from what the partial archive holds; `opts.fresh` discards it.
/// Give the client the same token as `cancel` ([`ClientOptions::cancel`](crate::api::ClientOptions))
/// so that calls in flight stop with the export instead of running to their timeouts.
pub async fn export(
    client: &Client,
    opts: &ExportOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<ExportSummary, Error> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    // A link at the target counts as something there, dangling or not; a folder is refused
    // before anything is downloaded, not at the final rename.
    plan::check_out(&opts.out, opts.force)?;
    let dir = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let partial = partial_path(&opts.out);
    let base = match &opts.base {
        Some(path) => {
            let (path, dir) = (path.clone(), dir.clone());
            let opened = tokio::task::spawn_blocking(move || base::Base::open(&path, &dir)).await;
            Some(opened.map_err(|e| Error::Internal(e.to_string()))?.map_err(Error::Base)?)
        }
        None => None,
    };
    progress.event(Event::Phase { phase: Phase::Connecting, project_id: None });
    let projects = match &opts.surveyed {
        Some(surveyed) => surveyed.projects.clone(),
        None => resolve_projects(client, &opts.projects).await?,
    };
    progress.event(Event::Started { projects: projects.len() });
    progress.event(Event::Phase { phase: Phase::Listing, project_id: None });

    let resuming = crate::sidefile::occupied(&partial) && !opts.fresh;
    let record = match &opts.upload {
        Some(target) if resuming => output::earlier_record(&partial, target)?,
        _ => None,
    };
    let trusted = record.as_ref().map_or(0, |r| r.trusted());
    let (mut writer, kept, kept_files) =
        open_writer(&partial, &layout::bag_name_for(&opts.out), &fingerprint(client, opts), opts.fresh, &dir, trusted)?;
    let mut upload = match &opts.upload {
        Some(target) => Some(output::start_upload(target, &partial, record, &mut writer).await?),
        None => None,
    };
    if kept_files > 0 {
        progress.event(Event::Warning {
            message: format!("resuming: {kept_files} files kept from the interrupted export in {}", partial.display()),
        });
    }
    let sink = sink::Sink::start(writer, opts.concurrency.max(1) * 2, opts.out.clone())?;
    let counters = project::Counters::default();
    let across = AcrossProjects { kept: &kept, base: base.as_ref(), counters: &counters };
    let result = Run { client, opts, progress, cancel, dir: &dir, across, started_at }.run(sink, projects).await;
    let stopped = |cause: Error| Error::Resumable { partial: partial.clone(), cause: Box::new(cause) };
    let (account, bag) = match result {
        Ok(done) => done,
        Err((e, sink)) => {
            // Keep everything written so far durable and journaled before reporting, and report
            // the writer's own error when it is the writer that stopped.
            let e = match (e, sink) {
                (Error::Sink(_), Some(sink)) => Error::Sink(sink.stopped_error().await),
                (e, Some(sink)) => {
                    sink.abandon().await;
                    e
                }
                (e, None) => e,
            };
            output::abandon_upload(upload).await;
            return Err(stopped(e));
        }
    };
    let mut upload_stats = None;
    let (sha256, archive_bytes) = match upload.take() {
        Some(up) => {
            let shipped = output::finish_upload(up, &partial, bag.archive_bytes).await.map_err(stopped)?;
            upload_stats = Some(shipped.stats);
            (Some(hex::encode(shipped.sha256)), shipped.bytes)
        }
        None => (None, bag.archive_bytes),
    };
    // The writer hashed the archive as it wrote it; only when it could not is the file read again.
    let (sha256, archive_bytes) = match (sha256, bag.archive_sha256) {
        (Some(sha), _) => (sha, archive_bytes),
        (None, Some(sha)) => (hex::encode(sha), bag.archive_bytes),
        (None, None) => output::hash_archive(&partial)
            .await
            .map_err(|e| stopped(Error::Output { path: partial.clone(), source: e }))?,
    };
    let path = match &opts.upload {
        Some(target) => PathBuf::from(target.url.to_string()),
        None => {
            output::publish(&partial, &opts.out, opts.force).map_err(stopped)?;
            opts.out.clone()
        }
    };

    let mut missing: Vec<Missing> = account.missing.clone();
    let mut notes = Vec::new();
    for r in &account.projects {
        missing.extend(r.missing.iter().cloned());
        notes.extend(r.notes.iter().map(|n| format!("project {} ({}): {n}", r.name, r.id)));
    }
    Ok(ExportSummary {
        path,
        sha256,
        archive_bytes,
        projects: account.projects.len(),
        images: account
            .projects
            .iter()
            .map(|r| r.archived.tagged + r.archived.untagged + r.archived.only_in_iterations)
            .sum(),
        only_in_iterations: account.projects.iter().map(|r| r.archived.only_in_iterations).sum(),
        image_bytes: account.projects.iter().map(|r| r.archived.image_bytes).sum(),
        predictions: account.projects.iter().map(|r| r.archived.predictions).sum(),
        models: account.projects.iter().map(|r| r.archived.model_exports).sum(),
        downloaded_bytes: counters.downloaded_bytes.load(std::sync::atomic::Ordering::Relaxed),
        from_base: counters.from_base.load(std::sync::atomic::Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        missing,
        notes,
        retries: client.stats().snapshot(),
        complete: account.complete,
        upload: upload_stats,
    })
}

/// What every project's export shares besides the client and options: the blobs an interrupted run
/// left, the base archive and the counters.
struct AcrossProjects<'a> {
    kept: &'a resume::ResumedBlobs,
    base: Option<&'a base::Base>,
    counters: &'a project::Counters,
}

/// The export proper, once the archive is open: what every step reads.
struct Run<'a> {
    client: &'a Client,
    opts: &'a ExportOptions,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    /// Where spooled metadata goes (the archive's folder).
    dir: &'a Path,
    across: AcrossProjects<'a>,
    started_at: chrono::DateTime<chrono::Utc>,
}

/// A failed run: the error, and the sink when it is still there to be closed cleanly.
type Failed = (Error, Option<sink::Sink>);

impl Run<'_> {
    /// Exports every project, then writes `account.json`, the page and the bag's end. On failure
    /// it hands the sink back so the caller can close it cleanly.
    async fn run(&self, sink: sink::Sink, projects: Vec<Project>) -> Result<(AccountFile, BagSummary), Failed> {
        // Metadata is read afresh every run; only downloaded blobs carry over.
        let kept = self.across.kept;
        for path in kept.metadata_paths() {
            if let Err(e) = sink.send(sink::Item::Forget { path }).await {
                return Err((e.into(), Some(sink)));
            }
        }
        let (records, account_missing) = match self.projects(&sink, projects).await {
            Ok(done) => done,
            Err(e) => return Err((e, Some(sink))),
        };
        if self.cancel.is_cancelled() {
            return Err((Error::Interrupted, Some(sink)));
        }
        // Blobs kept from an earlier run that this run did not meet (deleted since) are left out.
        let unclaimed = match kept.unclaimed_paths() {
            Ok(paths) => paths,
            Err(e) => return Err((Error::Spool(e), Some(sink))),
        };
        for path in unclaimed {
            if let Err(e) = sink.send(sink::Item::Forget { path }).await {
                return Err((e.into(), Some(sink)));
            }
        }
        self.finish(sink, records, account_missing).await
    }

    /// Every project's export, two at a time: one's metadata calls overlap the other's
    /// downloads. Records come back in project order, with the projects that vanished meanwhile.
    async fn projects(
        &self,
        sink: &sink::Sink,
        projects: Vec<Project>,
    ) -> Result<(Vec<AccountProject>, Vec<Missing>), Error> {
        // Domain types (Classification, ObjectDetection) name what each project is; not essential.
        let domains = match &self.opts.surveyed {
            Some(surveyed) => surveyed.domains.clone(),
            None => match self.client.get_domains().await {
                Ok(d) => d.into_iter().filter_map(|d| Some((d.id, d.domain_type?))).collect(),
                Err(_) => std::collections::HashMap::new(),
            },
        };
        let downloads = tokio::sync::Semaphore::new(self.opts.concurrency.max(1));
        let ctx = project::Ctx {
            downloads: &downloads,
            domains: &domains,
            client: self.client,
            opts: self.opts,
            progress: self.progress,
            cancel: self.cancel,
            spool_dir: self.dir,
            kept: self.across.kept,
            base: self.across.base,
            counters: self.across.counters,
        };
        let mut records: Vec<AccountProject> = Vec::with_capacity(projects.len());
        let mut account_missing = Vec::new();
        let ctx_ref = &ctx;
        let mut exports = futures::stream::iter(projects)
            .map(|p| async move {
                let id = p.id;
                (id, project::export_project(ctx_ref, sink, p).await)
            })
            .buffered(PROJECTS_IN_FLIGHT);
        while let Some((id, result)) = exports.next().await {
            match result {
                Ok(record) => records.push(record),
                Err(Error::Api(e)) if e.code() == Some("NotFoundProject") => {
                    let reason = format!("the project vanished during the export: {e}");
                    self.progress.event(Event::Warning { message: format!("project {id}: {reason}") });
                    account_missing.push(Missing { kind: "project".into(), project: id, id, reason });
                }
                Err(e) => return Err(e),
            }
        }
        Ok((records, account_missing))
    }

    /// `account.json`, the browse page and the bag's end.
    async fn finish(
        &self,
        sink: sink::Sink,
        records: Vec<AccountProject>,
        account_missing: Vec<Missing>,
    ) -> Result<(AccountFile, BagSummary), Failed> {
        let (client, opts) = (self.client, self.opts);
        self.progress.event(Event::Phase { phase: Phase::Finishing, project_id: None });
        let finished_at = chrono::Utc::now();
        let complete = account_missing.is_empty() && records.iter().all(|r| r.missing.is_empty());
        let account = AccountFile {
            format: FORMAT.into(),
            tool: AccountTool { name: "cvarchive".into(), version: env!("CARGO_PKG_VERSION").into() },
            source: AccountSource { endpoint_host: client.host().to_owned(), api_version: api::API_VERSION.into() },
            started: self.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            finished: finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            complete,
            options: AccountOptions {
                projects: (!opts.projects.is_empty()).then(|| opts.projects.clone()),
                predictions: opts.predictions,
                include_models: opts.include_models,
            },
            projects: records,
            missing: account_missing,
        };
        let bytes = serde_json::to_vec_pretty(&account).expect("records serialise");
        if let Err(e) = sink.send(sink::Item::Deflated { path: layout::account_json().to_owned(), bytes }).await {
            return Err((e.into(), Some(sink)));
        }
        if let Err(e) = sink.send(sink::Item::RenderPage).await {
            return Err((e.into(), Some(sink)));
        }
        if self.cancel.is_cancelled() {
            return Err((Error::Interrupted, Some(sink)));
        }
        let info = BagInfo {
            source_host: client.host().to_owned(),
            api_version: api::API_VERSION.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            bagging_date: finished_at.date_naive(),
            extra: Vec::new(),
        };
        match sink.finish(info).await {
            Ok(summary) => Ok((account, summary)),
            Err(e) => Err((e.into(), None)),
        }
    }
}

/// `<out>.partial`: where the archive is written until it is complete.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// What makes two runs the same job: the source, the projects and what is included. A partial
/// archive is only resumed by the same job.
fn fingerprint(client: &Client, opts: &ExportOptions) -> String {
    let mut projects: Vec<String> = opts.projects.iter().map(Uuid::to_string).collect();
    projects.sort();
    let projects = if projects.is_empty() { "all".to_owned() } else { projects.join(",") };
    format!(
        "{FORMAT} host={} projects={projects} predictions={} models={}",
        client.host(),
        opts.predictions,
        opts.include_models
    )
}

/// Opens the partial archive: resumes it when one is there (unless `fresh`), else starts one.
/// Returns the writer, the blobs it kept (sorted into spill files in `dir`) and how many files
/// it kept.
fn open_writer(
    partial: &Path,
    bag_name: &str,
    fingerprint: &str,
    fresh: bool,
    dir: &Path,
    trusted: u64,
) -> Result<(BagWriter, resume::ResumedBlobs, u64), Error> {
    // A link planted at the partial path is "there": resuming refuses it and names it, rather
    // than a fresh start creating the file it points to.
    let exists = crate::sidefile::occupied(partial);
    let result = if exists && !fresh {
        let mut sorting = resume::Sorting::new_in(dir).map_err(Error::Spool)?;
        BagWriter::resume_shipped(partial, bag_name, fingerprint, trusted, |e| sorting.add(e)).and_then(|w| {
            let kept = sorting.len();
            let blobs = sorting.finish().map_err(|source| archive::Error::Io { path: dir.to_path_buf(), source })?;
            Ok((w, blobs, kept))
        })
    } else {
        BagWriter::create(partial, bag_name, fingerprint).map(|w| (w, resume::ResumedBlobs::default(), 0))
    };
    result.map_err(|e| match e {
        archive::Error::Resume { path, reason } if reason.contains("journal") && reason.contains("missing") => {
            // The writer removes the journal just before the final rename: a partial archive
            // without one is most likely complete.
            let reason = format!(
                "{reason} (if an export was stopped while it finished, this file is complete: check it with `cvarchive verify {}` and rename it)",
                path.display()
            );
            Error::CannotResume { path, reason }
        }
        archive::Error::Resume { path, reason } => Error::CannotResume { path, reason },
        archive::Error::Locked { path } => Error::Busy(path),
        archive::Error::Io { path, source } => Error::Output { path, source },
        source => Error::Output { path: partial.to_path_buf(), source: std::io::Error::other(source) },
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
            Err(e) if e.is_gone() => {
                let all = client.get_projects().await.unwrap_or_default();
                return Err(plan::not_found(*id, client.host(), &all));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(projects)
}
