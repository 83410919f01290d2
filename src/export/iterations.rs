//! Images that only trained iterations hold: which images each trained iteration holds, and the
//! records of those the workspace no longer does.
//!
//! DeleteImages without `allIterations` removes an image from the workspace, but every trained
//! iteration keeps its copy ([spec] DeleteImages, `allIterations`: "Removes these images from
//! all iterations, not just the current workspace"; the image listings' `iterationId`: "Defaults
//! to workspace"). A backup of the workspace alone would miss those copies, and deleting the
//! iteration or the project would then destroy data the backup never held.
//!
//! Finding them costs few calls. GetImagePerformances has already listed, for the iteration's
//! metadata, its images that have results from training. When their number equals the
//! iteration's own image count (GetTaggedImageCount + GetUntaggedImageCount with `iterationId`:
//! two calls), they are all of its images, and only those the workspace lacks are fetched
//! (GetImagesByIds with `iterationId`, 256 per call). Otherwise the counts cannot be reconciled
//! and the iteration is listed in full (GetTaggedImages and GetUntaggedImages with
//! `iterationId`), which costs as many calls as the workspace listing.
//!
//! Memory per image: none for the ids GetImagePerformances listed (an [`IdList`] on disk until
//! the workspace listing is done); one bit per image of the project for each trained iteration
//! (which images it holds, by the project's [`IdSet`] ordinal, for the `iterations` field of
//! each `images.jsonl` line); the ids that only iterations hold join the project's `IdSet`. The
//! records of images only iterations hold (a few hundred bytes each) stay in memory until they
//! are downloaded: those are the images deleted from the workspace but not from its iterations,
//! normally few.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use uuid::Uuid;

use futures::StreamExt;
use serde_json::Value;

use super::account::{AccountProject, IterationImages, Missing};
use super::base::BlobKind;
use super::download::{fetch_image, Failure, Refresher};
use super::ids::{Bits, IdList, IdSet};
use super::project::{annotate, copy_from_base, Ctx, Stored};
use super::sink::{Item, Sink};
use super::spool::Spool;
use super::Error;
use crate::api::model::Image;
use crate::api::{self, paging, Client, ImageQuery, OrderBy, MAX_IMAGE_IDS, MAX_TAKE};
use crate::archive::layout;
use crate::progress::Event;

/// The images of one trained iteration that GetImagePerformances listed.
#[derive(Debug)]
pub struct Evaluated {
    /// The iteration.
    pub iteration: Uuid,
    /// The ids GetImagePerformances listed.
    pub ids: IdList,
}

/// Which iterations hold which images, and the images only iterations hold.
#[derive(Debug, Default)]
pub struct Found {
    /// The trained iterations in GetIterations' order, each with the ordinals (in the project's
    /// [`IdSet`]) of the images it holds.
    pub holders: Vec<(Uuid, Bits)>,
    /// Images the workspace does not hold, as the first iteration holding them has them (with
    /// fresh download links), with that iteration and the image's ordinal (its line's number).
    pub only: Vec<(Uuid, u64, Image)>,
    /// One record per trained iteration.
    pub iterations: Vec<IterationImages>,
    /// Iterations whose images could not be found.
    pub missing: Vec<Missing>,
}

/// Finds what each trained iteration holds beyond the workspace: `ids` holds the images the
/// workspace listing returned, with ordinals below `workspace_end`; the images only iterations
/// hold are added to it. An iteration that cannot be read is recorded as missing, not fatal,
/// unless the project itself is gone.
pub async fn find(
    client: &Client,
    project: Uuid,
    evaluated: Vec<Evaluated>,
    ids: &mut IdSet,
    workspace_end: u64,
) -> Result<Found, api::Error> {
    let mut found = Found::default();
    let mut only_seen = Bits::default();
    for ev in evaluated {
        let iteration = ev.iteration;
        match images_of(client, project, ev, ids, workspace_end).await {
            Ok((record, held, extra)) => {
                for (n, image) in extra {
                    if only_seen.insert(n) {
                        found.only.push((iteration, n, image));
                    }
                }
                found.holders.push((iteration, held));
                found.iterations.push(record);
            }
            Err(e) if e.code() == Some("NotFoundProject") => return Err(e),
            Err(e) => found.missing.push(Missing {
                kind: "iteration-images".into(),
                project,
                id: iteration,
                reason: e.to_string(),
            }),
        }
    }
    Ok(found)
}

