//! The plan: a read-only survey of what a deletion would remove, project by project, how many
//! mutating calls it takes, and what the API cannot delete at all.
//!
//! Memory per image: its 16-byte id, which the run deletes by and the receipt records. While one
//! project is surveyed, also the 22-byte digest of what the service holds of each of its images
//! ([`ImageContent`], beside the ids), a set of the ids seen (listings shift while paged) and,
//! for trained iterations, a sorted copy of the workspace's ids: one project's worth, dropped
//! once the backup gate has checked it.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::content::{ImageContent, RecordContent};
use super::holdings::{self, IterationImages};
use super::{Category, DeleteOptions, Error, Targets};
use crate::api::model::PredictionQueryToken;
use crate::api::{self, paging, Client, ImageQuery, OrderBy, MAX_IMAGE_IDS, MAX_PREDICTION_IDS, MAX_TAKE};
use crate::progress::{Event, Phase, Progress};

/// What a deletion would do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The endpoint's host.
    pub endpoint_host: String,
    /// The category deleted, or `None` for whole projects.
    pub only: Option<Category>,
    /// Whether DeleteImages sends `allIterations=true` (only with `--only images
    /// --all-iterations`): trained iterations' copies of the images go too.
    pub all_iterations: bool,
    /// One entry per target project.
    pub projects: Vec<ProjectPlan>,
    /// Mutating calls the plan takes in all.
    pub calls: u64,
    /// What the API cannot delete.
    pub not_deletable: Vec<NotDeletable>,
    /// Things worth knowing before saying yes.
    pub notes: Vec<String>,
    /// How the backup names its source when that is another endpoint (or none), let through by
    /// `--backup-from-other-endpoint`; absent when the backup is of this endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_from_other_endpoint: Option<String>,
}

/// What a deletion would do to one project.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPlan {
    /// The project.
    pub id: Uuid,
    /// Its name, when it still exists.
    pub name: Option<String>,
    /// The project is not at the endpoint (already deleted counts as done).
    pub gone: bool,
    /// The project itself is deleted at the end.
    pub delete_project: bool,
    /// GetTaggedImageCount / GetUntaggedImageCount at the survey.
    pub tagged: u64,
    /// See `tagged`.
    pub untagged: u64,
    /// Training images to delete: the workspace's, and with `allIterations` also those only
    /// trained iterations hold.
    pub images: Vec<Uuid>,
    /// Tags to delete.
    pub tags: Vec<Uuid>,
    /// Iterations to delete (published ones are unpublished first).
    pub iterations: Vec<IterationPlan>,
    /// Stored predictions to delete.
    pub predictions: Vec<Uuid>,
    /// Model packages exported from the iterations to delete (the API cannot delete them).
    pub model_exports: u64,
    /// What each trained iteration holds (surveyed when images or iterations are deleted).
    pub iteration_images: Vec<IterationImages>,
    /// Images only trained iterations hold (not the workspace), each once.
    pub only_in_iterations: Vec<Uuid>,
    /// Whether this deletion destroys the copies trained iterations hold: with the iterations
    /// (whole projects, `--only iterations`) or with `allIterations` (`--only images
    /// --all-iterations`). Then the backup must hold [`Self::only_in_iterations`] too.
    pub iteration_copies_go: bool,
    /// Workspace images to delete whose copies trained iterations keep (`--only images` without
    /// `allIterations`), each once.
    pub kept_in_iterations: Vec<Uuid>,
    /// Mutating calls for this project.
    pub calls: u64,
    /// What the service holds now of each image of [`Self::images`], in the same order, to
    /// compare with the backup's: filled while the project is surveyed, emptied once the gate
    /// has checked it (the run needs only the ids).
    #[serde(skip)]
    pub image_content: Vec<ImageContent>,
    /// What the service holds now of each image of [`Self::only_in_iterations`], in the same
    /// order, as the first holding iteration lists it; emptied like [`Self::image_content`].
    #[serde(skip)]
    pub only_content: Vec<ImageContent>,
    /// What the service holds now of each tag to delete.
    #[serde(skip)]
    pub tag_content: HashMap<Uuid, RecordContent>,
    /// What the service holds now of each iteration to delete.
    #[serde(skip)]
    pub iteration_content: HashMap<Uuid, RecordContent>,
}

