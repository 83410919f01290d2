//! The create operations a restore needs: CreateProject, CreateTag, CreateImagesFromFiles and
//! UpdateImageMetadata, with the service's limits (64 images per batch, 6 MB per image, 300
//! regions per image, 20 tags per batch, 50 metadata pairs per image) and its answers (200 when
//! every image is created, 207 with a status per image otherwise, `OKDuplicate` for bytes the
//! project already holds). Results come back in another order than the images were sent
//! (see [`images`]), and a fault knob drops them ([`super::Hostile::NullUploadResults`]).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use base64::Engine as _;
use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ops::domains;
use super::query::{parse_id, Query};
use super::render::{self, Links};
use super::routes::{AppState, Reply};
use super::state::{ApiError, ImageRec, Kind, ProjectState, RegionRec};
use crate::api::model::{
    ImageCreateResult, ImageCreateSummary, ImageFileCreateBatch, ImageFileCreateEntry, ImageMetadataUpdateEntry,
    ImageMetadataUpdateSummary, Project, ProjectSettings, Region, Tag, Timestamp,
};

/// Most images one CreateImagesFromFiles or UpdateImageMetadata call takes.
pub(crate) const MAX_UPLOAD_BATCH: usize = 64;
/// Most bytes of one training image (6 MB).
pub(crate) const MAX_IMAGE_BYTES: usize = 6 * 1024 * 1024;
/// Most regions on one image.
pub(crate) const MAX_REGIONS: usize = 300;
/// Most distinct tags one batch names, counting the batch's own, each image's and each
/// region's. [spec] CreateImagesFromFiles: "Limited to 64 images and 20 tags per batch".
/// Whether the service counts per-image and region tags is not said (assumption: it does; the
/// strictest reading, so a client that passes here passes any looser one).
pub(crate) const MAX_BATCH_TAGS: usize = 20;
/// Most tags on one image.
pub(crate) const MAX_IMAGE_TAGS: usize = 100;
/// Most tags in a project (S0).
pub(crate) const MAX_PROJECT_TAGS: usize = 500;
/// Most metadata pairs on one image, and the longest key and value.
pub(crate) const MAX_METADATA: (usize, usize, usize) = (50, 256, 512);
/// The longest side the service takes.
const MAX_SIDE: u32 = 10_240;
/// Project ordinals of created projects, clear of generated and fixture ones.
const ORDINAL_BASE: u64 = 1 << 24;

const PLATFORMS: &[&str] = &["CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK"];

/// CreateProject: `?name=&description=&domainId=&classificationType=&targetExportPlatforms=`.
pub(crate) fn project(state: &AppState, q: &Query) -> Result<Reply, ApiError> {
    let name = q.get("name").map(str::trim).filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| ApiError::bad_request("BadRequestProjectName", "A project name is required"))?;
    let domain = match q.get("domainId") {
        Some(raw) => {
            let id = parse_id(raw)?;
            domains().into_iter().find(|d| d.id == id).ok_or_else(|| {
                ApiError::bad_request("BadRequestProjectUnknownDomain", format!("Unknown domain: {id}"))
            })?
        }
        None => domains().into_iter().next().expect("the General domain"),
    };
    let kind = match domain.domain_type.as_deref() {
        Some("ObjectDetection") => Kind::ObjectDetection,
        _ => Kind::Classification,
    };
    let classification = match (kind, q.get("classificationType")) {
        (Kind::ObjectDetection, _) => None,
        (Kind::Classification, None) => Some("Multiclass".to_owned()),
        (Kind::Classification, Some(c)) if c.eq_ignore_ascii_case("Multiclass") => Some("Multiclass".to_owned()),
        (Kind::Classification, Some(c)) if c.eq_ignore_ascii_case("Multilabel") => Some("Multilabel".to_owned()),
        (_, Some(c)) => {
            return Err(ApiError::bad_request(
                "BadRequestProjectUnknownClassification",
                format!("Unknown classification type: {c:?}"),
            ))
        }
    };
    let mut platforms = Vec::new();
    for raw in q.get("targetExportPlatforms").unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let known = PLATFORMS.iter().find(|p| p.eq_ignore_ascii_case(raw)).ok_or_else(|| {
            ApiError::bad_request("BadRequestProjectUnsupportedExportPlatform", format!("Unknown platform: {raw:?}"))
        })?;
        platforms.push((*known).to_owned());
    }
    let now = Utc::now();
    let wire = Project {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        description: Some(q.get("description").unwrap_or("").to_owned()),
        settings: Some(ProjectSettings {
            domain_id: Some(domain.id),
            classification_type: classification,
            target_export_platforms: Some(platforms),
            use_negative_set: Some(true),
            detection_parameters: None,
            image_processing_settings: None,
            extra: Default::default(),
        }),
        created: Some(Timestamp::from_instant(now)),
        last_modified: Some(Timestamp::from_instant(now)),
        thumbnail_uri: None,
        dr_mode_enabled: Some(false),
        status: Some("Succeeded".to_owned()),
        extra: Default::default(),
    };
    state.with_account_mut(|a| {
        if a.projects.iter().any(|p| p.project.name == wire.name) {
            return Err(ApiError::bad_request(
                "BadRequestProjectNameNotUnique",
                format!("A project named {:?} already exists", wire.name),
            ));
        }
        let ordinal = ORDINAL_BASE + a.projects.len() as u64;
        a.projects.push(ProjectState::new(wire.clone(), kind, false, Vec::new(), ordinal));
        Ok(())
    })?;
    Ok(Reply::json(&wire))
}

