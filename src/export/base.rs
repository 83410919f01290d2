//! Incremental backups: images (and prediction images) that a previous archive already holds are
//! copied from it instead of downloaded. Custom Vision never changes an image's bytes under the
//! same id, so the previous archive's copy is the image; each copy is checked against that
//! archive's manifest hash before it is used, and falls back to a download if it does not match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::Blob;
use crate::archive::bagit::{parse_manifest_line, MANIFEST_NAME};
use crate::archive::BagReader;

/// The largest manifest read from a previous archive (about 7 million lines).
const MAX_MANIFEST: u64 = 1 << 30;

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
        let reader = BagReader::open(path).map_err(|e| fail(e.to_string()))?;
        let entry = reader.bag_entry(MANIFEST_NAME).ok_or_else(|| fail(format!("it has no {MANIFEST_NAME}")))?;
        let manifest = reader.read_entry(entry, MAX_MANIFEST).map_err(|e| fail(format!("{MANIFEST_NAME}: {e}")))?;
        let text = String::from_utf8(manifest).map_err(|_| fail(format!("{MANIFEST_NAME} is not UTF-8")))?;
        let mut blobs = HashMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok((sha, full)) = parse_manifest_line(line) else { continue };
            let Some(rel) = full.strip_prefix("data/") else { continue };
            if let Some(key) = blob_key(rel) {
                blobs.insert(key, (rel.to_owned(), sha));
            }
        }
        Ok(Base { reader: Arc::new(reader), path: path.to_path_buf(), blobs })
    }

    /// The blob with this id, read from the previous archive and checked against its manifest:
    /// `None` when it does not hold it, `Some(Err(reason))` when its copy is unusable.
    pub async fn copy(&self, kind: BlobKind, id: Uuid, max_bytes: u64) -> Option<Result<Blob, String>> {
        let (rel, expected) = self.blobs.get(&(kind, id))?.clone();
        let reader = self.reader.clone();
        let shown = self.path.display().to_string();
        let read = tokio::task::spawn_blocking(move || {
            let entry = reader
                .bag_entry(&format!("data/{rel}"))
                .ok_or_else(|| format!("{shown}: data/{rel} is listed but absent"))?;
            let bytes = reader.read_entry(entry, max_bytes).map_err(|e| format!("{shown}: data/{rel}: {e}"))?;
            let sha256: [u8; 32] = Sha256::digest(&bytes).into();
            if sha256 != expected {
                return Err(format!("{shown}: data/{rel} does not match its manifest hash"));
            }
            Ok(Blob { crc32: crc32fast::hash(&bytes), bytes: Bytes::from(bytes), sha256, content_type: None })
        })
        .await;
        Some(read.unwrap_or_else(|e| Err(format!("reading the base archive failed: {e}"))))
    }
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
