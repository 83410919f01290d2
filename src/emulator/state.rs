//! The account the emulator holds (projects, tags, images, iterations, exports, predictions) and
//! the operations on it: filtering and paging, counts, deletes with the real service's refusals.
//!
//! Images are small records (`ImageRec`); their bytes are not kept but derived on demand from
//! their [`Content`], so a generated project can hold 100,000 images in a few tens of MB.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub(crate) use super::filter::MetadataFilter;
pub(crate) use super::iteration::{ExportRec, IterationState, TrainingSet};
use crate::api::model::{Prediction, PredictionQueryToken, Project, Tag};

/// Most ids, images or results one call may name or return.
pub(crate) const MAX_BATCH: usize = 256;
/// Most prediction ids one DeletePrediction may name.
pub(crate) const MAX_PREDICTION_IDS: usize = 64;
/// Most tag ids a filter may name.
pub(crate) const MAX_TAG_FILTER: usize = 20;

/// The project type, from its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Classification,
    ObjectDetection,
}

/// Where an image's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// A bundled fixture file, by index in `fixture::FILES`.
    Fixture(u16),
    /// Generated from the account seed and this key.
    Generated { key: u64, jpeg: bool },
    /// Uploaded through CreateImagesFromFiles: an index into the emulator's upload store.
    Uploaded(u32),
}

/// An object-detection region of an image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RegionRec {
    pub id: Uuid,
    pub tag: Uuid,
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// One training image, without its bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageRec {
    pub id: Uuid,
    pub created: DateTime<Utc>,
    pub width: u32,
    pub height: u32,
    pub tags: Vec<Uuid>,
    pub regions: Vec<RegionRec>,
    /// Boxed: most images have none, and `Option<Box<_>>` is a third of `Option<BTreeMap>`
    /// in each of up to 100,000 records.
    #[allow(clippy::box_collection)]
    pub metadata: Option<Box<BTreeMap<String, String>>>,
    pub content: Content,
}

impl ImageRec {
    /// Whether it carries a tag or a region.
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty() || !self.regions.is_empty()
    }

    /// Whether it carries this tag, directly or through a region.
    pub fn has_tag(&self, tag: &Uuid) -> bool {
        self.tags.contains(tag) || self.regions.iter().any(|r| r.tag == *tag)
    }

    /// Its tags, direct ones first, then those of its regions, each once.
    pub fn tag_ids(&self) -> Vec<Uuid> {
        let mut out = self.tags.clone();
        for r in &self.regions {
            if !out.contains(&r.tag) {
                out.push(r.tag);
            }
        }
        out
    }

    /// Its place in the oldest-first order.
    pub(crate) fn key(&self) -> (DateTime<Utc>, Uuid) {
        (self.created, self.id)
    }
}

/// A stored prediction.
#[derive(Debug, Clone)]
pub(crate) struct PredictionRec {
    pub id: Uuid,
    pub iteration: Uuid,
    pub created: DateTime<Utc>,
    pub content: Content,
    pub predictions: Vec<Prediction>,
}

/// One project and everything in it.
#[derive(Debug, Clone)]
pub(crate) struct ProjectState {
    /// The wire record, without `thumbnailUri` (a link, made per answer).
    pub project: Project,
    pub kind: Kind,
    /// VNET mode: relative `originalImageUri` and export links.
    pub vnet: bool,
    pub tags: Vec<Tag>,
    /// The workspace images, oldest first (by `created`, then id).
    pub images: Vec<Arc<ImageRec>>,
    index: HashMap<Uuid, Arc<ImageRec>>,
    pub iterations: Vec<IterationState>,
    /// Oldest first.
    pub predictions: Vec<PredictionRec>,
    /// Distinguishes the generated content of this project's added images.
    pub ordinal: u64,
    next_key: u64,
    /// SHA-256 of every uploaded workspace image, so a second upload of the same bytes is
    /// answered `OKDuplicate` with the image already there, as the service does.
    pub digests: HashMap<[u8; 32], Uuid>,
}

/// How images are ordered in a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Newest,
    Oldest,
}