/// CreateTag: `?name=&description=&type=`.
pub(crate) fn tag(state: &AppState, project: &str, q: &Query) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    let name = q.get("name").map(str::trim).filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| ApiError::bad_request("BadRequestTagName", "A tag name is required"))?;
    let kind = match q.get("type") {
        None => "Regular",
        Some(t) => ["Regular", "Negative", "GeneralProduct"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(t))
            .ok_or_else(|| ApiError::bad_request("BadRequestTagType", format!("Unknown tag type: {t:?}")))?,
    };
    let tag = Tag {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        description: q.get("description").map(str::to_owned),
        tag_type: Some(kind.to_owned()),
        image_count: Some(0),
        extra: Default::default(),
    };
    state.with_account_mut(|a| {
        let p = a.get_mut(id)?;
        if p.tags.iter().any(|t| t.name.eq_ignore_ascii_case(&tag.name)) {
            return Err(ApiError::bad_request(
                "BadRequestTagNameNotUnique",
                format!("A tag named {:?} already exists", tag.name),
            ));
        }
        if p.tags.len() >= MAX_PROJECT_TAGS {
            return Err(ApiError::bad_request(
                "BadRequestExceedTagPerProjectLimit",
                format!("A project holds at most {MAX_PROJECT_TAGS} tags"),
            ));
        }
        if kind != "Regular" && p.tags.iter().any(|t| t.tag_type.as_deref() == Some(kind)) {
            let code = if kind == "Negative" {
                "BadRequestMultipleNegativeTag"
            } else {
                "BadRequestMultipleGeneralProductTag"
            };
            return Err(ApiError::bad_request(code, format!("A project has at most one {kind} tag")));
        }
        p.tags.push(Tag { image_count: None, ..tag.clone() });
        Ok(())
    })?;
    Ok(Reply::json(&tag))
}

