//! One project's export: its metadata, iterations, images and stored predictions, in that
//! order (model exports are in `models`, stored predictions in `predictions`). Listing runs
//! ahead in its own task; downloads run `concurrency` at a time; everything goes to the single
//! archive sink.
//!
//! Memory per image of the project: its id in an [`IdSet`] (about 12 bytes), because listing by
//! `skip` repeats images when the workspace changes and each must be archived once, and its
//! ordinal there is its `images.jsonl` line number; one bit for the listing pass (to count what
//! each pass saw). Its `images.jsonl` line waits in a [`Spool`] on disk.

use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use super::account::{AccountProject, ArchivedCounts, ImageCounts, Missing};
use super::base::{Base, BlobKind};
use super::download::{fetch_image, freshen, limited, Failure, ListedImage, Refresher};
use super::ids::{Bits, IdList, IdSet};
use super::iterations::{self, Evaluated};
use super::resume::ResumedBlobs;
use super::sink::{Item, Sink};
use super::spool::{Rewrite, Spool};
use super::{Error, ExportOptions};
use crate::api::model::{Iteration, Project};
use crate::api::{self, paging, Client, ImageQuery, OrderBy, MAX_TAKE};
use crate::archive::{layout, WrittenEntry};
use crate::progress::{Event, Phase, Progress};

/// Images the listing may run ahead of the downloads.
const LISTING_AHEAD: usize = 1024;

/// What one project's export needs from the whole export.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub opts: &'a ExportOptions,
    pub progress: &'a dyn Progress,
    pub cancel: &'a CancellationToken,
    /// Where spool files go (beside the archive, so they share its disk).
    pub spool_dir: &'a Path,
    /// Blobs an interrupted run already archived.
    pub kept: &'a ResumedBlobs,
    /// The previous archive of an incremental export.
    pub base: Option<&'a Base>,
    /// Image and prediction bytes fetched over the network, and blobs copied from the base.
    pub counters: &'a Counters,
    /// Domain id -> Classification or ObjectDetection (GetDomains).
    pub domains: &'a std::collections::HashMap<Uuid, String>,
    /// Downloads in flight across every project exported at once.
    pub downloads: &'a tokio::sync::Semaphore,
}

/// What the export fetched, and what it copied from a previous archive instead.
#[derive(Debug, Default)]
pub struct Counters {
    /// Blob bytes downloaded.
    pub downloaded_bytes: std::sync::atomic::AtomicU64,
    /// Blobs copied from the base archive.
    pub from_base: std::sync::atomic::AtomicU64,
}

