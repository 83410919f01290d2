//! Downloading one image: follow its link, refresh expired links through GetImagesByIds (many
//! images per call), and tell an image deleted during the export from one that failed. Model
//! export and prediction links are refreshed the same way, in `models` and `predictions`.
//!
//! Memory per image: none beyond the images in flight (a refresh batch and the downloads under
//! way, bounded by `--concurrency`).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::project::Ctx;
use crate::api::model::Image;
use crate::api::{self, Blob, Client, MAX_IMAGE_IDS};

/// How many times one image's (model's, prediction's) link is refreshed before giving up.
pub(super) const MAX_REFRESHES: u32 = 3;
/// How long the refresher waits for more expired links to share one call.
const GATHER: Duration = Duration::from_millis(25);
/// A listed image whose link expires sooner than this gets a fresh one before it is queued
/// for download (the service's links last a day; a slow export, or a test, outlives them).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// A listed image and where it stands in the listing.
pub struct ListedImage {
    /// Its position in the listing: `images.jsonl` is written in this order.
    pub seq: u64,
    /// The service's record, with its download links.
    pub image: Image,
    /// Whether it came from GetTaggedImages.
    pub tagged: bool,
    /// Set when a link refresh found the image deleted.
    pub gone: bool,
    /// The archive entry an earlier, interrupted run already wrote for it.
    pub kept: Option<crate::archive::WrittenEntry>,
}

type ListedImageResult = Result<ListedImage, api::Error>;

/// Passes listed images on to the downloads, first refreshing, 256 per GetImagesByIds call, the
/// links of every queued image once the next one's link is about to expire. Links expire
/// together because they were listed together, so this costs one call per 256 images instead of
/// one per image.
pub async fn freshen(
    client: Client,
    project: Uuid,
    mut rx: mpsc::Receiver<ListedImageResult>,
    tx: mpsc::Sender<ListedImageResult>,
) {
    while let Some(first) = rx.recv().await {
        let needs = matches!(&first, Ok(l) if l.kept.is_none() && expires_within(l.image.original_image_uri.as_deref(), EXPIRY_MARGIN));
        if !needs {
            if tx.send(first).await.is_err() {
                return;
            }
            continue;
        }
        let mut batch = vec![first];
        while batch.len() < MAX_IMAGE_IDS {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let ids: Vec<Uuid> =
            batch.iter().filter_map(|l| l.as_ref().ok().filter(|l| l.kept.is_none()).map(|l| l.image.id)).collect();
        if let Ok(fresh) = client.get_images_by_ids(project, &ids).await {
            let links: HashMap<Uuid, Option<String>> =
                fresh.into_iter().map(|i| (i.id, i.original_image_uri)).collect();
            for listed in batch.iter_mut().flatten().filter(|l| l.kept.is_none()) {
                match links.get(&listed.image.id) {
                    Some(Some(uri)) => {
                        listed.image.original_image_uri = Some(uri.clone());
                        client.link_refreshed();
                    }
                    Some(None) => {}
                    None => listed.gone = true,
                }
            }
        }
        // On failure the downloads refresh what they need one by one.
        for listed in batch {
            if tx.send(listed).await.is_err() {
                return;
            }
        }
    }
}

/// Whether an absolute SAS link expires within `margin` (relative links do not expire).
pub(super) fn expires_within(uri: Option<&str>, margin: Duration) -> bool {
    let Some(url) = uri.and_then(|u| url::Url::parse(u).ok()) else { return false };
    let Some((_, se)) = url.query_pairs().find(|(k, _)| k == "se") else { return false };
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(&se) else { return false };
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero());
    at.with_timezone(&chrono::Utc) - margin < chrono::Utc::now()
}

/// Why an image is not in the archive.
#[derive(Debug)]
pub enum Failure {
    /// The image no longer exists: it was deleted while the export ran.
    Gone,
    /// The download failed for good; the reason is free of secrets.
    Failed(String),
    /// The service gave no link to download.
    NoLink,
}

impl Failure {
    /// A one-line reason, free of secrets.
    pub fn reason(&self) -> String {
        match self {
            Failure::Gone => "deleted during the export".to_owned(),
            Failure::Failed(e) => e.clone(),
            Failure::NoLink => "the service gave no download link".to_owned(),
        }
    }
}

type Answer = Result<Option<String>, String>;

/// Fresh download links for one project's images, fetched in batches: when links expire they
/// expire together, and one GetImagesByIds call serves up to 256 of them.
#[derive(Clone)]
pub struct Refresher {
    tx: mpsc::Sender<(Uuid, oneshot::Sender<Answer>)>,
}

impl Refresher {
    /// A refresher for `project`'s workspace images; its task ends when the last clone is
    /// dropped.
    pub fn start(client: Client, project: Uuid) -> Refresher {
        Refresher::start_in(client, project, None)
    }

