//! An archive as a source of projects, tags and images for convert and restore: every entry is
//! read under a size limit and checked against `manifest-sha256.txt` as it is read, so nothing
//! unlisted or altered is ever used.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Error;
use crate::api::model::{Image, Project, Tag};
use crate::archive::{bagit, layout, BagReader};

/// The largest manifest read (about three million lines).
const MAX_MANIFEST_BYTES: u64 = 512 << 20;
/// The largest JSON or JSONL payload file read.
const MAX_JSON_BYTES: u64 = 1 << 30;
/// The largest image read (the service takes 6 MB; older images may be larger).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// An opened archive and its manifest.
#[derive(Debug)]
pub struct Source {
    reader: BagReader,
    manifest: HashMap<String, [u8; 32]>,
    manifest_sha256: String,
}

/// One archived project: its record, its tags and its images.
#[derive(Debug, Clone)]
pub struct ArchivedProject {
    /// `project.json`.
    pub project: Project,
    /// `tags.json`.
    pub tags: Vec<Tag>,
    /// `images.jsonl`, in archive order.
    pub images: Vec<ArchivedImage>,
}

/// One line of `images.jsonl`: the service's image record and where its bytes are.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchivedImage {
    /// The path of the bytes below `data/`.
    pub file: String,
    /// Their SHA-256, lowercase hex.
    pub sha256: String,
    /// Their size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Whether the workspace held the image when exported; `None` in archives written before
    /// this was recorded, which listed the workspace alone (see [`ArchivedImage::in_workspace`]).
    #[serde(default)]
    pub workspace: Option<bool>,
    /// The trained iterations holding a copy; `None` (unknown, not none) in archives written
    /// before this was recorded.
    #[serde(default)]
    pub iterations: Option<Vec<Uuid>>,
    /// The image record (tags, regions, metadata, size).
    #[serde(flatten)]
    pub image: Image,
}

impl ArchivedImage {
    /// Whether the workspace held the image: an older archive's images all came from the
    /// workspace listing.
    pub fn in_workspace(&self) -> bool {
        self.workspace.unwrap_or(true)
    }
}

impl Source {
    /// Opens an archive and reads its manifest.
    pub fn open(path: &Path) -> Result<Source, Error> {
        let reader = BagReader::open(path).map_err(|source| Error::Archive { source })?;
        let entry = reader.bag_entry("manifest-sha256.txt").ok_or_else(|| Error::NoManifest(path.to_path_buf()))?;
        let bytes = reader
            .read_entry(entry, MAX_MANIFEST_BYTES)
            .map_err(|problem| Error::Entry { entry: "manifest-sha256.txt".into(), problem: problem.to_string() })?;
        let manifest_sha256 = hex::encode(Sha256::digest(&bytes));
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Entry { entry: "manifest-sha256.txt".into(), problem: "not UTF-8".into() })?;
        let mut manifest = HashMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let (sha, path) = bagit::parse_manifest_line(line).map_err(|why| Error::Entry {
                entry: "manifest-sha256.txt".into(),
                problem: format!("line {}: {why}", n + 1),
            })?;
            if let Some(rel) = path.strip_prefix("data/") {
                manifest.insert(rel.to_owned(), sha);
            }
        }
        Ok(Source { reader, manifest, manifest_sha256 })
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        self.reader.path()
    }

    /// SHA-256 of the manifest: names the archive's content (a renamed copy has the same one).
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// Reads a payload file (path below `data/`) of at most `limit` bytes, checked against the
    /// manifest.
    pub fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, Error> {
        if let Some(reason) = layout::unsafe_path_reason(rel) {
            return Err(Error::Entry { entry: format!("data/{rel}"), problem: reason.to_owned() });
        }
        let expected = self.manifest.get(rel).ok_or_else(|| Error::NotInManifest(format!("data/{rel}")))?;
        let entry = self
            .reader
            .bag_entry(&format!("data/{rel}"))
            .ok_or_else(|| Error::Entry { entry: format!("data/{rel}"), problem: "listed but absent".into() })?;
        let bytes = self
            .reader
            .read_entry(entry, limit)
            .map_err(|problem| Error::Entry { entry: format!("data/{rel}"), problem: problem.to_string() })?;
        let actual: [u8; 32] = Sha256::digest(&bytes).into();
        if &actual != expected {
            return Err(Error::Digest {
                entry: format!("data/{rel}"),
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        Ok(bytes)
    }

    /// The image's bytes, or `None` after noting in `skipped` why they cannot be used.
    pub fn read_image_or_skip(&self, image: &ArchivedImage, skipped: &mut Vec<super::Skipped>) -> Option<Vec<u8>> {
        match self.read_image(image) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                skipped.push(super::Skipped { image_id: image.image.id, reason: e.to_string() });
                None
            }
        }
    }

    /// Reads an image's bytes, checked against the manifest and its own record.
    pub fn read_image(&self, image: &ArchivedImage) -> Result<Vec<u8>, Error> {
        let bytes = self.read(&image.file, MAX_IMAGE_BYTES)?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&image.sha256) {
            return Err(Error::Digest {
                entry: format!("data/{}", image.file),
                expected: image.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T, Error> {
        let bytes = self.read(rel, MAX_JSON_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json { entry: format!("data/{rel}"), detail: e.to_string() })
    }

    /// The ids of the archived projects (those with a `project.json`), sorted.
    pub fn project_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .manifest
            .keys()
            .filter_map(|p| p.strip_prefix("projects/")?.strip_suffix("/project.json"))
            .filter_map(|id| Uuid::try_parse(id).ok())
            .collect();
        ids.sort();
        ids
    }

    /// The projects asked for (every one when `only` is empty); an id not archived is an error.
    pub fn selected(&self, only: &[Uuid]) -> Result<Vec<Uuid>, Error> {
        let all = self.project_ids();
        if let Some(missing) = only.iter().find(|id| !all.contains(id)) {
            return Err(Error::UnknownProject(*missing));
        }
        Ok(if only.is_empty() { all } else { all.into_iter().filter(|id| only.contains(id)).collect() })
    }

    /// Reads one project's record, tags and image list.
    pub fn project(&self, id: Uuid) -> Result<ArchivedProject, Error> {
        let project: Project = self.json(&layout::project_json(id))?;
        let tags: Vec<Tag> = self.json(&layout::tags_json(id))?;
        let rel = layout::images_jsonl(id);
        let bytes = self.read(&rel, MAX_JSON_BYTES)?;
        let mut images = Vec::new();
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            let image: ArchivedImage = serde_json::from_slice(line)
                .map_err(|e| Error::Json { entry: format!("data/{rel}"), detail: format!("line {}: {e}", n + 1) })?;
            if let Some(reason) = layout::unsafe_path_reason(&image.file) {
                return Err(Error::Json {
                    entry: format!("data/{rel}"),
                    detail: format!("line {}: file {:?}: {reason}", n + 1, image.file),
                });
            }
            images.push(image);
        }
        Ok(ArchivedProject { project, tags, images })
    }
}
