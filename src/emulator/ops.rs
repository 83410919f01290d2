//! The Training API operations: which path shape is which operation, their query parameters
//! (with the service's limits) and what each one does to the account.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use uuid::Uuid;

use super::create;
use super::query::{parse_id, tagging, Query};
use super::render::{self, Links};
use super::routes::{AppState, Reply};
use super::state::{ApiError, ProjectState, Tagging, MAX_BATCH, MAX_PREDICTION_IDS, MAX_TAG_FILTER};
use crate::api::model::{Domain, PredictionQueryResult, PredictionQueryToken};

/// How long an `allImages=true` delete takes to show, after its 202.
const ASYNC_DELETE_DELAY: Duration = Duration::from_millis(500);
/// Default page size of QueryPredictions (`maxCount` 0 or absent). Assumption: the spec gives
/// no default.
const DEFAULT_MAX_COUNT: usize = 50;
/// The largest `maxCount` QueryPredictions accepts; beyond it the answer is 400
/// `BadRequestPredictionResultsExceededCount`. The code is in the v3.3 spec's
/// `CustomVisionError` enum, so some limit exists, but the spec gives `maxCount` no maximum:
/// 256 (the `take` maximum of the other listings) is an assumption. A fault knob lowers it.
const MAX_PREDICTION_COUNT: usize = MAX_BATCH;

