//! The create operations restore needs: GetDomains, CreateProject, CreateTag,
//! CreateImagesFromFiles and UpdateImageMetadata.

use reqwest::Method;
use uuid::Uuid;

use super::{csv, Call, Client};
use crate::api::error::Error;
use crate::api::model::{Domain, ImageCreateSummary, ImageFileCreateBatch, ImageMetadataUpdateSummary, Project, Tag};

/// The most images CreateImagesFromFiles and UpdateImageMetadata take in one call.
pub const MAX_UPLOAD_BATCH: usize = 64;

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
    /// 207) carries a status per image; `OKDuplicate` names the image the project already has.
    pub async fn create_images_from_files(
        &self,
        project: Uuid,
        batch: &ImageFileCreateBatch,
    ) -> Result<ImageCreateSummary, Error> {
        let op = "CreateImagesFromFiles";
        if batch.images.len() > MAX_UPLOAD_BATCH {
            return Err(Error::Request {
                op,
                detail: format!(
                    "{} images in one batch; the service takes at most {MAX_UPLOAD_BATCH}",
                    batch.images.len()
                ),
            });
        }
        let body = serde_json::to_vec(batch).map_err(|e| Error::Request { op, detail: e.to_string() })?;
        let call = Call {
            op,
            method: Method::POST,
            path: format!("/projects/{project}/images/files"),
            query: Vec::new(),
            body: Some(body),
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
            return Err(Error::Request {
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
        }
        .with("imageIds", csv(ids));
        self.json(call).await
    }
}
