//! Deletion: the other half of the user's data rights. A dry run unless told to execute; a
//! verified backup that holds everything about to go; deletes in the service's order and batch
//! sizes; a confirmation that what should be gone is gone; and a receipt of every decision.
//!
//! # Layout
//!
//! - [`backup`]: the backup relied on: opened once, verified in full, hashed, indexed by id and
//!   content, all from that one open file.
//! - [`content`]: what the gate compares beyond ids (tags, regions, metadata...), as digests.
//! - [`held`]: the backup's index of each project's images, in a temporary file, read back one
//!   project at a time.
//! - [`holdings`]: what each trained iteration holds, beside the workspace.
//! - [`plan`]: a read-only survey of the service: what would be deleted, in how many calls, and
//!   what the API cannot delete.
//! - `run`: the deletes, in order (unpublish, images, tags, iterations, predictions, project),
//!   each answer of the service that the thing is not found (never the gateway's 404) counted
//!   as done, then the confirmation.
//! - [`receipt`]: the receipt, merged across reruns and written atomically.

pub mod backup;
pub mod content;
pub mod held;
pub mod holdings;
pub mod plan;
pub mod receipt;
mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{self, Client};
use crate::progress::{Event, Phase, Progress};
use crate::store::Location;
use crate::verify::Finding;
pub use backup::{Backup, Findings, Lacking};
pub use content::Difference;
pub use plan::{Plan, ProjectPlan};
pub use receipt::{Receipt, RunOutcome};

/// A category of data `--only` can narrow a deletion to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Training images (tagged and untagged).
    Images,
    /// Tags (deleting one also takes it off every image).
    Tags,
    /// Iterations (published ones are unpublished first).
    Iterations,
    /// Stored predictions.
    Predictions,
}

impl Category {
    /// The lowercase name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Images => "images",
            Category::Tags => "tags",
            Category::Iterations => "iterations",
            Category::Predictions => "predictions",
        }
    }
}

/// Which projects a deletion is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Targets {
    /// These projects.
    Projects(Vec<Uuid>),
    /// Every project the endpoint lists.
    AllProjects,
}

/// What to delete and how carefully.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// The projects.
    pub targets: Targets,
    /// Only this category of each project; the whole project (and everything in it) when `None`.
    pub only: Option<Category>,
    /// The backup that must hold everything about to be deleted: a file, or an object in a
    /// store (read by ranged reads).
    pub backup: Option<Location>,
    /// Delete with no backup at all. Nothing can be restored afterwards.
    pub without_backup: bool,
    /// Accept a backup that names another endpoint (or none) as its source, e.g. after the
    /// resource moved; without it such a backup is refused.
    pub backup_from_other_endpoint: bool,
    /// Carry the plan out; without it nothing is changed.
    pub execute: bool,
    /// Where the receipt goes (and where an earlier run's receipt is read from).
    pub receipt: Option<PathBuf>,
    /// Delete each project's images with one `allImages` call (202, then the counts are polled
    /// until zero) instead of batches of ids.
    pub bulk_images: bool,
    /// With `only: Some(Images)`: send `allIterations=true`, so that trained iterations' copies
    /// of the images go too (and those only iterations hold are deleted with them). Without it
    /// the iterations keep their copies. Ignored for other deletions: whole projects and
    /// iterations destroy the iterations' copies with the iterations.
    pub all_iterations: bool,
    /// How often the counts are read while an `allImages` delete finishes.
    pub poll_interval: Duration,
    /// How long to wait for an `allImages` delete to finish.
    pub poll_timeout: Duration,
}

impl DeleteOptions {
    /// A dry run over `targets` against the backup at `backup`.
    pub fn new<B: Into<Location>>(targets: Targets, backup: Option<B>) -> DeleteOptions {
        DeleteOptions {
            targets,
            only: None,
            backup: backup.map(Into::into),
            without_backup: false,
            backup_from_other_endpoint: false,
            execute: false,
            receipt: None,
            bulk_images: false,
            all_iterations: false,
            poll_interval: Duration::from_secs(2),
            poll_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// Whether DeleteImages sends `allIterations=true`: only for `--only images
    /// --all-iterations`. A whole-project deletion sends it never: the iterations' copies go with
    /// the iterations, and until then an interrupted run leaves them in place.
    pub fn sends_all_iterations(&self) -> bool {
        self.all_iterations && self.only == Some(Category::Images)
    }

    /// The receipt path: the one given, else beside the backup, else in the current folder (also
    /// for a backup in a store, named after it: nothing is written into the store).
    pub fn receipt_path(&self) -> PathBuf {
        if let Some(p) = &self.receipt {
            return p.clone();
        }
        match &self.backup {
            Some(remote @ Location::Remote(_)) => {
                let name = Path::new(remote.file_name().unwrap_or(std::ffi::OsStr::new("backup")));
                let stem =
                    name.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into());
                PathBuf::from(format!("{stem}.delete-receipt.json"))
            }
            Some(Location::Local(b)) => {
                let stem = b.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into());
                b.with_file_name(format!("{stem}.delete-receipt.json"))
            }
            None => PathBuf::from("cvarchive-delete-receipt.json"),
        }
    }
}