    /// A refresher for the images of one iteration (`Some`) or of the workspace (`None`).
    pub fn start_in(client: Client, project: Uuid, iteration: Option<Uuid>) -> Refresher {
        let (tx, rx) = mpsc::channel(MAX_IMAGE_IDS * 4);
        tokio::spawn(refresh_task(client, project, iteration, rx));
        Refresher { tx }
    }

    /// A fresh original-image link for `image`, `None` if the image no longer exists.
    async fn fresh_link(&self, image: Uuid) -> Answer {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((image, reply)).await.is_err() {
            return Err("the link refresher stopped".into());
        }
        answer.await.unwrap_or_else(|_| Err("the link refresher stopped".into()))
    }
}

async fn refresh_task(
    client: Client,
    project: Uuid,
    iteration: Option<Uuid>,
    mut rx: mpsc::Receiver<(Uuid, oneshot::Sender<Answer>)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let gather = tokio::time::sleep(GATHER);
        tokio::pin!(gather);
        while batch.len() < MAX_IMAGE_IDS {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(r) => batch.push(r),
                    None => break,
                },
                _ = &mut gather => break,
            }
        }
        let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        match client.get_images_by_ids_in(project, iteration, &ids).await {
            Ok(images) => {
                let links: HashMap<Uuid, Option<String>> =
                    images.into_iter().map(|i| (i.id, i.original_image_uri)).collect();
                for (id, reply) in batch {
                    let answer = match links.get(&id) {
                        Some(Some(uri)) => Ok(Some(uri.clone())),
                        Some(None) => Err("the service gave no download link".into()),
                        None => Ok(None),
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                let reason = format!("cannot refresh the download link: {e}");
                for (_, reply) in batch {
                    let _ = reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

/// Downloads a training image's original bytes, its link refreshed through `refresher`.
pub async fn fetch_image(
    client: &Client,
    refresher: &Refresher,
    project: Uuid,
    image: Uuid,
    uri: Option<&str>,
    max_bytes: u64,
) -> Result<Blob, Failure> {
    fetch_blob(client, project, uri, max_bytes, || refresher.fresh_link(image)).await
}

/// Downloads one blob (an image's or a stored prediction's) from `uri`, asking `fresh_link` for
/// a new link when blob storage says it expired (up to [`MAX_REFRESHES`] times), and, on a 404,
/// whether the thing itself is gone (`Ok(None)`).
pub(super) async fn fetch_blob<F, Fut>(
    client: &Client,
    project: Uuid,
    uri: Option<&str>,
    max_bytes: u64,
    fresh_link: F,
) -> Result<Blob, Failure>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, String>>,
{
    let mut uri = uri.map(str::to_owned).ok_or(Failure::NoLink)?;
    let mut refreshes = 0;
    loop {
        match client.download(project, &uri, max_bytes).await {
            Ok(blob) => return Ok(blob),
            Err(api::Error::LinkExpired { .. }) if refreshes < MAX_REFRESHES => {
                refreshes += 1;
                client.link_refreshed();
                uri = match fresh_link().await {
                    Ok(Some(fresh)) => fresh,
                    Ok(None) => return Err(Failure::Gone),
                    Err(reason) => return Err(Failure::Failed(reason)),
                };
            }
            Err(e) if e.is_not_found() => {
                // A 404 from the blob store or GetArtifact: is the image or prediction itself gone?
                return match fresh_link().await {
                    Ok(None) => Err(Failure::Gone),
                    _ => Err(Failure::Failed(e.to_string())),
                };
            }
            Err(e) => return Err(Failure::Failed(e.to_string())),
        }
    }
}

/// Runs one blob download under the export's limits: it waits for one of the `concurrency`
/// download permits, is handed the size limit (`max_image_bytes`), and what it brings is
/// counted in `downloaded_bytes`. Images and predictions both download through here.
pub(super) async fn limited<Fut>(ctx: &Ctx<'_>, fetch: impl FnOnce(u64) -> Fut) -> Result<Blob, Failure>
where
    Fut: std::future::Future<Output = Result<Blob, Failure>>,
{
    let _permit = ctx.downloads.acquire().await.expect("the download semaphore is never closed");
    let result = fetch(ctx.opts.max_image_bytes).await;
    if let Ok(blob) = &result {
        ctx.counters.downloaded_bytes.fetch_add(blob.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_from_the_link() {
        let soon =
            (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let later =
            (chrono::Utc::now() + chrono::Duration::hours(20)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let link = |se: &str| format!("https://a.blob.core.windows.net/i-1/i-2?sv=2017-04-17&sr=b&sig=x&se={se}&sp=r");
        assert!(expires_within(Some(&link(&soon)), EXPIRY_MARGIN));
        assert!(!expires_within(Some(&link(&later)), EXPIRY_MARGIN));
        assert!(!expires_within(Some("/i-1/i-2"), EXPIRY_MARGIN));
        assert!(!expires_within(None, EXPIRY_MARGIN));
    }
}
