//! Generated accounts and on-the-fly image bytes.
//!
//! Everything derives from (seed, project, index) through a SplitMix64 hash, so the same spec
//! always gives the same ids, timestamps, tags and bytes, and nothing large is kept: an image's
//! bytes are a tiny real base image (PNG or JPEG, from `fixtures/images/`) plus a filler chunk
//! (PNG ancillary chunk `fiLl`, or JPEG COM segments) of seeded pseudo-random bytes (the image's
//! own hash, then pieces of one 1 MiB pseudo-random pool chosen by it), made when asked for.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::state::{
    Account, Content, ContentParams, ExportRec, ImageRec, IterationState, Kind, PredictionRec, ProjectState, RegionRec,
    TrainingSet,
};
use super::GenerateSpec;
use crate::api::model::{
    Iteration, IterationPerformance, Prediction, Project, ProjectSettings, Tag, TagPerformance, Timestamp,
};

/// Most images per generated project.
pub(crate) const MAX_IMAGES: usize = 1_000_000;
/// Largest generated image.
pub(crate) const MAX_IMAGE_BYTES: usize = 64 * 1024 * 1024;
/// Size of generated thumbnails.
const THUMBNAIL_BYTES: usize = 2048;
/// Width and height of both base images.
pub(crate) const BASE_SIZE: (u32, u32) = (32, 24);

const BASE_PNG: &[u8] = include_bytes!("../../fixtures/images/base.png");
const BASE_JPEG: &[u8] = include_bytes!("../../fixtures/images/base.jpg");

/// The General (classification) domain.
pub(crate) const DOMAIN_CLASSIFICATION: Uuid = Uuid::from_u128(0xee85a74c_405e_4adc_bb47_ffa8ca0c9f31);
/// The General (object detection) domain.
pub(crate) const DOMAIN_DETECTION: Uuid = Uuid::from_u128(0xda2e3a8a_40a5_4171_82f4_58522f70fbc1);

const TAG_NAMES: [&str; 6] = ["apple", "banana", "cherry", "dátil", "エルダーベリー", "fig"];
const PREDICTIONS_PER_PROJECT: u64 = 5;

// Salts keep the hash streams of different things apart.
const SALT_PROJECT: u64 = 1;
const SALT_TAG: u64 = 2;
const SALT_IMAGE: u64 = 3;
const SALT_TIME: u64 = 4;
const SALT_TAGGING: u64 = 5;
const SALT_REGION: u64 = 6;
const SALT_ITERATION: u64 = 7;
const SALT_PREDICTION: u64 = 8;
const SALT_BYTES: u64 = 9;
const SALT_THUMBNAIL: u64 = 10;

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of (seed, a, b, salt).
fn hash(seed: u64, a: u64, b: u64, salt: u64) -> u64 {
    mix(seed ^ mix(a.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ mix(b ^ mix(salt))))
}

/// A random-looking version-4 UUID derived from (seed, a, b, salt).
fn uuid(seed: u64, a: u64, b: u64, salt: u64) -> Uuid {
    let hi = hash(seed, a, b, salt);
    let lo = hash(seed, a, b, salt ^ 0xFFFF_0000);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_le_bytes());
    bytes[8..].copy_from_slice(&lo.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Fills `buf` with SplitMix64 output eight bytes at a time.
fn fill(buf: &mut [u8], seed: u64) {
    let mut state = seed;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&mix(state).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let last = mix(state.wrapping_add(0x9E37_79B9_7F4A_7C15)).to_le_bytes();
    rest.copy_from_slice(&last[..rest.len()]);
}

/// Pseudo-random bytes that image fillers are cut from, made once per process.
fn pool() -> &'static [u8] {
    static POOL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = vec![0u8; POOL_BYTES];
        fill(&mut pool, mix(SALT_BYTES));
        pool
    })
}

/// Size of [`pool`]: it stays in a core's cache while fillers are copied from it.
const POOL_BYTES: usize = 1 << 20;
/// Fillers are pieces of the pool of this size, each from its own offset.
const WINDOW: usize = 16 << 10;

