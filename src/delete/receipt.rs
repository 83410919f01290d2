//! The receipt: what was deleted (ids and counts per category), when, at which endpoint, on the
//! strength of which backup (its SHA-256), what the API cannot delete, and every failure. A rerun
//! with the same receipt path continues it: earlier runs stay, ids merge.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::backup::Backup;
use super::plan::{NotDeletable, Plan, Published};
use super::{Category, DeleteOptions, Error};

/// The `format` of a receipt.
pub const RECEIPT_FORMAT: &str = "cvarchive-delete-receipt/1";

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunOutcome {
    /// Everything planned is gone, and confirmed gone.
    Complete,
    /// The run went to the end, but some steps failed (listed).
    Failures,
    /// Ctrl-C, SIGTERM or a caller's cancellation stopped it between two calls.
    Interrupted,
}

/// The receipt document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// `cvarchive <version>`.
    pub tool: String,
    /// The endpoint's host.
    pub endpoint_host: String,
    /// The backup relied on; `None` when deleting without one was asked for.
    pub backup: Option<BackupRef>,
    /// The category deleted, or `None` for whole projects.
    pub only: Option<Category>,
    /// Whether DeleteImages was sent with `allIterations=true` (`--only images
    /// --all-iterations`): trained iterations' copies went too. `false`: trained iterations keep
    /// their copies of the deleted images (listed per project in `keptInIterations`), unless the
    /// iterations themselves were deleted.
    #[serde(default)]
    pub all_iterations: bool,
    /// When the first run started (RFC 3339, UTC).
    pub started: String,
    /// When the receipt was last written.
    pub updated: String,
    /// Whether the latest run finished with everything confirmed gone.
    pub complete: bool,
    /// Deleted over all runs.
    pub totals: Counts,
    /// Every run, oldest first.
    pub runs: Vec<Run>,
    /// What was deleted, per project, over all runs.
    pub projects: Vec<ProjectReceipt>,
    /// What the API cannot delete.
    pub not_deletable: Vec<NotDeletable>,
    /// Failures of the latest run, still to be resolved (by a rerun).
    pub failures: Vec<Failure>,
}

/// The backup a deletion relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRef {
    /// Where it was.
    pub path: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// `full`: every payload file was re-hashed before anything was deleted.
    pub verified: String,
    /// How the backup names its source when that is not the endpoint deleted from (accepted
    /// with `--backup-from-other-endpoint`); absent when it is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_endpoint: Option<String>,
}

/// Counts per category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Projects deleted.
    pub projects: u64,
    /// Iterations unpublished.
    pub unpublished: u64,
    /// Training images deleted.
    pub images: u64,
    /// Tags deleted.
    pub tags: u64,
    /// Iterations deleted.
    pub iterations: u64,
    /// Stored predictions deleted.
    pub predictions: u64,
    /// Images only trained iterations held, destroyed with those iterations or the project.
    #[serde(default)]
    pub only_in_iterations: u64,
}

impl Counts {
    fn add(&mut self, what: Category, n: u64) {
        match what {
            Category::Images => self.images += n,
            Category::Tags => self.tags += n,
            Category::Iterations => self.iterations += n,
            Category::Predictions => self.predictions += n,
        }
    }
}

/// One run of the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// When it started.
    pub started: String,
    /// When it ended, if it did.
    pub finished: Option<String>,
    /// How it ended, if it did.
    pub outcome: Option<RunOutcome>,
    /// Mutating calls the plan of this run called for.
    pub planned_calls: u64,
    /// What this run deleted.
    pub deleted: Counts,
    /// What failed in this run.
    pub failures: Vec<Failure>,
}

/// What was deleted of one project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectReceipt {
    /// The project.
    pub id: Uuid,
    /// Its name, when it was seen.
    pub name: Option<String>,
    /// The project itself is deleted.
    pub project_deleted: bool,
    /// Publications removed (name and prediction resource), to re-publish after a restore.
    pub unpublished: Vec<Published>,
    /// Training images deleted (with `allIterations`, also those only trained iterations held).
    pub images: BTreeSet<Uuid>,
    /// Deleted images whose copies trained iterations keep: DeleteImages was sent without
    /// `allIterations`, so these are still in the service, in those iterations.
    #[serde(default)]
    pub kept_in_iterations: BTreeSet<Uuid>,
    /// Images only trained iterations held (not the workspace), destroyed with those iterations
    /// or the project.
    #[serde(default)]
    pub only_in_iterations: BTreeSet<Uuid>,
    /// Tags deleted.
    pub tags: BTreeSet<Uuid>,
    /// Iterations deleted.
    pub iterations: BTreeSet<Uuid>,
    /// Stored predictions deleted.
    pub predictions: BTreeSet<Uuid>,
    /// The checks made after the latest run.
    pub confirmed: Vec<Confirmation>,
}

