//! Where the finished archive goes (and its hash, when the writer could not take it): renamed into place beside `--out` (a local archive), or
//! committed in a store (an archive uploaded while it was written, see `store::upload`). For a
//! remote archive, `opts.out` is a file in the spool folder: the writer writes its partial file
//! and journal there, and every temporary file of the export goes there too.

use std::path::Path;

use super::Error;
use crate::archive::writer::journal_path;
use crate::archive::BagWriter;
use crate::store::upload::{record_path, Record, Shipped, Target, Upload};

/// The upload record an earlier run left for `target`, if the writer is about to resume:
/// read first, since it says which bytes of the partial file are gone (in the store).
pub(super) fn earlier_record(partial: &Path, target: &Target) -> Result<Option<Record>, Error> {
    Record::load(partial, &target.url).map_err(|source| Error::Output { path: record_path(partial), source })
}

/// Starts uploading the partial archive `partial` as `writer` writes it.
pub(super) async fn start_upload(
    target: &Target,
    partial: &Path,
    record: Option<Record>,
    writer: &mut BagWriter,
) -> Result<Upload, Error> {
    let (target, partial, at) = (target.clone(), partial.to_path_buf(), writer.written_bytes());
    let upload = tokio::task::spawn_blocking(move || {
        let store = crate::store::connect(&target.url)?;
        Upload::start(store, &target, &partial, record, at)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(Error::Store)?;
    writer.ship(upload.watcher());
    Ok(upload)
}

/// Ships the rest of the archive (`len` bytes) and commits it in the store; then removes the
/// spool files. Returns the archive's hash and how the upload went.
pub(super) async fn finish_upload(upload: Upload, partial: &Path, len: u64) -> Result<Shipped, Error> {
    let shipped = tokio::task::spawn_blocking(move || upload.finish(len))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Store)?;
    for file in [partial.to_path_buf(), journal_path(partial), record_path(partial)] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove the spool file {}: {e}", file.display()),
        }
    }
    Ok(shipped)
}

/// Stops an upload whose export stopped, keeping the parts it sent for the next run.
pub(super) async fn abandon_upload(upload: Option<Upload>) {
    if let Some(upload) = upload {
        let _ = tokio::task::spawn_blocking(move || upload.abandon()).await;
    }
}

/// SHA-256 and size of the finished archive, hashed by [`crate::archive::digest::hash_file`] off the async threads.
pub(super) async fn hash_archive(path: &Path) -> std::io::Result<(String, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || crate::archive::digest::hash_file(&std::fs::File::open(&path)?))
        .await
        .map_err(std::io::Error::other)?
}

/// Moves the finished archive to its final name, atomically, and makes the rename durable.
pub(super) fn publish(partial: &Path, out: &Path, force: bool) -> Result<(), Error> {
    if crate::sidefile::occupied(out) && !force {
        return Err(Error::Exists(out.to_path_buf()));
    }
    let failed = |source| Error::Output { path: out.to_path_buf(), source };
    std::fs::rename(partial, out).map_err(failed)?;
    crate::platform::sync_parent(out).map_err(failed)
}
