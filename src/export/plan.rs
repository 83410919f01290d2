//! Seeing an account before exporting it: each project's counts read with metadata calls only
//! (no image or other blob is downloaded), an estimate of the bytes an archive of it takes, the
//! plan of an export (API calls and the time they take at a rate), and the checks of `--out`
//! (a file in an existing folder, on a disk with room) made before any download.
//!
//! Memory per image: none (a sample page a project; the counts); what the room check read is
//! handed to the export ([`Surveyed`]) so it is not read twice.
//!
//! The byte estimate cannot come from the images themselves without downloading them, and the
//! API gives no image sizes. It is made from what the listing does give, each image's width and
//! height, on a sample: one page of a project's images (its oldest [`SAMPLE`]), each taken as a
//! JPEG photograph of that many pixels at [`BYTES_PER_PIXEL`] (capped at the service's 6 MB
//! limit), plus [`RECORD_BYTES`] of metadata and archive overhead; an image without dimensions
//! counts as [`AVERAGE_IMAGE_BYTES`]. The sample's mean is taken for every image and stored
//! prediction of the project. It is an estimate and is always labelled so: PNG images, or photos
//! saved at high quality, take more; small or heavily compressed ones less.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use uuid::Uuid;

use super::account::ImageCounts;
use super::Error;
use crate::api::model::{Image, PredictionQueryToken, Project};
use crate::api::{paging, Client, ImageQuery, OrderBy, MAX_TAKE};

/// Bytes a JPEG photograph takes per pixel at the quality phones and cameras save (a 12
/// megapixel photo of 3.6 MB). Assumption, from common JPEG sizes; not measured on Custom Vision.
pub const BYTES_PER_PIXEL: f64 = 0.3;
/// Bytes assumed for an image whose listing gives no width and height: a 1-megapixel JPEG at
/// [`BYTES_PER_PIXEL`]. Assumption.
pub const AVERAGE_IMAGE_BYTES: u64 = 300_000;
/// The service's largest image: `[spec]` CreateImagesFromData "Supports images up to 6MB".
pub const MAX_IMAGE_BYTES: u64 = 6 << 20;
/// Bytes each image or prediction adds besides its file: its `images.jsonl` line (regions,
/// tags, metadata), its zip headers and its manifest line. Assumption, from archives of the
/// emulator's accounts.
pub const RECORD_BYTES: u64 = 1024;
/// Images sampled per project for the estimate: one page.
pub const SAMPLE: u32 = MAX_TAKE;
/// Projects surveyed at once.
const PROJECTS_IN_FLIGHT: usize = 4;

/// One project as the service describes it, from metadata calls only.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSurvey {
    /// The project's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Classification or ObjectDetection (from its domain; absent when the domain is unknown).
    pub domain_type: Option<String>,
    /// Multiclass or Multilabel, for classification projects.
    pub classification_type: Option<String>,
    /// GetTaggedImageCount of the workspace.
    pub tagged: u64,
    /// GetUntaggedImageCount of the workspace.
    pub untagged: u64,
    /// Iterations (GetIterations), when asked for.
    pub iterations: Option<u64>,
    /// Of those, the trained ones.
    pub trained_iterations: Option<u64>,
    /// Stored predictions (QueryPredictions, paged to the end), when asked for.
    pub predictions: Option<u64>,
    /// The estimated bytes of one image (see the module's documentation).
    pub estimated_bytes_per_image: u64,
    /// How many listed images the estimate was made from.
    pub sampled_images: u64,
    /// The estimated bytes of the project's images and stored predictions in an archive.
    pub estimated_bytes: u64,
    /// Whether its images come through GetArtifact (relative links: a resource in VNET mode),
    /// so that each download is an API call, paced like the others.
    pub downloads_through_api: bool,
}

/// What a survey reads besides the image counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct SurveyOptions {
    /// Read each project's iterations (one GetIterations call).
    pub iterations: bool,
    /// Count stored predictions (QueryPredictions, one call per 256).
    pub predictions: bool,
}

/// Surveys the projects `ids` (every project when empty), sorted by name. An id the account
/// does not hold is refused, naming the ones it does.
pub async fn survey(client: &Client, ids: &[Uuid], opts: SurveyOptions) -> Result<Vec<ProjectSurvey>, Error> {
    Ok(survey_for_export(client, ids, opts).await?.0)
}