/// CreateImagesFromFiles: a JSON `ImageFileCreateBatch` with base64 contents.
///
/// Each result names its image by `sourceUrl`, the entry's `name` echoed ([rec]
/// azure-sdk-for-net `TrainingTests/CreateImagesFromFiles.json`, v3.4-preview: the entry
/// `"name": "hemlock_1.jpg"` answered `"sourceUrl": "hemlock_1.jpg"`; our `recordings/`
/// copy of CreateImagesFromUrls likewise echoes each `url`). The results come back in reverse
/// order: the spec promises none ([spec] ImageCreateSummary.images is "List of the image
/// creation results."; the operation says only that "detail status for each image will be
/// listed in the response payload"), so a client must match them by name, and a reversed
/// list catches one that matches by position.
pub(crate) fn images(state: &AppState, project: &str, body: &Bytes, links: &Links<'_>) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    let batch: ImageFileCreateBatch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("BadRequestImageBatch", format!("Cannot read the batch: {e}")))?;
    check_batch(&batch)?;
    let mut decoded = Vec::with_capacity(batch.images.len());
    for (n, entry) in batch.images.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(entry.contents.trim()).map_err(|e| {
            ApiError::bad_request("BadRequestImageBatch", format!("Image {n}: contents is not base64: {e}"))
        })?;
        decoded.push(Bytes::from(bytes));
    }
    let upload = Upload { state, batch: &batch, now: Utc::now(), links };
    let (mut results, all_ok) = state.with_account_mut(|a| -> Result<_, ApiError> {
        let p = a.get_mut(id)?;
        check_entries(p, &batch)?;
        let mut results = Vec::with_capacity(batch.images.len());
        let mut all_ok = true;
        for (n, (entry, bytes)) in batch.images.iter().zip(&decoded).enumerate() {
            let result = upload.add(p, n, entry, bytes);
            all_ok &= result.status == "OK";
            results.push(result);
        }
        Ok((results, all_ok))
    })?;
    results.reverse();
    let null = state.with_faults(|f| f.null_upload_results());
    let summary = ImageCreateSummary { is_batch_successful: all_ok, images: (!null).then_some(results) };
    Ok(multi_status(all_ok, &summary))
}

/// The limits of a whole batch: at least one and at most [`MAX_UPLOAD_BATCH`] images, at most
/// [`MAX_BATCH_TAGS`] tags named in all, and metadata within its limits.
fn check_batch(batch: &ImageFileCreateBatch) -> Result<(), ApiError> {
    if batch.images.is_empty() {
        return Err(ApiError::bad_request("BadRequestImageBatch", "The batch holds no images"));
    }
    if batch.images.len() > MAX_UPLOAD_BATCH {
        return Err(ApiError::bad_request(
            "BadRequestExceededBatchSize",
            format!("A batch holds at most {MAX_UPLOAD_BATCH} images; got {}", batch.images.len()),
        ));
    }
    let mut named: std::collections::BTreeSet<Uuid> = batch.tag_ids.iter().flatten().copied().collect();
    for entry in &batch.images {
        named.extend(entry.tag_ids.iter().flatten());
        named.extend(entry.regions.iter().flatten().map(|r| r.tag_id));
    }
    if named.len() > MAX_BATCH_TAGS {
        return Err(ApiError::bad_request(
            "BadRequestExceededBatchSize",
            format!("A batch names at most {MAX_BATCH_TAGS} tags; got {}", named.len()),
        ));
    }
    if let Some(m) = &batch.metadata {
        check_metadata(m)?;
    }
    Ok(())
}

/// What refuses the whole batch in the project: an unknown tag, a region of an unknown tag or
/// outside the image, a region on a classification project.
fn check_entries(p: &ProjectState, batch: &ImageFileCreateBatch) -> Result<(), ApiError> {
    let known = |t: &Uuid| p.tags.iter().any(|x| x.id == *t);
    for (n, entry) in batch.images.iter().enumerate() {
        let mut tags = batch.tag_ids.iter().flatten().chain(entry.tag_ids.iter().flatten());
        if let Some(t) = tags.find(|t| !known(t)) {
            return Err(ApiError::bad_request("BadRequestImageTags", format!("Image {n}: unknown tag {t}")));
        }
        for r in entry.regions.iter().flatten() {
            if !known(&r.tag_id) {
                return Err(ApiError::bad_request(
                    "BadRequestImageRegions",
                    format!("Image {n}: region of unknown tag {}", r.tag_id),
                ));
            }
            let inside = |v: f64| (0.0..=1.0).contains(&v);
            let fits = [r.left, r.top, r.width, r.height].into_iter().all(inside)
                && r.left + r.width <= 1.0 + 1e-9
                && r.top + r.height <= 1.0 + 1e-9;
            if !fits {
                return Err(ApiError::bad_request(
                    "BadRequestImageRegions",
                    format!("Image {n}: a region lies outside the image"),
                ));
            }
        }
        if entry.regions.as_ref().is_some_and(|r| !r.is_empty()) && p.kind == Kind::Classification {
            return Err(ApiError::bad_request(
                "BadRequestImageRegions",
                format!("Image {n}: regions on a classification project"),
            ));
        }
    }
    Ok(())
}

