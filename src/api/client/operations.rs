//! The Training API's read and delete operations: one method of [`Client`] each, building the
//! call (path, query, limits checked before sending) and decoding its answer.

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use super::{csv, page_query, Call, Client, DeleteImages, ImageQuery, MAX_IMAGE_IDS, MAX_PREDICTION_IDS};
use crate::api::error::Error;
use crate::api::model::{
    Export, Image, ImagePerformance, Iteration, IterationPerformance, PredictionQueryResult, PredictionQueryToken,
    Project, Tag,
};

impl Client {
    // ----- projects, tags, iterations -------------------------------------------------------

    /// GetProjects: every project of the resource (not paged).
    pub async fn get_projects(&self) -> Result<Vec<Project>, Error> {
        self.json(Call::get("GetProjects", "/projects".into())).await
    }

    /// GetProject.
    pub async fn get_project(&self, project: Uuid) -> Result<Project, Error> {
        self.json(Call::get("GetProject", format!("/projects/{project}"))).await
    }

    /// GetTags of the workspace, or of an iteration.
    pub async fn get_tags(&self, project: Uuid, iteration: Option<Uuid>) -> Result<Vec<Tag>, Error> {
        self.json(Call::get("GetTags", format!("/projects/{project}/tags")).with_opt("iterationId", iteration)).await
    }

    /// GetIterations (not paged).
    pub async fn get_iterations(&self, project: Uuid) -> Result<Vec<Iteration>, Error> {
        self.json(Call::get("GetIterations", format!("/projects/{project}/iterations"))).await
    }

    /// GetIteration.
    pub async fn get_iteration(&self, project: Uuid, iteration: Uuid) -> Result<Iteration, Error> {
        self.json(Call::get("GetIteration", format!("/projects/{project}/iterations/{iteration}"))).await
    }

    /// GetIterationPerformance at the service's default thresholds (or the given ones).
    pub async fn get_iteration_performance(
        &self,
        project: Uuid,
        iteration: Uuid,
        threshold: Option<f64>,
        overlap_threshold: Option<f64>,
    ) -> Result<IterationPerformance, Error> {
        let call =
            Call::get("GetIterationPerformance", format!("/projects/{project}/iterations/{iteration}/performance"))
                .with_opt("threshold", threshold)
                .with_opt("overlapThreshold", overlap_threshold);
        self.json(call).await
    }

    /// One page of GetImagePerformances.
    pub async fn get_image_performances(
        &self,
        project: Uuid,
        iteration: Uuid,
        q: &ImageQuery,
    ) -> Result<Vec<ImagePerformance>, Error> {
        let call =
            Call::get("GetImagePerformances", format!("/projects/{project}/iterations/{iteration}/performance/images"));
        self.json(page_query(call, q, false)?).await
    }

    /// GetImagePerformanceCount.
    pub async fn get_image_performance_count(&self, project: Uuid, iteration: Uuid) -> Result<u64, Error> {
        self.count(Call::get(
            "GetImagePerformanceCount",
            format!("/projects/{project}/iterations/{iteration}/performance/images/count"),
        ))
        .await
    }

    /// GetExports: the model packages exported from an iteration.
    pub async fn get_exports(&self, project: Uuid, iteration: Uuid) -> Result<Vec<Export>, Error> {
        self.json(Call::get("GetExports", format!("/projects/{project}/iterations/{iteration}/export"))).await
    }

    // ----- images ----------------------------------------------------------------------------

    /// One page of GetTaggedImages.
    pub async fn get_tagged_images(&self, project: Uuid, q: &ImageQuery) -> Result<Vec<Image>, Error> {
        self.json(page_query(Call::get("GetTaggedImages", format!("/projects/{project}/images/tagged")), q, true)?)
            .await
    }

    /// One page of GetUntaggedImages.
    pub async fn get_untagged_images(&self, project: Uuid, q: &ImageQuery) -> Result<Vec<Image>, Error> {
        let mut q = q.clone();
        q.tag_ids.clear();
        self.json(page_query(Call::get("GetUntaggedImages", format!("/projects/{project}/images/untagged")), &q, true)?)
            .await
    }

    /// GetTaggedImageCount of the workspace.
    pub async fn get_tagged_image_count(&self, project: Uuid) -> Result<u64, Error> {
        self.count(Call::get("GetTaggedImageCount", format!("/projects/{project}/images/tagged/count"))).await
    }

    /// GetUntaggedImageCount of the workspace.
    pub async fn get_untagged_image_count(&self, project: Uuid) -> Result<u64, Error> {
        self.count(Call::get("GetUntaggedImageCount", format!("/projects/{project}/images/untagged/count"))).await
    }

