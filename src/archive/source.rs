//! An archive as a source of projects, tags and images, shared by `convert` and `restore`: every
//! entry is read under the limits of [`crate::archive::data`] and checked against
//! `manifest-sha256.txt` as it is read, so nothing unlisted or altered is ever used.
//!
//! Memory is bounded by design, whatever the number of images:
//! - the manifest is streamed once into a [`ManifestTable`](super::manifest_table::ManifestTable): one bit
//!   per archive entry in memory, the hashes in a temporary file;
//! - a project's `images.jsonl` is never held: [`Source::project`] streams it once to check it
//!   (digest, every line, counts), then [`Source::images`] streams it again, line by line, for
//!   the caller. The one set a listing pass keeps is the image ids seen so far in that project
//!   (16 bytes an image, about 24 with the set's overhead; at most [`MAX_LISTING_IMAGES`]),
//!   dropped when the pass ends, so that a listing that repeats an id yields it once.

mod listing;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::manifest_table::ManifestTable;
use crate::api::model::{Project, Tag};
use crate::archive::data::{self, MAX_JSON_BYTES};
pub use crate::archive::data::{ArchivedImage, MAX_IMAGE_BYTES, MAX_LISTING_IMAGES};
use crate::archive::{layout, BagReader, Entry};
use crate::store::Location;
pub use listing::Images;

/// Lines of a listing that may repeat an earlier line's image before the listing is refused.
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
    /// The temporary file that holds the manifest's hashes cannot be written or read.
    #[error("the temporary file holding {0}'s manifest")]
    Spill(PathBuf, #[source] std::io::Error),
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
    manifest: ManifestTable,
    /// The projects with a `project.json` the manifest lists, sorted.
    projects: Vec<Uuid>,
    manifest_sha256: String,
}

/// One archived project: its record, its tags, and what its `images.jsonl` holds, counted by a
/// pass that checked every line (the images themselves come from [`Source::images`]).
#[derive(Debug, Clone)]
pub struct ArchivedProject {
    /// `project.json`.
    pub project: Project,
    /// `tags.json`.
    pub tags: Vec<Tag>,
    /// Distinct images the listing names (a repeated id counts once).
    pub images: u64,
    /// Of those, the images only trained iterations held (see [`ArchivedImage::in_workspace`]).
    pub only_in_iterations: u64,
    /// Whether any line records which iterations hold it (archives written before this was
    /// recorded have none).
    pub records_iterations: bool,
}

impl Source {
    /// Opens an archive, local or in a store (read by ranged reads), and reads its manifest
    /// (streamed; lines naming no entry are not kept).
    pub fn open(archive: impl Into<Location>) -> Result<Source, Error> {
        let reader = BagReader::open_location(&archive.into()).map_err(|source| Error::Archive { source })?;
        let path = reader.path().to_path_buf();
        let path = path.as_path();
        let entry = bag_entry(&reader, "manifest-sha256.txt")?.ok_or_else(|| Error::NoManifest(path.to_path_buf()))?;
        let spill = |e| Error::Spill(path.to_path_buf(), e);
        let mut manifest = ManifestTable::new(reader.local_path(), reader.entry_count()).map_err(spill)?;
        let mut cursor = Cursor::new(&reader)?;
        let mut projects = Vec::new();
        let mut bad: Option<String> = None;
        let mut failed: Option<Error> = None;
        let sha = data::read_manifest(&reader, &entry, |number, line| match line {
            Err(why) => {
                bad.get_or_insert(format!("line {number}: {why}"));
            }
            Ok((sha, path)) if failed.is_none() => {
                let Some(rel) = path.strip_prefix("data/") else { return };
                match cursor.find(&path) {
                    Ok(Some(index)) => {
                        if let Err(e) = manifest.insert(index, &sha) {
                            failed = Some(spill(e));
                        }
                        let project = rel.strip_prefix("projects/").and_then(|p| p.strip_suffix("/project.json"));
                        projects.extend(project.and_then(|id| Uuid::try_parse(id).ok()));
                    }
                    Ok(None) => {}
                    Err(e) => failed = Some(e),
                }
            }
            Ok(_) => {}
        })
        .map_err(|problem| Error::Entry { entry: "manifest-sha256.txt".into(), problem: problem.to_string() })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(problem) = bad {
            return Err(Error::Entry { entry: "manifest-sha256.txt".into(), problem });
        }
        manifest.finish().map_err(spill)?;
        projects.sort();
        projects.dedup();
        drop(cursor);
        Ok(Source { reader, manifest, projects, manifest_sha256: hex::encode(sha) })
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        self.reader.path()
    }

    /// SHA-256 of the manifest: names the archive's content (a renamed copy has the same one).
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The entry of payload file `rel` (below `data/`) and the manifest's hash for it; an entry
    /// absent or unlisted is [`Error::NotInManifest`].
    fn listed(&self, rel: &str) -> Result<(Entry, [u8; 32]), Error> {
        let name = format!("data/{rel}");
        if let Some(reason) = layout::unsafe_path_reason(rel) {
            return Err(Error::Entry { entry: name, problem: reason.to_owned() });
        }
        let Some(entry) = bag_entry(&self.reader, &name)? else { return Err(Error::NotInManifest(name)) };
        match self.manifest.get(entry.index).map_err(|e| Error::Spill(self.path().to_path_buf(), e))? {
            Some(sha) => Ok((entry, sha)),
            None => Err(Error::NotInManifest(name)),
        }
    }