/// What a survey read that the export would otherwise read again at its start: the projects
/// (in the export's order), the domain types, and each project's image counts.
#[derive(Debug, Clone)]
pub struct Surveyed {
    /// The projects chosen, as GetProjects gave them.
    pub projects: Vec<Project>,
    /// Domain id -> Classification or ObjectDetection (GetDomains).
    pub domains: std::collections::HashMap<Uuid, String>,
    /// Project id -> its image counts (GetTaggedImageCount, GetUntaggedImageCount).
    pub counts: std::collections::HashMap<Uuid, ImageCounts>,
}

/// [`survey`], and what of it the export can take over ([`super::ExportOptions::surveyed`]).
pub async fn survey_for_export(
    client: &Client,
    ids: &[Uuid],
    opts: SurveyOptions,
) -> Result<(Vec<ProjectSurvey>, Surveyed), Error> {
    let all = client.get_projects().await?;
    let chosen = choose(all, ids, client.host())?;
    // Domain types name what each project is; not essential.
    let domains: std::collections::HashMap<Uuid, String> = match client.get_domains().await {
        Ok(d) => d.into_iter().filter_map(|d| Some((d.id, d.domain_type?))).collect(),
        Err(_) => Default::default(),
    };
    let mut surveyed: Vec<ProjectSurvey> = futures::stream::iter(chosen.clone())
        .map(|p| survey_project(client, p, &domains, opts))
        .buffered(PROJECTS_IN_FLIGHT)
        .try_collect()
        .await?;
    sort_by_name(&mut surveyed);
    let counts = surveyed.iter().map(|p| (p.id, ImageCounts { tagged: p.tagged, untagged: p.untagged })).collect();
    Ok((surveyed, Surveyed { projects: chosen, domains, counts }))
}

/// Sorts by name (case-insensitively), then id.
pub fn sort_by_name(projects: &mut [ProjectSurvey]) {
    projects.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
}

/// The projects of `all` that `ids` name (all of them when `ids` is empty, each once).
fn choose(all: Vec<Project>, ids: &[Uuid], endpoint: &str) -> Result<Vec<Project>, Error> {
    if ids.is_empty() {
        return Ok(all);
    }
    if let Some(id) = ids.iter().find(|id| !all.iter().any(|p| p.id == **id)) {
        return Err(not_found(*id, endpoint, &all));
    }
    let mut seen = std::collections::HashSet::new();
    Ok(ids.iter().filter(|id| seen.insert(**id)).filter_map(|id| all.iter().find(|p| p.id == *id).cloned()).collect())
}

/// The error for a project id the account does not hold, listing the ones it does by name.
pub fn not_found(id: Uuid, endpoint: &str, all: &[Project]) -> Error {
    let mut valid: Vec<(Uuid, String)> = all.iter().map(|p| (p.id, p.name.clone())).collect();
    valid.sort_by(|a, b| a.1.to_lowercase().cmp(&b.1.to_lowercase()).then(a.0.cmp(&b.0)));
    Error::ProjectNotFound { id, endpoint: endpoint.to_owned(), valid }
}

/// One line naming the projects an endpoint holds (id and name), for an error.
pub fn describe_valid(valid: &[(Uuid, String)]) -> String {
    if valid.is_empty() {
        return "it holds no projects".to_owned();
    }
    let listed: Vec<String> = valid.iter().map(|(id, name)| format!("{id} ({name})")).collect();
    format!("its projects are: {}", listed.join(", "))
}

async fn survey_project(
    client: &Client,
    p: Project,
    domains: &std::collections::HashMap<Uuid, String>,
    opts: SurveyOptions,
) -> Result<ProjectSurvey, Error> {
    let pid = p.id;
    let (tagged, untagged) =
        tokio::try_join!(client.get_tagged_image_count(pid), client.get_untagged_image_count(pid))?;
    let q = ImageQuery { order_by: OrderBy::Oldest, take: SAMPLE, skip: 0, ..Default::default() };
    let sample = match (tagged, untagged) {
        (0, 0) => Vec::new(),
        (0, _) => client.get_untagged_images(pid, &q).await?,
        _ => client.get_tagged_images(pid, &q).await?,
    };
    let (iterations, trained_iterations) = match opts.iterations {
        true => {
            let its = client.get_iterations(pid).await?;
            (Some(its.len() as u64), Some(its.iter().filter(|i| i.is_trained()).count() as u64))
        }
        false => (None, None),
    };
    let predictions = match opts.predictions {
        true => Some(count_predictions(client, pid).await?),
        false => None,
    };
    let per_image = mean_image_bytes(&sample);
    let items = tagged + untagged + predictions.unwrap_or(0);
    let settings = p.settings.as_ref();
    Ok(ProjectSurvey {
        id: pid,
        name: p.name,
        domain_type: settings.and_then(|s| s.domain_id).and_then(|d| domains.get(&d).cloned()),
        classification_type: settings.and_then(|s| s.classification_type.clone()),
        tagged,
        untagged,
        iterations,
        trained_iterations,
        predictions,
        estimated_bytes_per_image: per_image,
        sampled_images: sample.len() as u64,
        estimated_bytes: items.saturating_mul(per_image),
        downloads_through_api: sample
            .first()
            .and_then(|i| i.original_image_uri.as_deref())
            .is_some_and(|u| url::Url::parse(u).is_err()),
    })
}

