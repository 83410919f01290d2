//! Incremental backups: images (and prediction images) that a previous archive already holds are
//! copied from it instead of downloaded. Custom Vision never changes an image's bytes under the
//! same id, so the previous archive's copy is the image. The copy is raw (the zip entry's bytes
//! as they are stored there, no re-compression), done by the archive writer, and checked on the
//! way against that archive's manifest hash; one that does not match is downloaded instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::archive::bagit::MANIFEST_NAME;
use crate::archive::{data, BagReader, Entry};

/// A previous archive, indexed by the ids of the blobs it holds.
pub struct Base {
    reader: Arc<BagReader>,
    path: PathBuf,
    /// (kind, image or prediction id) -> (path below data/, SHA-256 from the manifest).
    blobs: HashMap<(BlobKind, Uuid), (String, [u8; 32])>,
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
    /// Opens `path` and reads its manifest.
    pub fn open(path: &Path) -> Result<Base, BaseError> {
        let fail = |reason: String| BaseError { path: path.to_path_buf(), reason };
        let reader = BagReader::open(path).map_err(|e| fail(crate::text::error_chain(&e)))?;
        let entry = reader
            .bag_entry(MANIFEST_NAME)
            .map_err(|e| fail(crate::text::error_chain(&e)))?
            .ok_or_else(|| fail(format!("it has no {MANIFEST_NAME}")))?;
        // Streamed; only lines naming an image or prediction entry the archive holds are kept.
        let mut blobs = HashMap::new();
        let mut failed = None;
        data::read_manifest(&reader, &entry, |_, line| {
            let Ok((sha, full)) = line else { return };
            let Some(rel) = full.strip_prefix("data/") else { return };
            let Some(key) = blob_key(rel) else { return };
            match reader.bag_entry(&full).map(|e| e.is_some()) {
                Ok(true) => {
                    blobs.insert(key, (rel.to_owned(), sha));
                }
                Ok(false) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        })
        .map_err(|e| fail(format!("{MANIFEST_NAME}: {e}")))?;
        if let Some(e) = failed {
            return Err(fail(crate::text::error_chain(&e)));
        }
        Ok(Base { reader: Arc::new(reader), path: path.to_path_buf(), blobs })
    }

    /// Where the previous archive holds the blob with this id: `None` when it does not,
    /// `Some(Err(reason))` when its manifest lists it but the entry is missing.
    pub fn locate(&self, kind: BlobKind, id: Uuid) -> Option<Result<BaseBlob, String>> {
        let (rel, sha256) = self.blobs.get(&(kind, id))?;
        let found = match self.reader.bag_entry(&format!("data/{rel}")) {
            Ok(Some(entry)) => Ok(BaseBlob { source: self.reader.clone(), entry, path: rel.clone(), sha256: *sha256 }),
            Ok(None) => Err(format!("{}: data/{rel} is listed but absent", self.path.display())),
            Err(e) => Err(crate::text::error_chain(&e)),
        };
        Some(found)
    }
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
    Image,
    /// A stored prediction's image.
    Prediction,
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
