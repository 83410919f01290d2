//! Wire types of the Custom Vision Training API v3.3, shared by the client and the emulator.
//!
//! Tolerant of the real service (see `shared/spec/API-NOTES.md` §3): every field the service has
//! been seen to send as null or to omit is an `Option`, unknown fields are kept in `extra` so a
//! backup loses nothing the service said, timestamps keep their original text, and enums the spec
//! marks `modelAsString` are plain strings.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

mod upload;
pub use upload::*;

/// Fields the service sent that this version of the types does not name.
pub type Extra = Map<String, Value>;

/// A timestamp exactly as the service wrote it, with its instant parsed leniently.
///
/// The real service writes `2020-11-06T16:32:06.133Z` for projects and
/// `2020-06-06T16:44:43.3417089` (no offset, seven fractional digits) for images; a missing offset
/// is read as UTC. Serialising writes the original text back, so an archive keeps it verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    raw: String,
    instant: DateTime<Utc>,
}

impl Timestamp {
    /// Parses a timestamp with or without an offset and with 0 to 9 fractional digits.
    pub fn parse(raw: &str) -> Option<Timestamp> {
        let instant = DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc()))?;
        Some(Timestamp { raw: raw.to_owned(), instant })
    }

    /// The service's own formatting for an instant: `Z` and milliseconds (projects, iterations).
    pub fn from_instant(instant: DateTime<Utc>) -> Timestamp {
        let raw = instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        Timestamp { raw, instant }
    }

    /// The image flavour of the service's formatting: no offset, seven fractional digits.
    pub fn from_instant_no_offset(instant: DateTime<Utc>) -> Timestamp {
        let raw = format!("{}{:07}", instant.format("%Y-%m-%dT%H:%M:%S."), instant.timestamp_subsec_nanos() / 100);
        Timestamp { raw, instant }
    }

    /// The text as the service sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The instant, in UTC.
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Timestamp::parse(&raw).ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {raw:?}")))
    }
}

/// Parses a count that the service sends as a bare number (`10`) or as a JSON string (`"10"`).
pub fn parse_count(body: &[u8]) -> Result<u64, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(u64),
        Text(String),
    }
    match serde_json::from_slice::<Count>(body)? {
        Count::Number(n) => Ok(n),
        Count::Text(t) => t.trim().parse::<u64>().map_err(serde::de::Error::custom),
    }
}

/// A project (`Project`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ProjectSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_mode_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A project's settings (`ProjectSettings`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_export_platforms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_negative_set: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_parameters: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_processing_settings: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tag (`Tag`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub tag_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_count: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A trained or untrained iteration (`Iteration`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Iteration {
    pub id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exportable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exportable_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_budget_in_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_time_in_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_publish_resource_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Iteration {
    /// Whether the iteration was trained, and so has a performance to ask for.
    pub fn is_trained(&self) -> bool {
        self.status.as_deref() == Some("Completed") || self.trained_at.is_some()
    }

    /// Whether the iteration is published to a prediction resource.
    pub fn is_published(&self) -> bool {
        self.publish_name.as_deref().is_some_and(|n| !n.is_empty())
    }
}