/// A step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The project.
    pub project: Uuid,
    /// The step: `unpublish`, `images`, `tags`, `iterations`, `predictions`, `project`, `confirm`.
    pub step: String,
    /// The ids the step was about.
    pub ids: Vec<Uuid>,
    /// What went wrong, with secrets stripped.
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "project {}: {}", self.project, self.step)?;
        if !self.ids.is_empty() {
            write!(f, " ({} id(s), first {})", self.ids.len(), self.ids[0])?;
        }
        write!(f, ": {}", self.error)
    }
}

/// A check made after deleting: what should be gone, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    /// What was checked, e.g. `GetProjects lists it no more`.
    pub check: String,
    /// Whether it held.
    pub ok: bool,
    /// What was read.
    pub detail: String,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Receipt {
    /// The receipt for a new run: the one at `path` continued (when it belongs to the same
    /// endpoint, backup and scope), else a fresh one. Writes it at once, so that even a run
    /// killed in its first call leaves a receipt behind.
    pub(crate) fn start(
        path: &Path,
        endpoint_host: &str,
        backup: Option<&Backup>,
        opts: &DeleteOptions,
        plan: &Plan,
    ) -> Result<Receipt, Error> {
        let backup = backup.map(|b| BackupRef {
            path: b.path.display().to_string(),
            sha256: b.sha256.clone(),
            verified: "full".into(),
            other_endpoint: plan.backup_from_other_endpoint.clone(),
        });
        let mut receipt = match Receipt::load(path)? {
            Some(earlier) => {
                let mismatch = |reason: String| Error::ReceiptMismatch { path: path.to_path_buf(), reason };
                if earlier.endpoint_host != endpoint_host {
                    return Err(mismatch(format!("endpoint {} instead of {endpoint_host}", earlier.endpoint_host)));
                }
                match (&earlier.backup, &backup) {
                    (Some(a), Some(b)) if a.sha256 != b.sha256 => {
                        return Err(mismatch(format!("backup sha256 {} instead of {}", a.sha256, b.sha256)))
                    }
                    _ => {}
                }
                if earlier.all_iterations != opts.sends_all_iterations() {
                    return Err(mismatch(format!(
                        "allIterations {} instead of {}",
                        earlier.all_iterations,
                        opts.sends_all_iterations()
                    )));
                }
                if earlier.only != opts.only {
                    return Err(mismatch(format!(
                        "--only {} instead of {}",
                        earlier.only.map_or("(whole projects)", Category::as_str),
                        opts.only.map_or("(whole projects)", Category::as_str)
                    )));
                }
                earlier
            }
            None => Receipt {
                format: RECEIPT_FORMAT.into(),
                tool: format!("cvarchive {}", env!("CARGO_PKG_VERSION")),
                endpoint_host: endpoint_host.to_owned(),
                backup: None,
                only: opts.only,
                all_iterations: opts.sends_all_iterations(),
                started: now(),
                updated: now(),
                complete: false,
                totals: Counts::default(),
                runs: Vec::new(),
                projects: Vec::new(),
                not_deletable: Vec::new(),
                failures: Vec::new(),
            },
        };
        // Deletes the last run made after its last save (it was killed) are in the pending log:
        // they count towards that run.
        if !receipt.runs.is_empty() {
            receipt.replay_pending(path, plan)?;
        }
        if backup.is_some() {
            receipt.backup = backup;
        }
        receipt.complete = false;
        receipt.failures.clear();
        receipt.not_deletable = plan.not_deletable.clone();
        receipt.runs.push(Run {
            started: now(),
            finished: None,
            outcome: None,
            planned_calls: plan.calls,
            deleted: Counts::default(),
            failures: Vec::new(),
        });
        for p in &plan.projects {
            let r = receipt.project_mut(p.id);
            if r.name.is_none() {
                r.name = p.name.clone();
            }
            r.confirmed.clear();
        }
        receipt.save(path)?;
        Ok(receipt)
    }

    /// Reads an earlier receipt, `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Receipt>, Error> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Receipt { path: path.to_path_buf(), detail: e.to_string() }),
        };
        let receipt: Receipt = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Receipt { path: path.to_path_buf(), detail: format!("not a receipt: {e}") })?;
        if receipt.format != RECEIPT_FORMAT {
            return Err(Error::Receipt { path: path.to_path_buf(), detail: format!("format {:?}", receipt.format) });
        }
        Ok(Some(receipt))
    }

    /// The record of one project, added if new.
    pub(crate) fn project_mut(&mut self, id: Uuid) -> &mut ProjectReceipt {
        match self.projects.iter().position(|p| p.id == id) {
            Some(i) => &mut self.projects[i],
            None => {
                self.projects.push(ProjectReceipt { id, ..ProjectReceipt::default() });
                self.projects.last_mut().expect("just pushed")
            }
        }
    }

    fn run_mut(&mut self) -> &mut Run {
        self.runs.last_mut().expect("a run was started")
    }

    /// Records deleted ids of one category (new ones count towards this run).
    pub(crate) fn deleted(&mut self, project: Uuid, what: Category, ids: &[Uuid]) {
        let set = {
            let p = self.project_mut(project);
            match what {
                Category::Images => &mut p.images,
                Category::Tags => &mut p.tags,
                Category::Iterations => &mut p.iterations,
                Category::Predictions => &mut p.predictions,
            }
        };
        let new = ids.iter().filter(|id| set.insert(**id)).count() as u64;
        self.totals.add(what, new);
        self.run_mut().deleted.add(what, new);
    }

    /// Records deleted workspace images whose copies trained iterations keep.
    pub(crate) fn kept_in_iterations(&mut self, project: Uuid, ids: impl IntoIterator<Item = Uuid>) {
        self.project_mut(project).kept_in_iterations.extend(ids);
    }

    /// Records images only trained iterations held as destroyed with them (new ones count
    /// towards this run).
    pub(crate) fn destroyed_with_iterations(&mut self, project: Uuid, ids: impl IntoIterator<Item = Uuid>) {
        let set = &mut self.project_mut(project).only_in_iterations;
        let new = ids.into_iter().filter(|id| set.insert(*id)).count() as u64;
        self.totals.only_in_iterations += new;
        self.run_mut().deleted.only_in_iterations += new;
    }

    /// Records an unpublished iteration.
    pub(crate) fn unpublished(&mut self, project: Uuid, publication: Published) {
        let p = self.project_mut(project);
        if p.unpublished.iter().any(|u| u.iteration == publication.iteration) {
            return;
        }
        p.unpublished.push(publication);
        self.totals.unpublished += 1;
        self.run_mut().deleted.unpublished += 1;
    }

    /// Records the project itself as deleted.
    pub(crate) fn project_deleted(&mut self, project: Uuid) {
        let p = self.project_mut(project);
        if p.project_deleted {
            return;
        }
        p.project_deleted = true;
        self.totals.projects += 1;
        self.run_mut().deleted.projects += 1;
    }

    /// Records a failure of this run.
    pub(crate) fn fail(&mut self, failure: Failure) {
        self.failures.push(failure.clone());
        self.run_mut().failures.push(failure);
    }

    /// Records a confirmation check; a failed one is also a failure.
    pub(crate) fn confirm(&mut self, project: Uuid, check: impl Into<String>, ok: bool, detail: impl Into<String>) {
        let c = Confirmation { check: check.into(), ok, detail: detail.into() };
        if !ok {
            self.fail(Failure {
                project,
                step: "confirm".into(),
                ids: Vec::new(),
                error: format!("{}: {}", c.check, c.detail),
            });
        }
        self.project_mut(project).confirmed.push(c);
    }

    /// Closes this run and writes the receipt; returns the file's SHA-256.
    pub(crate) fn finish_run(&mut self, outcome: RunOutcome, path: &Path) -> Result<String, Error> {
        let run = self.run_mut();
        run.finished = Some(now());
        run.outcome = Some(outcome);
        self.complete = outcome == RunOutcome::Complete;
        self.save(path)
    }

    /// Writes the receipt under a temporary name, syncs it and renames it over `path`; returns
    /// the SHA-256 of the bytes written.
    pub(crate) fn save(&mut self, path: &Path) -> Result<String, Error> {
        let io = |e: std::io::Error| Error::Receipt { path: path.to_path_buf(), detail: e.to_string() };
        self.updated = now();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new().prefix(".receipt-").suffix(".tmp").tempfile_in(dir).map_err(io)?;
        // Streamed: a receipt of a million ids is some 50 MB of JSON, never held in memory.
        let mut out = std::io::BufWriter::with_capacity(256 << 10, tmp.as_file_mut());
        serde_json::to_writer_pretty(&mut out, self).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        out.flush().map_err(io)?;
        drop(out);
        tmp.as_file().sync_all().map_err(io)?;
        // The hash of what is on disk, read back (from the page cache) rather than kept.
        let (sha256, _) = crate::archive::digest::hash_file(tmp.as_file()).map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        // Everything the pending log held is in the receipt now. A link planted there is
        // refused, not removed: the run stops before it deletes anything it could not log.
        crate::sidefile::remove_stale(&pending_path(path))
            .map_err(|e| Error::Receipt { path: pending_path(path), detail: e.to_string() })?;
        Ok(sha256)
    }

    /// Appends a line to the pending log beside the receipt: the ids a delete call is about to
    /// delete (`intent`), or the ids it deleted. Lines are written before the next call, so that a
    /// `kill -9` between two saves of the receipt loses no record of what was deleted.
    pub(crate) fn log_line(
        path: &Path,
        project: Uuid,
        what: Category,
        ids: &[Uuid],
        intent: bool,
    ) -> Result<(), Error> {
        let io = |e: std::io::Error| Error::Receipt { path: pending_path(path), detail: e.to_string() };
        let line = serde_json::json!({"project": project, "what": what, "ids": ids, "intent": intent});
        // Never through a link planted beside the receipt (see crate::sidefile).
        let mut file = crate::sidefile::append(&pending_path(path)).map_err(io)?;
        let mut bytes = serde_json::to_vec(&line).expect("ids serialise");
        bytes.push(b'\n');
        file.write_all(&bytes).map_err(io)
    }

    /// Folds the pending log of a killed run into the receipt (a torn last line is ignored): ids
    /// logged as deleted count, and so do ids a call was about to delete that the service no
    /// longer has (`plan` is what it has now).
    fn replay_pending(&mut self, path: &Path, plan: &Plan) -> Result<(), Error> {
        #[derive(serde::Deserialize)]
        struct PendingLine {
            project: Uuid,
            what: Category,
            ids: Vec<Uuid>,
            #[serde(default)]
            intent: bool,
        }
        let text = match std::fs::read_to_string(pending_path(path)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::Receipt { path: pending_path(path), detail: e.to_string() }),
        };
        // What the service still has of one project and category, built once for the run of
        // lines about it (a project's lines come together), not once a line.
        let mut still_there: Option<((Uuid, Category), std::collections::HashSet<Uuid>)> = None;
        for line in text.lines().filter_map(|l| serde_json::from_str::<PendingLine>(l).ok()) {
            if !line.intent {
                self.deleted(line.project, line.what, &line.ids);
                continue;
            }
            let key = (line.project, line.what);
            if still_there.as_ref().is_none_or(|(k, _)| *k != key) {
                let ids = match plan.projects.iter().find(|p| p.id == line.project) {
                    Some(p) if !p.gone => match line.what {
                        Category::Images => p.images.iter().copied().collect(),
                        Category::Tags => p.tags.iter().copied().collect(),
                        Category::Iterations => p.iterations.iter().map(|i| i.id).collect(),
                        Category::Predictions => p.predictions.iter().copied().collect(),
                    },
                    _ => std::collections::HashSet::new(),
                };
                still_there = Some((key, ids));
            }
            let there = &still_there.as_ref().expect("just set").1;
            let gone: Vec<Uuid> = line.ids.into_iter().filter(|id| !there.contains(id)).collect();
            self.deleted(line.project, line.what, &gone);
        }
        Ok(())
    }
}

/// `<receipt>.pending`: deletes not yet folded into the receipt.
fn pending_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pending");
    name.into()
}
