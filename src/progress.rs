//! Progress: what the library reports while it works. The CLI draws it (bars on a terminal,
//! plain lines in a pipe, JSON lines with `--json`); tests pass [`NoProgress`].

use serde::Serialize;

/// A stage of a command's work, as the user would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// The first call to the service, before anything has answered.
    Connecting,
    /// Reading metadata and lists (projects, counts, tags, iterations, image lists).
    Listing,
    /// Downloading images and other blobs.
    Downloading,
    /// Uploading images (restore).
    Uploading,
    /// Checking an archive's hashes.
    Verifying,
    /// Deleting from the service.
    Deleting,
    /// Writing images out in another format (convert).
    Converting,
    /// Writing what remains after the transfers: records, manifests, the final file.
    Finishing,
}

impl Phase {
    /// The phase's name, as shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Listing => "listing",
            Phase::Downloading => "downloading",
            Phase::Uploading => "uploading",
            Phase::Verifying => "verifying",
            Phase::Deleting => "deleting",
            Phase::Converting => "converting",
            Phase::Finishing => "finishing",
        }
    }
}

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
    /// The command, or one project of it (`project_id`), entered a phase.
    Phase { phase: Phase, project_id: Option<String> },
    /// A project's metadata is being read.
    ProjectStarted { project_id: String, name: String },
    /// This many more images of the project are to be transferred (added to any earlier count
    /// of the same project).
    ImagesFound { project_id: String, total: u64 },
    /// An image (or other blob) of the project went where the command puts it: into the archive
    /// (export), into the converted output (convert), or to the service (restore).
    Transferred { project_id: String, bytes: u64 },
    /// A request will be tried again after `wait_ms`; `throttled` when the service answered 429.
    Retry { kind: String, throttled: bool, wait_ms: u64 },
    /// A download link had expired and a fresh one was fetched.
    LinkRefreshed,
    /// Something worth telling the user that does not stop the work.
    Warning { message: String },
    /// A project is done (for a deletion's plan: surveyed).
    ProjectFinished { project_id: String, images: u64 },
    /// Verification progress: bytes checked so far (a running total).
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