/// One iteration to delete.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationPlan {
    /// The iteration.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its publication, when published (unpublished first; recorded in the receipt).
    pub published: Option<Published>,
}

/// A publication of an iteration to a prediction resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The iteration.
    pub iteration: Uuid,
    /// The name it was published under.
    pub publish_name: String,
    /// The ARM id of the prediction resource.
    pub prediction_resource: Option<String>,
}

/// Something the API cannot delete, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotDeletable {
    /// What.
    pub what: String,
    /// How many were seen, when countable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Why, and how to remove it.
    pub why: String,
}

impl ProjectPlan {
    /// Whether nothing is left to do for this project.
    pub fn is_empty(&self) -> bool {
        self.gone
            || (!self.delete_project
                && self.images.is_empty()
                && self.tags.is_empty()
                && self.iterations.is_empty()
                && self.predictions.is_empty())
    }
}

/// What checks each project as soon as it is surveyed (the backup gate), before what the
/// service holds of its images is dropped.
pub(crate) type Gate<'a> = dyn FnMut(&ProjectPlan) -> Result<(), Error> + Send + 'a;

/// Reads the service (never writes) and builds the plan, handing each project to `gate`.
pub(crate) async fn survey(
    client: &Client,
    opts: &DeleteOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    gate: &mut Gate<'_>,
) -> Result<Plan, Error> {
    let targets = match &opts.targets {
        Targets::Projects(ids) => {
            let mut seen = HashSet::new();
            ids.iter().copied().filter(|id| seen.insert(*id)).collect()
        }
        Targets::AllProjects => client.get_projects().await?.into_iter().map(|p| p.id).collect::<Vec<_>>(),
    };
    progress.event(Event::Started { projects: targets.len() });
    progress.event(Event::Phase { phase: Phase::Listing, project_id: None });
    let mut plan = Plan {
        endpoint_host: client.host().to_owned(),
        only: opts.only,
        all_iterations: opts.sends_all_iterations(),
        projects: Vec::with_capacity(targets.len()),
        calls: 0,
        not_deletable: Vec::new(),
        notes: Vec::new(),
        backup_from_other_endpoint: None,
    };
    for id in targets {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let p = match survey_project(client, opts, id, progress).await {
            // Only the service's word for the project itself: a gateway 404 (wrong path) or a
            // NotFoundIteration of something deleted meanwhile does not make the project gone.
            Err(Error::Api(e)) if e.is_gone() && e.code() == Some("NotFoundProject") => {
                ProjectPlan { id, gone: true, ..ProjectPlan::default() }
            }
            other => other?,
        };
        gate(&p)?;
        let mut p = p;
        p.image_content = Vec::new();
        p.only_content = Vec::new();
        // Surveyed: its progress line can go.
        progress.event(Event::ProjectFinished { project_id: id.to_string(), images: p.images.len() as u64 });
        plan.calls += p.calls;
        plan.projects.push(p);
    }
    plan.not_deletable = not_deletable(&plan.projects, opts);
    for p in &plan.projects {
        for it in p.iteration_images.iter().filter(|i| i.is_short()) {
            plan.notes.push(format!(
                "iteration {} of project {} lists {} image(s) but its counts report {}",
                it.id, p.id, it.listed, it.reported
            ));
        }
    }
    for p in plan.projects.iter().filter(|p| p.gone) {
        plan.notes.push(format!("project {} is not at {} (already deleted counts as done)", p.id, plan.endpoint_host));
    }
    if plan.projects.iter().any(|p| p.gone) {
        // A mistyped id reads as "already deleted": name the ones that are there.
        if let Ok(mut there) = client.get_projects().await {
            there.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
            let listed: Vec<String> = there.iter().map(|p| format!("{} ({})", p.id, p.name)).collect();
            plan.notes.push(match listed.is_empty() {
                true => format!("if an id is mistyped: {} holds no projects", plan.endpoint_host),
                false => {
                    format!("if an id is mistyped, the projects at {} are: {}", plan.endpoint_host, listed.join(", "))
                }
            });
        }
    }
    Ok(plan)
}

