//! Incremental backups: images (and prediction images) that a previous archive already holds are
//! copied from it instead of downloaded. Custom Vision never changes an image's bytes under the
//! same id, so the previous archive's copy is the image. The copy is raw (the zip entry's bytes
//! as they are stored there, no re-compression), done by the archive writer, and checked on the
//! way against that archive's manifest hash; one that does not match is downloaded instead.
//!
//! Memory per blob of the previous archive: its id in an [`IdSet`] (about 12 bytes). Its path
//! and manifest hash (about 130 bytes) are a line of a [`Spool`] on disk beside the new archive,
//! numbered by the id's ordinal, read back when the export meets the id.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use super::ids::IdSet;
use super::spool::{Spool, SpoolLines};
use crate::archive::bagit::MANIFEST_NAME;
use crate::archive::{data, BagReader, Entry};
use crate::store::Location;

/// A previous archive, indexed by the ids of the blobs it holds.
pub struct Base {
    reader: Arc<BagReader>,
    path: PathBuf,
    /// Image ids, then prediction ids; an id's ordinal numbers its line in `images` or
    /// `predictions`: `<SHA-256 hex> <path below data/>`.
    ids: [IdSet; 2],
    lines: [SpoolLines; 2],
}

/// Why a previous archive cannot serve as a base.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {} as the base of an incremental export: {reason}", path.display())]
pub struct BaseError {
    /// The previous archive.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl Base {
    /// Opens the archive at `archive` (local, or in a store: read by ranged reads) and reads its
    /// manifest; its index goes to temporary files in `dir`.
    pub fn open(archive: impl Into<Location>, dir: &Path) -> Result<Base, BaseError> {
        let archive = archive.into();
        let path = archive.display_path();
        let path = path.as_path();
        let fail = |reason: String| BaseError { path: path.to_path_buf(), reason };
        let reader = BagReader::open_location(&archive).map_err(|e| fail(crate::text::error_chain(&e)))?;
        let entry = reader
            .bag_entry(MANIFEST_NAME)
            .map_err(|e| fail(crate::text::error_chain(&e)))?
            .ok_or_else(|| fail(format!("it has no {MANIFEST_NAME}")))?;
        let spooled = |e: std::io::Error| fail(format!("cannot write a temporary file in {}: {e}", dir.display()));
        let mut ids = [IdSet::new_in(dir), IdSet::new_in(dir)];
        let mut spools = [Spool::new_in(dir).map_err(spooled)?, Spool::new_in(dir).map_err(spooled)?];
        // Streamed; only lines naming an image or prediction entry the archive holds are kept,
        // the first of each id.
        let (mut failed, mut unreadable) = (None, None);
        data::read_manifest(&reader, &entry, |_, line| {
            let Ok((sha, full)) = line else { return };
            let Some(rel) = full.strip_prefix("data/") else { return };
            let Some((kind, id)) = blob_key(rel) else { return };
            match reader.bag_entry(&full) {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    unreadable.get_or_insert(e);
                    return;
                }
            }
            let k = kind as usize;
            let kept = ids[k].insert(id).and_then(|(n, new)| match new {
                true => spools[k].push(n, format!("{} {rel}", hex::encode(sha)).as_bytes()),
                false => Ok(()),
            });
            if let Err(e) = kept {
                failed.get_or_insert(e);
            }
        })
        .map_err(|e| fail(format!("{MANIFEST_NAME}: {e}")))?;
        if let Some(e) = unreadable {
            return Err(fail(crate::text::error_chain(&e)));
        }
        if let Some(e) = failed {
            return Err(spooled(e));
        }
        let [images, predictions] = spools;
        let lines = [images.into_lines().map_err(spooled)?, predictions.into_lines().map_err(spooled)?];
        Ok(Base { reader: Arc::new(reader), path: path.to_path_buf(), ids, lines })
    }

    /// Where the previous archive holds the blob with this id: `None` when it does not,
    /// `Some(Err(reason))` when its manifest lists it but the entry is missing (or its index
    /// cannot be read).
    pub fn locate(&self, kind: BlobKind, id: Uuid) -> Option<Result<BaseBlob, String>> {
        let k = kind as usize;
        let unreadable = |e: std::io::Error| format!("the index of {} cannot be read: {e}", self.path.display());
        let line = match self.ids[k].get(&id) {
            Ok(Some(n)) => self.lines[k].get(n).map_err(unreadable),
            Ok(None) => return None,
            Err(e) => Err(unreadable(e)),
        };
        let (rel, sha256) = match line.map(|line| line.and_then(|l| parse_line(&l))) {
            Ok(Some(found)) => found,
            Ok(None) => return Some(Err(format!("the index of {} is damaged", self.path.display()))),
            Err(e) => return Some(Err(e)),
        };
        let found = match self.reader.bag_entry(&format!("data/{rel}")) {
            Ok(Some(entry)) => Ok(BaseBlob { source: self.reader.clone(), entry, path: rel, sha256 }),
            Ok(None) => Err(format!("{}: data/{rel} is listed but absent", self.path.display())),
            Err(e) => Err(crate::text::error_chain(&e)),
        };
        Some(found)
    }
}

/// A line of the index: `<SHA-256 hex> <path below data/>`.
fn parse_line(line: &[u8]) -> Option<(String, [u8; 32])> {
    let line = std::str::from_utf8(line).ok()?;
    let (sha, rel) = line.split_once(' ')?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(sha, &mut sha256).ok()?;
    Some((rel.to_owned(), sha256))
}

/// A blob the previous archive holds: its entry there, its path below `data/` (the same in the
/// new archive) and the SHA-256 its manifest gives.
pub struct BaseBlob {
    /// The previous archive.
    pub source: Arc<BagReader>,
    /// The blob's entry in it.
    pub entry: Entry,
    /// The path below `data/`.
    pub path: String,
    /// The SHA-256 from its manifest.
    pub sha256: [u8; 32],
}

/// Which kind of blob: ids are unique within a kind, not across kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A training image.
    Image = 0,
    /// A stored prediction's image.
    Prediction = 1,
}

/// The kind and id of an image or prediction file, by the archive layout.
fn blob_key(rel: &str) -> Option<(BlobKind, Uuid)> {
    let parts: Vec<&str> = rel.split('/').collect();
    let (kind, file) = match parts.as_slice() {
        ["projects", _, "images", file] => (BlobKind::Image, file),
        ["projects", _, "predictions", file] => (BlobKind::Prediction, file),
        _ => return None,
    };
    Some((kind, file.split('.').next()?.parse().ok()?))
}