/// What [`delete`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Outcome {
    /// Nothing was changed; this is what would be.
    DryRun(Plan),
    /// The plan was carried out (completely or not: see the receipt).
    Executed(Box<Executed>),
}

/// An executed deletion: the plan it followed and the receipt written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Executed {
    /// The plan surveyed at the start of this run.
    pub plan: Plan,
    /// The receipt, covering this run and any earlier ones.
    pub receipt: Receipt,
    /// Where the receipt was written.
    pub receipt_path: PathBuf,
    /// The SHA-256 of the receipt file, hex.
    pub receipt_sha256: String,
    /// How this run ended.
    pub outcome: RunOutcome,
}

/// Why a deletion was refused or could not run. Nothing has been deleted when one of these is
/// returned (an interrupted or failing execution still returns [`Outcome::Executed`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No backup, and deleting without one was not explicitly asked for.
    #[error(
        "refusing to delete without a backup: pass --backup PATH (a verified cvarchive export), or \
         --without-backup-accept-permanent-loss to delete with no way back"
    )]
    NoBackup,
    /// The backup cannot be read at all.
    #[error("the backup {} cannot be read: {detail}", path.display())]
    BackupUnreadable {
        /// The backup file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The backup does not verify.
    #[error("refusing to delete: the backup {} does not verify ({} finding(s)){}", path.display(), findings.len(), list(findings))]
    BackupDamaged {
        /// The backup file.
        path: PathBuf,
        /// What verify found.
        findings: Vec<Finding>,
    },
    /// The backup lacks some of what would be deleted.
    #[error("refusing to delete: the backup {} lacks {} item(s) that would be deleted{}", path.display(), lacking.len(), list(lacking))]
    BackupLacks {
        /// The backup file.
        path: PathBuf,
        /// Everything it lacks.
        lacking: Vec<Lacking>,
    },
    /// The backup holds some of what would be deleted with other content than the service holds
    /// now (changed since the backup was taken).
    #[error(
        "refusing to delete: {} item(s) changed at the service since the backup {} was taken; take a new \
         backup{}",
        total, path.display(), list_more(differences, *total)
    )]
    BackupDiffers {
        /// The backup file.
        path: PathBuf,
        /// The first differences (at most [`content::MAX_DIFFERENCES`]).
        differences: Vec<Difference>,
        /// How many there are in all.
        total: u64,
    },
    /// The backup was taken from another endpoint than the one deleted from.
    #[error(
        "refusing to delete: the backup {} was taken from {backup_endpoint}, not from {endpoint}; pass \
         --backup-from-other-endpoint if it is a backup of this account all the same",
        path.display()
    )]
    OtherEndpoint {
        /// The backup file.
        path: PathBuf,
        /// The endpoint host the backup names (or how its two records differ).
        backup_endpoint: String,
        /// The endpoint host deleted from.
        endpoint: String,
    },
    /// The backup's path no longer names the file verified, or that file was written since.
    #[error(
        "refusing to delete: the backup {} was replaced or changed after it was verified; run the command again",
        path.display()
    )]
    BackupChanged {
        /// The backup file.
        path: PathBuf,
    },
    /// An earlier receipt at the receipt path belongs to another endpoint or backup.
    #[error("the receipt {} belongs to another deletion ({reason}); pass another --receipt path", path.display())]
    ReceiptMismatch {
        /// The receipt file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The receipt cannot be read or written.
    #[error("the receipt {}: {detail}", path.display())]
    Receipt {
        /// The receipt file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A trained iteration's listing stays short of its counts, so the images only it holds
    /// cannot all be named (and checked against the backup) before it is destroyed.
    #[error(
        "refusing to delete: iteration {iteration} of project {project} lists {listed} image(s) but its counts \
         report {reported}, so the images only it holds cannot all be checked against the backup; run again later"
    )]
    IterationUnlisted {
        /// The project.
        project: Uuid,
        /// The iteration.
        iteration: Uuid,
        /// Images its listing returned.
        listed: u64,
        /// Images its counts report.
        reported: u64,
    },
    /// The service failed while the plan was being surveyed.
    #[error(transparent)]
    Api(#[from] api::Error),
    /// Ctrl-C or SIGTERM before anything was deleted.
    #[error("interrupted before anything was deleted")]
    Interrupted,
}

/// The first few items of a list, one per line, for an error message.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    list_more(items, items.len() as u64)
}