/// One CreateImagesFromFiles call, adding its images one at a time.
struct Upload<'a> {
    state: &'a AppState,
    batch: &'a ImageFileCreateBatch,
    now: chrono::DateTime<Utc>,
    links: &'a Links<'a>,
}

impl Upload<'_> {
    /// Adds image `n` of the batch, or says why not (a per-image status; the batch goes on).
    fn add(&self, p: &mut ProjectState, n: usize, entry: &ImageFileCreateEntry, bytes: &Bytes) -> ImageCreateResult {
        let mut tags: Vec<Uuid> = Vec::new();
        for t in self.batch.tag_ids.iter().flatten().chain(entry.tag_ids.iter().flatten()) {
            if !tags.contains(t) {
                tags.push(*t);
            }
        }
        let regions = entry.regions.clone().unwrap_or_default();
        let result =
            |status: &str, image| ImageCreateResult { source_url: entry.name.clone(), status: status.into(), image };
        let (width, height) = match image_status(p, &tags, &regions, bytes) {
            Ok(dims) => dims,
            Err(code) => return result(code, None),
        };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(existing) = p.digests.get(&digest).and_then(|d| p.find_image(*d)).cloned() {
            return result("OKDuplicate", Some(render::image(p, &existing, self.links)));
        }
        let image = ImageRec {
            id: Uuid::new_v4(),
            created: self.now + chrono::Duration::microseconds(n as i64),
            width,
            height,
            tags,
            regions: regions
                .iter()
                .map(|r| RegionRec {
                    id: Uuid::new_v4(),
                    tag: r.tag_id,
                    left: r.left,
                    top: r.top,
                    width: r.width,
                    height: r.height,
                })
                .collect(),
            metadata: self.batch.metadata.clone().filter(|m| !m.is_empty()).map(Box::new),
            content: self.state.store_upload(bytes.clone()),
        };
        let image = p.insert(image);
        p.digests.insert(digest, image.id);
        result("OK", Some(render::image(p, &image, self.links)))
    }
}

/// The per-image status codes of an image the batch may hold but the service does not take, or
/// its dimensions.
fn image_status(
    p: &ProjectState,
    tags: &[Uuid],
    regions: &[Region],
    bytes: &Bytes,
) -> Result<(u32, u32), &'static str> {
    let negative = tags.iter().any(|t| p.tags.iter().any(|x| x.id == *t && x.tag_type.as_deref() == Some("Negative")));
    if bytes.len() > MAX_IMAGE_BYTES {
        Err("ErrorImageSize")
    } else if regions.len() > MAX_REGIONS {
        Err("ErrorRegionLimitExceed")
    } else if tags.len() > MAX_IMAGE_TAGS {
        Err("ErrorTagLimitExceed")
    } else if negative && (tags.len() > 1 || !regions.is_empty()) {
        Err("ErrorNegativeAndRegularTagOnSameImage")
    } else {
        match dimensions(bytes) {
            None => Err("ErrorImageFormat"),
            Some((w, h)) if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE => Err("ErrorImageSize"),
            Some(dims) => Ok(dims),
        }
    }
}