/// Stored predictions of a project, by paging QueryPredictions to its end (no image is read).
async fn count_predictions(client: &Client, pid: Uuid) -> Result<u64, Error> {
    let first = PredictionQueryToken { order_by: Some("Oldest".into()), ..Default::default() };
    let mut seen = std::collections::HashSet::new();
    let pages = paging::prediction_pages(client, pid, first);
    futures::pin_mut!(pages);
    while let Some(page) = pages.try_next().await? {
        seen.extend(page.page.results.iter().map(|r| r.id));
    }
    Ok(seen.len() as u64)
}

/// The estimated archive bytes of one image, from its listing (see the module's documentation).
pub fn image_bytes(image: &Image) -> u64 {
    let file = match (image.width, image.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => ((w as f64 * h as f64 * BYTES_PER_PIXEL) as u64).min(MAX_IMAGE_BYTES),
        _ => AVERAGE_IMAGE_BYTES,
    };
    file + RECORD_BYTES
}

/// The mean of [`image_bytes`] over a sample; [`AVERAGE_IMAGE_BYTES`] for an empty one.
pub fn mean_image_bytes(sample: &[Image]) -> u64 {
    if sample.is_empty() {
        return AVERAGE_IMAGE_BYTES + RECORD_BYTES;
    }
    sample.iter().map(image_bytes).sum::<u64>() / sample.len() as u64
}

/// What an export of surveyed projects would do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportPlan {
    /// The projects, sorted by name.
    pub projects: Vec<ProjectSurvey>,
    /// Workspace images (tagged and untagged) to download.
    pub images: u64,
    /// Stored predictions to download (0 with `--no-predictions`).
    pub predictions: u64,
    /// The estimated archive size (an estimate: see [`crate::export::plan`]).
    pub estimated_bytes: u64,
    /// The API calls the export is expected to make (downloads not included; retries and link
    /// refreshes not foreseen).
    pub api_calls: u64,
    /// The calls per second they are paced at; `None` when unlimited.
    pub api_rate: Option<f64>,
    /// How long those calls take at that rate, at least; `None` when unlimited.
    pub api_seconds: Option<f64>,
    /// Blob downloads (images and prediction images; model packages with `--include-models`
    /// come on top, one per finished export), not paced.
    pub downloads: u64,
    /// The archive to write.
    pub out: PathBuf,
    /// Bytes free on the disk that holds it, when known.
    pub free_bytes: Option<u64>,
    /// Whether the estimate fits in them.
    pub room: Option<bool>,
}

/// Calls of an offset-paged listing of `n` items: full pages, then the short (or empty) one
/// that ends it.
fn pages(n: u64) -> u64 {
    n / u64::from(MAX_TAKE) + 1
}

/// The API calls an export of `p` makes, counted from the export's steps: the counts after
/// listing (2; those before are the room check's), the tagged and untagged pages, GetTags, GetIterations; for each
/// iteration GetExports, and for each trained one its performance, its image performances
/// (taken to hold the workspace's images) and its own two counts; the stored predictions'
/// pages; the room check's counts and sample (3); each download when they go through the API.
/// Only-in-iteration lookups, retries and link refreshes are not foreseen.
pub fn project_calls(p: &ProjectSurvey, predictions: bool) -> u64 {
    let images = p.tagged + p.untagged;
    let stored = if predictions { p.predictions.unwrap_or(0) } else { 0 };
    let iterations = p.iterations.unwrap_or(0);
    let trained = p.trained_iterations.unwrap_or(0);
    let mut calls = 3 + 2 + pages(p.tagged) + pages(p.untagged) + 2 + iterations;
    calls += trained * (1 + pages(images) + 2);
    if predictions {
        calls += pages(stored);
    }
    if p.downloads_through_api {
        calls += images + stored;
    }
    calls
}