    /// GetTaggedImageCount and GetUntaggedImageCount of one iteration's own images (which may
    /// include images no longer in the workspace).
    pub async fn get_iteration_image_counts(&self, project: Uuid, iteration: Uuid) -> Result<(u64, u64), Error> {
        let tagged = Call::get("GetTaggedImageCount", format!("/projects/{project}/images/tagged/count"))
            .with("iterationId", iteration.to_string());
        let untagged = Call::get("GetUntaggedImageCount", format!("/projects/{project}/images/untagged/count"))
            .with("iterationId", iteration.to_string());
        Ok((self.count(tagged).await?, self.count(untagged).await?))
    }

    /// GetImagesByIds: fresh records (and fresh download links) for up to 256 images.
    pub async fn get_images_by_ids(&self, project: Uuid, ids: &[Uuid]) -> Result<Vec<Image>, Error> {
        self.get_images_by_ids_in(project, None, ids).await
    }

    /// GetImagesByIds of an iteration's own images (`iterationId`), or of the workspace: the
    /// images as that iteration holds them, with fresh download links.
    pub async fn get_images_by_ids_in(
        &self,
        project: Uuid,
        iteration: Option<Uuid>,
        ids: &[Uuid],
    ) -> Result<Vec<Image>, Error> {
        let op = "GetImagesByIds";
        if ids.len() > MAX_IMAGE_IDS {
            return Err(Error::Argument {
                op,
                detail: format!("{} ids asked for; the service takes at most {MAX_IMAGE_IDS}", ids.len()),
            });
        }
        self.json(
            Call::get(op, format!("/projects/{project}/images/id"))
                .with("imageIds", csv(ids))
                .with_opt("iterationId", iteration),
        )
        .await
    }

    /// QueryPredictions: one page of stored predictions; feed the returned token back for more.
    pub async fn query_predictions(
        &self,
        project: Uuid,
        token: &PredictionQueryToken,
    ) -> Result<PredictionQueryResult, Error> {
        let body =
            serde_json::to_vec(token).map_err(|e| Error::Request { op: "QueryPredictions", detail: e.to_string() })?;
        let call = Call {
            op: "QueryPredictions",
            method: Method::POST,
            path: format!("/projects/{project}/predictions/query"),
            query: Vec::new(),
            body: Some(body),
            upload_timeout: None,
        };
        self.json(call).await
    }

    // ----- deletes -----------------------------------------------------------------------------

    /// DeleteImages: 204 when done, 202 when the service finishes later (`All`).
    pub async fn delete_images(&self, project: Uuid, what: &DeleteImages) -> Result<StatusCode, Error> {
        let op = "DeleteImages";
        let call = Call {
            op,
            method: Method::DELETE,
            path: format!("/projects/{project}/images"),
            query: Vec::new(),
            body: None,
            upload_timeout: None,
        };
        let call = match what {
            DeleteImages::Ids { ids, .. } if ids.len() > MAX_IMAGE_IDS => {
                return Err(Error::Argument {
                    op,
                    detail: format!("{} ids in one call; the service takes at most {MAX_IMAGE_IDS}", ids.len()),
                })
            }
            DeleteImages::Ids { ids, all_iterations } => {
                call.with("imageIds", csv(ids)).with_flag("allIterations", *all_iterations)
            }
            DeleteImages::All { all_iterations } => {
                call.with("allImages", "true").with_flag("allIterations", *all_iterations)
            }
        };
        Ok(self.send(&call).await?.0)
    }

    /// DeleteTag.
    pub async fn delete_tag(&self, project: Uuid, tag: Uuid) -> Result<(), Error> {
        self.delete("DeleteTag", format!("/projects/{project}/tags/{tag}")).await
    }

    /// UnpublishIteration.
    pub async fn unpublish_iteration(&self, project: Uuid, iteration: Uuid) -> Result<(), Error> {
        self.delete("UnpublishIteration", format!("/projects/{project}/iterations/{iteration}/publish")).await
    }

    /// DeleteIteration (unpublish first).
    pub async fn delete_iteration(&self, project: Uuid, iteration: Uuid) -> Result<(), Error> {
        self.delete("DeleteIteration", format!("/projects/{project}/iterations/{iteration}")).await
    }

    /// DeleteProject.
    pub async fn delete_project(&self, project: Uuid) -> Result<(), Error> {
        self.delete("DeleteProject", format!("/projects/{project}")).await
    }

    /// DeletePrediction: up to 64 stored predictions.
    pub async fn delete_predictions(&self, project: Uuid, ids: &[Uuid]) -> Result<(), Error> {
        let op = "DeletePrediction";
        if ids.len() > MAX_PREDICTION_IDS {
            return Err(Error::Argument {
                op,
                detail: format!("{} ids in one call; the service takes at most {MAX_PREDICTION_IDS}", ids.len()),
            });
        }
        let call = Call {
            op,
            method: Method::DELETE,
            path: format!("/projects/{project}/predictions"),
            query: Vec::new(),
            body: None,
            upload_timeout: None,
        }
        .with("ids", csv(ids));
        self.send(&call).await.map(|_| ())
    }
}
