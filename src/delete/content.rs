//! What the delete gate compares beyond ids: what the backup holds of each thing about to be
//! deleted against what the service holds of it now. An image's tags, regions and metadata; a
//! tag's name, description and type; an iteration's name, status and training time. Each
//! difference names the thing and the parts that differ.
//!
//! Memory per image: an [`ImageContent`] is 22 bytes, whatever the image holds: one SHA-256 of
//! all three parts truncated to 128 bits, which alone decides whether the image differs (no
//! crafted backup can be found that matches another content), and 16 bits of each part's own
//! SHA-256, which only name the parts that differ. A changed part whose 16 bits happen to match
//! (one in 65,536) goes unnamed; when no part's bits differ at all, every part is named.
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

/// A truncated SHA-256 of one record's canonical form: 128 bits, so that no crafted backup can
/// be found that matches another content.
type Part = [u8; 16];

fn part(bytes: &[u8]) -> Part {
    let full = Sha256::digest(bytes);
    full[..16].try_into().expect("16 of 32 bytes")
}

/// The names of an image's parts, in the order of [`ImageContent::hints`].
const IMAGE_PARTS: [&str; 3] = ["tags", "regions", "metadata"];

/// An image's tags, regions and metadata, as one digest (and a hint of each part). 22 bytes,
/// without padding, so that a vector of a million costs 22 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageContent {
    /// SHA-256 over the three parts' SHA-256s, truncated to 128 bits: equal exactly when the
    /// content is (short of breaking SHA-256).
    all: Part,
    /// The first 16 bits of each part's SHA-256 (tags, regions, metadata), little-endian.
    hints: [[u8; 2]; 3],
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
        let parts = [Sha256::digest(&tags), Sha256::digest(boxes.concat()), Sha256::digest(&meta)];
        let mut all = Sha256::new();
        for p in &parts {
            all.update(p);
        }
        let all = all.finalize()[..16].try_into().expect("16 of 32 bytes");
        ImageContent { all, hints: parts.map(|p| [p[0], p[1]]) }
    }

    /// From an image as the service lists it.
    pub fn of_image(image: &Image) -> ImageContent {
        ImageContent::of(image.tags.as_deref(), image.regions.as_deref(), image.metadata.as_ref())
    }

    /// Bytes of [`Self::to_bytes`].
    pub const BYTES: usize = 16 + 6;

    /// As bytes, for a temporary file.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0; Self::BYTES];
        out[..16].copy_from_slice(&self.all);
        for (i, hint) in self.hints.iter().enumerate() {
            out[16 + 2 * i..18 + 2 * i].copy_from_slice(hint);
        }
        out
    }

    /// Back from [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8; Self::BYTES]) -> ImageContent {
        let hint = |i: usize| [bytes[16 + 2 * i], bytes[17 + 2 * i]];
        ImageContent { all: bytes[..16].try_into().expect("16 bytes"), hints: [hint(0), hint(1), hint(2)] }
    }

    /// The parts in which `now` differs from `self`, by name; empty when the content is the same.
    pub fn differs(&self, now: &ImageContent) -> Vec<&'static str> {
        if self.all == now.all {
            return Vec::new();
        }
        let named: Vec<&'static str> =
            (0..3).filter(|&i| self.hints[i] != now.hints[i]).map(|i| IMAGE_PARTS[i]).collect();
        // The content differs, yet no part's hint does: name them all rather than none.
        if named.is_empty() {
            IMAGE_PARTS.to_vec()
        } else {
            named
        }
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
    fn an_image_digest_is_22_bytes_and_a_region_moved_differs() {
        assert_eq!(std::mem::size_of::<ImageContent>(), 22);
        let r = |left: f64| -> ImageRegion {
            let tag = Uuid::from_u128(1);
            serde_json::from_value(
                serde_json::json!({"tagId": tag, "left": left, "top": 0.1, "width": 0.2, "height": 0.3}),
            )
            .unwrap()
        };
        let a = ImageContent::of(None, Some(&[r(0.5)]), None);
        assert_eq!(a.differs(&ImageContent::of(None, Some(&[r(0.5 + 1e-12)]), None)), Vec::<&str>::new());
        assert_eq!(a.differs(&ImageContent::of(None, Some(&[r(0.6)]), None)), vec!["regions"]);
    }

    #[test]
    fn a_differing_content_whose_hints_agree_names_every_part() {
        let a = ImageContent::of(Some(&[tag(1)]), None, None);
        let forged = ImageContent { all: [0; 16], ..a };
        assert_eq!(a.differs(&forged), vec!["tags", "regions", "metadata"]);
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
