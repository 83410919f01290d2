//! Carrying a plan out, one call at a time (paced and retried by the client): unpublish, images
//! in batches of 256 (or one `allImages` call and polling), tags, iterations, predictions in
//! batches of 64, then the project; the service's own not-found (a 404 with a `NotFound…` code)
//! counts as done, the gateway's 404 for a path it does not route is a failure. Then every
//! deletion is read back.

use std::collections::HashSet;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::plan::{list_predictions, ProjectPlan};
use super::receipt::{Failure, Receipt, RunOutcome};
use super::{Category, DeleteOptions};
use crate::api::{self, Client, DeleteImages, MAX_IMAGE_IDS, MAX_PREDICTION_IDS};
use crate::progress::{Event, Progress};

/// The run was cancelled between two calls.
struct Interrupted;

/// What one project's steps share.
struct Ctx<'a> {
    client: &'a Client,
    opts: &'a DeleteOptions,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    /// Where the receipt is kept.
    receipt_path: &'a Path,
}

impl Ctx<'_> {
    /// Logs, before a delete call, what it is about to delete: if the process dies after the
    /// service acted but before the answer was logged, the next run finds these ids gone and
    /// counts them as deleted by this run.
    fn intend(&self, pid: uuid::Uuid, what: Category, ids: &[uuid::Uuid]) {
        if let Err(e) = Receipt::log_line(self.receipt_path, pid, what, ids, true) {
            tracing::warn!("cannot log the deletes about to be made: {e}");
        }
    }

    /// Records deleted ids in the receipt and, at once, in its pending log on disk.
    fn deleted(&self, receipt: &mut Receipt, pid: uuid::Uuid, what: Category, ids: &[uuid::Uuid]) {
        receipt.deleted(pid, what, ids);
        if let Err(e) = Receipt::log_line(self.receipt_path, pid, what, ids, false) {
            tracing::warn!("cannot log deleted ids yet: {e}");
        }
    }

    fn check(&self) -> Result<(), Interrupted> {
        if self.cancel.is_cancelled() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }

    fn done(&self, project: Uuid, what: &str, count: u64) {
        self.progress.event(Event::Deleted { project_id: project.to_string(), what: what.into(), count });
    }
}

/// Whether a delete's error means the thing is already gone: only when the service said so
/// ([`api::Error::is_gone`]), never on the gateway's 404, which a wrong path also gets.
fn already_gone(e: &api::Error) -> bool {
    e.is_gone()
}

fn failure(project: Uuid, step: &str, ids: &[Uuid], e: &api::Error) -> Failure {
    Failure { project, step: step.into(), ids: ids.to_vec(), error: e.to_string() }
}