/// Appends `len` (at least 16) filler bytes of `seed`: 16 bytes of its own hash, which no other
/// seed's filler starts with, then windows of the pool at offsets drawn from it. Copying them is
/// several times cheaper than generating every byte, and the throughput benchmark serves a
/// gigabyte of fillers.
fn push_filler(out: &mut Vec<u8>, len: usize, seed: u64) {
    let end = out.len() + len;
    out.extend_from_slice(&mix(seed).to_le_bytes());
    out.extend_from_slice(&mix(seed ^ SALT_BYTES).to_le_bytes());
    out.truncate(end);
    let pool = pool();
    let mut state = seed;
    while out.len() < end {
        state = mix(state);
        let at = (state % (POOL_BYTES - WINDOW) as u64) as usize;
        let n = WINDOW.min(end - out.len());
        out.extend_from_slice(&pool[at..at + n]);
    }
}

/// The bytes of a generated image: a real PNG or JPEG of about `size` bytes, unique per
/// (seed, key), decodable (the filler is in a segment decoders skip).
pub(crate) fn image(seed: u64, key: u64, size: usize, jpeg: bool, thumbnail: bool) -> Bytes {
    let size = if thumbnail { THUMBNAIL_BYTES } else { size };
    let filler_seed = hash(seed, key, u64::from(jpeg), if thumbnail { SALT_THUMBNAIL } else { SALT_BYTES });
    if jpeg {
        // SOI, then COM segments (at most 65,533 data bytes each), then the rest of the base.
        let len = size.saturating_sub(BASE_JPEG.len()).max(16);
        let mut filler = Vec::with_capacity(len);
        push_filler(&mut filler, len, filler_seed);
        let mut out = Vec::with_capacity(BASE_JPEG.len() + filler.len() + 4 * (filler.len() / 65_533 + 1));
        out.extend_from_slice(&BASE_JPEG[..2]);
        for part in filler.chunks(65_533) {
            out.extend_from_slice(&[0xFF, 0xFE]);
            out.extend_from_slice(&((part.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&BASE_JPEG[2..]);
        Bytes::from(out)
    } else {
        // Everything up to IEND (the last 12 bytes), a private ancillary chunk, then IEND.
        let (head, iend) = BASE_PNG.split_at(BASE_PNG.len() - 12);
        let len = size.saturating_sub(BASE_PNG.len() + 12).max(16);
        let mut out = Vec::with_capacity(BASE_PNG.len() + 12 + len);
        out.extend_from_slice(head);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(b"fiLl");
        push_filler(&mut out, len, filler_seed);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(iend);
        Bytes::from(out)
    }
}

/// A small, deterministic zip standing in for an exported model package.
pub(crate) fn export_package(project: &str, iteration: &str, platform: &str, tags: &[Tag]) -> Bytes {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let labels: String = tags.iter().map(|t| format!("{}\n", t.name)).collect();
    let manifest = format!(
        "{{\"project\":{project:?},\"iteration\":{iteration:?},\"platform\":{platform:?},\"emulated\":true}}\n"
    );
    let written = (|| -> zip::result::ZipResult<Vec<u8>> {
        zip.start_file("labels.txt", options)?;
        zip.write_all(labels.as_bytes())?;
        zip.start_file("manifest.json", options)?;
        zip.write_all(manifest.as_bytes())?;
        Ok(zip.finish()?.into_inner())
    })();
    Bytes::from(written.expect("writing a zip to memory cannot fail"))
}

/// A project record as the service writes it.
pub(crate) fn wire_project(
    id: Uuid,
    name: &str,
    description: &str,
    kind: Kind,
    classification: Option<&str>,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
) -> Project {
    let domain = if kind == Kind::ObjectDetection { DOMAIN_DETECTION } else { DOMAIN_CLASSIFICATION };
    let augmentation = json!({"augmentationMethods": {"rotation": true, "scaling": true, "translation": true, "horizontal flip": true, "equalize": true, "solarize": true, "padtosquare": true}});
    Project {
        id,
        name: name.to_owned(),
        description: Some(description.to_owned()),
        settings: Some(ProjectSettings {
            domain_id: Some(domain),
            classification_type: classification.map(str::to_owned),
            target_export_platforms: Some(Vec::new()),
            use_negative_set: Some(true),
            detection_parameters: None,
            image_processing_settings: Some(augmentation),
            extra: Default::default(),
        }),
        created: Some(Timestamp::from_instant(created)),
        last_modified: Some(Timestamp::from_instant(modified)),
        thumbnail_uri: None,
        dr_mode_enabled: Some(false),
        status: Some("Succeeded".to_owned()),
        extra: Default::default(),
    }
}

/// The parts of an iteration that differ between iterations.
pub(crate) struct IterationSpec<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub trained: Option<(DateTime<Utc>, i64)>,
    pub exportable_to: Vec<String>,
    pub publish: Option<(String, String)>,
}

/// An iteration record as the service writes it.
pub(crate) fn wire_iteration(project: &Project, kind: Kind, spec: IterationSpec<'_>) -> Iteration {
    let settings = project.settings.clone().unwrap_or_default();
    let (publish_name, resource) = spec.publish.unzip();
    Iteration {
        id: spec.id,
        name: spec.name.to_owned(),
        status: Some(if spec.trained.is_some() { "Completed" } else { "New" }.to_owned()),
        created: Some(Timestamp::from_instant(spec.created)),
        last_modified: Some(Timestamp::from_instant(spec.modified)),
        trained_at: spec.trained.map(|(t, _)| Timestamp::from_instant(t)),
        project_id: Some(project.id),
        exportable: Some(!spec.exportable_to.is_empty()),
        exportable_to: Some(spec.exportable_to),
        domain_id: if spec.trained.is_some() { settings.domain_id } else { None },
        classification_type: if kind == Kind::Classification { settings.classification_type } else { None },
        training_type: Some("Regular".to_owned()),
        reserved_budget_in_hours: Some(0),
        training_time_in_minutes: Some(spec.trained.map_or(0, |(_, m)| m)),
        publish_name,
        original_publish_resource_id: resource,
        extra: Default::default(),
    }
}

/// A generated account.
pub(crate) fn account(spec: &GenerateSpec) -> Account {
    let projects = (0..spec.projects as u64).map(|p| project(spec, p)).collect();
    Account { projects, content: ContentParams { seed: spec.seed, image_bytes: spec.image_bytes } }
}

fn project(spec: &GenerateSpec, p: u64) -> ProjectState {
    let seed = spec.seed;
    let kind = if p % 2 == 1 { Kind::ObjectDetection } else { Kind::Classification };
    let base = Utc.with_ymd_and_hms(2021, 3, 1, 8, 0, 0).single().expect("valid date") + Duration::hours(p as i64);
    let n = spec.images as u64;
    let extra = spec.iteration_only as u64;
    let last_image = base + Duration::milliseconds(1500 * (n + extra) as i64 + 1000);
    let modified = last_image + Duration::minutes(20);
    // The iteration was trained on the images of its first tenth, plus every image that only it
    // still holds; the images after it were uploaded later (an assumption of ours: the common
    // case of a project that grew after its model was trained).
    let cutoff = base + Duration::milliseconds(1500 * (n / 10 + extra) as i64 + 1000);
    let trained = cutoff + Duration::minutes(20);
    let classification = (kind == Kind::Classification).then_some("Multilabel");
    let description = format!("Generated from seed {seed}");
    let wire = wire_project(
        uuid(seed, p, 0, SALT_PROJECT),
        &format!("Generated project {}", p + 1),
        &description,
        kind,
        classification,
        base,
        modified,
    );
    let tags = tags(seed, p);
    let mut state = ProjectState::new(wire, kind, spec.relative_uris, tags.clone(), p);
    let mut images: Vec<ImageRec> = (0..n + extra).map(|i| image_record(seed, p, i, kind, &tags, base)).collect();
    images.sort_unstable_by_key(|i| (i.created, i.id));
    let training: Vec<Arc<ImageRec>> =
        images.iter().filter(|i| i.is_tagged() && i.created <= cutoff).cloned().map(Arc::new).collect();
    let only_in_iteration = pick_spread(&training, spec.iteration_only);
    state.extend_sorted(images.into_iter().filter(|i| !only_in_iteration.contains(&i.id)));
    state.set_next_key(n + extra);
    let tag_counts = counts_by_tag(&training);

    let publish = (format!("generated-model-{}", p + 1), prediction_resource());
    let iteration = wire_iteration(
        &state.project,
        kind,
        IterationSpec {
            id: uuid(seed, p, 0, SALT_ITERATION),
            name: "Iteration 1",
            created: cutoff + Duration::minutes(10),
            modified: trained + Duration::minutes(1),
            trained: Some((trained, 9)),
            exportable_to: vec!["ONNX".to_owned()],
            publish: Some(publish),
        },
    );
    let performance = performance(seed, p, &tags);
    // Results from training for every image it was trained on (an assumption: the spec says
    // only that GetImagePerformances lists the iteration's images with their predictions).
    let evaluated = training.clone();
    let package = export_package(&state.project.name, &iteration.name, "ONNX", &tags);
    let exports = vec![ExportRec {
        platform: "ONNX".to_owned(),
        status: "Done".to_owned(),
        flavor: Some("ONNX12".to_owned()),
        bytes: Some(package),
    }];
    let iteration_id = iteration.id;
    state.iterations.push(IterationState {
        iteration,
        performance: Some(performance),
        training: TrainingSet::new(training),
        image_performances: evaluated,
        tag_counts,
        exports,
    });
    state.predictions = (0..PREDICTIONS_PER_PROJECT)
        .map(|j| prediction(seed, p, j, kind, &tags, iteration_id, trained + Duration::hours(j as i64 + 1)))
        .collect();
    state
}

/// The project's tags, named from [`TAG_NAMES`].
fn tags(seed: u64, p: u64) -> Vec<Tag> {
    TAG_NAMES
        .iter()
        .enumerate()
        .map(|(t, name)| Tag {
            id: uuid(seed, p, t as u64, SALT_TAG),
            name: (*name).to_owned(),
            description: Some(format!("Generated tag {}", t + 1)),
            tag_type: Some("Regular".to_owned()),
            image_count: None,
            extra: Default::default(),
        })
        .collect()
}

/// Stored prediction `j` of project `p`: two tags with their probabilities (and boxes in an
/// object detection project), made by `iteration` at `created`.
fn prediction(
    seed: u64,
    p: u64,
    j: u64,
    kind: Kind,
    tags: &[Tag],
    iteration: Uuid,
    created: DateTime<Utc>,
) -> PredictionRec {
    let h = hash(seed, p, j, SALT_PREDICTION);
    let first = &tags[(h % tags.len() as u64) as usize];
    let second = &tags[((h >> 8) % tags.len() as u64) as usize];
    let bounding = |k: u64| {
        (kind == Kind::ObjectDetection).then_some(crate::api::model::BoundingBox {
            left: 0.1 * k as f64,
            top: 0.2,
            width: 0.3,
            height: 0.4,
        })
    };
    let prediction = |tag: &Tag, probability: f64, k: u64| Prediction {
        probability: Some(probability),
        tag_id: Some(tag.id),
        tag_name: None,
        bounding_box: bounding(k),
        tag_type: None,
        extra: Default::default(),
    };
    PredictionRec {
        id: uuid(seed, p, j, SALT_PREDICTION),
        iteration,
        created,
        content: Content::Generated { key: (p << 32) | (0x8000_0000 + j), jpeg: j.is_multiple_of(2) },
        predictions: vec![
            prediction(first, 0.5 + (h % 50) as f64 / 100.0, 1),
            prediction(second, (h >> 16) as f64 % 30.0 / 100.0, 2),
        ],
    }
}

/// The ids of `count` images spread evenly over `images`.
fn pick_spread(images: &[Arc<ImageRec>], count: usize) -> std::collections::HashSet<Uuid> {
    let count = count.min(images.len());
    if count == 0 {
        return Default::default();
    }
    let stride = images.len() / count;
    images.iter().step_by(stride).take(count).map(|i| i.id).collect()
}

/// How many of `images` carry each tag (directly or through a region).
pub(crate) fn counts_by_tag(images: &[Arc<ImageRec>]) -> std::collections::HashMap<Uuid, i64> {
    let mut counts = std::collections::HashMap::new();
    for image in images {
        for t in image.tag_ids() {
            *counts.entry(t).or_default() += 1;
        }
    }
    counts
}

fn image_record(seed: u64, p: u64, i: u64, kind: Kind, tags: &[Tag], base: DateTime<Utc>) -> ImageRec {
    // Every tenth image shares its predecessor's timestamp, so ties are exercised.
    let slot = if i % 10 == 1 { i - 1 } else { i };
    let jitter_ticks = hash(seed, p, slot, SALT_TIME) % 10_000_000;
    let created = base + Duration::milliseconds(1500 * slot as i64) + Duration::nanoseconds(100 * jitter_ticks as i64);
    let h = hash(seed, p, i, SALT_TAGGING);
    let tagged = !h.is_multiple_of(10);
    let tag = |k: u64| tags[((h >> (8 * k)) % tags.len() as u64) as usize].id;
    let (mut image_tags, mut regions) = (Vec::new(), Vec::new());
    if tagged {
        match kind {
            Kind::Classification => {
                image_tags.push(tag(1));
                if (h >> 40).is_multiple_of(3) && tag(2) != tag(1) {
                    image_tags.push(tag(2));
                }
            }
            Kind::ObjectDetection => {
                for r in 0..1 + (h >> 40) % 2 {
                    let g = hash(seed, p, i, SALT_REGION + (r << 8));
                    let frac = |shift: u32, span: u64| ((g >> shift) % span) as f64 / 100.0;
                    regions.push(RegionRec {
                        id: uuid(seed, p, i, SALT_REGION + (r << 8)),
                        tag: tag(1 + r),
                        left: frac(0, 50),
                        top: frac(8, 50),
                        width: 0.1 + frac(16, 40),
                        height: 0.1 + frac(24, 40),
                    });
                }
            }
        }
    }
    let metadata = i.is_multiple_of(7).then(|| {
        Box::new(BTreeMap::from([("source".to_owned(), "generator".to_owned()), ("index".to_owned(), i.to_string())]))
    });
    let (width, height) = BASE_SIZE;
    ImageRec {
        id: uuid(seed, p, i, SALT_IMAGE),
        created,
        width,
        height,
        tags: image_tags,
        regions,
        metadata,
        content: Content::Generated { key: (p << 32) | i, jpeg: i % 4 == 3 },
    }
}

fn performance(seed: u64, p: u64, tags: &[Tag]) -> IterationPerformance {
    let per_tag = tags
        .iter()
        .enumerate()
        .map(|(t, tag)| {
            let h = hash(seed, p, t as u64, SALT_ITERATION ^ 0xABCD);
            TagPerformance {
                id: Some(tag.id),
                name: Some(tag.name.clone()),
                precision: Some(0.5 + (h % 50) as f64 / 100.0),
                precision_std_deviation: Some(0.01),
                recall: Some(0.5 + ((h >> 8) % 50) as f64 / 100.0),
                recall_std_deviation: Some(0.02),
                average_precision: Some(0.5 + ((h >> 16) % 50) as f64 / 100.0),
                extra: Default::default(),
            }
        })
        .collect();
    IterationPerformance {
        per_tag_performance: Some(per_tag),
        precision: Some(0.81),
        precision_std_deviation: Some(0.02),
        recall: Some(0.77),
        recall_std_deviation: Some(0.03),
        average_precision: Some(0.84),
        extra: Default::default(),
    }
}

/// The ARM id of the (pretend) prediction resource iterations are published to.
pub(crate) fn prediction_resource() -> String {
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator-rg/providers/Microsoft.CognitiveServices/accounts/emulator-prediction".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_real_unique_and_about_the_size_asked() {
        for jpeg in [false, true] {
            let a = image(1, 7, 256 * 1024, jpeg, false);
            let b = image(1, 8, 256 * 1024, jpeg, false);
            assert_ne!(a, b);
            assert_eq!(a, image(1, 7, 256 * 1024, jpeg, false));
            assert!((a.len() as i64 - 256 * 1024).abs() < 64, "{}", a.len());
            if jpeg {
                assert_eq!(&a[..3], &[0xFF, 0xD8, 0xFF]);
                assert_eq!(&a[a.len() - 2..], &[0xFF, 0xD9]);
            } else {
                assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
                assert_eq!(&a[a.len() - 8..a.len() - 4], b"IEND");
            }
        }
        assert!(image(1, 7, 10, false, false).len() > BASE_PNG.len());
        assert_ne!(image(1, 7, 256 * 1024, false, false), image(2, 7, 256 * 1024, false, false));
        assert_ne!(image(1, 7, 256 * 1024, false, false), image(1, 7, 256 * 1024, false, true));
        let big = image(1, 7, 3 << 20, false, false);
        assert!((big.len() as i64 - (3 << 20)).abs() < 64, "{}", big.len());
    }

    #[test]
    fn accounts_are_deterministic() {
        let spec = GenerateSpec { projects: 2, images: 50, seed: 3, ..GenerateSpec::default() };
        let (a, b) = (account(&spec), account(&spec));
        let ids = |acc: &Account| {
            acc.projects.iter().flat_map(|p| p.images.iter().map(|i| (i.id, i.created))).collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.projects[1].kind, Kind::ObjectDetection);
        let other = account(&GenerateSpec { seed: 4, ..spec });
        assert_ne!(ids(&a), ids(&other));
        assert_eq!(export_package("p", "i", "ONNX", &[]), export_package("p", "i", "ONNX", &[]));
    }
}