fn spooled(e: std::io::Error) -> api::Error {
    api::Error::Request { op: "Spool", detail: e.to_string() }
}

/// One iteration: its record, the ordinals of every image it holds, and the records (with their
/// ordinals) of those the workspace does not hold.
async fn images_of(
    client: &Client,
    project: Uuid,
    ev: Evaluated,
    ids: &mut IdSet,
    workspace_end: u64,
) -> Result<(IterationImages, Bits, Vec<(u64, Image)>), api::Error> {
    let (tagged, untagged) = client.get_iteration_image_counts(project, ev.iteration).await?;
    let reported = tagged + untagged;
    let mut calls = 2;
    // The distinct images GetImagePerformances listed; those the workspace lacks get ordinals
    // after its own (a number never used leaves no line).
    let mut held = Bits::default();
    let mut distinct = 0u64;
    let mut lacking = Vec::new();
    for id in ev.ids.into_ids().map_err(spooled)? {
        let id = id.map_err(spooled)?;
        let (n, _) = ids.insert(id).map_err(spooled)?;
        if held.insert(n) {
            distinct += 1;
            if n >= workspace_end {
                lacking.push(id);
            }
        }
    }
    let (found_by, extra) = if distinct == reported {
        let mut extra = Vec::with_capacity(lacking.len());
        for batch in lacking.chunks(MAX_IMAGE_IDS) {
            calls += 1;
            for image in client.get_images_by_ids_in(project, Some(ev.iteration), batch).await? {
                let (n, _) = ids.insert(image.id).map_err(spooled)?;
                held.insert(n);
                extra.push((n, image));
            }
        }
        ("imagePerformances", extra)
    } else {
        held.clear();
        let (extra, listing_calls) = list_all(client, project, ev.iteration, ids, workspace_end, &mut held).await?;
        calls += listing_calls;
        ("listing", extra)
    };
    let record = IterationImages {
        id: ev.iteration,
        reported,
        only_in_iteration: extra.len() as u64,
        found_by: found_by.to_owned(),
        calls,
    };
    Ok((record, held, extra))
}

/// Lists every tagged and untagged image of an iteration: their ordinals into `held`; the
/// records (with ordinals) of those the workspace does not hold, once each, are returned with
/// the calls it took.
async fn list_all(
    client: &Client,
    project: Uuid,
    iteration: Uuid,
    ids: &mut IdSet,
    workspace_end: u64,
    held: &mut Bits,
) -> Result<(Vec<(u64, Image)>, u64), api::Error> {
    let mut images = Vec::new();
    let mut calls = 0u64;
    for tagged in [true, false] {
        let pages = paging::offset_pages(MAX_TAKE, |skip, take| {
            calls += 1;
            let q = ImageQuery {
                order_by: OrderBy::Oldest,
                take,
                skip,
                iteration_id: Some(iteration),
                ..Default::default()
            };
            async move {
                match tagged {
                    true => client.get_tagged_images(project, &q).await,
                    false => client.get_untagged_images(project, &q).await,
                }
            }
        });
        futures::pin_mut!(pages);
        while let Some(page) = pages.try_next().await? {
            for image in page {
                let (n, _) = ids.insert(image.id).map_err(spooled)?;
                if held.insert(n) && n >= workspace_end {
                    images.push((n, image));
                }
            }
        }
    }
    Ok((images, calls))
}