/// The plan of exporting `projects` (surveyed with iterations and, when `predictions`,
/// predictions) into `out`, at `api_rate` calls per second.
pub fn plan(projects: Vec<ProjectSurvey>, predictions: bool, api_rate: Option<f64>, out: &Path) -> ExportPlan {
    let images: u64 = projects.iter().map(|p| p.tagged + p.untagged).sum();
    let stored: u64 = if predictions { projects.iter().map(|p| p.predictions.unwrap_or(0)).sum() } else { 0 };
    let estimated_bytes = projects
        .iter()
        .map(|p| {
            (p.tagged + p.untagged + if predictions { p.predictions.unwrap_or(0) } else { 0 })
                * p.estimated_bytes_per_image
        })
        .sum();
    // GetProjects and GetDomains for the room check, which the export takes over.
    let api_calls = 2 + projects.iter().map(|p| project_calls(p, predictions)).sum::<u64>();
    let free_bytes = free_bytes(&folder_of(out)).ok();
    ExportPlan {
        images,
        predictions: stored,
        estimated_bytes,
        api_calls,
        api_rate,
        api_seconds: api_rate.map(|r| api_calls as f64 / r),
        downloads: images + stored,
        out: out.to_path_buf(),
        free_bytes,
        room: free_bytes.map(|f| f >= estimated_bytes),
        projects,
    }
}

/// The folder an archive at `out` is written in.
pub fn folder_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks `--out` before any request: not a folder, in a folder that exists, and not an
/// existing file unless `force`.
pub fn check_out(out: &Path, force: bool) -> Result<(), Error> {
    if out.is_dir() {
        return Err(Error::OutIsFolder(out.to_path_buf()));
    }
    let folder = folder_of(out);
    if !folder.is_dir() {
        return Err(Error::NoFolder { out: out.to_path_buf(), folder });
    }
    if crate::sidefile::occupied(out) && !force {
        return Err(Error::Exists(out.to_path_buf()));
    }
    Ok(())
}

/// Checks that the disk holding `out` has room for `estimated` bytes, less what a partial
/// archive left there already holds.
pub fn check_room(out: &Path, estimated: u64) -> Result<(), Error> {
    let folder = folder_of(out);
    let Ok(free) = free_bytes(&folder) else { return Ok(()) };
    let kept = std::fs::metadata(super::partial_path(out)).map(|m| m.len()).unwrap_or(0);
    let need = estimated.saturating_sub(kept);
    if free < need {
        return Err(Error::NoRoom { folder, need, free });
    }
    Ok(())
}

/// Bytes an unprivileged user may still write on the file system holding `dir`.
/// `CVARCHIVE_ASSUME_FREE_BYTES` overrides it: a seam for tests, which cannot fill a disk.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    if let Some(n) = std::env::var("CVARCHIVE_ASSUME_FREE_BYTES").ok().and_then(|v| v.parse().ok()) {
        return Ok(n);
    }
    crate::platform::free_space(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: Option<i64>, h: Option<i64>) -> Image {
        serde_json::from_value(serde_json::json!({"id": Uuid::nil(), "width": w, "height": h})).unwrap()
    }

    #[test]
    fn the_estimate_follows_the_pixels_and_caps_at_the_service_limit() {
        assert_eq!(image_bytes(&image(Some(1000), Some(1000))), 300_000 + RECORD_BYTES);
        assert_eq!(image_bytes(&image(Some(100_000), Some(100_000))), MAX_IMAGE_BYTES + RECORD_BYTES);
        assert_eq!(image_bytes(&image(None, Some(10))), AVERAGE_IMAGE_BYTES + RECORD_BYTES);
        assert_eq!(mean_image_bytes(&[]), AVERAGE_IMAGE_BYTES + RECORD_BYTES);
    }

    #[test]
    fn a_listing_ends_on_a_short_page() {
        assert_eq!(pages(0), 1);
        assert_eq!(pages(255), 1);
        assert_eq!(pages(256), 2);
    }

    #[test]
    fn free_space_is_read() {
        assert!(crate::platform::free_space(Path::new(".")).unwrap() > 0);
    }
}