/// Carries out `plan`, recording every step in `receipt` (saved after each project; every batch
/// of deletes is logged beside it as it happens).
pub(crate) async fn execute(
    client: &Client,
    opts: &DeleteOptions,
    plan: &super::Plan,
    receipt: &mut Receipt,
    path: &Path,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> RunOutcome {
    let ctx = Ctx { client, opts, progress, cancel, receipt_path: path };
    for p in &plan.projects {
        if p.gone {
            receipt.confirm(p.id, "GetProject answers NotFoundProject", true, "the project is not at the endpoint");
            continue;
        }
        let result = project(&ctx, p, receipt).await;
        if let Err(e) = receipt.save(path) {
            tracing::warn!("cannot save the receipt yet: {e}");
        }
        if result.is_err() {
            return RunOutcome::Interrupted;
        }
    }
    if receipt.failures.is_empty() {
        RunOutcome::Complete
    } else {
        RunOutcome::Failures
    }
}

/// One project's deletion in the service's order: unpublish, images, tags, iterations, stored
/// predictions, the project itself; then the confirmation that what went is gone.
async fn project(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt) -> Result<(), Interrupted> {
    let client = ctx.client;
    let pid = p.id;
    let failures_before = receipt.failures.len();

    // Published iterations first: neither they nor their project can be deleted while published.
    let still_published = unpublish(ctx, p, receipt).await?;

    let before_images = receipt.failures.len();
    images(ctx, p, receipt).await?;
    tags(ctx, p, receipt, receipt.failures.len() > before_images).await?;

    for it in &p.iterations {
        if still_published.contains(&it.id) {
            continue; // its unpublish failure is recorded; deleting would only be refused
        }
        ctx.check()?;
        ctx.intend(pid, Category::Iterations, &[it.id]);
        match client.delete_iteration(pid, it.id).await {
            Ok(()) => {}
            Err(e) if already_gone(&e) => {}
            Err(e) => {
                receipt.fail(failure(pid, "iterations", &[it.id], &e));
                continue;
            }
        }
        ctx.deleted(receipt, pid, Category::Iterations, &[it.id]);
        ctx.done(pid, "iterations", 1);
    }
    destroyed_with_iterations(p, receipt);

    for batch in p.predictions.chunks(MAX_PREDICTION_IDS) {
        ctx.check()?;
        ctx.intend(pid, Category::Predictions, batch);
        match client.delete_predictions(pid, batch).await {
            Ok(()) => {}
            Err(e) if already_gone(&e) => {}
            Err(e) => {
                receipt.fail(failure(pid, "predictions", batch, &e));
                continue;
            }
        }
        ctx.deleted(receipt, pid, Category::Predictions, batch);
        ctx.done(pid, "predictions", batch.len() as u64);
    }

    if p.delete_project {
        ctx.check()?;
        delete_project(ctx, p, receipt, failures_before).await;
    }

    ctx.check()?;
    if ctx.opts.sends_all_iterations() && !p.images.is_empty() {
        wait_gone_from_iterations(ctx, p, receipt).await?;
    }
    confirm(ctx, p, receipt).await;
    Ok(())
}

/// Unpublishes the plan's published iterations; returns those that stay published (their
/// failure is recorded, and deleting them would only be refused).
async fn unpublish(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt) -> Result<HashSet<Uuid>, Interrupted> {
    let (client, pid) = (ctx.client, p.id);
    let mut still_published = HashSet::new();
    for it in &p.iterations {
        let Some(publication) = &it.published else { continue };
        ctx.check()?;
        match client.unpublish_iteration(pid, it.id).await {
            Ok(()) => {}
            Err(e) if already_gone(&e) || e.code() == Some("BadRequestIterationNotPublished") => {}
            Err(e) => {
                receipt.fail(failure(pid, "unpublish", &[it.id], &e));
                still_published.insert(it.id);
                continue;
            }
        }
        receipt.unpublished(pid, publication.clone());
        ctx.done(pid, "unpublished", 1);
    }
    Ok(still_published)
}

/// The tags step, one call a tag; skipped (and recorded as not done) when `images_failed`.
async fn tags(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt, images_failed: bool) -> Result<(), Interrupted> {
    let (client, pid) = (ctx.client, p.id);
    // Deleting a tag takes it off every image: while images this run should have deleted remain,
    // they keep their tags, so a rerun still finds them as the backup holds them.
    if images_failed && !p.tags.is_empty() {
        receipt.fail(Failure {
            project: pid,
            step: "tags".into(),
            ids: p.tags.clone(),
            error: "not deleted: images of the project failed to delete first (listed); run the command again".into(),
        });
    }
    let tags: &[Uuid] = if images_failed { &[] } else { &p.tags };

    for &tag in tags {
        ctx.check()?;
        ctx.intend(pid, Category::Tags, &[tag]);
        match client.delete_tag(pid, tag).await {
            Ok(()) => {}
            Err(e) if already_gone(&e) => {}
            Err(e) => {
                receipt.fail(failure(pid, "tags", &[tag], &e));
                continue;
            }
        }
        ctx.deleted(receipt, pid, Category::Tags, &[tag]);
        ctx.done(pid, "tags", 1);
    }
    Ok(())
}

/// The project itself, once every earlier step succeeded and nothing the plan did not know of
/// is left in it.
async fn delete_project(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt, failures_before: usize) {
    let (client, pid) = (ctx.client, p.id);
    if receipt.failures.len() > failures_before {
        receipt.fail(Failure {
            project: pid,
            step: "project".into(),
            ids: vec![pid],
            error: "not deleted: earlier steps failed (listed); run the command again".into(),
        });
    } else if let Some(reason) = leftovers(client, pid).await {
        receipt.fail(Failure { project: pid, step: "project".into(), ids: vec![pid], error: reason });
    } else {
        match client.delete_project(pid).await {
            Ok(()) => {
                receipt.project_deleted(pid);
                receipt.destroyed_with_iterations(pid, p.only_in_iterations.iter().copied());
                ctx.done(pid, "project", 1);
            }
            Err(e) if already_gone(&e) => {
                receipt.project_deleted(pid);
                receipt.destroyed_with_iterations(pid, p.only_in_iterations.iter().copied());
            }
            Err(e) => receipt.fail(failure(pid, "project", &[pid], &e)),
        }
    }
}

/// The images step: batches of ids (or one `allImages` call), each sent with `allIterations`
/// exactly when the options say so; then, without it, the deleted images whose copies trained
/// iterations keep are recorded as kept.
async fn images(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt) -> Result<(), Interrupted> {
    let (client, pid) = (ctx.client, p.id);
    if p.images.is_empty() {
        return Ok(());
    }
    let all_iterations = ctx.opts.sends_all_iterations();
    if ctx.opts.bulk_images {
        bulk_images(ctx, p, receipt).await?;
    } else {
        for batch in p.images.chunks(MAX_IMAGE_IDS) {
            ctx.check()?;
            ctx.intend(pid, Category::Images, batch);
            match client.delete_images(pid, &DeleteImages::Ids { ids: batch.to_vec(), all_iterations }).await {
                Ok(_) => {}
                Err(e) if already_gone(&e) => {}
                Err(e) => {
                    receipt.fail(failure(pid, "images", batch, &e));
                    continue;
                }
            }
            ctx.deleted(receipt, pid, Category::Images, batch);
            ctx.done(pid, "images", batch.len() as u64);
        }
    }
    if !all_iterations && !p.delete_project {
        let deleted = &receipt.project_mut(pid).images;
        let kept: Vec<Uuid> = p.kept_in_iterations.iter().copied().filter(|id| deleted.contains(id)).collect();
        receipt.kept_in_iterations(pid, kept);
    }
    Ok(())
}

/// Records the images only trained iterations held whose every holding iteration is now
/// deleted.
fn destroyed_with_iterations(p: &ProjectPlan, receipt: &mut Receipt) {
    if p.only_in_iterations.is_empty() || p.iterations.is_empty() {
        return;
    }
    let deleted = &receipt.project_mut(p.id).iterations;
    let alive: HashSet<Uuid> = p
        .iteration_images
        .iter()
        .filter(|it| !deleted.contains(&it.id))
        .flat_map(|it| it.only_in_iterations.iter().copied())
        .collect();
    let gone: Vec<Uuid> = p.only_in_iterations.iter().copied().filter(|id| !alive.contains(id)).collect();
    receipt.destroyed_with_iterations(p.id, gone);
}

/// With `allIterations` the service deletes later ([spec] DeleteImages, `allIterations`: "Using
/// this flag will return a 202 response to indicate the images are being deleted"): polls until
/// neither the workspace nor any trained iteration returns a deleted image (GetImagesByIds, with
/// each iteration's `iterationId`), or the poll timeout passes, and records the check.
async fn wait_gone_from_iterations(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt) -> Result<(), Interrupted> {
    let (client, pid) = (ctx.client, p.id);
    let deleted: Vec<Uuid> = {
        let done = &receipt.project_mut(pid).images;
        p.images.iter().copied().filter(|id| done.contains(id)).collect()
    };
    let check = "GetImagesByIds finds none of the deleted images in the workspace or any trained iteration";
    let started = tokio::time::Instant::now();
    loop {
        ctx.check()?;
        let mut left = Ok(0);
        for holder in std::iter::once(None).chain(p.iteration_images.iter().map(|i| Some(i.id))) {
            left = match (left, still_there(client, pid, holder, &deleted).await) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        match left {
            Ok(0) => {
                let detail =
                    format!("{} image(s), {} trained iteration(s) read", deleted.len(), p.iteration_images.len());
                receipt.confirm(pid, check, true, detail);
                return Ok(());
            }
            Ok(n) if started.elapsed() >= ctx.opts.poll_timeout => {
                receipt.confirm(pid, check, false, format!("{n} copies remain after {:?}", ctx.opts.poll_timeout));
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                receipt.confirm(pid, check, false, e);
                return Ok(());
            }
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Interrupted),
            _ = tokio::time::sleep(ctx.opts.poll_interval) => {}
        }
    }
}

/// Why the project must not be deleted yet: anything left in it was not in the plan (so not
/// checked against the backup), e.g. images uploaded while the deletion ran. `None` when empty
/// or already gone.
async fn leftovers(client: &Client, pid: Uuid) -> Option<String> {
    let read = async {
        let images = client.get_tagged_image_count(pid).await? + client.get_untagged_image_count(pid).await?;
        let tags = client.get_tags(pid, None).await?.len();
        let iterations = client.get_iterations(pid).await?.len();
        let predictions = list_predictions(client, pid).await?.len();
        Ok::<_, api::Error>((images, tags, iterations, predictions))
    };
    match read.await {
        Ok((0, 0, 0, 0)) => None,
        Ok((images, tags, iterations, predictions)) => Some(format!(
            "not deleted: it still holds {images} image(s), {tags} tag(s), {iterations} iteration(s) and \
             {predictions} prediction(s) that were not in the plan (added while deleting?); run the command again \
             to plan and check them against the backup"
        )),
        Err(e) if already_gone(&e) => None,
        Err(e) => Some(format!("not deleted: cannot check that it is empty: {e}")),
    }
}

/// One `allImages` call (202), then the counts polled until zero. Refused (falling back to
/// batches) when the project holds more images than planned, since those were not checked
/// against the backup.
async fn bulk_images(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt) -> Result<(), Interrupted> {
    let (client, pid) = (ctx.client, p.id);
    ctx.check()?;
    // With allIterations the plan holds the images only iterations hold too; the workspace
    // counts cannot include them.
    let planned_elsewhere = if ctx.opts.sends_all_iterations() { p.only_in_iterations.len() } else { 0 };
    let counted = async {
        Ok::<_, api::Error>(client.get_tagged_image_count(pid).await? + client.get_untagged_image_count(pid).await?)
    };
    match counted.await {
        Ok(n) if n as usize <= p.images.len() - planned_elsewhere => {}
        Ok(n) => {
            receipt.fail(Failure {
                project: pid,
                step: "images".into(),
                ids: Vec::new(),
                error: format!(
                    "allImages not used: the project now holds {n} images, {} were planned; run again to plan \
                     the new ones",
                    p.images.len() - planned_elsewhere
                ),
            });
            return Ok(());
        }
        Err(e) => {
            receipt.fail(failure(pid, "images", &[], &e));
            return Ok(());
        }
    }
    ctx.intend(pid, Category::Images, &p.images);
    let all = DeleteImages::All { all_iterations: ctx.opts.sends_all_iterations() };
    match client.delete_images(pid, &all).await {
        Ok(_) => {}
        Err(e) if already_gone(&e) => {}
        Err(e) => {
            receipt.fail(failure(pid, "images", &[], &e));
            return Ok(());
        }
    }
    let started = tokio::time::Instant::now();
    loop {
        ctx.check()?;
        let counted = async {
            Ok::<_, api::Error>(client.get_tagged_image_count(pid).await? + client.get_untagged_image_count(pid).await?)
        };
        match counted.await {
            Ok(0) => break,
            Err(e) if already_gone(&e) => break,
            Ok(n) if started.elapsed() >= ctx.opts.poll_timeout => {
                receipt.fail(Failure {
                    project: pid,
                    step: "images".into(),
                    ids: Vec::new(),
                    error: format!("allImages accepted, but {n} images remain after {:?}", ctx.opts.poll_timeout),
                });
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                receipt.fail(failure(pid, "images", &[], &e));
                return Ok(());
            }
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Interrupted),
            _ = tokio::time::sleep(ctx.opts.poll_interval) => {}
        }
    }
    ctx.deleted(receipt, pid, Category::Images, &p.images);
    ctx.done(pid, "images", p.images.len() as u64);
    Ok(())
}

