//! Downloading one image: follow its link, refresh the link through GetImagesByIds when it has
//! expired, and tell an image deleted during the export from one that failed.

use uuid::Uuid;

use crate::api::{self, Blob, Client, RetryKind};

/// How many times one image's link is refreshed before giving up.
const MAX_REFRESHES: u32 = 3;

/// Why an image is not in the archive.
#[derive(Debug)]
pub enum Failure {
    /// The image no longer exists: it was deleted while the export ran.
    Gone,
    /// The download failed for good.
    Failed(api::Error),
    /// The service gave no link to download.
    NoLink,
}

impl Failure {
    /// A one-line reason, free of secrets.
    pub fn reason(&self) -> String {
        match self {
            Failure::Gone => "deleted during the export".to_owned(),
            Failure::Failed(e) => e.to_string(),
            Failure::NoLink => "the service gave no download link".to_owned(),
        }
    }
}

/// Downloads a training image's original bytes.
pub async fn fetch_image(
    client: &Client,
    project: Uuid,
    image: Uuid,
    uri: Option<&str>,
    max_bytes: u64,
) -> Result<Blob, Failure> {
    let mut uri = uri.map(str::to_owned).ok_or(Failure::NoLink)?;
    let mut refreshes = 0;
    loop {
        match client.download(project, &uri, max_bytes).await {
            Ok(blob) => return Ok(blob),
            Err(api::Error::LinkExpired { .. }) if refreshes < MAX_REFRESHES => {
                refreshes += 1;
                client.stats().record(RetryKind::ExpiredLink);
                uri = fresh_link(client, project, image).await?;
            }
            Err(e) if e.is_not_found() => {
                // A 404 from the blob store or GetArtifact: is the image itself gone?
                return match fresh_link(client, project, image).await {
                    Err(Failure::Gone) => Err(Failure::Gone),
                    _ => Err(Failure::Failed(e)),
                };
            }
            Err(e) => return Err(Failure::Failed(e)),
        }
    }
}

async fn fresh_link(client: &Client, project: Uuid, image: Uuid) -> Result<String, Failure> {
    let fresh = client.get_images_by_ids(project, &[image]).await.map_err(Failure::Failed)?;
    match fresh.into_iter().find(|i| i.id == image) {
        Some(i) => i.original_image_uri.ok_or(Failure::NoLink),
        None => Err(Failure::Gone),
    }
}