    /// Whether payload file `rel` is an entry the manifest lists.
    fn is_listed(&self, rel: &str) -> Result<bool, Error> {
        match self.listed(rel) {
            Ok(_) => Ok(true),
            Err(Error::NotInManifest(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads a payload file (path below `data/`) of at most `limit` bytes, checked against the
    /// manifest.
    pub fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (entry, expected) = self.listed(rel)?;
        let bytes = self
            .reader
            .read_entry(&entry, limit)
            .map_err(|problem| Error::Entry { entry: format!("data/{rel}"), problem: problem.to_string() })?;
        let actual: [u8; 32] = Sha256::digest(&bytes).into();
        if actual != expected {
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
        self.read_file(&image.file, &image.sha256)
    }

    /// Reads a listed file (`file` below `data/`), checked against the manifest and against
    /// `sha256`, the hex hash its listing line gives.
    pub fn read_file(&self, file: &str, sha256: &str) -> Result<Vec<u8>, Error> {
        let bytes = self.read(file, MAX_IMAGE_BYTES)?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(Error::Digest { entry: format!("data/{file}"), expected: sha256.to_owned(), actual });
        }
        Ok(bytes)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T, Error> {
        let bytes = self.read(rel, MAX_JSON_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json { entry: format!("data/{rel}"), detail: e.to_string() })
    }

    /// The ids of the archived projects (those with a `project.json`), sorted.
    pub fn project_ids(&self) -> Vec<Uuid> {
        self.projects.clone()
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

    /// Reads one project's record and tags, and checks its `images.jsonl` in one streamed pass
    /// (see [`Images`]): its digest against the manifest, and every line, counted. An error
    /// here means nothing of the project should be used.
    pub fn project(&self, id: Uuid) -> Result<ArchivedProject, Error> {
        let project: Project = self.json(&layout::project_json(id))?;
        let tags: Vec<Tag> = self.json(&layout::tags_json(id))?;
        let mut archived =
            ArchivedProject { project, tags, images: 0, only_in_iterations: 0, records_iterations: false };
        for image in self.listing(id, true)? {
            let image = image?;
            archived.images += 1;
            archived.only_in_iterations += u64::from(!image.in_workspace());
            archived.records_iterations |= image.iterations.is_some();
        }
        Ok(archived)
    }

    /// The images of a project [`Source::project`] has checked, streamed from `images.jsonl` in
    /// archive order, each id once. The listing is checked again as it is read (an archive
    /// changed in between stops the stream with an error at its end), but for the one lookup
    /// per line that put each file in the manifest: reading the file makes it again.
    pub fn images(&self, archived: &ArchivedProject) -> Result<Images<'_>, Error> {
        self.listing(archived.project.id, false)
    }

    /// The listing's pass; `look_up` checks that each line's file is an entry the manifest lists.
    fn listing(&self, id: Uuid, look_up: bool) -> Result<Images<'_>, Error> {
        let rel = layout::images_jsonl(id);
        let (entry, expected) = self.listed(&rel)?;
        Images::open(self, (id, &rel), &entry, expected, look_up)
    }
}

/// Finds manifest paths' entries by walking the zip directory alongside the manifest, which
/// lists payload files in the directory's order in the archives cvarchive writes: a path that
/// is the directory's next entry costs no lookup. Any other path is looked up by name, and the
/// walk resumes after the entry found. A name more than one entry has is always looked up, so
/// the answer is the reader's own (its first entry by that name).
struct Cursor<'r> {
    reader: &'r BagReader,
    entries: Box<dyn Iterator<Item = Result<Entry, crate::archive::Error>> + 'r>,
    next: Option<Entry>,
    /// Names more than one entry has.
    duplicated: HashSet<Vec<u8>>,
}

impl<'r> Cursor<'r> {
    fn new(reader: &'r BagReader) -> Result<Cursor<'r>, Error> {
        let mut duplicated = HashSet::new();
        reader.for_each_duplicate(|e, _| {
            duplicated.insert(e.raw_name.clone());
        })?;
        let mut cursor = Cursor { reader, entries: Box::new(reader.entries()), next: None, duplicated };
        cursor.advance()?;
        Ok(cursor)
    }

    fn advance(&mut self) -> Result<(), Error> {
        self.next = self.entries.next().transpose()?;
        Ok(())
    }

    /// The index of the first entry named `<bag>/<rel>`, if any.
    fn find(&mut self, rel: &str) -> Result<Option<usize>, Error> {
        let Some(bag) = self.reader.bag_name() else { return Ok(None) };
        let name = format!("{bag}/{rel}");
        if let Some(next) = &self.next {
            if next.raw_name == name.as_bytes() && !self.duplicated.contains(next.raw_name.as_slice()) {
                let index = next.index;
                self.advance()?;
                return Ok(Some(index));
            }
        }
        let Some(found) = self.reader.entry(&name)? else { return Ok(None) };
        while self.next.as_ref().is_some_and(|n| n.index <= found.index) {
            self.advance()?;
        }
        Ok(Some(found.index))
    }
}

/// The first entry named `<bag>/<rel>`: the one place this module asks the reader by name.
fn bag_entry(reader: &BagReader, rel: &str) -> Result<Option<Entry>, Error> {
    Ok(reader.bag_entry(rel)?)
}