/// Exports one project into the sink and returns its record for `account.json`.
pub async fn export_project(ctx: &Ctx<'_>, sink: &Sink, project: Project) -> Result<AccountProject, Error> {
    let client = ctx.client;
    let pid = project.id;
    ctx.progress.event(Event::ProjectStarted { project_id: pid.to_string(), name: project.name.clone() });
    let phase = |phase| ctx.progress.event(Event::Phase { phase, project_id: Some(pid.to_string()) });
    phase(Phase::Listing);
    let mut record = AccountProject {
        id: pid,
        name: project.name.clone(),
        domain_type: project.settings.as_ref().and_then(|s| s.domain_id).and_then(|d| ctx.domains.get(&d).cloned()),
        reported: ImageCounts::default(),
        reported_after: ImageCounts::default(),
        archived: ArchivedCounts::default(),
        notes: Vec::new(),
        missing: Vec::new(),
        iterations: Vec::new(),
    };

    let stored_project = Project { thumbnail_uri: None, ..project.clone() };
    send_json(sink, layout::project_json(pid), &stored_project).await?;

    // The room check's counts, when it just read them, are the counts at the start.
    record.reported = match ctx.opts.surveyed.as_ref().and_then(|s| s.counts.get(&pid)) {
        Some(counted) => *counted,
        None => counts(client, pid).await?,
    };
    ctx.progress.event(Event::ImagesFound {
        project_id: pid.to_string(),
        total: record.reported.tagged + record.reported.untagged,
    });
    phase(Phase::Downloading);

    // The images (the long part) start at once; tags, iterations with their performance and
    // exports, and stored predictions are read meanwhile, each into a record of its own that is
    // merged after.
    let mut meta = record.clone();
    let metadata = async {
        let tags = client.get_tags(pid, None).await?;
        meta.archived.tags = tags.len() as u64;
        send_json(sink, layout::tags_json(pid), &tags).await?;
        let iterations = client.get_iterations(pid).await?;
        meta.archived.iterations = iterations.len() as u64;
        send_json(sink, layout::iterations_json(pid), &iterations).await?;
        let mut evaluated = Vec::new();
        for iteration in &iterations {
            check(ctx.cancel)?;
            export_iteration(ctx, sink, pid, iteration, &mut meta, &mut evaluated).await?;
        }
        Ok::<_, Error>(evaluated)
    };
    let mut stored = record.clone();
    let predictions = async {
        match ctx.opts.predictions {
            true => super::predictions::export_predictions(ctx, sink, pid, &mut stored).await,
            false => Ok(()),
        }
    };
    let (evaluated, workspace, ()) =
        tokio::try_join!(metadata, export_images(ctx, sink, pid, &mut record), predictions)?;
    phase(Phase::Finishing);
    record.archived.predictions = stored.archived.predictions;
    record.archived.prediction_bytes = stored.archived.prediction_bytes;
    record.missing.extend(stored.missing);
    record.archived.tags = meta.archived.tags;
    record.archived.iterations = meta.archived.iterations;
    record.archived.model_exports = meta.archived.model_exports;
    record.archived.model_bytes = meta.archived.model_bytes;
    record.missing.splice(0..0, meta.missing);
    // The workspace's images have ordinals (and `images.jsonl` numbers) below `workspace_end`;
    // the images only iterations hold get theirs from `find`, after.
    let mut ids = workspace.ids;
    let workspace_end = ids.len();
    let found = iterations::find(client, pid, evaluated, &mut ids, workspace_end).await?;
    drop(ids);
    record.iterations = found.iterations.clone();
    record.missing.extend(found.missing.iter().cloned());
    let mut spool = workspace.spool;
    iterations::archive_only_in_iterations(ctx, sink, pid, &mut record, &mut spool, found.only).await?;
    let holders = found.holders;
    let rewrite: Rewrite =
        Box::new(move |seq, line, out| iterations::membership(seq, line, seq < workspace_end, &holders, out));
    let reader = spool.into_reader_rewriting(rewrite).map_err(Error::Spool)?;
    sink.send(Item::DeflatedReader { path: layout::images_jsonl(pid), reader: Box::new(reader) }).await?;
    reconcile(&mut record);
    ctx.progress.event(Event::ProjectFinished {
        project_id: pid.to_string(),
        images: record.archived.tagged + record.archived.untagged,
    });
    Ok(record)
}

async fn counts(client: &Client, pid: Uuid) -> Result<ImageCounts, Error> {
    let (tagged, untagged) =
        tokio::try_join!(client.get_tagged_image_count(pid), client.get_untagged_image_count(pid))?;
    Ok(ImageCounts { tagged, untagged })
}