/// Downloads (or keeps, or copies from the base archive) the images only iterations hold, and
/// adds their `images.jsonl` lines to `spool`, each at its ordinal: each as the iteration
/// holding it has it, `taggingStatus` from its own tags and regions.
pub(super) async fn archive_only_in_iterations(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    record: &mut AccountProject,
    spool: &mut Spool,
    only: Vec<(Uuid, u64, Image)>,
) -> Result<(), Error> {
    if only.is_empty() {
        return Ok(());
    }
    ctx.progress.event(Event::ImagesFound { project_id: pid.to_string(), total: only.len() as u64 });
    let refreshers: HashMap<Uuid, Refresher> = only
        .iter()
        .map(|(it, _, _)| *it)
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|it| (it, Refresher::start_in(ctx.client.clone(), pid, Some(it))))
        .collect();
    let max = ctx.opts.max_image_bytes;
    let downloads = futures::stream::iter(only)
        .map(|(iteration, n, image)| {
            let refresher = refreshers[&iteration].clone();
            async move {
                if let Some(entry) = ctx.kept.take_image(image.id).map_err(Error::Spool)? {
                    return Ok((n, image, Ok(Stored::InArchive(entry))));
                }
                if let Some(copied) = copy_from_base(ctx, sink, BlobKind::Image, image.id).await? {
                    return Ok((n, image, Ok(Stored::InArchive(copied))));
                }
                let _permit = ctx.downloads.acquire().await.expect("the download semaphore is never closed");
                let uri = image.original_image_uri.as_deref();
                let result = fetch_image(ctx.client, &refresher, pid, image.id, uri, max).await;
                if let Ok(blob) = &result {
                    ctx.counters
                        .downloaded_bytes
                        .fetch_add(blob.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok::<_, Error>((n, image, result.map(Stored::New)))
            }
        })
        .buffer_unordered(ctx.opts.concurrency.max(1));
    futures::pin_mut!(downloads);
    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            next = downloads.next() => next,
        };
        let Some(result) = next else { break };
        let (n, image, fetched) = result?;
        let (path, sha256, size, new) = match fetched {
            Ok(Stored::InArchive(entry)) => (entry.data_path, entry.sha256, entry.size, None),
            Ok(Stored::New(blob)) => {
                let path = layout::image_file(pid, image.id, layout::sniff_extension(&blob.bytes));
                (path, blob.sha256, blob.bytes.len() as u64, Some(blob))
            }
            Err(Failure::Gone) => {
                record.notes.push(format!("image {} was deleted from every iteration during the export", image.id));
                continue;
            }
            Err(failure) => {
                let reason = failure.reason();
                ctx.progress.event(Event::Warning {
                    message: format!(
                        "image {} of project {pid} (held only by iterations) not archived: {reason}",
                        image.id
                    ),
                });
                record.missing.push(Missing { kind: "image".into(), project: pid, id: image.id, reason });
                continue;
            }
        };
        let tagged =
            image.tags.as_ref().is_some_and(|t| !t.is_empty()) || image.regions.as_ref().is_some_and(|r| !r.is_empty());
        let mut value = serde_json::to_value(image.without_uris()).expect("wire types serialise");
        annotate(&mut value, &path, &sha256, size);
        value["taggingStatus"] = Value::from(if tagged { "Tagged" } else { "Untagged" });
        spool.push(n, &serde_json::to_vec(&value).expect("serialise")).map_err(Error::Spool)?;
        record.archived.only_in_iterations += 1;
        record.archived.image_bytes += size;
        if let Some(blob) = new {
            sink.send(Item::Stored { path, bytes: blob.bytes, crc32: blob.crc32, sha256 }).await?;
        }
        ctx.progress.event(Event::Transferred { project_id: pid.to_string(), bytes: size });
    }
    Ok(())
}

/// The `images.jsonl` fields that say who holds an image: appended to each line as it is
/// written (`"workspace":…,"iterations":[…]`). `n` is the image's ordinal (its line's number);
/// `holders` are [`Found::holders`].
pub fn membership(n: u64, line: &[u8], in_workspace: bool, holders: &[(Uuid, Bits)], out: &mut Vec<u8>) {
    let Some(body) = line.strip_suffix(b"}") else {
        out.extend_from_slice(line);
        return;
    };
    out.extend_from_slice(body);
    let held_by: Vec<Uuid> = holders.iter().filter(|(_, bits)| bits.contains(n)).map(|(it, _)| *it).collect();
    let fields = serde_json::json!({ "workspace": in_workspace, "iterations": held_by });
    let fields = serde_json::to_vec(&fields).expect("serialise");
    out.push(b',');
    out.extend_from_slice(&fields[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_appended_to_the_line() {
        let (a, b, it) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut bits = Bits::default();
        bits.insert(1);
        let holders = vec![(it, bits)];
        let mut out = Vec::new();
        membership(0, format!(r#"{{"id":"{a}","size":1}}"#).as_bytes(), true, &holders, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["workspace"], true);
        assert_eq!(v["iterations"], serde_json::json!([]));
        out.clear();
        membership(1, format!(r#"{{"id":"{b}"}}"#).as_bytes(), false, &holders, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["workspace"], false);
        assert_eq!(v["iterations"], serde_json::json!([it.to_string()]));
    }
}
