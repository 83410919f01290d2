//! What the delete gate compares beyond ids: what the backup holds of each thing about to be
//! deleted against what the service holds of it now. An image's tags, regions and metadata; a
//! tag's name, description and type; an iteration's name, status and training time. Each part
//! is kept as a digest, so that the backup's side of 100,000 images costs a few MB, and each
//! difference names the thing and the parts that differ.
//!
//! Left out on purpose: what the deletion itself changes on a rerun (a tag's image count, an
//! iteration's publication) and what the service regenerates (download links, timestamps of
//! listing).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::model::{Image, ImageRegion, ImageTag, Iteration, Tag};

/// The most differences kept; the rest are counted.
pub const MAX_DIFFERENCES: usize = 1000;

/// A truncated SHA-256 of one part's canonical form: 128 bits, so that no crafted backup can
/// be found that matches another content.
type Part = [u8; 16];

fn part(bytes: &[u8]) -> Part {
    let full = Sha256::digest(bytes);
    full[..16].try_into().expect("16 of 32 bytes")
}

/// An image's tags, regions and metadata, as digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageContent {
    tags: Part,
    regions: Part,
    metadata: Part,
}

impl ImageContent {
    /// From an `images.jsonl` line's or a listing's fields. The order of tags and regions does
    /// not matter, nor does a missing list against an empty one.
    pub fn of(
        tags: Option<&[ImageTag]>,
        regions: Option<&[ImageRegion]>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> ImageContent {
        let mut tag_ids: Vec<Uuid> = tags.unwrap_or_default().iter().map(|t| t.tag_id).collect();
        tag_ids.sort_unstable();
        tag_ids.dedup();
        let tags: Vec<u8> = tag_ids.iter().flat_map(|t| *t.as_bytes()).collect();

        // A box is compared to a billionth of the image: the same value written and read back
        // by two JSON libraries may differ in its last digit, a moved box does not.
        let fixed = |x: f64| ((x * 1e9).round() as i64).to_le_bytes();
        let mut boxes: Vec<Vec<u8>> = regions
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let mut b = r.tag_id.as_bytes().to_vec();
                for x in [r.left, r.top, r.width, r.height] {
                    b.extend(fixed(x));
                }
                b
            })
            .collect();
        boxes.sort_unstable();

        let mut meta = Vec::new();
        for (k, v) in metadata.into_iter().flatten() {
            for s in [k, v] {
                meta.extend((s.len() as u64).to_le_bytes());
                meta.extend(s.as_bytes());
            }
        }
        ImageContent { tags: part(&tags), regions: part(&boxes.concat()), metadata: part(&meta) }
    }

    /// From an image as the service lists it.
    pub fn of_image(image: &Image) -> ImageContent {
        ImageContent::of(image.tags.as_deref(), image.regions.as_deref(), image.metadata.as_ref())
    }

    /// The parts in which `now` differs from `self`, by name.
    pub fn differs(&self, now: &ImageContent) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (name, a, b) in [
            ("tags", self.tags, now.tags),
            ("regions", self.regions, now.regions),
            ("metadata", self.metadata, now.metadata),
        ] {
            if a != b {
                out.push(name);
            }
        }
        out
    }
}

/// A tag's or an iteration's own fields, as one digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordContent(Part);

fn strings(fields: &[Option<&str>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        match f {
            Some(s) => {
                out.push(1);
                out.extend((s.len() as u64).to_le_bytes());
                out.extend(s.as_bytes());
            }
            None => out.push(0),
        }
    }
    out
}

impl RecordContent {
    /// A tag's name, description and type (not its image count, which deleting images changes).
    pub fn of_tag(tag: &Tag) -> RecordContent {
        RecordContent(part(&strings(&[Some(&tag.name), tag.description.as_deref(), tag.tag_type.as_deref()])))
    }

    /// An iteration's name, status and training time (not its publication, which the deletion
    /// itself removes first): a rename or a training finished after the backup differs.
    pub fn of_iteration(it: &Iteration) -> RecordContent {
        let trained = it.trained_at.as_ref().map(|t| t.instant().to_rfc3339());
        RecordContent(part(&strings(&[Some(&it.name), it.status.as_deref(), trained.as_deref()])))
    }
}

/// Something about to be deleted whose content at the service differs from the backup's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// `image`, `tag` or `iteration`.
    pub kind: &'static str,
    /// The project.
    pub project: Uuid,
    /// The item.
    pub id: Uuid,
    /// What differs: `tags`, `regions`, `metadata` for an image; `name, description or type`
    /// for a tag; `name, status or training time` for an iteration.
    pub what: Vec<&'static str>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} of project {}: {} changed since the backup",
            self.kind,
            self.id,
            self.project,
            self.what.join(", ")
        )
    }
}

/// Differences, the first [`MAX_DIFFERENCES`] kept and the rest counted.
#[derive(Debug, Clone, Default)]
pub struct Differences {
    /// The differences kept.
    pub kept: Vec<Difference>,
    /// How many more there were.
    pub more: u64,
}

impl Differences {
    /// Records one.
    pub fn push(&mut self, d: Difference) {
        if self.kept.len() < MAX_DIFFERENCES {
            self.kept.push(d);
        } else {
            self.more += 1;
        }
    }

    /// None found.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// All of them, kept or counted.
    pub fn total(&self) -> u64 {
        self.kept.len() as u64 + self.more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(id: u128) -> ImageTag {
        ImageTag { tag_id: Uuid::from_u128(id), tag_name: None, created: None, extra: Default::default() }
    }

    #[test]
    fn order_and_absence_do_not_count_a_change_does() {
        let a = ImageContent::of(Some(&[tag(1), tag(2)]), None, None);
        let b = ImageContent::of(Some(&[tag(2), tag(1)]), Some(&[]), Some(&BTreeMap::new()));
        assert_eq!(a.differs(&b), Vec::<&str>::new());
        let c = ImageContent::of(Some(&[tag(1)]), None, Some(&BTreeMap::from([("k".into(), "v".into())])));
        assert_eq!(a.differs(&c), vec!["tags", "metadata"]);
    }

    #[test]
    fn an_iteration_differs_by_training_not_by_publication() {
        let it: Iteration = serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(7), "name": "it", "status": "Training", "publishName": "prod"
        }))
        .unwrap();
        let unpublished = Iteration { publish_name: None, ..it.clone() };
        assert_eq!(RecordContent::of_iteration(&it), RecordContent::of_iteration(&unpublished));
        let trained = Iteration { status: Some("Completed".into()), ..it.clone() };
        assert_ne!(RecordContent::of_iteration(&it), RecordContent::of_iteration(&trained));
    }

    #[test]
    fn differences_past_the_cap_are_counted_not_kept() {
        let mut d = Differences::default();
        for i in 0..MAX_DIFFERENCES as u128 + 5 {
            d.push(Difference { kind: "image", project: Uuid::nil(), id: Uuid::from_u128(i), what: vec!["tags"] });
        }
        assert_eq!((d.kept.len(), d.more, d.total()), (MAX_DIFFERENCES, 5, MAX_DIFFERENCES as u64 + 5));
    }
}