/// Which images by tagging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tagging {
    All,
    Tagged,
    Untagged,
}

/// Which images a list or count call means.
#[derive(Debug, Clone)]
pub(crate) struct ImageFilter {
    pub tagging: Tagging,
    /// Images carrying any of these tags (empty: no tag filter).
    pub tag_ids: Vec<Uuid>,
    /// The images of this iteration instead of the workspace's (`iterationId`).
    pub iteration: Option<Uuid>,
    pub metadata: Option<MetadataFilter>,
}

impl ImageFilter {
    /// Whether an image passes.
    pub fn matches(&self, image: &ImageRec) -> bool {
        let tagging = match self.tagging {
            Tagging::All => true,
            Tagging::Tagged => image.is_tagged(),
            Tagging::Untagged => !image.is_tagged(),
        };
        tagging
            && (self.tag_ids.is_empty() || self.tag_ids.iter().any(|t| image.has_tag(t)))
            && self.metadata.as_ref().is_none_or(|m| m.matches(image))
    }
}

/// One page of an offset-paged list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub order: Order,
    pub take: usize,
    pub skip: usize,
}

/// The items of `items` (sorted oldest first) that pass `keep`, in `page.order`, paged.
pub(crate) fn paged<'a, T>(items: &'a [T], keep: impl Fn(&T) -> bool, page: Page) -> Vec<&'a T> {
    let ordered: Box<dyn Iterator<Item = &'a T>> = match page.order {
        Order::Oldest => Box::new(items.iter()),
        Order::Newest => Box::new(items.iter().rev()),
    };
    ordered.filter(|x| keep(x)).skip(page.skip).take(page.take).collect()
}

/// An error answer of the API: the status and `CustomVisionError` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// A 400 with this code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    /// A 404 with this code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code, message: message.into() }
    }

    fn project(id: Uuid) -> ApiError {
        ApiError::not_found("NotFoundProject", format!("Project not found: {id}"))
    }
}

/// Parameters of generated image bytes, fixed per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentParams {
    pub seed: u64,
    pub image_bytes: usize,
}

/// The whole account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub projects: Vec<ProjectState>,
    pub content: ContentParams,
}

/// What a blob path names.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    /// An image (or its thumbnail).
    Image { content: Content, thumbnail: bool },
    /// Stored bytes (a model export).
    Bytes(Bytes),
}

impl Account {
    /// A project by id.
    pub fn project(&self, id: Uuid) -> Option<&ProjectState> {
        self.projects.iter().find(|p| p.id() == id)
    }

    /// A project by id, for changing.
    pub fn project_mut(&mut self, id: Uuid) -> Option<&mut ProjectState> {
        self.projects.iter_mut().find(|p| p.id() == id)
    }

    /// A project by id, or NotFoundProject.
    pub fn get(&self, id: Uuid) -> Result<&ProjectState, ApiError> {
        self.project(id).ok_or_else(|| ApiError::project(id))
    }

    /// A project by id for changing, or NotFoundProject.
    pub fn get_mut(&mut self, id: Uuid) -> Result<&mut ProjectState, ApiError> {
        self.project_mut(id).ok_or_else(|| ApiError::project(id))
    }

    /// Deletes a project, refused while one of its iterations is published.
    pub fn delete_project(&mut self, id: Uuid) -> Result<(), ApiError> {
        let project = self.get(id)?;
        if let Some(published) = project.iterations.iter().find(|i| i.iteration.is_published()) {
            return Err(ApiError::bad_request(
                "BadRequestIterationIsPublished",
                format!(
                    "Cannot delete a project with a published iteration ({}); unpublish it first",
                    published.iteration.id
                ),
            ));
        }
        self.projects.retain(|p| p.id() != id);
        Ok(())
    }

