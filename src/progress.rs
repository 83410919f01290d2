//! Progress: what the library reports while it works. The CLI draws it (bars on a terminal,
//! plain lines in a pipe, JSON lines with `--json`); tests pass [`NoProgress`].

use serde::Serialize;

/// One thing that happened. Every string in an event is already free of secrets.
///
/// With `--json` each event is one line, its variant in `type` and its fields in camelCase
/// (`{"type":"projectStarted","projectId":...}`), inside the envelope `cli::json` writes; every
/// variant and field must be described in `schema/cvarchive-output.schema.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Event {
    /// Listing began; `projects` is how many projects will be exported.
    Started { projects: usize },
    /// A project's metadata is being read.
    ProjectStarted { project_id: String, name: String },
    /// The service reports this many images in the project being exported.
    ImagesFound { total: u64 },
    /// An image (or other blob) was written to the archive.
    BlobArchived { bytes: u64 },
    /// A request will be tried again.
    Retry { kind: String, wait_ms: u64 },
    /// Something worth telling the user that does not stop the work.
    Warning { message: String },
    /// A project is done.
    ProjectFinished { project_id: String, images: u64 },
    /// Verification progress: bytes checked so far.
    Verified { bytes: u64 },
    /// The backup a deletion relies on verified in full (`bytes`: the archive's size); it is
    /// hashed and indexed next, from the same open file.
    BackupVerified { bytes: u64 },
    /// A delete step is done: `what` (`unpublished`, `images`, `tags`, `iterations`,
    /// `predictions`, `project`) and how many items it removed.
    Deleted { project_id: String, what: String, count: u64 },
}

/// Receives progress events. Implementations must be cheap: events come from hot paths.
pub trait Progress: Send + Sync {
    /// Called for every event, from any task.
    fn event(&self, event: Event);
}

/// Progress that goes nowhere, for tests and library callers that do not care.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event) {}
}
