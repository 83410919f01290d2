//! One project as a COCO dataset: `annotations.json` and `images/` (see the module docs of
//! [`super`] for every field).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{extension, io, write_new, ArchivedProject, Error, ProjectReport, Skipped, Source};
use crate::progress::{Event, Progress};

/// Writes `annotations.json` and `images/` into `dir`.
pub(super) fn write(
    source: &Source,
    archived: &ArchivedProject,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<ProjectReport, Error> {
    let images_dir = dir.join("images");
    std::fs::create_dir(&images_dir).map_err(|e| io(&images_dir, e))?;
    let category: HashMap<Uuid, u64> = archived.tags.iter().enumerate().map(|(n, t)| (t.id, n as u64 + 1)).collect();
    let categories: Vec<Value> = archived
        .tags
        .iter()
        .map(|t| {
            json!({"id": category[&t.id], "name": t.name, "supercategory": "", "custom_vision_id": t.id,
                   "description": t.description, "type": t.tag_type})
        })
        .collect();
    let (mut images, mut annotations, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let mut only_in_iterations = 0;
    let mut written: HashSet<Uuid> = HashSet::new();
    for a in &archived.images {
        let image = &a.image;
        // A listing that repeats an id gets its image once, as the first line says.
        if written.contains(&image.id) {
            continue;
        }
        let (Some(w), Some(h)) = (image.width.filter(|w| *w > 0), image.height.filter(|h| *h > 0)) else {
            skipped.push(Skipped { image_id: image.id, reason: "the record has no width and height".into() });
            continue;
        };
        let Some(bytes) = source.read_image_or_skip(a, &mut skipped) else { continue };
        written.insert(image.id);
        let file_name = format!("{}.{}", image.id, extension(a));
        write_new(&images_dir.join(&file_name), &bytes)?;
        progress.event(Event::Transferred { project_id: archived.project.id.to_string(), bytes: bytes.len() as u64 });
        let coco_id = images.len() as u64 + 1;
        let regions = image.regions.as_deref().unwrap_or_default();
        let class_tags: Vec<u64> = image
            .tags
            .iter()
            .flatten()
            .filter(|t| !regions.iter().any(|r| r.tag_id == t.tag_id))
            .filter_map(|t| category.get(&t.tag_id).copied())
            .collect();
        images.push(json!({
            "id": coco_id, "file_name": file_name, "width": w, "height": h,
            "custom_vision_id": image.id, "sha256": a.sha256,
            "date_captured": image.created.as_ref().map(|c| c.as_str()),
            "metadata": image.metadata.clone().unwrap_or_default(),
            "category_ids": class_tags,
            "workspace": a.in_workspace(),
            "iterations": a.iterations,
        }));
        only_in_iterations += usize::from(!a.in_workspace());
        for r in regions {
            let Some(&cat) = category.get(&r.tag_id) else {
                skipped
                    .push(Skipped { image_id: image.id, reason: format!("a region names unknown tag {}", r.tag_id) });
                continue;
            };
            let (x, y, bw, bh) = pixel_box(r.left, r.top, r.width, r.height, w as f64, h as f64);
            annotations.push(json!({
                "id": annotations.len() as u64 + 1, "image_id": coco_id, "category_id": cat,
                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
                "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
                "custom_vision_region_id": r.region_id,
            }));
        }
    }
    let doc = json!({
        "info": {
            "description": format!("Custom Vision project {:?} ({}), converted by cvarchive", archived.project.name, archived.project.id),
            "version": "1.0",
            "contributor": "cvarchive",
            "date_created": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "custom_vision_project_id": archived.project.id,
        },
        "licenses": [],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    });
    let path = dir.join("annotations.json");
    write_new(&path, &serde_json::to_vec_pretty(&doc).expect("JSON values serialise"))?;
    Ok(ProjectReport {
        id: archived.project.id,
        name: archived.project.name.clone(),
        path: dir.to_path_buf(),
        images: doc["images"].as_array().map_or(0, Vec::len),
        categories: archived.tags.len(),
        annotations: doc["annotations"].as_array().map_or(0, Vec::len),
        only_in_iterations,
        skipped,
        replaced: false,
    })
}

/// A region in fractions of the image -> a COCO `[x, y, width, height]` box in pixels.
pub fn pixel_box(left: f64, top: f64, width: f64, height: f64, image_w: f64, image_h: f64) -> (f64, f64, f64, f64) {
    (left * image_w, top * image_h, width * image_w, height * image_h)
}
