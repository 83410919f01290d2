//! What an interrupted export left behind, and what this run may reuse of it: every downloaded
//! blob (images, prediction images, model packages) is kept; metadata is read afresh.
//!
//! Memory per kept image or prediction image: its id in an [`IdSet`] (about 12 bytes) and one
//! bit (claimed or not). Its entry (offsets, sizes, hashes, path: about 150 bytes) is a line of
//! a [`Spool`] on disk beside the archive, numbered by the id's ordinal, read back when this run
//! meets the id. Model packages and stale metadata paths (a few a project) stay in memory.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::ids::{Bits, IdSet};
use super::spool::{Spool, SpoolLines};
use crate::archive::WrittenEntry;

/// Blobs an earlier run of the same export wrote, claimed one by one as this run meets them.
#[derive(Clone, Default)]
pub struct ResumedBlobs(Arc<Mutex<Option<Inner>>>);

struct Inner {
    /// Images, then prediction images.
    blobs: [Kept; 2],
    models: Vec<WrittenEntry>,
    metadata: Vec<String>,
}

/// Kept blobs of one kind: an id's ordinal numbers its entry's line.
struct Kept {
    ids: IdSet,
    entries: SpoolLines,
    claimed: Bits,
}

impl Kept {
    fn take(&mut self, id: Uuid) -> io::Result<Option<WrittenEntry>> {
        let Some(n) = self.ids.get(&id)? else { return Ok(None) };
        if !self.claimed.insert(n) {
            return Ok(None);
        }
        self.entry(n).map(Some)
    }

    fn entry(&self, n: u64) -> io::Result<WrittenEntry> {
        let line = self.entries.get(n)?.ok_or_else(|| io::Error::other(format!("kept entry {n} is not spooled")))?;
        WrittenEntry::from_record(&line)
    }

    fn unclaimed(&self, paths: &mut Vec<String>) -> io::Result<()> {
        for n in (0..self.ids.len()).filter(|n| !self.claimed.contains(*n)) {
            paths.push(self.entry(n)?.data_path);
        }
        Ok(())
    }
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

/// Sorts the entries of a resumed archive, one at a time, into reusable blobs and stale metadata
/// ([`Sorting::add`], then [`Sorting::finish`]).
pub struct Sorting {
    ids: [IdSet; 2],
    spools: [Spool; 2],
    models: Vec<WrittenEntry>,
    metadata: Vec<String>,
    count: u64,
}

impl Sorting {
    /// Nothing sorted yet; spill files go in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<Sorting> {
        Ok(Sorting {
            ids: [IdSet::new_in(dir), IdSet::new_in(dir)],
            spools: [Spool::new_in(dir)?, Spool::new_in(dir)?],
            models: Vec::new(),
            metadata: Vec::new(),
            count: 0,
        })
    }

    /// Sorts one entry of the earlier run. Of two blobs with one id, the first is kept (the
    /// other stays unclaimed, so it is left out).
    pub fn add(&mut self, e: WrittenEntry) -> io::Result<()> {
        self.count += 1;
        let k = match kind(&e.data_path) {
            Kind::Image(id) => (0, id),
            Kind::Prediction(id) => (1, id),
            Kind::Model => {
                self.models.push(e);
                return Ok(());
            }
            Kind::Metadata => {
                self.metadata.push(e.data_path);
                return Ok(());
            }
        };
        let (n, new) = self.ids[k.0].insert(k.1)?;
        if !new {
            self.metadata.push(e.data_path);
            return Ok(());
        }
        self.spools[k.0].push(n, &e.to_record())
    }

    /// Entries sorted so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// The blobs, ready to be claimed.
    pub fn finish(self) -> io::Result<ResumedBlobs> {
        if self.count == 0 {
            return Ok(ResumedBlobs::default());
        }
        let [ids0, ids1] = self.ids;
        let [spool0, spool1] = self.spools;
        let blobs = [
            Kept { ids: ids0, entries: spool0.into_lines()?, claimed: Bits::default() },
            Kept { ids: ids1, entries: spool1.into_lines()?, claimed: Bits::default() },
        ];
        Ok(ResumedBlobs(Arc::new(Mutex::new(Some(Inner { blobs, models: self.models, metadata: self.metadata })))))
    }
}