/// Reads back what should be gone, recording each check.
async fn confirm(ctx: &Ctx<'_>, p: &ProjectPlan, receipt: &mut Receipt) {
    let (client, pid) = (ctx.client, p.id);
    if p.delete_project && receipt.projects.iter().any(|r| r.id == pid && r.project_deleted) {
        match client.get_projects().await {
            Ok(projects) => {
                let listed = projects.iter().any(|x| x.id == pid);
                let detail = format!("{} project(s) listed", projects.len());
                receipt.confirm(pid, "GetProjects lists it no more", !listed, detail);
            }
            Err(e) => receipt.confirm(pid, "GetProjects lists it no more", false, e.to_string()),
        }
        return;
    }
    if !p.images.is_empty() {
        let check = "GetTaggedImageCount and GetUntaggedImageCount";
        let counts = async {
            Ok::<_, api::Error>((
                client.get_tagged_image_count(pid).await?,
                client.get_untagged_image_count(pid).await?,
            ))
        };
        match counts.await {
            Ok((0, 0)) => receipt.confirm(pid, check, true, "0 tagged, 0 untagged"),
            Ok((t, u)) => {
                // Others' new images may remain; none of ours may.
                let ours = still_there(client, pid, None, &p.images).await;
                let detail = match &ours {
                    Ok(0) => format!("{t} tagged, {u} untagged remain, none of them deleted by this run"),
                    Ok(n) => format!("{n} deleted image(s) are still listed ({t} tagged, {u} untagged)"),
                    Err(e) => e.to_string(),
                };
                receipt.confirm(pid, "GetImagesByIds finds none of the deleted images", ours == Ok(0), detail);
            }
            Err(e) => receipt.confirm(pid, check, false, e.to_string()),
        }
    }
    if !p.tags.is_empty() {
        let listed = client.get_tags(pid, None).await.map(|t| t.into_iter().map(|t| t.id).collect::<Vec<_>>());
        confirm_absent(receipt, pid, "GetTags lists none of the deleted tags", listed, &p.tags);
    }
    if !p.iterations.is_empty() {
        let listed = client.get_iterations(pid).await.map(|t| t.into_iter().map(|t| t.id).collect::<Vec<_>>());
        let ids: Vec<Uuid> = p.iterations.iter().map(|i| i.id).collect();
        confirm_absent(receipt, pid, "GetIterations lists none of the deleted iterations", listed, &ids);
    }
    if !p.predictions.is_empty() {
        let listed = list_predictions(client, pid).await;
        confirm_absent(receipt, pid, "QueryPredictions finds none of the deleted predictions", listed, &p.predictions);
    }
}

/// How many of `ids` the service still returns, from the workspace or from one iteration.
async fn still_there(client: &Client, pid: Uuid, iteration: Option<Uuid>, ids: &[Uuid]) -> Result<usize, String> {
    let mut n = 0;
    for batch in ids.chunks(MAX_IMAGE_IDS) {
        n += client.get_images_by_ids_in(pid, iteration, batch).await.map_err(|e| e.to_string())?.len();
    }
    Ok(n)
}

fn confirm_absent(
    receipt: &mut Receipt,
    pid: Uuid,
    check: &str,
    listed: Result<Vec<Uuid>, api::Error>,
    deleted: &[Uuid],
) {
    match listed {
        Ok(listed) => {
            let gone: HashSet<&Uuid> = deleted.iter().collect();
            let left = listed.iter().filter(|id| gone.contains(id)).count();
            let detail = format!("{left} of {} still listed; {} listed in all", deleted.len(), listed.len());
            receipt.confirm(pid, check, left == 0, detail);
        }
        Err(e) => receipt.confirm(pid, check, false, e.to_string()),
    }
}