    /// Adds `count` tagged images created at `now` (and a microsecond apart) to a project.
    pub fn add_images(&mut self, project: Uuid, count: usize, now: DateTime<Utc>) -> Vec<Uuid> {
        let Some(p) = self.project_mut(project) else { return Vec::new() };
        let (width, height) = crate::emulator::generate::BASE_SIZE;
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let key = (p.ordinal << 32) | p.next_key;
            p.next_key += 1;
            let tag = (!p.tags.is_empty()).then(|| p.tags[n % p.tags.len()].id);
            let (tags, regions) = match (p.kind, tag) {
                (_, None) => (Vec::new(), Vec::new()),
                (Kind::Classification, Some(t)) => (vec![t], Vec::new()),
                (Kind::ObjectDetection, Some(t)) => (
                    Vec::new(),
                    vec![RegionRec { id: Uuid::new_v4(), tag: t, left: 0.1, top: 0.1, width: 0.5, height: 0.5 }],
                ),
            };
            let image = ImageRec {
                id: Uuid::new_v4(),
                created: now + chrono::Duration::microseconds(n as i64),
                width,
                height,
                tags,
                regions,
                metadata: None,
                content: Content::Generated { key, jpeg: n % 2 == 1 },
            };
            ids.push(image.id);
            p.insert(image);
        }
        ids
    }

    /// What a blob path (`container/blob`, no leading slash) names, if anything.
    pub fn resolve(&self, path: &str) -> Option<Resolved> {
        let (container, blob) = path.split_once('/')?;
        let project_hex = container.strip_prefix("i-").or_else(|| container.strip_prefix("m-"))?;
        let project = self.projects.iter().find(|p| p.id().simple().to_string() == project_hex)?;
        if container.starts_with("m-") {
            let (iteration_hex, platform) = blob.strip_suffix(".zip")?.split_once('-')?;
            let iteration = project.iterations.iter().find(|i| i.iteration.id.simple().to_string() == iteration_hex)?;
            let export = iteration.exports.iter().find(|e| e.platform.eq_ignore_ascii_case(platform))?;
            return export.bytes.clone().map(Resolved::Bytes);
        }
        let (prefix, id_hex) = blob.split_once('-')?;
        let thumbnail = match prefix {
            "i" => false,
            "t" => true,
            _ => return None,
        };
        let id = Uuid::try_parse(id_hex).ok().filter(|id| id.simple().to_string() == id_hex)?;
        let content = match project.find_image(id) {
            Some(image) => image.content,
            None => project.predictions.iter().find(|r| r.id == id)?.content,
        };
        Some(Resolved::Image { content, thumbnail })
    }
}

impl ProjectState {
    /// A project with no images yet; `images` are added with [`ProjectState::insert`].
    pub fn new(project: Project, kind: Kind, vnet: bool, tags: Vec<Tag>, ordinal: u64) -> ProjectState {
        ProjectState {
            project,
            kind,
            vnet,
            tags,
            images: Vec::new(),
            index: HashMap::new(),
            iterations: Vec::new(),
            predictions: Vec::new(),
            ordinal,
            next_key: 0,
            digests: HashMap::new(),
        }
    }

    /// Replaces a workspace image's record (same id), keeping the index in step.
    pub fn replace(&mut self, image: ImageRec) {
        let image = Arc::new(image);
        if let Some(slot) = self.images.iter_mut().find(|i| i.id == image.id) {
            *slot = image.clone();
        }
        self.index.insert(image.id, image);
    }

    /// Sets the counter of added images' content keys, past any key already used.
    pub fn set_next_key(&mut self, next: u64) {
        self.next_key = next;
    }

    /// The project id.
    pub fn id(&self) -> Uuid {
        self.project.id
    }

    /// Adds a workspace image at its place in the order.
    pub fn insert(&mut self, image: ImageRec) -> Arc<ImageRec> {
        let image = Arc::new(image);
        let at = self.images.partition_point(|i| i.key() < image.key());
        self.images.insert(at, image.clone());
        self.index.insert(image.id, image.clone());
        image
    }

    /// Adds many images already sorted oldest first (generation), faster than one by one.
    pub fn extend_sorted(&mut self, images: impl IntoIterator<Item = ImageRec>) {
        for image in images {
            let image = Arc::new(image);
            debug_assert!(self.images.last().is_none_or(|l| l.key() < image.key()));
            self.index.insert(image.id, image.clone());
            self.images.push(image);
        }
    }