/// One operation, with its path segments (ids not yet parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    GetDomains,
    GetDomain(&'a str),
    GetProjects,
    GetProject(&'a str),
    DeleteProject(&'a str),
    GetArtifact(&'a str),
    GetImages(&'a str),
    GetImageCount(&'a str),
    GetTaggedImages(&'a str),
    GetTaggedImageCount(&'a str),
    GetUntaggedImages(&'a str),
    GetUntaggedImageCount(&'a str),
    GetImagesByIds(&'a str),
    DeleteImages(&'a str),
    GetTags(&'a str),
    GetTag(&'a str, &'a str),
    DeleteTag(&'a str, &'a str),
    GetIterations(&'a str),
    GetIteration(&'a str, &'a str),
    DeleteIteration(&'a str, &'a str),
    UnpublishIteration(&'a str, &'a str),
    GetIterationPerformance(&'a str, &'a str),
    GetImagePerformances(&'a str, &'a str),
    GetImagePerformanceCount(&'a str, &'a str),
    GetExports(&'a str, &'a str),
    QueryPredictions(&'a str),
    DeletePrediction(&'a str),
    CreateProject,
    CreateTag(&'a str),
    CreateImagesFromFiles(&'a str),
    UpdateImageMetadata(&'a str),
}

impl<'a> Op<'a> {
    /// The operation a method and a path (after the version prefix) name, if any.
    pub fn route(method: &Method, rest: &'a str) -> Option<Op<'a>> {
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
        let get = *method == Method::GET;
        let delete = *method == Method::DELETE;
        if *method == Method::POST {
            return Some(match segments.as_slice() {
                ["projects"] => Op::CreateProject,
                ["projects", p, "tags"] => Op::CreateTag(p),
                ["projects", p, "images", "files"] => Op::CreateImagesFromFiles(p),
                ["projects", p, "images", "metadata"] => Op::UpdateImageMetadata(p),
                ["projects", p, "predictions", "query"] => Op::QueryPredictions(p),
                _ => return None,
            });
        }
        Some(match (segments.as_slice(), get, delete) {
            (["domains"], true, _) => Op::GetDomains,
            (["domains", d], true, _) => Op::GetDomain(d),
            (["projects"], true, _) => Op::GetProjects,
            (["projects", p], true, _) => Op::GetProject(p),
            (["projects", p], _, true) => Op::DeleteProject(p),
            (["projects", p, "artifacts"], true, _) => Op::GetArtifact(p),
            (["projects", p, "images"], true, _) => Op::GetImages(p),
            (["projects", p, "images"], _, true) => Op::DeleteImages(p),
            (["projects", p, "images", "count"], true, _) => Op::GetImageCount(p),
            (["projects", p, "images", "tagged"], true, _) => Op::GetTaggedImages(p),
            (["projects", p, "images", "tagged", "count"], true, _) => Op::GetTaggedImageCount(p),
            (["projects", p, "images", "untagged"], true, _) => Op::GetUntaggedImages(p),
            (["projects", p, "images", "untagged", "count"], true, _) => Op::GetUntaggedImageCount(p),
            (["projects", p, "images", "id"], true, _) => Op::GetImagesByIds(p),
            (["projects", p, "tags"], true, _) => Op::GetTags(p),
            (["projects", p, "tags", t], true, _) => Op::GetTag(p, t),
            (["projects", p, "tags", t], _, true) => Op::DeleteTag(p, t),
            (["projects", p, "iterations"], true, _) => Op::GetIterations(p),
            (["projects", p, "iterations", i], true, _) => Op::GetIteration(p, i),
            (["projects", p, "iterations", i], _, true) => Op::DeleteIteration(p, i),
            (["projects", p, "iterations", i, "publish"], _, true) => Op::UnpublishIteration(p, i),
            (["projects", p, "iterations", i, "performance"], true, _) => Op::GetIterationPerformance(p, i),
            (["projects", p, "iterations", i, "performance", "images"], true, _) => Op::GetImagePerformances(p, i),
            (["projects", p, "iterations", i, "performance", "images", "count"], true, _) => {
                Op::GetImagePerformanceCount(p, i)
            }
            (["projects", p, "iterations", i, "export"], true, _) => Op::GetExports(p, i),
            (["projects", p, "predictions"], _, true) => Op::DeletePrediction(p),
            _ => return None,
        })
    }

    /// The spec's operationId.
    pub fn name(&self) -> &'static str {
        match self {
            Op::GetDomains => "GetDomains",
            Op::GetDomain(_) => "GetDomain",
            Op::GetProjects => "GetProjects",
            Op::GetProject(_) => "GetProject",
            Op::DeleteProject(_) => "DeleteProject",
            Op::GetArtifact(_) => "GetArtifact",
            Op::GetImages(_) => "GetImages",
            Op::GetImageCount(_) => "GetImageCount",
            Op::GetTaggedImages(_) => "GetTaggedImages",
            Op::GetTaggedImageCount(_) => "GetTaggedImageCount",
            Op::GetUntaggedImages(_) => "GetUntaggedImages",
            Op::GetUntaggedImageCount(_) => "GetUntaggedImageCount",
            Op::GetImagesByIds(_) => "GetImagesByIds",
            Op::DeleteImages(_) => "DeleteImages",
            Op::GetTags(_) => "GetTags",
            Op::GetTag(..) => "GetTag",
            Op::DeleteTag(..) => "DeleteTag",
            Op::GetIterations(_) => "GetIterations",
            Op::GetIteration(..) => "GetIteration",
            Op::DeleteIteration(..) => "DeleteIteration",
            Op::UnpublishIteration(..) => "UnpublishIteration",
            Op::GetIterationPerformance(..) => "GetIterationPerformance",
            Op::GetImagePerformances(..) => "GetImagePerformances",
            Op::GetImagePerformanceCount(..) => "GetImagePerformanceCount",
            Op::GetExports(..) => "GetExports",
            Op::QueryPredictions(_) => "QueryPredictions",
            Op::DeletePrediction(_) => "DeletePrediction",
            Op::CreateProject => "CreateProject",
            Op::CreateTag(_) => "CreateTag",
            Op::CreateImagesFromFiles(_) => "CreateImagesFromFiles",
            Op::UpdateImageMetadata(_) => "UpdateImageMetadata",
        }
    }

    /// Whether it changes account data when it succeeds.
    pub fn mutating(&self) -> bool {
        matches!(
            self,
            Op::DeleteProject(_)
                | Op::DeleteImages(_)
                | Op::DeleteTag(..)
                | Op::DeleteIteration(..)
                | Op::UnpublishIteration(..)
                | Op::DeletePrediction(_)
                | Op::CreateProject
                | Op::CreateTag(_)
                | Op::CreateImagesFromFiles(_)
                | Op::UpdateImageMetadata(_)
        )
    }
}

pub(super) fn domains() -> Vec<Domain> {
    let d = |id: u128, name: &str, kind: &str, exportable: bool| Domain {
        id: Uuid::from_u128(id),
        name: Some(name.to_owned()),
        domain_type: Some(kind.to_owned()),
        exportable: Some(exportable),
        enabled: Some(true),
        extra: Default::default(),
    };
    vec![
        d(0xee85a74c_405e_4adc_bb47_ffa8ca0c9f31, "General", "Classification", false),
        d(0xc151d5b5_dd07_472a_acc8_15d29dea8518, "Food", "Classification", false),
        d(0xca455789_012d_4b50_9fec_5bb63841c793, "Landmarks", "Classification", false),
        d(0xb30a91ae_e3c1_4f73_a81e_c270bff27c39, "Retail", "Classification", false),
        d(0x0732100f_1a38_4e49_a514_c9b44c697ab5, "General (compact)", "Classification", true),
        d(0xda2e3a8a_40a5_4171_82f4_58522f70fbc1, "General", "ObjectDetection", false),
        d(0xa27d5ca5_bb19_49d8_a70a_fec086c47f5b, "General (compact)", "ObjectDetection", true),
    ]
}

/// Continuation tokens of QueryPredictions: the offset of the next result and the number of
/// the next page, opaque to clients.
fn continuation(offset: usize, page: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("cvemu:{offset}:{page}"))
}

fn parse_continuation(token: &str) -> Result<(usize, usize), ApiError> {
    let text = base64::engine::general_purpose::STANDARD.decode(token).ok().and_then(|b| String::from_utf8(b).ok());
    let parsed = text.as_deref().and_then(|s| s.strip_prefix("cvemu:")).and_then(|s| {
        let (offset, page) = s.split_once(':').unwrap_or((s, "1"));
        Some((offset.parse().ok()?, page.parse().ok()?))
    });
    parsed.ok_or_else(|| {
        ApiError::bad_request("BadRequestPredictionInvalidQueryParameters", "Invalid continuation token")
    })
}

/// Runs one authenticated operation.
pub(crate) async fn run(
    state: &AppState,
    op: Op<'_>,
    q: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let links = state.links(headers);
    match op {
        Op::GetDomains => Ok(Reply::json(&domains())),
        Op::GetDomain(d) => get_domain(d),
        Op::GetProjects => Ok(Reply::json(
            &state.with_account(|a| a.projects.iter().map(|p| render::project(p, &links)).collect::<Vec<_>>()),
        )),
        Op::GetProject(p) => read(state, p, |p| Ok(Reply::json(&render::project(p, &links)))),
        Op::DeleteProject(p) => {
            let id = parse_id(p)?;
            state.with_account_mut(|a| a.delete_project(id))?;
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        Op::GetArtifact(p) => get_artifact(state, p, q),
        Op::GetImages(p) => list(state, p, q, tagging(q.get("taggingStatus"))?, &links),
        Op::GetTaggedImages(p) => list(state, p, q, Tagging::Tagged, &links),
        Op::GetUntaggedImages(p) => list(state, p, q, Tagging::Untagged, &links),
        Op::GetImageCount(p) => count(state, p, q, tagging(q.get("taggingStatus"))?),
        Op::GetTaggedImageCount(p) => count(state, p, q, Tagging::Tagged),
        Op::GetUntaggedImageCount(p) => count(state, p, q, Tagging::Untagged),
        Op::GetImagesByIds(p) => get_images_by_ids(state, p, q, &links),
        Op::DeleteImages(p) => delete_images(state, p, q),
        Op::GetTags(p) => get_tags(state, p, q),
        Op::GetTag(p, t) => get_tag(state, p, t, q),
        Op::DeleteTag(p, t) => write(state, p, |p| p.delete_tag(parse_id(t)?)),
        Op::GetIterations(p) => {
            read(state, p, |p| Ok(Reply::json(&p.iterations.iter().map(|i| &i.iteration).collect::<Vec<_>>())))
        }
        Op::GetIteration(p, i) => read(state, p, |p| Ok(Reply::json(&p.iteration(parse_id(i)?)?.iteration))),
        Op::DeleteIteration(p, i) => write(state, p, |p| p.delete_iteration(parse_id(i)?)),
        Op::UnpublishIteration(p, i) => write(state, p, |p| p.unpublish(parse_id(i)?)),
        Op::GetIterationPerformance(p, i) => iteration_performance(state, p, i, q),
        Op::GetImagePerformances(p, i) => image_performances(state, p, i, q, &links),
        Op::GetImagePerformanceCount(p, i) => image_performance_count(state, p, i, q),
        Op::GetExports(p, i) => read(state, p, |p| {
            let it = p.iteration(parse_id(i)?)?;
            Ok(Reply::json(&it.exports.iter().map(|e| render::export(p, it, e, &links)).collect::<Vec<_>>()))
        }),
        Op::QueryPredictions(p) => query_predictions(state, p, body, &links),
        Op::CreateProject => create::project(state, q),
        Op::CreateTag(p) => create::tag(state, p, q),
        Op::CreateImagesFromFiles(p) => create::images(state, p, body, &links),
        Op::UpdateImageMetadata(p) => create::metadata(state, p, q, body),
        Op::DeletePrediction(p) => delete_predictions(state, p, q),
    }
}

fn get_domain(d: &str) -> Result<Reply, ApiError> {
    let id = parse_id(d)?;
    let domain = domains()
        .into_iter()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError::not_found("NotFoundDomain", format!("Domain not found: {id}")))?;
    Ok(Reply::json(&domain))
}

/// GetArtifact: the bytes behind a relative artifact path of the project's own (`i-<project>/`
/// images, `m-<project>/` models).
fn get_artifact(state: &AppState, p: &str, q: &Query) -> Result<Reply, ApiError> {
    let id = parse_id(p)?;
    let path = q
        .get("path")
        .ok_or_else(|| ApiError::bad_request("BadRequestRequiredParamIsNull", "path is required"))?
        .trim_start_matches('/')
        .to_owned();
    state.with_account(|a| a.get(id).map(|_| ()))?;
    let hex = id.simple().to_string();
    let own = path
        .split_once('/')
        .is_some_and(|(c, _)| c.strip_prefix("i-").or_else(|| c.strip_prefix("m-")) == Some(hex.as_str()));
    if !own {
        return Err(ApiError::bad_request(
            "BadRequestInvalidArtifactUri",
            format!("Not an artifact of project {id}: {path:?}"),
        ));
    }
    let bytes = state
        .resolve_bytes(&path)
        .ok_or_else(|| ApiError::not_found("NotFound", format!("Artifact not found: {path:?}")))?;
    Ok(Reply::Octets(bytes))
}

fn get_images_by_ids(state: &AppState, p: &str, q: &Query, links: &Links<'_>) -> Result<Reply, ApiError> {
    let ids = q.ids("imageIds", MAX_BATCH, "BadRequestExceededBatchSize")?;
    read(state, p, |p| {
        let found = p.by_ids(&ids, q.iteration(p)?);
        Ok(Reply::json(&found.iter().map(|i| render::image(p, i, links)).collect::<Vec<_>>()))
    })
}

/// GetTags: image counts of the workspace, or of a trained iteration with `iterationId`.
fn get_tags(state: &AppState, p: &str, q: &Query) -> Result<Reply, ApiError> {
    read(state, p, |p| {
        let counts = match q.get("iterationId") {
            Some(raw) => p.iteration(parse_id(raw)?)?.tag_counts.clone(),
            None => p.tag_counts(),
        };
        let tags: Vec<_> = p.tags.iter().map(|t| render::tag(t, counts.get(&t.id).copied().unwrap_or(0))).collect();
        Ok(Reply::json(&tags))
    })
}

fn get_tag(state: &AppState, p: &str, t: &str, q: &Query) -> Result<Reply, ApiError> {
    read(state, p, |p| {
        let tag = p.tag(parse_id(t)?)?;
        let count = match q.get("iterationId") {
            Some(raw) => p.iteration(parse_id(raw)?)?.tag_counts.get(&tag.id).copied().unwrap_or(0),
            None => p.tag_count(tag.id),
        };
        Ok(Reply::json(&render::tag(tag, count)))
    })
}

fn iteration_performance(state: &AppState, p: &str, i: &str, q: &Query) -> Result<Reply, ApiError> {
    for name in ["threshold", "overlapThreshold"] {
        if let Some(raw) = q.get(name) {
            raw.parse::<f64>()
                .map_err(|_| ApiError::bad_request("BadRequest", format!("{name} must be a number, not {raw:?}")))?;
        }
    }
    read(state, p, |p| Ok(Reply::json(trained(p, i)?.performance.as_ref().expect("trained iterations have one"))))
}

fn image_performances(state: &AppState, p: &str, i: &str, q: &Query, links: &Links<'_>) -> Result<Reply, ApiError> {
    let page = q.page()?;
    let tags = q.ids("tagIds", MAX_TAG_FILTER, "BadRequestExceededBatchSize")?;
    read(state, p, |p| {
        let it = trained(p, i)?;
        let keep =
            |img: &std::sync::Arc<super::state::ImageRec>| tags.is_empty() || tags.iter().any(|t| img.has_tag(t));
        let items: Vec<_> = super::state::paged(&it.image_performances, keep, page)
            .into_iter()
            .map(|img| render::image_performance(p, img, links))
            .collect();
        Ok(Reply::json(&items))
    })
}

fn image_performance_count(state: &AppState, p: &str, i: &str, q: &Query) -> Result<Reply, ApiError> {
    let tags = q.ids("tagIds", usize::MAX, "BadRequestExceededBatchSize")?;
    read(state, p, |p| {
        let it = trained(p, i)?;
        let count =
            it.image_performances.iter().filter(|img| tags.is_empty() || tags.iter().any(|t| img.has_tag(t))).count();
        Ok(Reply::json(&count))
    })
}

fn delete_predictions(state: &AppState, p: &str, q: &Query) -> Result<Reply, ApiError> {
    let ids = q.ids("ids", MAX_PREDICTION_IDS, "BadRequestPredictionIdsExceededCount")?;
    if ids.is_empty() {
        return Err(ApiError::bad_request("BadRequestPredictionIdsMissing", "ids is required"));
    }
    write(state, p, |p| {
        p.delete_predictions(&ids);
        Ok(())
    })
}

/// Runs a read on one project.
fn read(
    state: &AppState,
    project: &str,
    f: impl FnOnce(&ProjectState) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    state.with_account(|a| f(a.get(id)?))
}

/// Runs a change on one project; 204 when it succeeds.
fn write(
    state: &AppState,
    project: &str,
    f: impl FnOnce(&mut ProjectState) -> Result<(), ApiError>,
) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    state.with_account_mut(|a| f(a.get_mut(id)?))?;
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

/// An iteration that has a performance, or the service's refusal.
fn trained<'p>(p: &'p ProjectState, iteration: &str) -> Result<&'p super::state::IterationState, ApiError> {
    let it = p.iteration(parse_id(iteration)?)?;
    if !it.iteration.is_trained() || it.performance.is_none() {
        return Err(ApiError::bad_request(
            "BadRequestIterationIsNotTrained",
            format!("Iteration {} is not trained", it.iteration.id),
        ));
    }
    Ok(it)
}

fn list(state: &AppState, project: &str, q: &Query, tagging: Tagging, links: &Links<'_>) -> Result<Reply, ApiError> {
    let page = q.page()?;
    let mut workspace = false;
    let reply = read(state, project, |p| {
        let filter = q.filter(p, tagging)?;
        workspace = filter.iteration.is_none();
        Ok(Reply::json(&p.list(&filter, page).iter().map(|i| render::image(p, i, links)).collect::<Vec<_>>()))
    })?;
    if workspace {
        if let Some(change) = state.listing_mutation() {
            let id = parse_id(project)?;
            state.with_account_mut(|a| a.project_mut(id).map(|p| p.mutate(change.delete, change.untag)));
        }
    }
    Ok(reply)
}

fn count(state: &AppState, project: &str, q: &Query, tagging: Tagging) -> Result<Reply, ApiError> {
    read(state, project, |p| Ok(Reply::json(&p.count(&q.filter(p, tagging)?))))
}

fn delete_images(state: &AppState, project: &str, q: &Query) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    let ids = q.ids("imageIds", MAX_BATCH, "BadRequestExceededBatchSize")?;
    let all_iterations = q.flag("allIterations");
    if q.flag("allImages") {
        state.with_account(|a| a.get(id).map(|_| ()))?;
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ASYNC_DELETE_DELAY).await;
            state.with_account_mut(|a| a.project_mut(id).map(|p| p.delete_all_images(all_iterations)));
        });
        return Ok(Reply::Empty(StatusCode::ACCEPTED));
    }
    if ids.is_empty() {
        return Err(ApiError::bad_request("BadRequestRequiredParamIsNull", "imageIds or allImages=true is required"));
    }
    state.with_account_mut(|a| a.get_mut(id).map(|p| p.delete_images(&ids, all_iterations)))?;
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

fn query_predictions(state: &AppState, project: &str, body: &Bytes, links: &Links<'_>) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    let query: PredictionQueryToken = if body.iter().all(u8::is_ascii_whitespace) {
        PredictionQueryToken::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("BadRequestPredictionInvalidQueryParameters", format!("Cannot read the query: {e}"))
        })?
    };
    if query.tags.as_ref().is_some_and(|t| t.len() > 2) {
        return Err(ApiError::bad_request("BadRequestPredictionTagsExceededCount", "A query combines at most 2 tags"));
    }
    let faults = state.fault_config();
    let limit = faults.prediction_max_count.map_or(MAX_PREDICTION_COUNT, |n| n.min(MAX_PREDICTION_COUNT));
    let max_count = match query.max_count {
        None | Some(0) => DEFAULT_MAX_COUNT.min(limit.max(1)),
        Some(n) if n < 0 || n > limit as i64 => {
            return Err(ApiError::bad_request(
                "BadRequestPredictionResultsExceededCount",
                format!("maxCount must be between 0 and {limit}"),
            ))
        }
        Some(n) => n as usize,
    };
    let (offset, number) = match query.continuation.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => parse_continuation(c)?,
        None => (0, 0),
    };
    // The first page comes back one short of maxCount, as the real service's pages may: clients
    // must follow the continuation until it is empty, never stop on a short page.
    let mut size = if offset == 0 && max_count > 1 { max_count - 1 } else { max_count };
    if let Some(cap) = faults.short_prediction_pages {
        size = if number % 2 == 1 { 0 } else { size.min(cap) };
    }
    state.with_account(|a| {
        let p = a.get(id)?;
        let (page, more) = p.query_predictions(&query, offset, size);
        let results = page.iter().map(|r| render::stored_prediction(p, r, links)).collect();
        let token = PredictionQueryToken {
            session: Some(
                query.session.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
            ),
            continuation: Some(if more { continuation(offset + page.len(), number + 1) } else { String::new() }),
            max_count: Some(max_count as i64),
            order_by: Some(query.order_by.clone().unwrap_or_else(|| "Newest".to_owned())),
            ..query.clone()
        };
        Ok(Reply::json(&PredictionQueryResult { token: Some(token), results }))
    })
}
