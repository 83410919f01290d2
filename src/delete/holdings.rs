//! What each trained iteration holds, read at plan time: deleting an iteration (or its project)
//! destroys the images only it holds, and a workspace delete without `allIterations` leaves its
//! copies in place, so the plan must know both.
//!
//! Each trained iteration is listed in full (GetTaggedImages and GetUntaggedImages with
//! `iterationId`; [spec] their `iterationId`: "defaults to workspace") and the ids listed are
//! checked against its counts (GetTaggedImageCount and GetUntaggedImageCount with
//! `iterationId`). Export finds them with fewer calls by reusing the GetImagePerformances pages
//! it reads anyway; a delete reads no performances, and listing an iteration costs about what
//! checking the workspace's ids against it would, so the plan lists. Delete is rare and
//! destructive: a listing short of the counts is listed again, and if it still is, the plan
//! refuses to destroy what it cannot name.
//!
//! Memory per image an iteration holds: its id, in one of the two lists below, and for those
//! only iterations hold their 22-byte [`ImageContent`]. The workspace's ids come in sorted.

use serde::Serialize;
use uuid::Uuid;

use super::content::ImageContent;
use super::plan::list_images;
use crate::api::model::Iteration;
use crate::api::{self, Client};

/// What one trained iteration holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationImages {
    /// The iteration.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// GetTaggedImageCount + GetUntaggedImageCount with its `iterationId`.
    pub reported: u64,
    /// The images its listing returned.
    pub listed: u64,
    /// Those the workspace does not hold: only trained iterations do.
    pub only_in_iterations: Vec<Uuid>,
    /// Workspace images it holds a copy of.
    pub also_in_workspace: Vec<Uuid>,
    /// What it holds of each image in `only_in_iterations`, in the same order, as it lists them.
    #[serde(skip)]
    pub only_content: Vec<ImageContent>,
}

impl IterationImages {
    /// Whether the listing returned fewer images than the counts report.
    pub fn is_short(&self) -> bool {
        self.listed < self.reported
    }
}

/// Lists what each trained iteration of `iterations` holds, beside the `workspace` ids (sorted). An
/// iteration deleted meanwhile (NotFoundIteration) holds nothing any more and is left out.
pub(crate) async fn survey(
    client: &Client,
    project: Uuid,
    iterations: &[Iteration],
    workspace: &[Uuid],
) -> Result<Vec<IterationImages>, api::Error> {
    let mut out = Vec::new();
    for it in iterations.iter().filter(|i| i.is_trained()) {
        match iteration(client, project, it, workspace).await {
            Ok(held) => out.push(held),
            Err(e) if e.is_gone() && e.code() == Some("NotFoundIteration") => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One iteration, listed again once when its listing falls short of its counts (images moved
/// while it was read).
async fn iteration(
    client: &Client,
    project: Uuid,
    it: &Iteration,
    workspace: &[Uuid],
) -> Result<IterationImages, api::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (tagged, untagged) = client.get_iteration_image_counts(project, it.id).await?;
        let (ids, contents) = list_images(client, project, Some(it.id)).await?;
        let mut held = IterationImages {
            id: it.id,
            name: it.name.clone(),
            reported: tagged + untagged,
            listed: ids.len() as u64,
            only_in_iterations: Vec::new(),
            also_in_workspace: Vec::new(),
            only_content: Vec::new(),
        };
        for (id, content) in ids.into_iter().zip(contents) {
            if workspace.binary_search(&id).is_ok() {
                held.also_in_workspace.push(id);
            } else {
                held.only_in_iterations.push(id);
                held.only_content.push(content);
            }
        }
        if !held.is_short() || attempt == 2 {
            return Ok(held);
        }
    }
}