    /// Whether the workspace holds this image.
    pub fn holds(&self, id: Uuid) -> bool {
        self.index.contains_key(&id)
    }

    /// An image of the workspace, or one an iteration still holds.
    pub fn find_image(&self, id: Uuid) -> Option<&Arc<ImageRec>> {
        self.index.get(&id).or_else(|| self.iterations.iter().find_map(|i| i.training.get(&id)))
    }

    /// An iteration, or NotFoundIteration.
    pub fn iteration(&self, id: Uuid) -> Result<&IterationState, ApiError> {
        self.iterations
            .iter()
            .find(|i| i.iteration.id == id)
            .ok_or_else(|| ApiError::not_found("NotFoundIteration", format!("Iteration not found: {id}")))
    }

    /// A tag, or NotFoundTag.
    pub fn tag(&self, id: Uuid) -> Result<&Tag, ApiError> {
        self.tags
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ApiError::not_found("NotFoundTag", format!("Tag not found: {id}")))
    }

    /// How many workspace images carry a tag.
    pub fn tag_count(&self, tag: Uuid) -> i64 {
        self.images.iter().filter(|i| i.has_tag(&tag)).count() as i64
    }

    /// Every workspace tag's image count, in one pass over the images.
    pub fn tag_counts(&self) -> HashMap<Uuid, i64> {
        let mut counts: HashMap<Uuid, i64> = self.tags.iter().map(|t| (t.id, 0)).collect();
        for image in &self.images {
            for t in image.tag_ids() {
                *counts.entry(t).or_default() += 1;
            }
        }
        counts
    }

    /// The images a filter lists: the workspace's, or an iteration's (already checked to exist).
    fn source(&self, filter: &ImageFilter) -> &[Arc<ImageRec>] {
        match filter.iteration {
            None => &self.images,
            Some(id) => self.iterations.iter().find(|i| i.iteration.id == id).map_or(&[], |i| i.training.images()),
        }
    }

    /// A page of the workspace (or iteration) images that pass `filter`.
    pub fn list(&self, filter: &ImageFilter, page: Page) -> Vec<Arc<ImageRec>> {
        paged(self.source(filter), |i| filter.matches(i), page).into_iter().cloned().collect()
    }

    /// How many workspace (or iteration) images pass `filter`.
    pub fn count(&self, filter: &ImageFilter) -> usize {
        self.source(filter).iter().filter(|i| filter.matches(i)).count()
    }

    /// The named images of the workspace, or of an iteration, in the order asked; unknown ids
    /// are left out.
    pub fn by_ids(&self, ids: &[Uuid], iteration: Option<&IterationState>) -> Vec<Arc<ImageRec>> {
        match iteration {
            None => ids.iter().filter_map(|id| self.index.get(id).cloned()).collect(),
            Some(it) => ids.iter().filter_map(|id| it.training.get(id).cloned()).collect(),
        }
    }

    /// Removes workspace images, and with `all_iterations` every iteration's copy too; returns
    /// how many the workspace held.
    ///
    /// Source: [spec] DeleteImages, `allIterations`: "Removes these images from all iterations,
    /// not just the current workspace". Without it, every trained iteration keeps its copy.
    pub fn delete_images(&mut self, ids: &[Uuid], all_iterations: bool) -> usize {
        let doomed: HashSet<Uuid> = ids.iter().copied().collect();
        if all_iterations {
            self.forget_in_iterations(&doomed);
        }
        let doomed: HashSet<Uuid> = doomed.into_iter().filter(|id| self.index.contains_key(id)).collect();
        if doomed.is_empty() {
            return 0;
        }
        self.images.retain(|i| !doomed.contains(&i.id));
        self.index.retain(|id, _| !doomed.contains(id));
        self.digests.retain(|_, id| !doomed.contains(id));
        doomed.len()
    }

    /// Removes every workspace image, and with `all_iterations` every iteration's images too.
    pub fn delete_all_images(&mut self, all_iterations: bool) {
        if all_iterations {
            for it in &mut self.iterations {
                it.training = TrainingSet::default();
                it.image_performances.clear();
            }
        }
        self.images.clear();
        self.index.clear();
        self.digests.clear();
    }

    fn forget_in_iterations(&mut self, doomed: &HashSet<Uuid>) {
        for it in &mut self.iterations {
            it.training.remove(doomed);
            it.image_performances.retain(|i| !doomed.contains(&i.id));
        }
    }

    /// Deletes a tag and takes it (and its regions) off every image.
    pub fn delete_tag(&mut self, id: Uuid) -> Result<(), ApiError> {
        self.tag(id)?;
        self.tags.retain(|t| t.id != id);
        for image in self.images.iter_mut().filter(|i| i.has_tag(&id)) {
            let image = Arc::make_mut(image);
            image.tags.retain(|t| *t != id);
            image.regions.retain(|r| r.tag != id);
        }
        // Keep the index pointing at the same records as the ordered list.
        for image in &self.images {
            self.index.insert(image.id, image.clone());
        }
        Ok(())
    }

    /// Deletes an iteration, refused while it is published.
    pub fn delete_iteration(&mut self, id: Uuid) -> Result<(), ApiError> {
        if self.iteration(id)?.iteration.is_published() {
            return Err(ApiError::bad_request(
                "BadRequestIterationIsPublished",
                format!("Cannot delete iteration {id} while it is published; unpublish it first"),
            ));
        }
        self.iterations.retain(|i| i.iteration.id != id);
        Ok(())
    }

    /// Unpublishes an iteration, refused when it is not published.
    pub fn unpublish(&mut self, id: Uuid) -> Result<(), ApiError> {
        self.iteration(id)?;
        let it = self.iterations.iter_mut().find(|i| i.iteration.id == id).expect("just found");
        if !it.iteration.is_published() {
            return Err(ApiError::bad_request(
                "BadRequestIterationNotPublished",
                format!("Iteration {id} is not published"),
            ));
        }
        it.iteration.publish_name = None;
        it.iteration.original_publish_resource_id = None;
        Ok(())
    }

    /// Stored predictions matching a query, from `offset`, at most `count`; and whether more
    /// remain.
    pub fn query_predictions(
        &self,
        query: &PredictionQueryToken,
        offset: usize,
        count: usize,
    ) -> (Vec<&PredictionRec>, bool) {
        let order = match query.order_by.as_deref() {
            Some("Oldest") => Order::Oldest,
            _ => Order::Newest,
        };
        let start = query.start_time.as_ref().map(|t| t.instant());
        let end = query.end_time.as_ref().map(|t| t.instant());
        let keep = |r: &PredictionRec| {
            query.iteration_id.is_none_or(|i| r.iteration == i)
                && start.is_none_or(|s| r.created >= s)
                && end.is_none_or(|e| r.created <= e)
                && query.tags.as_ref().is_none_or(|tags| {
                    tags.iter().all(|t| {
                        r.predictions.iter().any(|p| {
                            let prob = p.probability.unwrap_or(0.0);
                            p.tag_id == Some(t.id)
                                && t.min_threshold.is_none_or(|m| prob >= m)
                                && t.max_threshold.is_none_or(|m| prob <= m)
                        })
                    })
                })
        };
        let mut page = paged(&self.predictions, keep, Page { order, take: count + 1, skip: offset });
        let more = page.len() > count;
        page.truncate(count);
        (page, more)
    }

    /// Deletes stored predictions; unknown ids are ignored.
    pub fn delete_predictions(&mut self, ids: &[Uuid]) -> usize {
        let before = self.predictions.len();
        self.predictions.retain(|r| !ids.contains(&r.id));
        before - self.predictions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_walks_both_ways() {
        let items: Vec<u32> = (0..10).collect();
        let page = |order, skip| {
            paged(&items, |x| x % 2 == 0, Page { order, take: 2, skip }).into_iter().copied().collect::<Vec<_>>()
        };
        assert_eq!(page(Order::Oldest, 0), vec![0, 2]);
        assert_eq!(page(Order::Oldest, 4), vec![8]);
        assert_eq!(page(Order::Newest, 0), vec![8, 6]);
    }
}