/// UpdateImageMetadata: `?imageIds=` (at most 64) and a JSON object of string values, merged
/// into each image's metadata.
pub(crate) fn metadata(state: &AppState, project: &str, q: &Query, body: &Bytes) -> Result<Reply, ApiError> {
    let id = parse_id(project)?;
    let ids = q.ids("imageIds", MAX_UPLOAD_BATCH, "BadRequestExceededBatchSize")?;
    if ids.is_empty() {
        return Err(ApiError::bad_request("BadRequestRequiredParamIsNull", "imageIds is required"));
    }
    let update: BTreeMap<String, String> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("BadRequestImageMetadataValue", format!("Cannot read the metadata: {e}")))?;
    check_metadata(&update)?;
    let entries = state.with_account_mut(|a| -> Result<_, ApiError> {
        let p = a.get_mut(id)?;
        let mut entries = Vec::with_capacity(ids.len());
        for image_id in ids {
            let Some(found) = p.by_ids(&[image_id], None).into_iter().next() else {
                entries.push(ImageMetadataUpdateEntry {
                    image_id,
                    status: "ErrorImageNotFound".into(),
                    metadata: None,
                });
                continue;
            };
            let mut merged = found.metadata.as_deref().cloned().unwrap_or_default();
            merged.extend(update.iter().map(|(k, v)| (k.clone(), v.clone())));
            if merged.len() > MAX_METADATA.0 {
                entries.push(ImageMetadataUpdateEntry { image_id, status: "ErrorLimitExceed".into(), metadata: None });
                continue;
            }
            let mut record = (*found).clone();
            record.metadata = (!merged.is_empty()).then(|| Box::new(merged.clone()));
            p.replace(record);
            entries.push(ImageMetadataUpdateEntry { image_id, status: "OK".into(), metadata: Some(merged) });
        }
        Ok(entries)
    })?;
    let all_ok = entries.iter().all(|e| e.status == "OK");
    Ok(multi_status(all_ok, &ImageMetadataUpdateSummary { is_batch_successful: all_ok, images: entries }))
}

fn multi_status<T: serde::Serialize>(all_ok: bool, body: &T) -> Reply {
    let bytes = serde_json::to_vec(body).expect("wire types serialise");
    if all_ok {
        Reply::Json(bytes)
    } else {
        Reply::JsonStatus(StatusCode::MULTI_STATUS, bytes)
    }
}

fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let (pairs, key_len, value_len) = MAX_METADATA;
    if m.len() > pairs {
        return Err(ApiError::bad_request("BadRequestImageMetadataKey", format!("At most {pairs} metadata pairs")));
    }
    if let Some(k) = m.keys().find(|k| k.is_empty() || k.chars().count() > key_len) {
        return Err(ApiError::bad_request("BadRequestImageMetadataKey", format!("Bad metadata key {k:?}")));
    }
    if let Some((k, _)) = m.iter().find(|(_, v)| v.chars().count() > value_len) {
        return Err(ApiError::bad_request(
            "BadRequestImageMetadataValue",
            format!("The value of {k:?} is longer than {value_len} characters"),
        ));
    }
    Ok(())
}

/// Width and height from the header of a JPEG, PNG, GIF or BMP; `None` for anything else.
pub(crate) fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |at: usize| Some(u32::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?)));
    let le16 = |at: usize| Some(u32::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?)));
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let le32 = |at: usize| Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        return Some((be32(16)?, be32(20)?));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(b"BM") {
        let (w, h) = (le32(18)?, le32(22)?);
        return Some((w.unsigned_abs(), h.unsigned_abs()));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut at = 2;
        while at + 4 <= bytes.len() {
            if bytes[at] != 0xFF {
                return None;
            }
            let marker = bytes[at + 1];
            if marker == 0xFF {
                at += 1;
                continue;
            }
            if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
                at += 2;
                continue;
            }
            let len = be16(at + 2)? as usize;
            // Start-of-frame markers, except DHT (C4), JPG (C8) and DAC (CC).
            if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                return Some((be16(at + 7)?, be16(at + 5)?));
            }
            at += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_of_the_fixture_images_match_their_records() {
        let account = super::super::fixture::account().unwrap();
        let mut seen = 0;
        for p in &account.projects {
            for image in &p.images {
                let super::super::state::Content::Fixture(i) = image.content else { continue };
                let (name, bytes) = super::super::fixture::FILES[usize::from(i)];
                assert_eq!(dimensions(bytes), Some((image.width, image.height)), "{name}");
                seen += 1;
            }
        }
        assert!(seen >= 10);
        assert_eq!(dimensions(b"hello"), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF]), None);
    }
}
