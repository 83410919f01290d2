//! What an interrupted export left behind, and what this run may reuse of it: every downloaded
//! blob (images, prediction images, model packages) is kept; metadata is read afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::archive::WrittenEntry;

/// Blobs an earlier run of the same export wrote, claimed one by one as this run meets them.
#[derive(Clone, Default)]
pub struct ResumedBlobs(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    images: HashMap<Uuid, WrittenEntry>,
    predictions: HashMap<Uuid, WrittenEntry>,
    models: Vec<WrittenEntry>,
    metadata: Vec<String>,
}

/// What kind of payload file a path is, by the archive layout.
enum Kind {
    Image(Uuid),
    Prediction(Uuid),
    Model,
    Metadata,
}

fn kind(path: &str) -> Kind {
    let parts: Vec<&str> = path.split('/').collect();
    let id = |file: &str| file.split('.').next().and_then(|s| s.parse::<Uuid>().ok());
    match parts.as_slice() {
        ["projects", _, "images", file] => id(file).map_or(Kind::Metadata, Kind::Image),
        ["projects", _, "predictions", file] => id(file).map_or(Kind::Metadata, Kind::Prediction),
        ["projects", _, "iterations", _, "models", _] => Kind::Model,
        _ => Kind::Metadata,
    }
}

impl ResumedBlobs {
    /// Sorts the journal of a resumed archive into reusable blobs and stale metadata.
    pub fn new(entries: Vec<WrittenEntry>) -> ResumedBlobs {
        let mut inner = Inner::default();
        for e in entries {
            match kind(&e.data_path) {
                Kind::Image(id) => {
                    inner.images.insert(id, e);
                }
                Kind::Prediction(id) => {
                    inner.predictions.insert(id, e);
                }
                Kind::Model => inner.models.push(e),
                Kind::Metadata => inner.metadata.push(e.data_path),
            }
        }
        ResumedBlobs(Arc::new(Mutex::new(inner)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The metadata files of the earlier run, to be left out (this run writes them anew).
    pub fn metadata_paths(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().metadata)
    }

    /// The image, if an earlier run archived it.
    pub fn take_image(&self, id: Uuid) -> Option<WrittenEntry> {
        self.lock().images.remove(&id)
    }

    /// The prediction's image, if an earlier run archived it.
    pub fn take_prediction(&self, id: Uuid) -> Option<WrittenEntry> {
        self.lock().predictions.remove(&id)
    }

    /// A model package whose path starts with `prefix` (its extension came from its content).
    pub fn take_model(&self, prefix: &str) -> Option<WrittenEntry> {
        let mut inner = self.lock();
        let at = inner.models.iter().position(|m| m.data_path.starts_with(prefix))?;
        Some(inner.models.swap_remove(at))
    }

    /// Every blob no one claimed: its image or prediction is gone since the earlier run.
    pub fn unclaimed_paths(&self) -> Vec<String> {
        let mut inner = self.lock();
        let mut paths: Vec<String> = inner.images.drain().map(|(_, e)| e.data_path).collect();
        paths.extend(inner.predictions.drain().map(|(_, e)| e.data_path));
        paths.extend(inner.models.drain(..).map(|e| e.data_path));
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sorted_by_kind() {
        let p = Uuid::new_v4();
        let i = Uuid::new_v4();
        assert!(matches!(kind(&format!("projects/{p}/images/{i}.jpg")), Kind::Image(x) if x == i));
        assert!(matches!(kind(&format!("projects/{p}/predictions/{i}.png")), Kind::Prediction(x) if x == i));
        assert!(matches!(kind(&format!("projects/{p}/iterations/{i}/models/ONNX.zip")), Kind::Model));
        assert!(matches!(kind(&format!("projects/{p}/images.jsonl")), Kind::Metadata));
        assert!(matches!(kind("account.json"), Kind::Metadata));
        assert!(matches!(kind(&format!("projects/{p}/images/not-a-uuid.jpg")), Kind::Metadata));
    }
}