/// Precision and recall of one tag (`TagPerformance`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagPerformance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_std_deviation: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_std_deviation: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_precision: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An iteration's overall and per-tag performance (`IterationPerformance`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IterationPerformance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_tag_performance: Option<Vec<TagPerformance>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_std_deviation: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_std_deviation: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_precision: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tag applied to an image (`ImageTag`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageTag {
    pub tag_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An object-detection region on an image (`ImageRegion`); coordinates are fractions 0..1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    pub tag_id: Uuid,
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A training image with its tags, regions and metadata (`Image`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_image_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_image_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<ImageTag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<ImageRegion>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Image {
    /// Whether the image carries at least one tag or region.
    pub fn is_tagged(&self) -> bool {
        self.tags.as_ref().is_some_and(|t| !t.is_empty()) || self.regions.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// The image without its download URIs, which carry SAS signatures and expire.
    pub fn without_uris(&self) -> Image {
        Image { resized_image_uri: None, thumbnail_uri: None, original_image_uri: None, ..self.clone() }
    }
}

/// A bounding box of a prediction (`BoundingBox`), in fractions of the image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BoundingBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// One predicted tag (`Prediction`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounding_box: Option<BoundingBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_type: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An image's result in an iteration's evaluation (`ImagePerformance`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagePerformance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<Prediction>>,
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<ImageTag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<ImageRegion>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ImagePerformance {
    /// The record without its download URIs.
    pub fn without_uris(&self) -> ImagePerformance {
        ImagePerformance { image_uri: None, thumbnail_uri: None, ..self.clone() }
    }
}

/// An exported model package (`Export`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_version_available: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Export {
    /// Whether the package is ready to download.
    pub fn is_done(&self) -> bool {
        self.status.as_deref() == Some("Done") && self.download_uri.is_some()
    }
}

/// What ExportProject answers (`ProjectExport`): counts and an opaque import token, in practice a
/// read-only SAS URL that anyone holding it can import from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectExport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_count: Option<i64>,
    #[serde(default, rename = "estimatedImportTimeInMS", skip_serializing_if = "Option::is_none")]
    pub estimated_import_time_in_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A stored prediction: an image sent to the prediction endpoint, and what it predicted
/// (`StoredImagePrediction`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredImagePrediction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_image_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_image_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Uuid>,
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<Prediction>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl StoredImagePrediction {
    /// The record without its download URIs.
    pub fn without_uris(&self) -> StoredImagePrediction {
        StoredImagePrediction { resized_image_uri: None, thumbnail_uri: None, original_image_uri: None, ..self.clone() }
    }
}

/// A tag filter of a prediction query (`PredictionQueryTag`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PredictionQueryTag {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_threshold: Option<f64>,
}

/// The query and continuation state of QueryPredictions (`PredictionQueryToken`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PredictionQueryToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<PredictionQueryTag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
}

/// One page of stored predictions (`PredictionQueryResult`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PredictionQueryResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<PredictionQueryToken>,
    #[serde(default)]
    pub results: Vec<StoredImagePrediction>,
}

/// The error body of every operation (`CustomVisionError`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomVisionError {
    pub code: String,
    pub message: String,
}

/// A training domain (`Domain`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exportable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_offsets_keep_their_text() {
        for raw in [
            "2020-11-06T16:32:06.133Z",
            "2020-06-06T16:44:43.3417089",
            "2020-06-06T16:44:43",
            "2020-06-06T16:44:43+02:00",
        ] {
            let t = Timestamp::parse(raw).unwrap_or_else(|| panic!("{raw}"));
            assert_eq!(t.as_str(), raw);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{raw}\""));
        }
        let a = Timestamp::parse("2020-06-06T16:44:43.3417089").unwrap();
        let b = Timestamp::parse("2020-06-06T16:44:43.3417089Z").unwrap();
        assert_eq!(a.instant(), b.instant());
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn image_timestamps_format_like_the_service() {
        let t = Timestamp::parse("2020-06-06T16:44:43.3417089Z").unwrap();
        assert_eq!(Timestamp::from_instant_no_offset(t.instant()).as_str(), "2020-06-06T16:44:43.3417089");
        assert_eq!(Timestamp::from_instant(t.instant()).as_str(), "2020-06-06T16:44:43.341Z");
    }

    #[test]
    fn counts_come_as_numbers_or_strings() {
        assert_eq!(parse_count(b"10").unwrap(), 10);
        assert_eq!(parse_count(b"\"1\"").unwrap(), 1);
        assert!(parse_count(b"\"x\"").is_err());
        assert!(parse_count(b"{}").is_err());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip_and_nulls_are_accepted() {
        let raw = r#"{"id":"5700bb6b-5a3e-48e7-b16b-1b98b968693e","created":"2020-06-06T16:44:43.3417089",
            "width":900,"height":1600,"tags":null,"metadata":null,"futureField":{"a":1}}"#;
        let image: Image = serde_json::from_str(raw).unwrap();
        assert!(!image.is_tagged());
        assert_eq!(image.extra["futureField"]["a"], 1);
        let back = serde_json::to_value(&image).unwrap();
        assert_eq!(back["futureField"]["a"], 1);
        assert_eq!(back["created"], "2020-06-06T16:44:43.3417089");
    }
}