/// What the plan cannot delete, and why: exported models, the account keys, and the images
/// trained iterations keep when DeleteImages goes without `allIterations`.
fn not_deletable(projects: &[ProjectPlan], opts: &DeleteOptions) -> Vec<NotDeletable> {
    let mut out = Vec::new();
    let exports: u64 = projects.iter().map(|p| p.model_exports).sum();
    if opts.only.is_none() || opts.only == Some(Category::Iterations) {
        out.push(NotDeletable {
            what: "exported models".into(),
            count: Some(exports),
            why: "model packages exported from iterations (CoreML, TensorFlow, ONNX, Docker...) are removed only \
                  when the whole Custom Vision resource is deleted (in the Azure portal); copies already \
                  downloaded are out of the service's reach"
                .into(),
        });
    }
    out.push(NotDeletable {
        what: "account keys".into(),
        count: None,
        why: "training and prediction keys belong to the Azure resource; regenerate or delete them in the Azure \
              portal"
            .into(),
    });
    let kept: u64 = projects
        .iter()
        .filter(|p| !p.iteration_copies_go)
        .map(|p| (p.kept_in_iterations.len() + p.only_in_iterations.len()) as u64)
        .sum();
    if kept > 0 {
        out.push(NotDeletable {
            what: "image copies in trained iterations".into(),
            count: Some(kept),
            why: "trained iterations keep their own copies of the images they were trained on: DeleteImages is \
                  sent without allIterations, so these images stay in the service; they go with those \
                  iterations or the project, or with --only images --all-iterations"
                .into(),
        });
    }
    out
}

async fn survey_project(
    client: &Client,
    opts: &DeleteOptions,
    id: Uuid,
    progress: &dyn Progress,
) -> Result<ProjectPlan, Error> {
    let project = client.get_project(id).await?;
    progress.event(Event::ProjectStarted { project_id: id.to_string(), name: project.name.clone() });
    let whole = opts.only.is_none();
    let wants = |c: Category| whole || opts.only == Some(c);
    let mut p = ProjectPlan { id, name: Some(project.name), delete_project: whole, ..ProjectPlan::default() };

    if wants(Category::Images) {
        p.tagged = client.get_tagged_image_count(id).await?;
        p.untagged = client.get_untagged_image_count(id).await?;
        (p.images, p.image_content) = list_images(client, id, None).await?;
        progress.event(Event::ImagesFound { project_id: id.to_string(), total: p.images.len() as u64 });
    }
    if wants(Category::Tags) {
        let tags = client.get_tags(id, None).await?;
        p.tags = tags.iter().map(|t| t.id).collect();
        p.tag_content = tags.iter().map(|t| (t.id, RecordContent::of_tag(t))).collect();
    }
    let need_iterations = wants(Category::Iterations) || opts.only == Some(Category::Images);
    let iterations = if need_iterations { client.get_iterations(id).await? } else { Vec::new() };
    if wants(Category::Iterations) {
        for it in &iterations {
            match client.get_exports(id, it.id).await {
                Ok(exports) => p.model_exports += exports.len() as u64,
                Err(e) if e.code() == Some("NotFoundIteration") => continue,
                Err(e) => return Err(e.into()),
            }
            let published = it.is_published().then(|| Published {
                iteration: it.id,
                publish_name: it.publish_name.clone().unwrap_or_default(),
                prediction_resource: it.original_publish_resource_id.clone(),
            });
            p.iterations.push(IterationPlan { id: it.id, name: it.name.clone(), published });
            p.iteration_content.insert(it.id, RecordContent::of_iteration(it));
        }
    }
    if need_iterations {
        survey_holdings(client, opts, &mut p, &iterations).await?;
    }
    if wants(Category::Predictions) {
        p.predictions = list_predictions(client, id).await?;
    }
    p.calls = calls(&p, opts.bulk_images);
    Ok(p)
}