/// Performance, image performances and model exports of one iteration. Untrained iterations
/// have no performance; a failure on one iteration is recorded, not fatal.
async fn export_iteration(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    iteration: &Iteration,
    record: &mut AccountProject,
    evaluated: &mut Vec<Evaluated>,
) -> Result<(), Error> {
    let client = ctx.client;
    let it = iteration.id;
    let mut missing = |kind: &str, e: &api::Error| {
        record.missing.push(Missing { kind: kind.into(), project: pid, id: it, reason: e.to_string() })
    };
    if iteration.is_trained() {
        match client.get_iteration_performance(pid, it, None, None).await {
            Ok(perf) => send_json(sink, layout::performance_json(pid, it), &perf).await?,
            Err(e) if is_project_gone(&e) => return Err(e.into()),
            Err(e) => missing("performance", &e),
        }
        let pages = paging::offset_pages(MAX_TAKE, |skip, take| {
            let q = ImageQuery { order_by: OrderBy::Oldest, take, skip, ..Default::default() };
            async move { client.get_image_performances(pid, it, &q).await }
        });
        let mut spool = Spool::new_in(ctx.spool_dir).map_err(Error::Spool)?;
        let mut seq = 0u64;
        let mut ids = IdList::new_in(ctx.spool_dir).map_err(Error::Spool)?;
        let listed: Result<(), api::Error> = async {
            let spooled = |e: std::io::Error| api::Error::Request { op: "Spool", detail: e.to_string() };
            futures::pin_mut!(pages);
            while let Some(page) = pages.try_next().await? {
                for p in page {
                    ids.push(p.id).map_err(spooled)?;
                    let line = serde_json::to_vec(&p.without_uris()).expect("wire types serialise");
                    spool.push(seq, &line).map_err(spooled)?;
                    seq += 1;
                }
            }
            Ok(())
        }
        .await;
        // Even a failed listing counts: its ids then fall short of the iteration's count, and
        // the iteration is listed in full.
        evaluated.push(Evaluated { iteration: it, ids });
        match listed {
            Ok(()) => send_spool(sink, layout::image_performances_jsonl(pid, it), spool).await?,
            Err(e) if is_project_gone(&e) => return Err(e.into()),
            Err(e) => missing("image-performances", &e),
        }
    }
    super::models::export_models(ctx, sink, pid, it, record).await
}

/// Lists tagged then untagged images (oldest first, so that pages stay stable while images are
/// added), downloads them `concurrency` at a time, and writes `images.jsonl` in listing order.
async fn export_images(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    record: &mut AccountProject,
) -> Result<WorkspaceImages, Error> {
    let (tx, listed_rx) = mpsc::channel::<Result<ListedImage, api::Error>>(LISTING_AHEAD);
    let lister = tokio::spawn(list_workspace(
        ctx.client.clone(),
        pid,
        record.reported,
        tx,
        ctx.cancel.clone(),
        ctx.kept.clone(),
        IdSet::new_in(ctx.spool_dir),
    ));
    let (fresh_tx, rx) = mpsc::channel::<Result<ListedImage, api::Error>>(ctx.opts.concurrency.max(1) * 2);
    let freshener = tokio::spawn(freshen(ctx.client.clone(), pid, listed_rx, fresh_tx));
    let client = ctx.client;
    let refresher = Refresher::start(client.clone(), pid);
    let refresher = &refresher;
    let downloads = ReceiverStream::new(rx)
        .map(|listed| async move {
            let listed = listed?;
            if listed.gone {
                return Ok((listed, Err(Failure::Gone)));
            }
            if listed.kept.is_some() {
                return Ok((listed, Ok(None)));
            }
            if let Some(copied) = copy_from_base(ctx, sink, BlobKind::Image, listed.image.id).await? {
                return Ok((listed, Ok(Some(Stored::InArchive(copied)))));
            }
            let uri = listed.image.original_image_uri.clone();
            // Each download runs as its own task, so that receiving and hashing bodies spreads
            // over every core instead of sharing the export's one task.
            let (client, refresher, id) = (client.clone(), refresher.clone(), listed.image.id);
            let result = limited(ctx, |max| async move {
                let task =
                    tokio::spawn(async move { fetch_image(&client, &refresher, pid, id, uri.as_deref(), max).await });
                AbortOnDropHandle::new(task)
                    .await
                    .unwrap_or_else(|e| Err(Failure::Failed(format!("the download task failed: {e}"))))
            })
            .await;
            Ok::<_, Error>((listed, result.map(|blob| Some(Stored::New(blob)))))
        })
        .buffer_unordered(ctx.opts.concurrency.max(1));
    futures::pin_mut!(downloads);
    let mut spool = Spool::new_in(ctx.spool_dir).map_err(Error::Spool)?;
    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => {
                lister.abort();
                freshener.abort();
                return Err(Error::Interrupted);
            }
            next = downloads.next() => next,
        };
        let Some(result) = next else { break };
        let (listed, fetched) = result?;
        archive_listed(ctx, sink, pid, record, &mut spool, listed, fetched).await?;
    }
    let listing = match lister.await {
        Ok(Ok(listing)) => listing,
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(Error::Internal(format!("the image listing task failed: {e}"))),
    };
    note_listing(record, pid, &listing);
    Ok(WorkspaceImages { spool, ids: listing.ids })
}

