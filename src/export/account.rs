//! `account.json`: what an export read, what it archived, and what it could not.
//!
//! Memory per image: none, except a [`Missing`] record (about 150 bytes) for each image that
//! could not be archived; those are written into `account.json`, which is one JSON document,
//! and a failing service is bounded by the retries, not by this record.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The top of `data/account.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountFile {
    /// `cvarchive/1`.
    pub format: String,
    /// The tool that wrote the archive.
    pub tool: AccountTool,
    /// Where the data came from; never a key.
    pub source: AccountSource,
    /// When the export started (RFC 3339, UTC).
    pub started: String,
    /// When it finished.
    pub finished: String,
    /// Whether everything that was listed was archived.
    pub complete: bool,
    /// What the export was asked to include.
    pub options: AccountOptions,
    /// One entry per project.
    pub projects: Vec<AccountProject>,
    /// Account-level items that could not be archived.
    pub missing: Vec<Missing>,
}

/// The tool's name and version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountTool {
    pub name: String,
    pub version: String,
}

/// The service the archive was taken from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSource {
    /// The endpoint's host (and port), which names the Custom Vision resource.
    pub endpoint_host: String,
    /// The API version used.
    pub api_version: String,
}

/// What the export included.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOptions {
    /// Only these projects, or all of them when `None`.
    pub projects: Option<Vec<Uuid>>,
    /// Whether stored predictions were exported.
    pub predictions: bool,
    /// Whether finished model exports were downloaded.
    pub include_models: bool,
}

/// One project's counts: what the service reported and what the archive holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountProject {
    pub id: Uuid,
    pub name: String,
    /// Classification or ObjectDetection, when the project's domain says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<String>,
    /// GetTaggedImageCount and GetUntaggedImageCount at the start of the project's export.
    pub reported: ImageCounts,
    /// The same counts read again after its images were listed.
    pub reported_after: ImageCounts,
    /// What the archive holds.
    pub archived: ArchivedCounts,
    /// Differences between reported and archived, with their causes when known.
    pub notes: Vec<String>,
    /// Items listed but not archived.
    pub missing: Vec<Missing>,
    /// How each trained iteration's images were found (absent in archives of older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<IterationImages>,
}

/// Tagged and untagged image counts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageCounts {
    pub tagged: u64,
    pub untagged: u64,
}

/// What the archive holds of one project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedCounts {
    pub tagged: u64,
    pub untagged: u64,
    pub tags: u64,
    pub iterations: u64,
    pub predictions: u64,
    pub model_exports: u64,
    pub image_bytes: u64,
    pub prediction_bytes: u64,
    pub model_bytes: u64,
    /// Images no longer in the workspace that trained iterations still hold (also in
    /// `images.jsonl`, with `"workspace": false`); not in `tagged` or `untagged`.
    #[serde(default)]
    pub only_in_iterations: u64,
}

/// Something that was listed but is not in the archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    /// `image`, `prediction`, `model`, `performance`, `image-performances`, `exports`, or
    /// `predictions` (a QueryPredictions listing cut short; `id` is then the project's).
    pub kind: String,
    /// The project it belongs to.
    pub project: Uuid,
    /// The item's id (the iteration's, for iteration-level items).
    pub id: Uuid,
    /// Why, with secrets stripped.
    pub reason: String,
}

/// How one iteration's images were found, for `account.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IterationImages {
    /// The iteration.
    pub id: Uuid,
    /// Tagged and untagged images the service reported for it (`iterationId`).
    pub reported: u64,
    /// Of those, how many the workspace no longer holds.
    pub only_in_iteration: u64,
    /// `imagePerformances` when its image performances covered all of its images, `listing`
    /// when it had to be listed in full.
    pub found_by: String,
    /// API calls spent on finding them, beyond what the export reads anyway.
    pub calls: u64,
}