/// Like [`list`], for the first items of `total`.
fn list_more<T: std::fmt::Display>(items: &[T], total: u64) -> String {
    const SHOWN: usize = 20;
    let mut s = String::new();
    for item in items.iter().take(SHOWN) {
        s.push_str("\n  ");
        s.push_str(&item.to_string());
    }
    let shown = items.len().min(SHOWN) as u64;
    if total > shown {
        s.push_str(&format!("\n  ... and {} more", total - shown));
    }
    s
}

/// Plans a deletion and, when `opts.execute` is set, carries it out and writes the receipt.
///
/// Refuses (with nothing deleted) when there is no backup and `without_backup` is not set, when
/// the backup does not verify in full, names another endpoint (unless
/// `backup_from_other_endpoint`), lacks anything the plan would delete or holds it with other
/// content than the service now, or when its path was replaced or written after it was verified.
pub async fn delete(
    client: &Client,
    opts: &DeleteOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Outcome, Error> {
    let backup = match (&opts.backup, opts.without_backup) {
        (Some(path), _) => {
            progress.event(Event::Phase { phase: Phase::Verifying, project_id: None });
            Some(open_backup(path, progress).await?)
        }
        (None, true) => None,
        (None, false) => return Err(Error::NoBackup),
    };
    let other_endpoint = backup.as_ref().and_then(|b| b.other_endpoint(client.host()));
    if let (Some(backup), Some(other)) = (&backup, &other_endpoint) {
        if !opts.backup_from_other_endpoint {
            return Err(Error::OtherEndpoint {
                path: backup.path.clone(),
                backup_endpoint: other.clone(),
                endpoint: client.host().to_owned(),
            });
        }
    }
    progress.event(Event::Phase { phase: Phase::Connecting, project_id: None });
    // Each project is checked against the backup as soon as it is surveyed, so that the plan
    // need not keep what the service holds of every image (see plan::ProjectPlan::image_content).
    let mut findings = Findings::default();
    let all_iterations = opts.sends_all_iterations();
    let mut gate = |p: &ProjectPlan| match &backup {
        Some(backup) => backup.check(all_iterations, p, &mut findings),
        None => Ok(()),
    };
    let mut plan = plan::survey(client, opts, progress, cancel, &mut gate).await?;
    plan.backup_from_other_endpoint = other_endpoint;
    if let Some(backup) = &backup {
        if !findings.lacking.is_empty() {
            return Err(Error::BackupLacks { path: backup.path.clone(), lacking: findings.lacking });
        }
        let differs = findings.differences;
        if !differs.is_empty() {
            let total = differs.total();
            return Err(Error::BackupDiffers { path: backup.path.clone(), differences: differs.kept, total });
        }
        backup.check_unchanged()?;
    }
    if !opts.execute {
        return Ok(Outcome::DryRun(plan));
    }
    let path = opts.receipt_path();
    let mut receipt = Receipt::start(&path, client.host(), backup.as_ref(), opts, &plan)?;
    progress.event(Event::Phase { phase: Phase::Deleting, project_id: None });
    let outcome = run::execute(client, opts, &plan, &mut receipt, &path, progress, cancel).await;
    let sha = receipt.finish_run(outcome, &path)?;
    Ok(Outcome::Executed(Box::new(Executed { plan, receipt, receipt_path: path, receipt_sha256: sha, outcome })))
}

/// Verifies the backup, reports it, then hashes and indexes the same open file (or object).
async fn open_backup(location: &Location, progress: &dyn Progress) -> Result<Backup, Error> {
    let failed = |e: tokio::task::JoinError| Error::BackupUnreadable {
        path: location.display_path(),
        detail: format!("the check failed: {e}"),
    };
    let owned = location.clone();
    let verified = tokio::task::spawn_blocking(move || Backup::verify(&owned)).await.map_err(failed)??;
    progress.event(Event::BackupVerified { bytes: verified.bytes() });
    tokio::task::spawn_blocking(move || Backup::index(verified)).await.map_err(failed)?
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{DeleteOptions, Targets};
    use crate::store::Location;

    #[test]
    fn the_receipt_goes_beside_a_local_backup_and_in_the_current_folder_for_a_remote_one() {
        let receipt = |backup: &str| {
            let backup = Location::parse(std::ffi::OsStr::new(backup)).unwrap();
            DeleteOptions::new(Targets::AllProjects, Some(backup)).receipt_path()
        };
        assert_eq!(receipt("out/backup.zip"), Path::new("out/backup.delete-receipt.json"));
        assert_eq!(receipt("az://backups/nightly/backup.zip"), Path::new("backup.delete-receipt.json"));
        assert_eq!(receipt("s3://bucket/b.zip"), Path::new("b.delete-receipt.json"));
        let none: Option<PathBuf> = None;
        assert_eq!(
            DeleteOptions::new(Targets::AllProjects, none).receipt_path(),
            Path::new("cvarchive-delete-receipt.json")
        );
    }
}