/// Puts one listed image in the archive (or records why it is not there): its `images.jsonl`
/// line into `spool`, its bytes to the writer when newly downloaded, and the project's counts.
async fn archive_listed(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    record: &mut AccountProject,
    spool: &mut Spool,
    mut listed: ListedImage,
    fetched: Result<Option<Stored>, Failure>,
) -> Result<(), Error> {
    match fetched {
        Ok(blob) => {
            let in_archive = match &blob {
                Some(Stored::InArchive(copied)) => Some(copied.clone()),
                _ => listed.kept.take(),
            };
            let (path, sha256, size) = match (&blob, in_archive) {
                (_, Some(entry)) => (entry.data_path, entry.sha256, entry.size),
                (Some(Stored::New(b)), None) => (
                    layout::image_file(pid, listed.image.id, layout::sniff_extension(&b.bytes)),
                    b.sha256,
                    b.bytes.len() as u64,
                ),
                (_, None) => unreachable!("a listed image is kept, copied or downloaded"),
            };
            let mut value = serde_json::to_value(listed.image.without_uris()).expect("wire types serialise");
            annotate(&mut value, &path, &sha256, size);
            value["taggingStatus"] = Value::from(if listed.tagged { "Tagged" } else { "Untagged" });
            spool.push(listed.seq, &serde_json::to_vec(&value).expect("serialise")).map_err(Error::Spool)?;
            if listed.tagged {
                record.archived.tagged += 1;
            } else {
                record.archived.untagged += 1;
            }
            record.archived.image_bytes += size;
            if let Some(Stored::New(blob)) = blob {
                sink.send(Item::Stored { path, bytes: blob.bytes, crc32: blob.crc32, sha256 }).await?;
            }
            ctx.progress.event(Event::Transferred { project_id: pid.to_string(), bytes: size });
        }
        Err(Failure::Gone) => record.notes.push(format!("image {} was deleted during the export", listed.image.id)),
        Err(failure) => {
            let reason = failure.reason();
            ctx.progress.event(Event::Warning {
                message: format!("image {} of project {pid} not archived: {reason}", listed.image.id),
            });
            record.missing.push(Missing { kind: "image".into(), project: pid, id: listed.image.id, reason });
        }
    }
    Ok(())
}

/// What the listing itself says of the workspace: the counts after it, whether it changed while
/// it was listed, and what a listing that never settled may have missed.
fn note_listing(record: &mut AccountProject, pid: Uuid, listing: &Listing) {
    record.reported_after = listing.after;
    if listing.passes > 1 {
        record.notes.push(format!(
            "the workspace changed while it was listed: listed {} times until {}",
            listing.passes,
            if listing.settled { "a listing matched the service's counts" } else { "giving up" }
        ));
    }
    if !listing.settled {
        let (got, now) = (listing.last_pass, listing.after);
        record.missing.push(Missing {
            kind: "image-listing".into(),
            project: pid,
            id: pid,
            reason: format!(
                "the workspace kept changing while it was listed ({} listings): the service now reports {} tagged \
                 and {} untagged images, the last listing found {} and {}; images it skipped are not archived",
                listing.passes, now.tagged, now.untagged, got.tagged, got.untagged
            ),
        });
    }
}

