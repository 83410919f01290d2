//! Wire types of the calls that create images and update their metadata (restore, and the
//! emulator's side of them): batches, their per-image results and summaries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Image;

/// A region to create with an image (`Region`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub tag_id: Uuid,
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// One image of a CreateImagesFromFiles batch (`ImageFileCreateEntry`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageFileCreateEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Base64 of the image bytes.
    pub contents: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<Region>>,
}

/// A batch of images to create (`ImageFileCreateBatch`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageFileCreateBatch {
    pub images: Vec<ImageFileCreateEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The result of one image in a create batch (`ImageCreateResult`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageCreateResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

/// The result of a create batch (`ImageCreateSummary`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageCreateSummary {
    pub is_batch_successful: bool,
    /// One result per image, in no promised order, matched by `sourceUrl` (the entry's name).
    /// `None` when the answer has no per-image results (`null` or absent): the spec lists
    /// `images` among no `required` properties.
    #[serde(default)]
    pub images: Option<Vec<ImageCreateResult>>,
}

/// The result of one image in a metadata update (`ImageMetadataUpdateEntry`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageMetadataUpdateEntry {
    pub image_id: Uuid,
    /// `OK`, `ErrorImageNotFound`, `ErrorLimitExceed` or `ErrorUnknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The result of UpdateImageMetadata (`ImageMetadataUpdateSummary`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageMetadataUpdateSummary {
    pub is_batch_successful: bool,
    #[serde(default)]
    pub images: Vec<ImageMetadataUpdateEntry>,
}