/// What the trained iterations hold, and what this deletion does to it: destroys the images only
/// they hold (whole projects, `--only iterations`, `--all-iterations`), or leaves their copies.
async fn survey_holdings(
    client: &Client,
    opts: &DeleteOptions,
    p: &mut ProjectPlan,
    iterations: &[api::model::Iteration],
) -> Result<(), Error> {
    // Sorted, for the iterations' listings to be split by binary search.
    let mut workspace: Vec<Uuid> = if opts.only.is_none() || opts.only == Some(Category::Images) {
        p.images.clone()
    } else {
        list_images(client, p.id, None).await?.0
    };
    workspace.sort_unstable();
    p.iteration_images = holdings::survey(client, p.id, iterations, &workspace).await?;
    drop(workspace);
    let mut seen = HashSet::new();
    for it in &p.iteration_images {
        for (id, content) in it.only_in_iterations.iter().zip(&it.only_content) {
            if seen.insert(*id) {
                p.only_in_iterations.push(*id);
                p.only_content.push(*content);
            }
        }
    }
    p.iteration_copies_go = opts.only != Some(Category::Images) || opts.sends_all_iterations();
    if p.iteration_copies_go {
        // What cannot be named cannot be checked against the backup.
        if let Some(it) = p.iteration_images.iter().find(|i| i.is_short()) {
            return Err(Error::IterationUnlisted {
                project: p.id,
                iteration: it.id,
                listed: it.listed,
                reported: it.reported,
            });
        }
    }
    if opts.sends_all_iterations() {
        p.images.extend(p.only_in_iterations.iter().copied());
        p.image_content.extend(p.only_content.iter().copied());
    } else if opts.only == Some(Category::Images) {
        let mut seen = HashSet::new();
        for it in &p.iteration_images {
            p.kept_in_iterations.extend(it.also_in_workspace.iter().copied().filter(|id| seen.insert(*id)));
        }
    }
    Ok(())
}

/// Mutating calls a project's plan takes.
pub(crate) fn calls(p: &ProjectPlan, bulk_images: bool) -> u64 {
    let unpublish = p.iterations.iter().filter(|i| i.published.is_some()).count() as u64;
    let images = match (p.images.is_empty(), bulk_images) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => p.images.len().div_ceil(MAX_IMAGE_IDS) as u64,
    };
    unpublish
        + images
        + p.tags.len() as u64
        + p.iterations.len() as u64
        + p.predictions.len().div_ceil(MAX_PREDICTION_IDS) as u64
        + u64::from(p.delete_project)
}

/// Every image of the workspace, or of an iteration (tagged, then untagged), oldest first, each
/// once, with what it holds, in two vectors of the same order (the listing's records are read
/// once, for the ids and the gate).
pub(crate) async fn list_images(
    client: &Client,
    id: Uuid,
    iteration: Option<Uuid>,
) -> Result<(Vec<Uuid>, Vec<ImageContent>), api::Error> {
    let mut seen = HashSet::new();
    let (mut ids, mut contents) = (Vec::new(), Vec::new());
    for tagged in [true, false] {
        let pages = paging::offset_pages(MAX_TAKE, |skip, take| {
            let q = ImageQuery { order_by: OrderBy::Oldest, take, skip, iteration_id: iteration, ..Default::default() };
            async move {
                if tagged {
                    client.get_tagged_images(id, &q).await
                } else {
                    client.get_untagged_images(id, &q).await
                }
            }
        });
        futures::pin_mut!(pages);
        while let Some(page) = pages.try_next().await? {
            for image in page.iter().filter(|i| seen.insert(i.id)) {
                ids.push(image.id);
                contents.push(ImageContent::of_image(image));
            }
        }
    }
    ids.shrink_to_fit();
    contents.shrink_to_fit();
    Ok((ids, contents))
}

/// Every stored prediction id, oldest first, each once.
pub(crate) async fn list_predictions(client: &Client, id: Uuid) -> Result<Vec<Uuid>, api::Error> {
    let first = PredictionQueryToken {
        order_by: Some("Oldest".into()),
        max_count: Some(i64::from(MAX_TAKE)),
        ..Default::default()
    };
    let pages = paging::continuation_pages(first, |token| async move { client.query_predictions(id, &token).await });
    futures::pin_mut!(pages);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while let Some(page) = pages.try_next().await? {
        out.extend(page.results.into_iter().map(|p| p.id).filter(|i| seen.insert(*i)));
    }
    Ok(out)
}