/// The workspace's part of `images.jsonl`, not yet written: the images in it (an image's
/// ordinal is its line's number).
struct WorkspaceImages {
    spool: Spool,
    ids: IdSet,
}

/// How often the workspace is listed again when it changed while it was listed.
const MAX_LISTING_PASSES: u32 = 3;

/// What listing the workspace found.
struct Listing {
    /// Every image listed, in any pass; an image's ordinal is its `images.jsonl` line's number.
    ids: IdSet,
    /// The counts after the last pass.
    after: ImageCounts,
    /// The distinct images the last pass listed, per list.
    last_pass: ImageCounts,
    passes: u32,
    /// Whether a pass saw the workspace still: the counts before and after it equal, and equal
    /// to what it listed. Paging by `skip` skips images when others are deleted or re-tagged
    /// mid-listing; a still pass cannot have skipped any.
    settled: bool,
}

/// The listing task: tagged then untagged images, oldest first (so that images added meanwhile
/// come last and shift nothing), de-duplicated by id; listed again, sending only new images on,
/// while the workspace changed during the last pass (up to [`MAX_LISTING_PASSES`]). A delete and
/// an add during one pass can cancel out in the counts; the next export finds what it skipped.
async fn list_workspace(
    client: Client,
    pid: Uuid,
    mut before: ImageCounts,
    tx: mpsc::Sender<Result<ListedImage, api::Error>>,
    cancel: CancellationToken,
    kept: ResumedBlobs,
    ids: IdSet,
) -> Result<Listing, Error> {
    let mut listing = Listing { ids, after: before, last_pass: ImageCounts::default(), passes: 0, settled: false };
    // The images a pass listed, by ordinal: one bit an image.
    let mut this_pass = Bits::default();
    while listing.passes < MAX_LISTING_PASSES && !cancel.is_cancelled() {
        listing.passes += 1;
        this_pass.clear();
        let Some(pass) = list_images(&client, pid, &tx, &cancel, &kept, &mut listing, &mut this_pass).await? else {
            break;
        };
        // Counted again as soon as the pass ends, while the downloads go on.
        listing.after = counts(&client, pid).await?;
        listing.last_pass = pass;
        listing.settled = before == listing.after && pass == listing.after;
        if listing.settled {
            break;
        }
        before = listing.after;
    }
    Ok(listing)
}

/// One pass over the tagged then the untagged images: sends the images not listed before on,
/// and returns how many distinct images each list held; `None` when it stopped (an error, sent
/// on; the receiver gone; cancelled). `this_pass` comes empty and leaves with the pass's images.
async fn list_images(
    client: &Client,
    pid: Uuid,
    tx: &mpsc::Sender<Result<ListedImage, api::Error>>,
    cancel: &CancellationToken,
    kept: &ResumedBlobs,
    listing: &mut Listing,
    this_pass: &mut Bits,
) -> Result<Option<ImageCounts>, Error> {
    let mut found = ImageCounts::default();
    for tagged in [true, false] {
        let pages = paging::offset_pages(MAX_TAKE, |skip, take| {
            let q = ImageQuery { order_by: OrderBy::Oldest, take, skip, ..Default::default() };
            async move {
                if tagged {
                    client.get_tagged_images(pid, &q).await
                } else {
                    client.get_untagged_images(pid, &q).await
                }
            }
        });
        futures::pin_mut!(pages);
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let page = match pages.try_next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return Ok(None);
                }
            };
            for image in page {
                let (seq, new) = listing.ids.insert(image.id).map_err(Error::Spool)?;
                if !this_pass.insert(seq) {
                    continue;
                }
                match tagged {
                    true => found.tagged += 1,
                    false => found.untagged += 1,
                }
                if !new {
                    continue;
                }
                let kept = kept.take_image(image.id).map_err(Error::Spool)?;
                let listed = ListedImage { seq, image, tagged, gone: false, kept };
                if tx.send(Ok(listed)).await.is_err() {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(found))
}

