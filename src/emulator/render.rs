//! Account records -> the wire types of [`crate::api::model`], with fresh signed links (or the
//! relative paths of VNET mode).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::blob::Signer;
use super::state::{ExportRec, ImageRec, IterationState, Kind, PredictionRec, ProjectState};
use crate::api::model::{
    BoundingBox, Export, Image, ImagePerformance, ImageRegion, ImageTag, Prediction, Project, StoredImagePrediction,
    Tag, Timestamp,
};

/// How to write links in one answer.
pub(crate) struct Links<'a> {
    /// `http://host:port`, where the blobs are served.
    pub base: String,
    pub signer: &'a Signer,
    pub expiry: DateTime<Utc>,
}

impl Links<'_> {
    /// An absolute signed link to `container/blob`.
    pub fn signed(&self, path: &str) -> String {
        format!("{}/blob/{path}?{}", self.base, self.signer.query(path, self.expiry))
    }

    /// A relative path in VNET mode, a signed link otherwise.
    fn maybe_relative(&self, path: &str, relative: bool) -> String {
        if relative {
            format!("/{path}")
        } else {
            self.signed(path)
        }
    }

    /// A model export's link: it expires at the next UTC midnight [rec GetExports.v1.2.json:
    /// answered `Date: Thu, 22 Feb 2018 15:24:32 GMT` with `se=2018-02-23T00:00:00Z`; API-NOTES
    /// §5], or when the emulator's SAS TTL ends, if sooner (a test knob: by default the TTL is
    /// 24 h, so midnight always comes first).
    fn export_link(&self, path: &str, relative: bool, now: DateTime<Utc>) -> String {
        if relative {
            return format!("/{path}");
        }
        let expiry = next_utc_midnight(now).min(self.expiry);
        format!("{}/blob/{path}?{}", self.base, self.signer.query(path, expiry))
    }
}

/// The first UTC midnight after `now`.
pub(crate) fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().expect("a date before the end of time");
    tomorrow.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// The blob path of an image's original (`i`) or thumbnail (`t`).
pub(crate) fn image_path(project: Uuid, prefix: char, id: Uuid) -> String {
    format!("i-{}/{prefix}-{}", project.simple(), id.simple())
}

/// The blob path of a model export.
pub(crate) fn export_path(project: Uuid, iteration: Uuid, platform: &str) -> String {
    format!("m-{}/{}-{}.zip", project.simple(), iteration.simple(), platform.to_ascii_lowercase())
}

fn tag_name(p: &ProjectState, id: Uuid) -> Option<String> {
    p.tags.iter().find(|t| t.id == id).map(|t| t.name.clone())
}

/// When a tag was put on an image: a little after the image, like the service's records.
fn tagged_at(image: &ImageRec, k: usize) -> Timestamp {
    Timestamp::from_instant_no_offset(image.created + Duration::microseconds(12_345 + 1_001 * k as i64))
}

fn image_tags(p: &ProjectState, image: &ImageRec) -> Option<Vec<ImageTag>> {
    let ids = image.tag_ids();
    (!ids.is_empty()).then(|| {
        ids.into_iter()
            .enumerate()
            .map(|(k, id)| ImageTag {
                tag_id: id,
                tag_name: tag_name(p, id),
                created: Some(tagged_at(image, k)),
                extra: Default::default(),
            })
            .collect()
    })
}

fn image_regions(p: &ProjectState, image: &ImageRec) -> Option<Vec<ImageRegion>> {
    (p.kind == Kind::ObjectDetection && !image.regions.is_empty()).then(|| {
        image
            .regions
            .iter()
            .enumerate()
            .map(|(k, r)| ImageRegion {
                region_id: Some(r.id),
                tag_name: tag_name(p, r.tag),
                created: Some(tagged_at(image, k)),
                tag_id: r.tag,
                left: r.left,
                top: r.top,
                width: r.width,
                height: r.height,
                extra: Default::default(),
            })
            .collect()
    })
}

/// A training image.
pub(crate) fn image(p: &ProjectState, image: &ImageRec, links: &Links<'_>) -> Image {
    let original = image_path(p.id(), 'i', image.id);
    let signed = links.signed(&original);
    Image {
        id: image.id,
        created: Some(Timestamp::from_instant_no_offset(image.created)),
        width: Some(i64::from(image.width)),
        height: Some(i64::from(image.height)),
        resized_image_uri: Some(signed.clone()),
        thumbnail_uri: Some(links.signed(&image_path(p.id(), 't', image.id))),
        // VNET mode mixes forms, as recorded: only the original is relative.
        original_image_uri: Some(if p.vnet { format!("/{original}") } else { signed }),
        tags: image_tags(p, image),
        regions: image_regions(p, image),
        metadata: image.metadata.as_deref().cloned(),
        extra: Default::default(),
    }
}

