//! An archive as a source of projects, tags and images, shared by `convert` and `restore`: every
//! entry is read under the limits of [`crate::archive::data`] and checked against
//! `manifest-sha256.txt` as it is read, so nothing unlisted or altered is ever used. The manifest and the listings are
//! streamed; only lines naming a real entry are kept, so memory follows the archive's entries.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::model::{Project, Tag};
use crate::archive::data::{self, bound_file_problem, ListingKind, MAX_JSON_BYTES, MAX_LISTING_BYTES};
pub use crate::archive::data::{ArchivedImage, MAX_IMAGE_BYTES};
use crate::archive::{layout, BagReader};

/// Lines of a listing that may repeat an earlier line's file before the listing is refused.
const MAX_REPEATED_LINES: u64 = 1000;

/// Why an archive cannot serve as a source (for `convert` or `restore`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive cannot be opened as a zip.
    #[error(transparent)]
    Archive {
        /// Why.
        #[from]
        source: crate::archive::Error,
    },
    /// The bag has no `manifest-sha256.txt`, so nothing in it can be checked.
    #[error("{0}: no manifest-sha256.txt; run `cvarchive verify` on it")]
    NoManifest(PathBuf),
    /// An entry cannot be read.
    #[error("archive entry {entry}: {problem}")]
    Entry {
        /// The entry, relative to the bag.
        entry: String,
        /// What is wrong.
        problem: String,
    },
    /// An entry the manifest does not list.
    #[error("archive entry {0} is not in the manifest; run `cvarchive verify` on it")]
    NotInManifest(String),
    /// An entry whose bytes do not match the manifest.
    #[error("archive entry {entry}: SHA-256 is {actual}, the manifest says {expected}")]
    Digest {
        /// The entry.
        entry: String,
        /// What the manifest says.
        expected: String,
        /// What was read.
        actual: String,
    },
    /// A JSON or JSONL entry that does not parse, or a listing line refused.
    #[error("archive entry {entry}: {detail}")]
    Json {
        /// The entry.
        entry: String,
        /// The parse error.
        detail: String,
    },
    /// A project the archive does not hold was asked for.
    #[error("project {0} is not in the archive")]
    UnknownProject(Uuid),
}

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

impl Source {
    /// Opens an archive and reads its manifest (streamed; lines naming no entry are not kept).
    pub fn open(path: &Path) -> Result<Source, Error> {
        let reader = BagReader::open(path).map_err(|source| Error::Archive { source })?;
        let entry = reader.bag_entry("manifest-sha256.txt")?.ok_or_else(|| Error::NoManifest(path.to_path_buf()))?;
        let mut manifest = HashMap::new();
        let mut bad = None;
        let mut failed = None;
        let sha = data::read_manifest(&reader, &entry, |number, line| match line {
            Err(why) => {
                bad.get_or_insert(format!("line {number}: {why}"));
            }
            Ok((sha, path)) => match reader.bag_entry(&path) {
                Ok(Some(_)) => {
                    if let Some(rel) = path.strip_prefix("data/") {
                        manifest.insert(rel.to_owned(), sha);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            },
        })
        .map_err(|problem| Error::Entry { entry: "manifest-sha256.txt".into(), problem: problem.to_string() })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if let Some(problem) = bad {
            return Err(Error::Entry { entry: "manifest-sha256.txt".into(), problem });
        }
        Ok(Source { reader, manifest, manifest_sha256: hex::encode(sha) })
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
            .bag_entry(&format!("data/{rel}"))?
            .ok_or_else(|| Error::Entry { entry: format!("data/{rel}"), problem: "listed but absent".into() })?;
        let bytes = self
            .reader
            .read_entry(&entry, limit)
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
    pub fn read_image_or_skip<S: From<(Uuid, String)>>(
        &self,
        image: &ArchivedImage,
        skipped: &mut Vec<S>,
    ) -> Option<Vec<u8>> {
        match self.read_image(image) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                skipped.push(S::from((image.image.id, e.to_string())));
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

    /// Reads one project's record (`project.json`) alone.
    pub fn project_record(&self, id: Uuid) -> Result<Project, Error> {
        self.json(&layout::project_json(id))
    }

    /// Reads one project's record, tags and image list. `images.jsonl` is streamed and checked
    /// against the manifest as it is read: each line must name its own file (the path follows
    /// from its id), present and listed once, and the lines held stay under [`MAX_LISTING_BYTES`].
    pub fn project(&self, id: Uuid) -> Result<ArchivedProject, Error> {
        let project: Project = self.json(&layout::project_json(id))?;
        let tags: Vec<Tag> = self.json(&layout::tags_json(id))?;
        let images = self.images(id)?;
        Ok(ArchivedProject { project, tags, images })
    }

    fn images(&self, id: Uuid) -> Result<Vec<ArchivedImage>, Error> {
        let rel = layout::images_jsonl(id);
        let entry_name = format!("data/{rel}");
        let expected = self.manifest.get(&rel).ok_or_else(|| Error::NotInManifest(entry_name.clone()))?;
        let entry = self
            .reader
            .bag_entry(&entry_name)?
            .ok_or_else(|| Error::Entry { entry: entry_name.clone(), problem: "listed but absent".into() })?;
        let fail = |detail: String| Error::Json { entry: entry_name.clone(), detail };
        let project = id.to_string();
        let mut images = Vec::new();
        let mut files = HashSet::new();
        let mut held = 0u64;
        let mut repeats = 0u64;
        let mut first_error = None;
        let actual = data::for_each_line(&self.reader, &entry, |n, line| {
            if first_error.is_some() {
                return;
            }
            let parsed = line.and_then(|line| {
                held += line.len() as u64;
                if held > MAX_LISTING_BYTES {
                    return Err(format!("the listing holds more than {MAX_LISTING_BYTES} bytes of lines"));
                }
                let image: ArchivedImage = serde_json::from_slice(line).map_err(|e| e.to_string())?;
                if let Some(reason) = layout::unsafe_path_reason(&image.file) {
                    return Err(format!("file {:?}: {reason}", image.file));
                }
                if let Some(why) = bound_file_problem(ListingKind::Images, &project, image.image.id, &image.file) {
                    return Err(why);
                }
                if !self.manifest.contains_key(&image.file) {
                    return Err(format!("file {:?} is not in the archive's manifest", image.file));
                }
                // The file follows from the id, so a file listed again is the same image listed
                // again: it is read once (verify reports the repetition as a finding). A listing
                // made mostly of repeats is not a listing: past a cap it is refused.
                if !files.insert(image.file.clone()) {
                    repeats += 1;
                    if repeats > MAX_REPEATED_LINES {
                        return Err(format!(
                            "file {:?} is listed again: more than {MAX_REPEATED_LINES} lines repeat others",
                            image.file
                        ));
                    }
                    return Ok(None);
                }
                Ok(Some(image))
            });
            match parsed {
                Ok(Some(image)) => images.push(image),
                Ok(None) => {}
                Err(why) => first_error = Some(fail(format!("line {n}: {why}"))),
            }
        })
        .map_err(|problem| Error::Entry { entry: entry_name.clone(), problem: problem.to_string() })?;
        if &actual != expected {
            return Err(Error::Digest {
                entry: entry_name,
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(images),
        }
    }
}