/// Copies the blob from the base archive into this one, if it holds a usable copy, and returns
/// the entry written; an unusable one is reported and left to a download.
pub(super) async fn copy_from_base(
    ctx: &Ctx<'_>,
    sink: &Sink,
    kind: BlobKind,
    id: Uuid,
) -> Result<Option<WrittenEntry>, Error> {
    let Some(found) = ctx.base.and_then(|base| base.locate(kind, id)) else { return Ok(None) };
    let refused = match found {
        Ok(held) => {
            let (reply, answer) = oneshot::channel();
            let item =
                Item::RawCopy { path: held.path, source: held.source, entry: held.entry, sha256: held.sha256, reply };
            sink.send(item).await?;
            match answer.await {
                Ok(Ok(entry)) => {
                    ctx.counters.from_base.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Some(entry));
                }
                Ok(Err(reason)) => reason,
                // The writer stopped; the next send says why.
                Err(_) => return Ok(None),
            }
        }
        Err(reason) => reason,
    };
    ctx.progress.event(Event::Warning { message: format!("{refused}; downloading {id} instead") });
    Ok(None)
}

/// A blob: downloaded now, or already in the archive (kept from an interrupted run, or copied
/// from the base archive).
pub(super) enum Stored {
    /// Downloaded now.
    New(api::Blob),
    /// Already in the archive.
    InArchive(WrittenEntry),
}

/// Notes why the counts the service reported differ from what was archived.
fn reconcile(record: &mut AccountProject) {
    let archived = ImageCounts { tagged: record.archived.tagged, untagged: record.archived.untagged };
    let (before, after) = (record.reported, record.reported_after);
    let missing_images = record.missing.iter().filter(|m| m.kind == "image").count() as u64;
    for (what, b, a, got) in [
        ("tagged", before.tagged, after.tagged, archived.tagged),
        ("untagged", before.untagged, after.untagged, archived.untagged),
    ] {
        if b == got && a == got {
            continue;
        }
        let cause = if a > b {
            format!("{} {what} images were added during the export", a - b)
        } else if a < b {
            format!("{} {what} images were deleted or re-tagged during the export", b - a)
        } else if missing_images > 0 {
            format!("{missing_images} images could not be archived (see missing)")
        } else {
            "cause unknown".to_owned()
        };
        record.notes.push(format!(
            "{what}: the service reported {b} at the start and {a} at the end; the archive holds {got} ({cause})"
        ));
    }
}

pub(super) fn annotate(value: &mut Value, path: &str, sha256: &[u8; 32], size: u64) {
    if let Value::Object(map) = value {
        map.insert("file".into(), Value::from(path));
        map.insert("sha256".into(), Value::from(hex::encode(sha256)));
        map.insert("size".into(), Value::from(size));
    }
}

pub(super) async fn send_json<T: Serialize>(sink: &Sink, path: String, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(value).expect("wire types serialise");
    sink.send(Item::Deflated { path, bytes }).await.map_err(Error::from)
}

pub(super) async fn send_spool(sink: &Sink, path: String, spool: Spool) -> Result<(), Error> {
    let reader = spool.into_reader().map_err(Error::Spool)?;
    sink.send(Item::DeflatedReader { path, reader: Box::new(reader) }).await.map_err(Error::from)
}

pub(super) fn is_project_gone(e: &api::Error) -> bool {
    e.code() == Some("NotFoundProject")
}

fn check(cancel: &CancellationToken) -> Result<(), Error> {
    if cancel.is_cancelled() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
