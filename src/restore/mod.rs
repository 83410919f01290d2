//! `restore`: an archive -> its projects recreated in a Custom Vision resource.
//!
//! Per project: CreateProject with the archived settings and domain (the name plus an optional
//! suffix), CreateTag for every tag, CreateImagesFromFiles in batches of at most 64 images,
//! `batch_bytes` bytes and 20 distinct tags, with their tags and regions, UpdateImageMetadata,
//! then the service's counts compared with the archive's. Each uploaded image is named by its
//! archived id, and the results are matched to images by that name, never by position. Calls go through the [`Client`](crate::api::Client), so they are paced and
//! retried like an export's.
//!
//! The restore report (JSON, see [`Report`]) maps every old id to its new one and doubles as the
//! journal: it is rewritten (atomically) after every step, and a rerun with the same report
//! continues where the last run stopped. Nothing is uploaded twice: images already mapped are
//! skipped, and a batch that reached the service before the report was written is answered
//! `OKDuplicate` with the images it created, which are then mapped.
//!
//! Images with identical bytes in one project (the service keeps one copy of each content) are
//! uploaded once with the union of their tags, regions and metadata; the report maps every old
//! id to that one new id. Iterations, trained models and stored predictions cannot be recreated
//! through the API and are not restored: the report lists each project's ([`NotRecreated`]).

mod plan;
mod report;
mod run;

use std::path::PathBuf;

use uuid::Uuid;

pub use plan::{plan, Plan, ProjectPlan};
pub use report::{Counts, FailedImage, NotRecreated, ProjectMap, ProjectStage, Report};
pub use run::restore;

/// The report format written in [`Report::format`].
pub const REPORT_FORMAT: &str = "cvarchive-restore/1";

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Only these archived projects; every one when empty.
    pub projects: Vec<Uuid>,
    /// Appended to every restored project's name (the service wants unique names).
    pub name_suffix: String,
    /// The restore report, also the journal a rerun resumes from.
    pub report: PathBuf,
    /// Images per CreateImagesFromFiles call, at most 64.
    pub batch_images: usize,
    /// Image bytes per call (before base64), to keep request bodies modest; a single image
    /// larger than this goes alone. See [`crate::api::MAX_UPLOAD_BATCH_BYTES`].
    pub batch_bytes: usize,
    /// Also upload the images only trained iterations held (deleted from the workspace, kept
    /// by an iteration) into the new project's workspace. A restored project has no trained
    /// iterations, so by default they are left out, counted in the report's notes.
    pub iteration_images: bool,
}

impl RestoreOptions {
    /// Options with the service's batch limits and the report at `report`.
    pub fn new(report: impl Into<PathBuf>) -> RestoreOptions {
        RestoreOptions {
            projects: Vec::new(),
            name_suffix: String::new(),
            report: report.into(),
            batch_images: crate::api::MAX_UPLOAD_BATCH,
            batch_bytes: 24 << 20,
            iteration_images: false,
        }
    }
}

/// What can stop a restore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive cannot be read, or an entry fails its manifest check.
    #[error(transparent)]
    Archive(#[from] crate::archive::source::Error),
    /// A call to the service failed for good.
    #[error(transparent)]
    Api(#[from] crate::api::Error),
    /// The report cannot be read or written.
    #[error("restore report {path}: {detail}")]
    Report {
        /// The report file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The report belongs to another archive or another resource.
    #[error("restore report {path} is for {detail}; pass another --report to start a new restore")]
    Mismatch {
        /// The report file.
        path: PathBuf,
        /// What it is for.
        detail: String,
    },
    /// The resource has no domain like the archived project's.
    #[error("project {project}: the resource has no domain {domain}")]
    Domain {
        /// The archived project.
        project: Uuid,
        /// The archived domain id.
        domain: Uuid,
    },
    /// The service answered something a restore cannot continue from.
    #[error("project {project}: {detail}")]
    Refused {
        /// The archived project.
        project: Uuid,
        /// What happened.
        detail: String,
    },
    /// CreateImagesFromFiles answered results that cannot be matched to the images sent: none
    /// for an image (twice), two for one, or one for an image not sent.
    #[error("project {project}, image {image:?}: {detail}")]
    Unmatched {
        /// The archived project.
        project: Uuid,
        /// The archived image id the result names (or should have named).
        image: String,
        /// What is wrong.
        detail: String,
    },
    /// Stopped (Ctrl-C); the report holds everything done so far.
    #[error("restore interrupted; run the same command again to resume from {0}")]
    Interrupted(PathBuf),
}
