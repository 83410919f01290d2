//! The bundled fixture account: `fixtures/account.json` and the images beside it, compiled into
//! the binary so it is self-contained.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::generate::{counts_by_tag, export_package, wire_iteration, wire_project, IterationSpec};
use super::state::{
    Account, Content, ContentParams, ExportRec, ImageRec, IterationState, Kind, PredictionRec, ProjectState, RegionRec,
    TrainingSet,
};
use super::DEFAULT_IMAGE_BYTES;
use crate::api::model::{IterationPerformance, Prediction, Tag, Timestamp};

const ACCOUNT_JSON: &str = include_str!("../../fixtures/account.json");

/// The fixture's image files, by name; an image's [`Content::Fixture`] is its index here.
pub(crate) const FILES: &[(&str, &[u8])] = &[
    ("cls-cat.jpg", include_bytes!("../../fixtures/images/cls-cat.jpg")),
    ("cls-dog.png", include_bytes!("../../fixtures/images/cls-dog.png")),
    ("cls-cafe.gif", include_bytes!("../../fixtures/images/cls-cafe.gif")),
    ("cls-untagged.bmp", include_bytes!("../../fixtures/images/cls-untagged.bmp")),
    ("cls-untagged2.png", include_bytes!("../../fixtures/images/cls-untagged2.png")),
    ("dup-a.jpg", include_bytes!("../../fixtures/images/dup-a.jpg")),
    ("dup-b.jpg", include_bytes!("../../fixtures/images/dup-b.jpg")),
    ("od-street.jpg", include_bytes!("../../fixtures/images/od-street.jpg")),
    ("od-park.png", include_bytes!("../../fixtures/images/od-park.png")),
    ("od-untagged.gif", include_bytes!("../../fixtures/images/od-untagged.gif")),
    ("vnet-one.jpg", include_bytes!("../../fixtures/images/vnet-one.jpg")),
    ("vnet-two.png", include_bytes!("../../fixtures/images/vnet-two.png")),
    ("pred-one.jpg", include_bytes!("../../fixtures/images/pred-one.jpg")),
    ("pred-two.png", include_bytes!("../../fixtures/images/pred-two.png")),
];

/// Content keys of images added to fixture projects start at this project ordinal, clear of
/// any generated project's.
const ORDINAL_BASE: u64 = 1 << 20;

