//! Stored predictions: QueryPredictions followed by its continuation token, each prediction's
//! image downloaded `concurrency` at a time, and `predictions.jsonl` in listing order.

use std::collections::HashSet;

use futures::TryStreamExt;
use uuid::Uuid;

use super::base::BlobKind;
use super::download::Failure;
use super::project::{annotate, copy_from_base, send_spool, Ctx, Stored};
use super::record::{Missing, ProjectRecord};
use super::sink::{Item, Sink};
use super::spool::Spool;
use super::Error;
use crate::api::model::{PredictionQueryToken, StoredImagePrediction};
use crate::api::{self, paging, MAX_TAKE};
use crate::archive::layout;
use crate::progress::Event;

/// Stored predictions (following the continuation token) and their images.
pub(super) async fn export_predictions(ctx: &Ctx<'_>, sink: &Sink, pid: Uuid, record: &mut ProjectRecord) -> Result<(), Error> {
    let client = ctx.client;
    let first = PredictionQueryToken {
        order_by: Some("Oldest".into()),
        max_count: Some(i64::from(MAX_TAKE)),
        ..Default::default()
    };
    let pages = paging::continuation_pages(first, |token| async move { client.query_predictions(pid, &token).await });
    let mut seen = HashSet::new();
    let mut seq = 0u64;
    let listed = pages
        .map_ok(|page| futures::stream::iter(page.results.into_iter().map(Ok::<_, api::Error>)))
        .try_flatten()
        .try_filter(move |p: &StoredImagePrediction| futures::future::ready(seen.insert(p.id)))
        .map_ok(move |p| {
            seq += 1;
            (seq, p)
        });
    let max = ctx.opts.max_image_bytes;
    let downloads = listed
        .map_err(Error::from)
        .map_ok(|(seq, p)| async move {
            if let Some(entry) = ctx.kept.take_prediction(p.id) {
                return Ok((seq, p, Ok(Stored::Kept(entry))));
            }
            if let Some(copied) = copy_from_base(ctx, sink, BlobKind::Prediction, p.id).await? {
                return Ok((seq, p, Ok(Stored::Kept(copied))));
            }
            let _permit = ctx.downloads.acquire().await.expect("the download semaphore is never closed");
            let result = match p.original_image_uri.as_deref() {
                Some(uri) => {
                    client.download(pid, uri, max).await.map(Stored::New).map_err(|e| Failure::Failed(e.to_string()))
                }
                None => Err(Failure::NoLink),
            };
            if let Ok(Stored::New(blob)) = &result {
                ctx.counters.downloaded_bytes.fetch_add(blob.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Ok((seq, p, result))
        })
        .try_buffer_unordered(ctx.opts.concurrency.max(1));
    futures::pin_mut!(downloads);
    let mut spool = Spool::new_in(ctx.spool_dir).map_err(Error::Spool)?;
    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            next = downloads.try_next() => next?,
        };
        let Some((seq, prediction, fetched)) = next else { break };
        let mut value = serde_json::to_value(prediction.without_uris()).expect("wire types serialise");
        match fetched {
            Ok(Stored::Kept(entry)) => {
                annotate(&mut value, &entry.data_path, &entry.sha256, entry.size);
                record.archived.predictions += 1;
                record.archived.prediction_bytes += entry.size;
            }
            Ok(Stored::New(blob)) => {
                let path = layout::prediction_file(pid, prediction.id, layout::sniff_extension(&blob.bytes));
                let size = blob.bytes.len() as u64;
                annotate(&mut value, &path, &blob.sha256, size);
                record.archived.predictions += 1;
                record.archived.prediction_bytes += size;
                sink.send(Item::Stored { path, bytes: blob.bytes, crc32: blob.crc32, sha256: blob.sha256 }).await?;
                ctx.progress.event(Event::BlobArchived { bytes: size });
            }
            Err(failure) => {
                record.missing.push(Missing {
                    kind: "prediction".into(),
                    project: pid,
                    id: prediction.id,
                    reason: failure.reason(),
                });
                continue;
            }
        }
        spool.push(seq, &serde_json::to_vec(&value).expect("serialise")).map_err(Error::Spool)?;
    }
    send_spool(sink, layout::predictions_jsonl(pid), spool).await
}