/// An image's result in an iteration's evaluation.
pub(crate) fn image_performance(p: &ProjectState, image: &ImageRec, links: &Links<'_>) -> ImagePerformance {
    let predictions = match p.kind {
        Kind::Classification => {
            image.tags.iter().enumerate().map(|(k, t)| prediction(p, *t, 0.93 - 0.11 * k as f64, None)).collect()
        }
        Kind::ObjectDetection => image
            .regions
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let bbox = BoundingBox { left: r.left, top: r.top, width: r.width, height: r.height };
                prediction(p, r.tag, 0.88 - 0.07 * k as f64, Some(bbox))
            })
            .collect(),
    };
    ImagePerformance {
        predictions: Some(predictions),
        id: image.id,
        created: Some(Timestamp::from_instant_no_offset(image.created)),
        width: Some(i64::from(image.width)),
        height: Some(i64::from(image.height)),
        image_uri: Some(links.maybe_relative(&image_path(p.id(), 'i', image.id), p.vnet)),
        thumbnail_uri: Some(links.signed(&image_path(p.id(), 't', image.id))),
        tags: Some(image_tags(p, image).unwrap_or_default()),
        regions: Some(image_regions(p, image).unwrap_or_default()),
        extra: Default::default(),
    }
}

fn prediction(p: &ProjectState, tag: Uuid, probability: f64, bounding_box: Option<BoundingBox>) -> Prediction {
    Prediction {
        probability: Some(probability),
        tag_id: Some(tag),
        tag_name: tag_name(p, tag),
        bounding_box,
        tag_type: Some("Regular".to_owned()),
        extra: Default::default(),
    }
}

/// A tag with an image count.
pub(crate) fn tag(tag: &Tag, count: i64) -> Tag {
    Tag { image_count: Some(count), ..tag.clone() }
}

/// A project, its thumbnail being its newest image's.
pub(crate) fn project(p: &ProjectState, links: &Links<'_>) -> Project {
    let thumbnail = p.images.last().map(|i| links.maybe_relative(&image_path(p.id(), 't', i.id), p.vnet));
    Project { thumbnail_uri: thumbnail, ..p.project.clone() }
}

/// A model export, with a link when it is done.
pub(crate) fn export(p: &ProjectState, it: &IterationState, e: &ExportRec, links: &Links<'_>) -> Export {
    let path = export_path(p.id(), it.iteration.id, &e.platform);
    let uri = e.bytes.as_ref().map(|_| links.export_link(&path, p.vnet, Utc::now()));
    Export {
        platform: Some(e.platform.clone()),
        status: Some(e.status.clone()),
        download_uri: uri,
        flavor: e.flavor.clone(),
        newer_version_available: Some(false),
        extra: Default::default(),
    }
}

/// A stored prediction. Its links expire with the SAS TTL, like image links (assumption: no
/// QueryPredictions answer is recorded; the spec says only that these URIs are blob links, or
/// relative paths under VNET).
pub(crate) fn stored_prediction(p: &ProjectState, r: &PredictionRec, links: &Links<'_>) -> StoredImagePrediction {
    let original = image_path(p.id(), 'i', r.id);
    let predictions = r
        .predictions
        .iter()
        .map(|x| Prediction {
            tag_name: x.tag_name.clone().or_else(|| x.tag_id.and_then(|t| tag_name(p, t))),
            tag_type: x.tag_type.clone().or_else(|| Some("Regular".to_owned())),
            ..x.clone()
        })
        .collect();
    StoredImagePrediction {
        resized_image_uri: Some(links.signed(&original)),
        thumbnail_uri: Some(links.signed(&image_path(p.id(), 't', r.id))),
        original_image_uri: Some(links.maybe_relative(&original, p.vnet)),
        domain: p.project.settings.as_ref().and_then(|s| s.domain_id),
        id: r.id,
        project: Some(p.id()),
        iteration: Some(r.iteration),
        created: Some(Timestamp::from_instant(r.created)),
        predictions: Some(predictions),
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_links_end_at_the_next_utc_midnight() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        // The recorded answer: Date 2018-02-22 15:24:32 GMT, se=2018-02-23T00:00:00Z.
        assert_eq!(next_utc_midnight(at("2018-02-22T15:24:32Z")), at("2018-02-23T00:00:00Z"));
        assert_eq!(next_utc_midnight(at("2018-02-28T23:59:59Z")), at("2018-03-01T00:00:00Z"));
        assert_eq!(next_utc_midnight(at("2018-02-23T00:00:00Z")), at("2018-02-24T00:00:00Z"));
    }
}
