//! Stored predictions: QueryPredictions followed by its continuation token to the end, each
//! prediction's image downloaded `concurrency` at a time (its expired link refreshed by querying
//! again), and `predictions.jsonl` in listing order.
//!
//! Memory per prediction: its id in an [`IdSet`] (about 12 bytes: the listing may repeat a
//! prediction, and each is archived once); its line waits in a spool on disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use uuid::Uuid;

use super::account::{AccountProject, Missing};
use super::base::BlobKind;
use super::download::{expires_within, fetch_blob, limited, Failure};
use super::ids::IdSet;
use super::project::{annotate, copy_from_base, send_spool, Ctx, Stored};
use super::sink::{Item, Sink};
use super::spool::Spool;
use super::Error;
use crate::api::model::{PredictionQueryToken, StoredImagePrediction};
use crate::api::{self, paging, Client};
use crate::archive::layout;
use crate::progress::Event;

/// A link from the refresher's last page is reused while it has this long left: enough to reach
/// blob storage, which checks the signature when the request arrives.
const REUSE_MARGIN: Duration = Duration::from_secs(1);

/// Stored predictions (following the continuation token to its end, within the bounds of
/// [`paging::token_pages`]) and their images. A listing cut short by a bound is recorded as
/// missing (kind `predictions`), so the export reports itself incomplete.
pub(super) async fn export_predictions(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    record: &mut AccountProject,
) -> Result<(), Error> {
    let client = ctx.client;
    let first = PredictionQueryToken { order_by: Some("Oldest".into()), ..Default::default() };
    let links = PredictionLinks::new(client, pid, first.clone());
    let links = &links;
    let cut = Arc::new(Mutex::new(Cut::default()));
    let listed = list_predictions(client, pid, first, cut.clone(), ctx.spool_dir);
    let downloads = listed
        .map_err(Error::from)
        .map_ok(|(seq, sent, p)| async move {
            if let Some(entry) = ctx.kept.take_prediction(p.id).map_err(Error::Spool)? {
                return Ok((seq, p, Ok(Stored::InArchive(entry))));
            }
            if let Some(copied) = copy_from_base(ctx, sink, BlobKind::Prediction, p.id).await? {
                return Ok((seq, p, Ok(Stored::InArchive(copied))));
            }
            let uri = p.original_image_uri.as_deref();
            let fresh_link = || links.fresh_link(p.id, &sent);
            let result = limited(ctx, |max| fetch_blob(client, pid, uri, max, fresh_link)).await;
            Ok((seq, p, result.map(Stored::New)))
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
            Ok(Stored::InArchive(entry)) => {
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
                ctx.progress.event(Event::Transferred { project_id: pid.to_string(), bytes: size });
            }
            Err(Failure::Gone) => {
                record.notes.push(format!("prediction {} was deleted during the export", prediction.id));
                continue;
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
    let cut = cut.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(reason) = cut.reason() {
        ctx.progress.event(Event::Warning { message: format!("project {pid}: {reason}") });
        record.missing.push(Missing { kind: "predictions".into(), project: pid, id: pid, reason });
    }
    send_spool(sink, layout::predictions_jsonl(pid), spool).await
}

/// Where a listing stopped: the pages read, and the continuation the last one still offered.
#[derive(Debug, Clone, Default)]
struct Cut {
    pages: u64,
    left: Option<String>,
}

impl Cut {
    /// Why predictions are missing, when the listing stopped with a continuation left.
    fn reason(&self) -> Option<String> {
        self.left.as_ref().map(|_| {
            format!(
                "QueryPredictions still offered a continuation after {} pages (it repeated itself, or sent {} empty pages in a row, or reached {} pages); the predictions after it were not read",
                self.pages,
                paging::MAX_EMPTY_PAGES,
                paging::MAX_CONTINUATION_PAGES
            )
        })
    }
}

/// Every stored prediction once, numbered in listing order, with the token of its page; `cut`
/// follows where the listing is.
fn list_predictions<'a>(
    client: &'a Client,
    pid: Uuid,
    first: PredictionQueryToken,
    cut: Arc<Mutex<Cut>>,
    dir: &Path,
) -> impl futures::Stream<Item = Result<(u64, Arc<PredictionQueryToken>, StoredImagePrediction), api::Error>> + 'a {
    // About 12 bytes a prediction (see `ids`); a prediction's ordinal is its line's number.
    let mut seen = IdSet::new_in(dir);
    paging::prediction_pages(client, pid, first)
        .inspect_ok(move |page| {
            let mut cut = cut.lock().unwrap_or_else(|e| e.into_inner());
            *cut = Cut { pages: cut.pages + 1, left: page.continuation().map(str::to_owned) };
        })
        .map_ok(|page| {
            let sent = Arc::new(page.sent);
            futures::stream::iter(page.page.results.into_iter().map(move |p| Ok::<_, api::Error>((sent.clone(), p))))
        })
        .try_flatten()
        .try_filter_map(move |(sent, p)| {
            futures::future::ready(match seen.insert(p.id) {
                Ok((seq, true)) => Ok(Some((seq, sent, p))),
                Ok((_, false)) => Ok(None),
                Err(e) => Err(api::Error::Request { op: "Spool", detail: e.to_string() }),
            })
        })
}

/// Fresh links for stored predictions. The spec has no QueryPredictions by id (the query token
/// filters only by tags, iteration and time), so a link is refreshed by sending again the token
/// that listed the prediction's page, which refreshes the whole page in one call; if the
/// prediction is no longer on that page (the listing shifted), the whole query is run again
/// until it is found. The last page read is kept, so the other predictions of a page whose links
/// expired together cost no further call.
struct PredictionLinks {
    client: Client,
    project: Uuid,
    first: PredictionQueryToken,
    /// Links of the last page read, by prediction id.
    page: tokio::sync::Mutex<HashMap<Uuid, Option<String>>>,
}

impl PredictionLinks {
    fn new(client: &Client, project: Uuid, first: PredictionQueryToken) -> PredictionLinks {
        PredictionLinks { client: client.clone(), project, first, page: Default::default() }
    }

    /// A fresh link for prediction `id`, listed on the page `sent` asked for; `None` if the
    /// prediction no longer exists.
    async fn fresh_link(&self, id: Uuid, sent: &PredictionQueryToken) -> Result<Option<String>, String> {
        let mut page = self.page.lock().await;
        if let Some(Some(uri)) = page.get(&id).filter(|u| !expires_within(u.as_deref(), REUSE_MARGIN)) {
            return Ok(Some(uri.clone()));
        }
        if let Ok(answer) = self.client.query_predictions(self.project, sent).await {
            *page = links_of(&answer.results);
            if let Some(uri) = page.get(&id) {
                return uri.clone().map(Some).ok_or_else(|| Failure::NoLink.reason());
            }
        }
        // Not on its page any more (or the old token was refused): the whole query again.
        let pages = paging::prediction_pages(&self.client, self.project, self.first.clone());
        futures::pin_mut!(pages);
        let mut cut = false;
        while let Some(next) = pages.try_next().await.map_err(|e| format!("cannot refresh the download link: {e}"))? {
            if next.page.results.iter().any(|r| r.id == id) {
                *page = links_of(&next.page.results);
                return page[&id].clone().map(Some).ok_or_else(|| Failure::NoLink.reason());
            }
            cut = next.continuation().is_some();
        }
        match cut {
            true => Err("cannot refresh the download link: the query stopped before the prediction".into()),
            false => Ok(None),
        }
    }
}

fn links_of(results: &[StoredImagePrediction]) -> HashMap<Uuid, Option<String>> {
    results.iter().map(|r| (r.id, r.original_image_uri.clone())).collect()
}
