//! `convert`: an archive -> datasets that other tools load, one folder per project under `--out`.
//!
//! - [`Target::Coco`]: `<out>/<projectId>/annotations.json` and `images/<imageId>.<ext>`, a COCO
//!   object-detection dataset. Categories are the project's tags (ids 1.., in `tags.json` order,
//!   each with its `custom_vision_id`). Each image entry has `file_name`, `width`, `height`,
//!   `custom_vision_id`, `sha256`, `date_captured` (the service's `created`), `metadata` (the
//!   image's metadata, `{}` when none) and `category_ids`: its classification tags (tags not on
//!   a region), `workspace` (whether the project's workspace held the image; `false` for an
//!   image deleted from it that trained iterations still hold) and `iterations` (the ids of the
//!   trained iterations holding a copy, `null` when the archive does not record it). Each region becomes an annotation whose `bbox` is `[left * width, top * height,
//!   region width * width, region height * height]` in pixels, `area` the box's, `iscrowd` 0,
//!   `segmentation` the box as one polygon, and `custom_vision_region_id`.
//! - [`Target::Folders`]: `<out>/<name>-<projectId>/<tag>/<imageId>.<ext>` for every tag of an image
//!   (hard links when the file system allows, copies otherwise), `untagged/` for images without
//!   tags, and `labels.csv` (`image_id,file,tags,width,height,sha256,workspace,iterations`; tags
//!   and iteration ids `;`-separated; the last two columns only when the archive records which
//!   iterations hold each image). Images only trained iterations hold stay in their tag folders,
//!   where their labels put them: a folder of their own would read as one more class to
//!   folder-per-class loaders (torchvision `ImageFolder`, Keras `image_dataset_from_directory`);
//!   `labels.csv` says which they are, to filter on. Tag folder names are the tag names with `/ \ : * ? " < > |` and control characters replaced by
//!   `_`, cut to 200 bytes at a character boundary, and `_` before a reserved Windows device name
//!   (`CON`, `nul.txt`, `COM1`, ...); clashes (case-insensitive, or with `untagged`) get the tag
//!   id's first 8 hex digits, then all 32, then a counter, so each tag has its own folder. A
//!   `labels.csv` cell or tag name that starts with `= + - @`, tab or CR gets a leading `'`, so a
//!   spreadsheet shows it as text rather than run it as a formula (OWASP, "CSV Injection").
//!
//! A listing that repeats an image id yields the image once.
//!
//! Memory does not grow with the number of images: the listing is streamed (see
//! [`crate::archive::source`], which keeps the ids seen in the current project, about 24 bytes
//! an image), COCO's `annotations.json` and `labels.csv` are written as the images are, and one
//! image's bytes are held at a time.
//!
//! Every archive entry read is checked against the manifest (see [`crate::archive::source`]); a damaged image is
//! left out and listed, a damaged listing stops the project. Output goes to a hidden staging
//! folder that is renamed to the project's folder (`<projectId>` for COCO, `<name>-<projectId>`
//! for tag folders, see [`output::folder_name`]) when the project is complete, so `--out` never
//! holds a half-written project; file names come from ids and cleaned names only. Each project
//! folder holds a marker ([`output::MARKER`]); `force` replaces a folder only when its marker
//! names the same project, so it never removes what convert did not write.

mod coco;
mod folders;
pub mod output;

use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

pub use crate::archive::source::{ArchivedImage, ArchivedProject, Source};
use crate::progress::{Event, Progress};
use crate::store::Location;

/// What can stop a conversion.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive cannot be read as a source (see [`crate::archive::source`]).
    #[error(transparent)]
    Source(#[from] crate::archive::source::Error),
    /// A project's output folder exists already (and `force` was not given).
    #[error("{0} exists already; pass --force to replace it, or choose another --out")]
    Exists(PathBuf),
    /// `force` was given, but the folder there is not one convert wrote for this project.
    #[error("{0} exists and is not a folder cvarchive convert wrote for this project (it has no {marker} naming it): not replaced; remove it yourself or choose another --out", marker = output::MARKER)]
    NotOurs(PathBuf),
    /// Writing the output failed.
    #[error("{path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The dataset format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// COCO `annotations.json` and `images/`.
    Coco,
    /// One folder per tag, `untagged/` and `labels.csv`.
    Folders,
}

