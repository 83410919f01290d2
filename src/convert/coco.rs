//! One project as a COCO dataset: `annotations.json` and `images/` (see the module docs of
//! [`super`] for every field).
//!
//! `annotations.json` is written as a stream: `info`, `licenses` and `categories` first, then
//! each image's entry as its bytes are written, while its regions' annotations go to an
//! anonymous temporary file in the staging folder, copied in after the last image (COCO keeps
//! them in an array of their own). Memory holds the tags' category numbers and one image at a
//! time, nothing per image.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{extension, io, write_new, ArchivedImage, ArchivedProject, Error, ProjectReport, Skipped, Source};
use crate::progress::{Event, Progress};

/// Buffer of the output and of the annotations' temporary file.
const BUFFER: usize = 256 << 10;

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
    let path = dir.join("annotations.json");
    let file = crate::sidefile::create_new(&path).map_err(|e| io(&path, e))?;
    let mut doc = Document::start(file, dir, archived, &category).map_err(|e| io(&path, e))?;
    let mut skipped = Vec::new();
    let mut only_in_iterations = 0;
    for a in source.images(archived)? {
        let a = a?;
        let image = &a.image;
        let (Some(w), Some(h)) = (image.width.filter(|w| *w > 0), image.height.filter(|h| *h > 0)) else {
            skipped.push(Skipped { image_id: image.id, reason: "the record has no width and height".into() });
            continue;
        };
        let Some(bytes) = source.read_image_or_skip(&a, &mut skipped) else { continue };
        let file_name = format!("{}.{}", image.id, extension(&a));
        write_new(&images_dir.join(&file_name), &bytes)?;
        progress.event(Event::Transferred { project_id: archived.project.id.to_string(), bytes: bytes.len() as u64 });
        only_in_iterations += usize::from(!a.in_workspace());
        doc.image(&a, file_name, (w, h), &category, &mut skipped).map_err(|e| io(&path, e))?;
    }
    let (images, annotations) = (doc.images, doc.annotations);
    doc.finish().map_err(|e| io(&path, e))?;
    Ok(ProjectReport {
        id: archived.project.id,
        name: archived.project.name.clone(),
        path: dir.to_path_buf(),
        images: images as usize,
        categories: archived.tags.len(),
        annotations: annotations as usize,
        only_in_iterations,
        skipped,
        replaced: false,
    })
}

/// `annotations.json` being written: the images array open in `out`, the annotations in
/// `spool`.
struct Document {
    out: BufWriter<File>,
    spool: BufWriter<File>,
    /// Images written (the last one's COCO id).
    images: u64,
    /// Annotations written (the last one's COCO id).
    annotations: u64,
}

impl Document {
    /// Writes everything before the first image.
    fn start(
        file: File,
        dir: &Path,
        archived: &ArchivedProject,
        category: &HashMap<Uuid, u64>,
    ) -> std::io::Result<Document> {
        let mut out = BufWriter::with_capacity(BUFFER, file);
        let spool = BufWriter::with_capacity(BUFFER, tempfile::tempfile_in(dir)?);
        let p = &archived.project;
        let info = json!({
            "description": format!("Custom Vision project {:?} ({}), converted by cvarchive", p.name, p.id),
            "version": "1.0",
            "contributor": "cvarchive",
            "date_created": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "custom_vision_project_id": p.id,
        });
        out.write_all(b"{\n\"info\": ")?;
        serde_json::to_writer(&mut out, &info)?;
        out.write_all(b",\n\"licenses\": [],\n\"categories\": [")?;
        for (n, t) in archived.tags.iter().enumerate() {
            let c = json!({"id": category[&t.id], "name": t.name, "supercategory": "", "custom_vision_id": t.id,
                           "description": t.description, "type": t.tag_type});
            element(&mut out, n == 0, &c)?;
        }
        out.write_all(b"\n],\n\"images\": [")?;
        Ok(Document { out, spool, images: 0, annotations: 0 })
    }

    /// Writes one image's entry and spools its regions' annotations; a region naming an unknown
    /// tag is noted in `skipped`.
    fn image(
        &mut self,
        a: &ArchivedImage,
        file_name: String,
        (w, h): (i64, i64),
        category: &HashMap<Uuid, u64>,
        skipped: &mut Vec<Skipped>,
    ) -> std::io::Result<()> {
        let image = &a.image;
        self.images += 1;
        let coco_id = self.images;
        let regions = image.regions.as_deref().unwrap_or_default();
        let class_tags: Vec<u64> = image
            .tags
            .iter()
            .flatten()
            .filter(|t| !regions.iter().any(|r| r.tag_id == t.tag_id))
            .filter_map(|t| category.get(&t.tag_id).copied())
            .collect();
        let entry = json!({
            "id": coco_id, "file_name": file_name, "width": w, "height": h,
            "custom_vision_id": image.id, "sha256": a.sha256,
            "date_captured": image.created.as_ref().map(|c| c.as_str()),
            "metadata": image.metadata.clone().unwrap_or_default(),
            "category_ids": class_tags,
            "workspace": a.in_workspace(),
            "iterations": a.iterations,
        });
        element(&mut self.out, coco_id == 1, &entry)?;
        for r in regions {
            let Some(&cat) = category.get(&r.tag_id) else {
                skipped
                    .push(Skipped { image_id: image.id, reason: format!("a region names unknown tag {}", r.tag_id) });
                continue;
            };
            let (x, y, bw, bh) = pixel_box(r.left, r.top, r.width, r.height, w as f64, h as f64);
            self.annotations += 1;
            let annotation = json!({
                "id": self.annotations, "image_id": coco_id, "category_id": cat,
                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
                "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
                "custom_vision_region_id": r.region_id,
            });
            element(&mut self.spool, self.annotations == 1, &annotation)?;
        }
        Ok(())
    }

    /// Closes the images array, copies the annotations in, and flushes the file.
    fn finish(self) -> std::io::Result<()> {
        let Document { mut out, spool, .. } = self;
        out.write_all(b"\n],\n\"annotations\": [")?;
        let mut spool = spool.into_inner().map_err(|e| e.into_error())?;
        spool.rewind()?;
        std::io::copy(&mut spool, &mut out)?;
        out.write_all(b"\n]\n}\n")?;
        out.flush()
    }
}

/// One array element on a line of its own, after a comma unless it is the first.
fn element(out: &mut impl Write, first: bool, value: &Value) -> std::io::Result<()> {
    out.write_all(if first { b"\n" } else { b",\n" })?;
    serde_json::to_writer(&mut *out, value)?;
    Ok(())
}

/// A region in fractions of the image -> a COCO `[x, y, width, height]` box in pixels.
pub fn pixel_box(left: f64, top: f64, width: f64, height: f64, image_w: f64, image_h: f64) -> (f64, f64, f64, f64) {
    (left * image_w, top * image_h, width * image_w, height * image_h)
}
