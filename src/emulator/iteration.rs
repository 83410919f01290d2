//! An iteration as the emulator holds it: its record, performance, model exports and the
//! training set it keeps its own copy of.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::state::ImageRec;
use crate::api::model::{Iteration, IterationPerformance};

/// A model export of an iteration.
#[derive(Debug, Clone)]
pub(crate) struct ExportRec {
    pub platform: String,
    pub status: String,
    pub flavor: Option<String>,
    /// The package, for `Done` exports.
    pub bytes: Option<Bytes>,
}

/// The images an iteration was trained on, as they were when it was trained (tags, regions,
/// metadata), oldest first.
///
/// Source: [spec] DeleteImages' `allIterations` ("Removes these images from all iterations, not
/// just the current workspace") and the image listings' `iterationId` ("defaults to workspace"):
/// a trained iteration keeps its own copy of each image it was trained on, which a workspace
/// delete without `allIterations` leaves in place and which `iterationId` lists. That the copy
/// keeps the tags and regions the image had at training time (a later re-tag in the workspace
/// does not reach it) is an assumption that follows from the iteration being a frozen training
/// set; so is that it holds only tagged images (untagged images are not trained on).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrainingSet {
    /// Oldest first.
    images: Vec<Arc<ImageRec>>,
    /// The same records by id, for GetImagesByIds (8 bytes an image instead of a hash map's 40).
    by_id: Vec<Arc<ImageRec>>,
}

impl TrainingSet {
    /// A training set of these images, in any order.
    pub fn new(mut images: Vec<Arc<ImageRec>>) -> TrainingSet {
        images.sort_by_key(|i| i.key());
        images.dedup_by_key(|i| i.id);
        let mut by_id = images.clone();
        by_id.sort_by_key(|i| i.id);
        TrainingSet { images, by_id }
    }

    /// Every image, oldest first.
    pub fn images(&self) -> &[Arc<ImageRec>] {
        &self.images
    }

    /// The image with this id, if the iteration holds it.
    pub fn get(&self, id: &Uuid) -> Option<&Arc<ImageRec>> {
        self.by_id.binary_search_by_key(id, |i| i.id).ok().map(|at| &self.by_id[at])
    }

    /// Removes these images; returns how many it held.
    pub fn remove(&mut self, doomed: &HashSet<Uuid>) -> usize {
        let before = self.images.len();
        self.images.retain(|i| !doomed.contains(&i.id));
        self.by_id.retain(|i| !doomed.contains(&i.id));
        before - self.images.len()
    }
}

/// An iteration with what belongs to it.
#[derive(Debug, Clone)]
pub(crate) struct IterationState {
    pub iteration: Iteration,
    pub performance: Option<IterationPerformance>,
    /// The images it was trained on; empty when it was not trained.
    pub training: TrainingSet,
    /// The evaluated images (results from training), oldest first: a subset of `training`.
    pub image_performances: Vec<Arc<ImageRec>>,
    /// Tag image counts when it was trained.
    pub tag_counts: HashMap<Uuid, i64>,
    pub exports: Vec<ExportRec>,
}
