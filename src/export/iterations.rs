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

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use serde::Deserialize;
use uuid::Uuid;

use futures::StreamExt;
use serde_json::Value;

use super::account::{AccountProject, IterationImages, Missing};
use super::base::BlobKind;
use super::download::{fetch_image, Failure, Refresher};
use super::project::{annotate, copy_from_base, Ctx, Stored};
use super::sink::{Item, Sink};
use super::spool::Spool;
use super::Error;
use crate::api::model::Image;
use crate::api::{self, paging, Client, ImageQuery, OrderBy, MAX_IMAGE_IDS, MAX_TAKE};
use crate::archive::layout;
use crate::progress::Event;

/// The images of one trained iteration that GetImagePerformances listed.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The iteration.
    pub iteration: Uuid,
    /// The ids GetImagePerformances listed.
    pub ids: Vec<Uuid>,
}

/// Which iterations hold which images, and the images only iterations hold.
#[derive(Debug, Default)]
pub struct Found {
    /// Image id -> the trained iterations holding it, in GetIterations' order.
    pub holders: HashMap<Uuid, Vec<Uuid>>,
    /// Images the workspace does not hold, as the first iteration holding them has them (with
    /// fresh download links), with that iteration.
    pub only: Vec<(Uuid, Image)>,
    /// One record per trained iteration.
    pub iterations: Vec<IterationImages>,
    /// Iterations whose images could not be found.
    pub missing: Vec<Missing>,
}

/// Finds what each trained iteration holds beyond `workspace` (the ids the workspace listing
/// returned). An iteration that cannot be read is recorded as missing, not fatal, unless the
/// project itself is gone.
pub async fn find(
    client: &Client,
    project: Uuid,
    evaluated: Vec<Evaluated>,
    workspace: &HashSet<Uuid>,
) -> Result<Found, api::Error> {
    let mut found = Found::default();
    let mut only_seen = HashSet::new();
    for ev in evaluated {
        let iteration = ev.iteration;
        match images_of(client, project, &ev, workspace).await {
            Ok((record, held, extra)) => {
                for id in held {
                    found.holders.entry(id).or_default().push(iteration);
                }
                for image in extra {
                    found.holders.entry(image.id).or_default().push(iteration);
                    if only_seen.insert(image.id) {
                        found.only.push((iteration, image));
                    }
                }
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
    for holders in found.holders.values_mut() {
        holders.dedup();
    }
    Ok(found)
}

/// One iteration: its record, the ids of its images the workspace holds, and the records of
/// those it does not.
async fn images_of(
    client: &Client,
    project: Uuid,
    ev: &Evaluated,
    workspace: &HashSet<Uuid>,
) -> Result<(IterationImages, Vec<Uuid>, Vec<Image>), api::Error> {
    let (tagged, untagged) = client.get_iteration_image_counts(project, ev.iteration).await?;
    let reported = tagged + untagged;
    let mut calls = 2;
    let evaluated: HashSet<Uuid> = ev.ids.iter().copied().collect();
    let (found_by, held, extra) = if evaluated.len() as u64 == reported {
        let (held, lacking): (Vec<Uuid>, Vec<Uuid>) = ev.ids.iter().partition(|id| workspace.contains(id));
        let mut extra = Vec::with_capacity(lacking.len());
        for batch in lacking.chunks(MAX_IMAGE_IDS) {
            calls += 1;
            extra.extend(client.get_images_by_ids_in(project, Some(ev.iteration), batch).await?);
        }
        ("imagePerformances", held, extra)
    } else {
        let (listed, listing_calls) = list_all(client, project, ev.iteration).await?;
        calls += listing_calls;
        let (held, extra): (Vec<Image>, Vec<Image>) = listed.into_iter().partition(|i| workspace.contains(&i.id));
        ("listing", held.into_iter().map(|i| i.id).collect(), extra)
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

/// Every tagged and untagged image of an iteration, de-duplicated, and the calls it took.
async fn list_all(client: &Client, project: Uuid, iteration: Uuid) -> Result<(Vec<Image>, u64), api::Error> {
    let mut seen = HashSet::new();
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
            images.extend(page.into_iter().filter(|i| seen.insert(i.id)));
        }
    }
    Ok((images, calls))
}

/// Downloads (or keeps, or copies from the base archive) the images only iterations hold, and
/// adds their `images.jsonl` lines to `spool` from `first_seq` on: each as the iteration holding
/// it has it, `taggingStatus` from its own tags and regions.
pub(super) async fn archive_only_in_iterations(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    record: &mut AccountProject,
    spool: &mut Spool,
    first_seq: u64,
    only: Vec<(Uuid, Image)>,
) -> Result<(), Error> {
    if only.is_empty() {
        return Ok(());
    }
    ctx.progress.event(Event::ImagesFound { project_id: pid.to_string(), total: only.len() as u64 });
    let refreshers: HashMap<Uuid, Refresher> = only
        .iter()
        .map(|(it, _)| *it)
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|it| (it, Refresher::start_in(ctx.client.clone(), pid, Some(it))))
        .collect();
    let max = ctx.opts.max_image_bytes;
    let downloads = futures::stream::iter(only.into_iter().enumerate())
        .map(|(n, (iteration, image))| {
            let refresher = refreshers[&iteration].clone();
            async move {
                if let Some(entry) = ctx.kept.take_image(image.id) {
                    return Ok((n as u64, image, Ok(Stored::InArchive(entry))));
                }
                if let Some(copied) = copy_from_base(ctx, sink, BlobKind::Image, image.id).await? {
                    return Ok((n as u64, image, Ok(Stored::InArchive(copied))));
                }
                let _permit = ctx.downloads.acquire().await.expect("the download semaphore is never closed");
                let uri = image.original_image_uri.as_deref();
                let result = fetch_image(ctx.client, &refresher, pid, image.id, uri, max).await;
                if let Ok(blob) = &result {
                    ctx.counters
                        .downloaded_bytes
                        .fetch_add(blob.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok::<_, Error>((n as u64, image, result.map(Stored::New)))
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
        spool.push(first_seq + n, &serde_json::to_vec(&value).expect("serialise")).map_err(Error::Spool)?;
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
/// written (`"workspace":…,"iterations":[…]`).
pub fn membership(line: &[u8], workspace: &HashSet<Uuid>, holders: &HashMap<Uuid, Vec<Uuid>>, out: &mut Vec<u8>) {
    #[derive(Deserialize)]
    struct Id {
        id: Uuid,
    }
    let Some(body) = line.strip_suffix(b"}") else {
        out.extend_from_slice(line);
        return;
    };
    let Ok(Id { id }) = serde_json::from_slice::<Id>(line) else {
        out.extend_from_slice(line);
        return;
    };
    out.extend_from_slice(body);
    let held_by = holders.get(&id).map_or(&[][..], Vec::as_slice);
    let fields = serde_json::json!({ "workspace": workspace.contains(&id), "iterations": held_by });
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
        let workspace = HashSet::from([a]);
        let holders = HashMap::from([(b, vec![it])]);
        let mut out = Vec::new();
        membership(format!(r#"{{"id":"{a}","size":1}}"#).as_bytes(), &workspace, &holders, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["workspace"], true);
        assert_eq!(v["iterations"], serde_json::json!([]));
        out.clear();
        membership(format!(r#"{{"id":"{b}"}}"#).as_bytes(), &workspace, &holders, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["workspace"], false);
        assert_eq!(v["iterations"], serde_json::json!([it.to_string()]));
    }
}