impl ResumedBlobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Inner>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The metadata files of the earlier run, to be left out (this run writes them anew).
    pub fn metadata_paths(&self) -> Vec<String> {
        self.lock().as_mut().map(|i| std::mem::take(&mut i.metadata)).unwrap_or_default()
    }

    /// The image, if an earlier run archived it (and it is not claimed yet).
    pub fn take_image(&self, id: Uuid) -> io::Result<Option<WrittenEntry>> {
        self.lock().as_mut().map_or(Ok(None), |i| i.blobs[0].take(id))
    }

    /// The prediction's image, if an earlier run archived it (and it is not claimed yet).
    pub fn take_prediction(&self, id: Uuid) -> io::Result<Option<WrittenEntry>> {
        self.lock().as_mut().map_or(Ok(None), |i| i.blobs[1].take(id))
    }

    /// A model package whose path starts with `prefix` (its extension came from its content).
    pub fn take_model(&self, prefix: &str) -> Option<WrittenEntry> {
        let mut inner = self.lock();
        let models = &mut inner.as_mut()?.models;
        let at = models.iter().position(|m| m.data_path.starts_with(prefix))?;
        Some(models.swap_remove(at))
    }

    /// Every blob no one claimed: its image or prediction is gone since the earlier run. Each
    /// is reported once.
    pub fn unclaimed_paths(&self) -> io::Result<Vec<String>> {
        let mut inner = self.lock();
        let Some(inner) = inner.as_mut() else { return Ok(Vec::new()) };
        let mut paths = Vec::new();
        for kept in &mut inner.blobs {
            kept.unclaimed(&mut paths)?;
            for n in 0..kept.ids.len() {
                kept.claimed.insert(n);
            }
        }
        paths.extend(inner.models.drain(..).map(|e| e.data_path));
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Compression;

    fn entry(path: String, offset: u64) -> WrittenEntry {
        WrittenEntry {
            data_path: path,
            offset,
            compressed_size: 10,
            size: 12,
            crc32: 7,
            sha256: [offset as u8; 32],
            compression: Compression::Deflated,
            zip64: false,
            descriptor: false,
        }
    }

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

    #[test]
    fn kept_blobs_are_claimed_once_from_disk_and_the_rest_reported_unclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let p = Uuid::from_u128(99);
        let mut sorting = Sorting::new_in(dir.path()).unwrap();
        let images: Vec<Uuid> = (0..2_000u128).map(Uuid::from_u128).collect();
        for (n, id) in images.iter().enumerate() {
            sorting.add(entry(format!("projects/{p}/images/{id}.jpg"), n as u64)).unwrap();
        }
        let shared = images[5];
        sorting.add(entry(format!("projects/{p}/predictions/{shared}.png"), 5_000)).unwrap();
        sorting.add(entry(format!("projects/{p}/images.jsonl"), 6_000)).unwrap();
        assert_eq!(sorting.len(), 2_002);
        let kept = sorting.finish().unwrap();
        assert_eq!(kept.metadata_paths(), [format!("projects/{p}/images.jsonl")]);
        let got = kept.take_image(images[1_234]).unwrap().unwrap();
        assert_eq!(got, entry(format!("projects/{p}/images/{}.jpg", images[1_234]), 1_234));
        assert_eq!(kept.take_image(images[1_234]).unwrap(), None, "claimed once");
        assert_eq!(kept.take_prediction(shared).unwrap().map(|e| e.offset), Some(5_000), "kinds are apart");
        assert_eq!(kept.take_prediction(images[6]).unwrap(), None);
        for id in &images[..1_999] {
            kept.take_image(*id).unwrap();
        }
        assert_eq!(kept.unclaimed_paths().unwrap(), [format!("projects/{p}/images/{}.jpg", images[1_999])]);
        assert!(kept.unclaimed_paths().unwrap().is_empty());
    }
}