/// What to convert and where.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The format.
    pub to: Target,
    /// The folder that receives one folder per project.
    pub out: PathBuf,
    /// Only these projects; every one when empty.
    pub projects: Vec<Uuid>,
    /// Replace a project's folder an earlier convert wrote (never a folder it did not write).
    pub force: bool,
}

/// What a conversion wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The format written.
    pub to: Target,
    /// One entry per project.
    pub projects: Vec<ProjectReport>,
}

impl Report {
    /// Whether every image of every project was converted.
    pub fn is_complete(&self) -> bool {
        self.projects.iter().all(|p| p.skipped.is_empty())
    }
}

/// One converted project.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectReport {
    /// The project id (its folder's name).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The folder written.
    pub path: PathBuf,
    /// Images written.
    pub images: usize,
    /// Categories (tags).
    pub categories: usize,
    /// Box annotations (COCO) or tag-folder files (folders).
    pub annotations: usize,
    /// Of the images written, those the workspace no longer held, only trained iterations did.
    pub only_in_iterations: usize,
    /// Images left out, and why.
    pub skipped: Vec<Skipped>,
    /// Whether an earlier output of convert for this project was replaced (`--force`).
    pub replaced: bool,
}

/// An image left out of the output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The image id.
    pub image_id: Uuid,
    /// Why.
    pub reason: String,
}

impl From<(Uuid, String)> for Skipped {
    fn from((image_id, reason): (Uuid, String)) -> Skipped {
        Skipped { image_id, reason }
    }
}

/// Converts the archive at `archive` (a local path, or a [`Location`] in a store, read by ranged
/// reads; the output is local) as `opts` says.
pub fn convert(archive: impl Into<Location>, opts: &ConvertOptions, progress: &dyn Progress) -> Result<Report, Error> {
    let source = Source::open(archive)?;
    let ids = source.selected(&opts.projects)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| io(&opts.out, e))?;
    // Every project's folder is checked before anything is written.
    let mut targets = Vec::with_capacity(ids.len());
    for id in ids {
        let name = source.project_record(id)?.name;
        let done = opts.out.join(output::folder_name(opts.to, id, &name));
        let replace = output::check_target(&done, id, opts.force)?;
        targets.push((id, done, replace));
    }
    progress.event(Event::Started { projects: targets.len() });
    progress.event(Event::Phase { phase: crate::progress::Phase::Converting, project_id: None });
    let mut projects = Vec::with_capacity(targets.len());
    for (id, done, replace) in targets {
        let archived = source.project(id)?;
        progress.event(Event::ProjectStarted { project_id: id.to_string(), name: archived.project.name.clone() });
        progress.event(Event::ImagesFound { project_id: id.to_string(), total: archived.images });
        let staging = opts.out.join(format!(".{id}.partial"));
        if std::fs::symlink_metadata(&staging).is_ok() {
            std::fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
        }
        std::fs::create_dir(&staging).map_err(|e| io(&staging, e))?;
        let written = match opts.to {
            Target::Coco => coco::write(&source, &archived, &staging, progress),
            Target::Folders => folders::write(&source, &archived, &staging, progress),
        };
        // A listing found damaged midway (the archive changed since it was checked) leaves no
        // half-written folder behind.
        let mut report = written.inspect_err(|_| drop(std::fs::remove_dir_all(&staging)))?;
        output::mark(&staging, id, opts.to)?;
        output::put_in_place(&opts.out, &staging, &done, id, replace)?;
        report.path = done;
        report.replaced = replace;
        progress.event(Event::ProjectFinished { project_id: id.to_string(), images: report.images as u64 });
        projects.push(report);
    }
    Ok(Report { to: opts.to, projects })
}

/// Writes a new file inside the staging folder (never through an existing file or link).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::sidefile::write_new(path, bytes).map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}

/// The extension of an image file in the archive (`jpg`, `png`, ...), from its path.
fn extension(image: &ArchivedImage) -> &str {
    image
        .file
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("bin")
}
