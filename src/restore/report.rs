//! The restore report: old ids -> new ids per project, what failed, the final counts. Written
//! atomically after every step, so it is also the journal a rerun resumes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Error;
use crate::archive::data::ArchivedView;

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`super::REPORT_FORMAT`].
    pub format: String,
    /// The archive restored from, as given.
    pub archive: String,
    /// SHA-256 of its manifest: the archive's content, whatever its file name.
    pub archive_manifest_sha256: String,
    /// The resource restored into (host and port; never a key).
    pub target_host: String,
    /// When the first run started (RFC 3339, UTC).
    pub started: String,
    /// When the report was last written.
    pub updated: String,
    /// Whether every project is restored and its counts match.
    pub complete: bool,
    /// One entry per project.
    pub projects: Vec<ProjectMap>,
}

/// Where a project's restore stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ProjectStage {
    /// Nothing sent yet.
    Pending,
    /// CreateProject was sent; its answer may not have been recorded.
    Creating,
    /// The project exists; tags and images are being restored.
    Created,
    /// Everything is restored and the counts were compared.
    Done,
}

/// One project: its new id and the id maps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMap {
    /// The archived project's id.
    pub old_id: Uuid,
    /// Its archived name.
    pub name: String,
    /// The restored project's name.
    pub new_name: String,
    /// The restored project's id, once created.
    pub new_id: Option<Uuid>,
    /// Where it stands.
    pub stage: ProjectStage,
    /// Old tag id -> new tag id.
    pub tags: BTreeMap<Uuid, Uuid>,
    /// Old image id -> new image id (several old ids share one when their bytes are identical).
    pub images: BTreeMap<Uuid, Uuid>,
    /// New image ids whose metadata is restored.
    pub metadata_done: BTreeSet<Uuid>,
    /// Images the service refused in the last run.
    pub failed: Vec<FailedImage>,
    /// The counts compared at the end.
    pub counts: Option<Counts>,
    /// Things worth knowing (merged duplicates, what cannot be restored).
    pub notes: Vec<String>,
    /// What the archive holds of the project that this restore did not recreate.
    #[serde(default)]
    pub not_recreated: Vec<NotRecreated>,
}

/// Something the archive holds that a restore does not recreate, how many, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotRecreated {
    /// `iterations`, `modelExports`, `storedPredictions` or `iterationImages`.
    pub what: String,
    /// How many the archive holds.
    pub count: u64,
    /// Why not, and what to do instead.
    pub why: String,
}

impl NotRecreated {
    /// What a restore leaves out of a project whose `account.json` counts are `archived`:
    /// trained iterations (their models), model exports and stored predictions, which the
    /// Training API cannot create; and, without `--iteration-images`, the `only_in_iterations`
    /// images only trained iterations held.
    pub fn list(archived: &ArchivedView, only_in_iterations: u64, iteration_images: bool) -> Vec<NotRecreated> {
        let item = |what: &str, count: Option<u64>, why: &str| {
            count.filter(|n| *n > 0).map(|count| NotRecreated { what: what.into(), count, why: why.into() })
        };
        [
            item(
                "iterations",
                archived.iterations,
                "trained iterations and their models cannot be uploaded: train the new project again",
            ),
            item(
                "modelExports",
                archived.model_exports,
                "exported model packages stay in the archive (models/); the service cannot import them",
            ),
            item(
                "storedPredictions",
                archived.predictions,
                "the Training API cannot create stored predictions; they stay in the archive",
            ),
            item(
                "iterationImages",
                Some(only_in_iterations).filter(|_| !iteration_images),
                "images only trained iterations held; --iteration-images uploads them into the workspace",
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl ProjectMap {
    /// Whether it is done with nothing refused and counts that match.
    pub fn is_complete(&self) -> bool {
        self.stage == ProjectStage::Done && self.failed.is_empty() && self.counts.as_ref().is_some_and(Counts::agree)
    }
}

/// An image the service refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailedImage {
    /// The archived image ids (more than one for identical bytes).
    pub image_ids: Vec<Uuid>,
    /// The service's status, e.g. `ErrorImageSize`, or the metadata update's.
    pub status: String,
}

/// The archive's counts against the restored project's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Images in the archive.
    pub archived_images: u64,
    /// Distinct image contents in the archive (what the service can hold).
    pub archived_distinct: u64,
    /// Tags in the archive.
    pub archived_tags: u64,
    /// Images the service counts (tagged + untagged).
    pub service_images: u64,
    /// Tags the service lists.
    pub service_tags: u64,
}

impl Counts {
    /// Whether the service holds what the archive holds.
    pub fn agree(&self) -> bool {
        self.archived_distinct == self.service_images && self.archived_tags == self.service_tags
    }
}

impl Report {
    /// Reads a report, `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<Report>, Error> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Report { path: path.to_path_buf(), detail: e.to_string() }),
        };
        let report: Report = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Report { path: path.to_path_buf(), detail: format!("not a restore report: {e}") })?;
        if report.format != super::REPORT_FORMAT {
            return Err(Error::Report {
                path: path.to_path_buf(),
                detail: format!("format {:?}, expected {:?}", report.format, super::REPORT_FORMAT),
            });
        }
        Ok(Some(report))
    }

    /// Writes the report beside its final name (`<path>.tmp`, created new: a stale plain file
    /// from a killed run is removed first, a link is refused), then renames it into place.
    pub fn save(&mut self, path: &Path) -> Result<(), Error> {
        self.updated = now();
        self.complete = !self.projects.is_empty() && self.projects.iter().all(ProjectMap::is_complete);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let bad = |e: std::io::Error| Error::Report { path: tmp.clone(), detail: e.to_string() };
        crate::sidefile::remove_stale(&tmp).map_err(bad)?;
        crate::sidefile::write_new(&tmp, &serde_json::to_vec_pretty(self).expect("reports serialise")).map_err(bad)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::Report { path: path.to_path_buf(), detail: e.to_string() })
    }
}

/// The time now, RFC 3339 UTC to the second.
pub(super) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