#[derive(Deserialize)]
struct FixtureAccount {
    projects: Vec<FixtureProject>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixtureProject {
    id: Uuid,
    name: String,
    description: String,
    kind: String,
    classification_type: Option<String>,
    #[serde(default)]
    vnet: bool,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    images: Vec<FixtureImage>,
    #[serde(default)]
    iterations: Vec<FixtureIteration>,
    #[serde(default)]
    predictions: Vec<FixturePrediction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixtureImage {
    id: Uuid,
    file: String,
    width: u32,
    height: u32,
    created: Timestamp,
    #[serde(default)]
    tags: Vec<Uuid>,
    #[serde(default)]
    regions: Vec<FixtureRegion>,
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixtureRegion {
    id: Uuid,
    tag_id: Uuid,
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixtureIteration {
    id: Uuid,
    name: String,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    trained_at: Option<DateTime<Utc>>,
    #[serde(default)]
    training_time_in_minutes: i64,
    #[serde(default)]
    exportable_to: Vec<String>,
    publish_name: Option<String>,
    original_publish_resource_id: Option<String>,
    performance: Option<IterationPerformance>,
    #[serde(default)]
    image_performances: Vec<Uuid>,
    /// Images the workspace no longer holds (deleted after training, without
    /// `allIterations`): only this iteration does.
    #[serde(default)]
    only_in_iteration: Vec<FixtureImage>,
    #[serde(default)]
    exports: Vec<FixtureExport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixtureExport {
    platform: String,
    status: String,
    flavor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixturePrediction {
    id: Uuid,
    file: String,
    iteration: Uuid,
    created: DateTime<Utc>,
    predictions: Vec<Prediction>,
}

fn file_index(name: &str) -> Result<Content, String> {
    FILES
        .iter()
        .position(|(n, _)| *n == name)
        .map(|i| Content::Fixture(i as u16))
        .ok_or_else(|| format!("no fixture file {name:?}"))
}

/// The bytes of a fixture file.
pub(crate) fn file_bytes(index: u16) -> &'static [u8] {
    FILES.get(usize::from(index)).map_or(&[], |(_, b)| b)
}

fn image_rec(image: FixtureImage) -> Result<ImageRec, String> {
    let regions = image
        .regions
        .into_iter()
        .map(|r| RegionRec { id: r.id, tag: r.tag_id, left: r.left, top: r.top, width: r.width, height: r.height })
        .collect();
    Ok(ImageRec {
        id: image.id,
        created: image.created.instant(),
        width: image.width,
        height: image.height,
        tags: image.tags,
        regions,
        metadata: image.metadata.map(Box::new),
        content: file_index(&image.file)?,
    })
}

/// Loads the fixture account.
pub(crate) fn account() -> Result<Account, String> {
    let fixture: FixtureAccount = serde_json::from_str(ACCOUNT_JSON).map_err(|e| e.to_string())?;
    let mut projects = Vec::new();
    for (n, p) in fixture.projects.into_iter().enumerate() {
        let kind = match p.kind.as_str() {
            "Classification" => Kind::Classification,
            "ObjectDetection" => Kind::ObjectDetection,
            other => return Err(format!("project {}: unknown kind {other:?}", p.id)),
        };
        let wire = wire_project(
            p.id,
            &p.name,
            &p.description,
            kind,
            p.classification_type.as_deref(),
            p.created,
            p.last_modified,
        );
        let mut state = ProjectState::new(wire, kind, p.vnet, p.tags, ORDINAL_BASE + n as u64);
        for image in p.images {
            state.insert(image_rec(image)?);
        }
        for it in p.iterations {
            let publish = it.publish_name.zip(it.original_publish_resource_id);
            let iteration = wire_iteration(
                &state.project,
                kind,
                IterationSpec {
                    id: it.id,
                    name: &it.name,
                    created: it.created,
                    modified: it.last_modified,
                    trained: it.trained_at.map(|t| (t, it.training_time_in_minutes)),
                    exportable_to: it.exportable_to,
                    publish,
                },
            );
            // Trained on the workspace's tagged images of its time, and on those only it holds.
            let mut training: Vec<Arc<ImageRec>> = match iteration.is_trained() {
                true => {
                    let cutoff = it.trained_at.unwrap_or(it.created);
                    state.images.iter().filter(|i| i.is_tagged() && i.created <= cutoff).cloned().collect()
                }
                false => Vec::new(),
            };
            for image in it.only_in_iteration {
                training.push(Arc::new(image_rec(image)?));
            }
            let training = TrainingSet::new(training);
            let evaluated = it
                .image_performances
                .iter()
                .map(|id| training.get(id).cloned().ok_or_else(|| format!("iteration {}: no image {id}", it.id)))
                .collect::<Result<Vec<_>, _>>()?;
            let exports = it
                .exports
                .into_iter()
                .map(|e| {
                    let bytes = (e.status == "Done")
                        .then(|| export_package(&state.project.name, &it.name, &e.platform, &state.tags));
                    ExportRec { platform: e.platform, status: e.status, flavor: e.flavor, bytes }
                })
                .collect();
            let tag_counts = counts_by_tag(training.images());
            state.iterations.push(IterationState {
                iteration,
                performance: it.performance,
                training,
                image_performances: evaluated,
                tag_counts,
                exports,
            });
        }
        for r in p.predictions {
            state.predictions.push(PredictionRec {
                id: r.id,
                iteration: r.iteration,
                created: r.created,
                content: file_index(&r.file)?,
                predictions: r.predictions,
            });
        }
        state.predictions.sort_by_key(|r| (r.created, r.id));
        projects.push(state);
    }
    Ok(Account { projects, content: ContentParams { seed: 0, image_bytes: DEFAULT_IMAGE_BYTES } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_loads_and_holds_what_it_promises() {
        let account = account().unwrap();
        assert_eq!(account.projects.len(), 4);
        assert!(account.projects.iter().any(|p| p.vnet));
        assert!(account.projects.iter().any(|p| p.images.is_empty()));
        assert!(account
            .projects
            .iter()
            .any(|p| p.kind == Kind::ObjectDetection && p.images.iter().any(|i| !i.regions.is_empty())));
        let types: std::collections::HashSet<_> =
            FILES.iter().map(|(_, b)| super::super::blob::sniff_content_type(b)).collect();
        for t in ["image/jpeg", "image/png", "image/gif", "image/bmp"] {
            assert!(types.contains(t), "{t}");
        }
        assert_eq!(file_bytes(5), file_bytes(6), "two images share their bytes");
    }
}
