//! The create operations restore needs: GetDomains, CreateProject, CreateTag,
//! CreateImagesFromFiles and UpdateImageMetadata.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use uuid::Uuid;

use super::{csv, Call, Client, ClientOptions};
use crate::api::error::Error;
use crate::api::model::{Domain, ImageCreateSummary, ImageFileCreateBatch, ImageMetadataUpdateSummary, Project, Tag};

/// The most images CreateImagesFromFiles and UpdateImageMetadata take in one call.
pub const MAX_UPLOAD_BATCH: usize = 64;
/// The most distinct tags one CreateImagesFromFiles call names. The spec: "Limited to 64 images
/// and 20 tags per batch"; whether the tags of each image and of its regions count is not
/// said, so callers count all of them (see [`batch_tags`]).
pub const MAX_BATCH_TAGS: usize = 20;
/// The largest batch of image bytes (before base64) restore sends. The spec names no limit; a
/// public thread (microsoft/Cognitive-CustomVision-Windows#13) saw CreateImagesFromFiles time
/// out above about 55 MB of images in one call, so the ceiling stays well under that.
pub const MAX_UPLOAD_BATCH_BYTES: u64 = 40 << 20;
/// An upload's timeout before its size is counted: the service's time to answer.
const UPLOAD_TIMEOUT_BASE: Duration = Duration::from_secs(60);
/// The slowest uplink an upload is given time for: 1 Mbit/s (128 KiB/s).
const UPLOAD_SLOWEST_BYTES_PER_SEC: u64 = 128 << 10;

/// How long a CreateImagesFromFiles call whose body is `body_bytes` long may take, from
/// sending its first byte to reading its last: 60 s plus the body at 1 Mbit/s (a 24 MiB batch,
/// 32 MiB in base64, gets about 5 minutes).
pub fn upload_timeout(body_bytes: u64) -> Duration {
    UPLOAD_TIMEOUT_BASE + Duration::from_secs(body_bytes.div_ceil(UPLOAD_SLOWEST_BYTES_PER_SEC))
}

/// The distinct tags a batch names: its own, its images' and their regions'.
pub fn batch_tags(batch: &ImageFileCreateBatch) -> BTreeSet<Uuid> {
    let mut tags: BTreeSet<Uuid> = batch.tag_ids.iter().flatten().copied().collect();
    for entry in &batch.images {
        tags.extend(entry.tag_ids.iter().flatten());
        tags.extend(entry.regions.iter().flatten().map(|r| r.tag_id));
    }
    tags
}

/// The HTTP client of uploads: like the API client's, without its read timeout (reqwest's read
/// timeout also runs while a request body is being sent).
pub(super) fn upload_http(opts: &ClientOptions, roots: &[reqwest::Certificate]) -> reqwest::Result<reqwest::Client> {
    super::tls::trusting(reqwest::Client::builder(), roots)
        .connect_timeout(opts.connect_timeout)
        .user_agent(concat!("cvarchive/", env!("CARGO_PKG_VERSION")))
        .redirect(super::links::same_origin_redirects())
        .build()
}

/// What CreateProject is told: a name and the settings of the project to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewProject {
    /// The project's name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its domain; the service's General (classification) when `None`.
    pub domain_id: Option<Uuid>,
    /// `Multiclass` or `Multilabel` (classification only).
    pub classification_type: Option<String>,
    /// Export platforms the model is meant for.
    pub target_export_platforms: Vec<String>,
}

impl Client {
    // ----- creates -----------------------------------------------------------------------------

    /// GetDomains: the training domains of the resource.
    pub async fn get_domains(&self) -> Result<Vec<Domain>, Error> {
        self.json(Call::get("GetDomains", "/domains".into())).await
    }

    /// CreateProject with a name and the settings a project is created with.
    pub async fn create_project(&self, new: &NewProject) -> Result<Project, Error> {
        let mut call = Call { method: Method::POST, ..Call::get("CreateProject", "/projects".into()) }
            .with("name", &new.name)
            .with_opt("description", new.description.as_ref())
            .with_opt("domainId", new.domain_id)
            .with_opt("classificationType", new.classification_type.as_ref());
        if !new.target_export_platforms.is_empty() {
            call = call.with("targetExportPlatforms", new.target_export_platforms.join(","));
        }
        self.json(call).await
    }

    /// CreateTag (`kind`: Regular, Negative or GeneralProduct; the service's default when `None`).
    pub async fn create_tag(
        &self,
        project: Uuid,
        name: &str,
        description: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Tag, Error> {
        let call = Call { method: Method::POST, ..Call::get("CreateTag", format!("/projects/{project}/tags")) }
            .with("name", name)
            .with_opt("description", description.filter(|d| !d.is_empty()))
            .with_opt("type", kind);
        self.json(call).await
    }

    /// CreateImagesFromFiles: up to 64 images with their tags and regions. The answer (200 or
    /// 207) carries a status per image, in no promised order, each naming its entry by
    /// `sourceUrl`; `OKDuplicate` names the image the project already has. The call may take
    /// [`upload_timeout`] of its body's size.
    pub async fn create_images_from_files(
        &self,
        project: Uuid,
        batch: &ImageFileCreateBatch,
    ) -> Result<ImageCreateSummary, Error> {
        let op = "CreateImagesFromFiles";
        if batch.images.len() > MAX_UPLOAD_BATCH {
            return Err(Error::Argument {
                op,
                detail: format!(
                    "{} images in one batch; the service takes at most {MAX_UPLOAD_BATCH}",
                    batch.images.len()
                ),
            });
        }
        let body = serde_json::to_vec(batch).map_err(|e| Error::Request { op, detail: e.to_string() })?;
        let timeout = upload_timeout(body.len() as u64);
        let call = Call {
            op,
            method: Method::POST,
            path: format!("/projects/{project}/images/files"),
            query: Vec::new(),
            body: Some(body),
            upload_timeout: Some(timeout),
        };
        self.json(call).await
    }

    /// UpdateImageMetadata: merges `metadata` into up to 64 images' metadata.
    pub async fn update_image_metadata(
        &self,
        project: Uuid,
        ids: &[Uuid],
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<ImageMetadataUpdateSummary, Error> {
        let op = "UpdateImageMetadata";
        if ids.len() > MAX_UPLOAD_BATCH {
            return Err(Error::Argument {
                op,
                detail: format!("{} ids in one call; the service takes at most {MAX_UPLOAD_BATCH}", ids.len()),
            });
        }
        let body = serde_json::to_vec(metadata).map_err(|e| Error::Request { op, detail: e.to_string() })?;
        let call = Call {
            op,
            method: Method::POST,
            path: format!("/projects/{project}/images/metadata"),
            query: Vec::new(),
            body: Some(body),
            upload_timeout: None,
        }
        .with("imageIds", csv(ids));
        self.json(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_timeout_grows_with_the_body() {
        assert_eq!(upload_timeout(0), UPLOAD_TIMEOUT_BASE);
        // The default batch: 24 MiB of images, 32 MiB of base64, over a 1 Mbit/s uplink.
        let body = (24u64 << 20) * 4 / 3;
        let at_1_mbit = Duration::from_secs(body * 8 / 1_000_000);
        assert!(upload_timeout(body) > at_1_mbit, "{:?} <= {at_1_mbit:?}", upload_timeout(body));
        assert!(upload_timeout(body) > upload_timeout(body / 2) + Duration::from_secs(60));
        assert!(upload_timeout(MAX_UPLOAD_BATCH_BYTES * 4 / 3) < Duration::from_secs(600), "inside the retry budget");
    }
}
