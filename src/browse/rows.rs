//! The compact rows the page reads: one image or stored prediction reduced to what is shown,
//! tags and iterations referred to by their position in the project's tag and iteration tables,
//! and every file path checked
//! before the page may link to it (an untrusted archive must not make the page load anything
//! outside its own folder).

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Predicted tags kept per stored prediction, most probable first (the JSONL keeps them all).
pub const MAX_PREDICTED_TAGS: usize = 50;

/// A project's tags: those of `tags.json` in its order, then any tag met only on an image or a
/// prediction. Rows refer to tags by their index here.
#[derive(Debug, Default)]
pub struct TagTable {
    tags: Vec<TagEntry>,
    by_id: HashMap<String, usize>,
}

/// One tag of a [`TagTable`].
#[derive(Debug)]
pub struct TagEntry {
    /// The tag's id (as written in the archive).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `tags.json`'s object for it, when it is listed there.
    pub listed: Option<Value>,
    /// Archived images carrying it (as a tag or through a region).
    pub archived_images: u64,
}

impl TagTable {
    /// The table of a project's `tags.json` (an array of Tag objects; anything else is ignored).
    pub fn from_tags_json(tags: Option<&Value>) -> TagTable {
        let mut table = TagTable::default();
        for t in tags.and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = t.get("id").and_then(Value::as_str) {
                let name = t.get("name").and_then(Value::as_str).unwrap_or(id);
                let i = table.index_of(id, name);
                table.tags[i].listed = Some(t.clone());
            }
        }
        table
    }

    /// The index of tag `id`, added with `name` when it is new.
    pub fn index_of(&mut self, id: &str, name: &str) -> usize {
        if let Some(&i) = self.by_id.get(id) {
            return i;
        }
        self.tags.push(TagEntry { id: id.to_owned(), name: name.to_owned(), listed: None, archived_images: 0 });
        self.by_id.insert(id.to_owned(), self.tags.len() - 1);
        self.tags.len() - 1
    }

    /// Every tag, in index order.
    pub fn tags(&self) -> &[TagEntry] {
        &self.tags
    }

    /// Counts one archived image for each of `indices`.
    pub fn count_image(&mut self, indices: &[usize]) {
        for &i in indices {
            self.tags[i].archived_images += 1;
        }
    }

    /// The table as the page reads it.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.tags
                .iter()
                .map(|t| {
                    let listed = t.listed.as_ref();
                    json!({
                        "id": t.id,
                        "name": t.name,
                        "description": listed.and_then(|l| l.get("description")).cloned().unwrap_or(Value::Null),
                        "type": listed.and_then(|l| l.get("type")).cloned().unwrap_or(Value::Null),
                        "imageCount": listed.and_then(|l| l.get("imageCount")).cloned().unwrap_or(Value::Null),
                        "listed": listed.is_some(),
                        "archived": t.archived_images,
                    })
                })
                .collect(),
        )
    }
}

/// A project's iterations, as images refer to them: those of `iterations.json` in its order,
/// then any met only on an image (named by id). Rows refer to iterations by their index here.
#[derive(Debug, Default)]
pub struct IterationTable {
    iterations: Vec<IterationEntry>,
    by_id: HashMap<String, usize>,
}

/// One iteration of an [`IterationTable`].
#[derive(Debug)]
pub struct IterationEntry {
    /// The iteration's id (as written in the archive).
    pub id: String,
    /// Its name, or its id when `iterations.json` does not list it.
    pub name: String,
    /// Whether `iterations.json` lists it.
    pub listed: bool,
    /// Archived images it holds.
    pub images: u64,
    /// Of those, the ones the workspace no longer held.
    pub only_here: u64,
}

impl IterationTable {
    /// The table of a project's `iterations.json` (an array of Iteration objects; anything else
    /// is ignored).
    pub fn from_iterations_json(iterations: Option<&Value>) -> IterationTable {
        let mut table = IterationTable::default();
        for it in array(iterations) {
            if let Some(id) = it.get("id").and_then(Value::as_str) {
                let i = table.index_of(id);
                table.iterations[i].name = str_or(it.get("name"), id).to_owned();
                table.iterations[i].listed = true;
            }
        }
        table
    }

    /// The index of iteration `id`, added (named by its id) when it is new.
    pub fn index_of(&mut self, id: &str) -> usize {
        if let Some(&i) = self.by_id.get(id) {
            return i;
        }
        let entry = IterationEntry { id: id.to_owned(), name: id.to_owned(), listed: false, images: 0, only_here: 0 };
        self.iterations.push(entry);
        self.by_id.insert(id.to_owned(), self.iterations.len() - 1);
        self.iterations.len() - 1
    }

    /// Every iteration, in index order.
    pub fn iterations(&self) -> &[IterationEntry] {
        &self.iterations
    }

    /// The table as the page reads it.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.iterations
                .iter()
                .map(|i| json!({"id": i.id, "name": i.name, "listed": i.listed, "images": i.images, "onlyHere": i.only_here}))
                .collect(),
        )
    }
}

/// One image reduced for the page, with what the project index needs.
#[derive(Debug)]
pub struct ImageRow {
    /// The row the page reads.
    pub json: Value,
    /// Indices of its tags (image tags and region tags), sorted, without repeats.
    pub tags: Vec<usize>,
    /// Whether the service says it is tagged.
    pub tagged: bool,
    /// Whether the workspace held it (`false`: only trained iterations did). Archives written
    /// before this was recorded held workspace images only.
    pub workspace: bool,
}

/// Reduces one `images.jsonl` line; `None` when it is not an object with an id. Its
/// `iterations` become indices into `holders`, or `null` when the line does not say (older
/// archives: unknown, not none).
pub fn image_row(line: &Value, project: Uuid, table: &mut TagTable, holders: &mut IterationTable) -> Option<ImageRow> {
    let obj = line.as_object()?;
    let id = obj.get("id")?.as_str()?;
    let mut tags = Vec::new();
    for t in array(obj.get("tags")) {
        if let Some(tid) = t.get("tagId").and_then(Value::as_str) {
            tags.push(table.index_of(tid, str_or(t.get("tagName"), tid)));
        }
    }
    let mut regions = Vec::new();
    for r in array(obj.get("regions")) {
        let Some(tid) = r.get("tagId").and_then(Value::as_str) else { continue };
        let i = table.index_of(tid, str_or(r.get("tagName"), tid));
        tags.push(i);
        regions.push(json!([i, num(r.get("left")), num(r.get("top")), num(r.get("width")), num(r.get("height"))]));
    }
    tags.sort_unstable();
    tags.dedup();
    let tagged = match obj.get("taggingStatus").and_then(Value::as_str) {
        Some(s) => s == "Tagged",
        None => !tags.is_empty(),
    };
    let workspace = obj.get("workspace").and_then(Value::as_bool).unwrap_or(true);
    let iterations: Option<Vec<usize>> = obj.get("iterations").and_then(Value::as_array).map(|list| {
        let mut held: Vec<usize> = list.iter().filter_map(Value::as_str).map(|id| holders.index_of(id)).collect();
        held.sort_unstable();
        held.dedup();
        for &i in &held {
            holders.iterations[i].images += 1;
            holders.iterations[i].only_here += u64::from(!workspace);
        }
        held
    });
    let meta: Vec<Value> = match obj.get("metadata") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| json!([k, scalar_text(v)])).collect(),
        _ => Vec::new(),
    };
    let json = json!({
        "id": id,
        "file": media_path(obj, project, "images"),
        "w": obj.get("width").and_then(Value::as_u64),
        "h": obj.get("height").and_then(Value::as_u64),
        "created": obj.get("created").and_then(Value::as_str),
        "tagged": tagged,
        "tags": tags,
        "regions": regions,
        "meta": meta,
        "size": obj.get("size").and_then(Value::as_u64),
        "sha256": obj.get("sha256").and_then(Value::as_str).filter(is_hex),
        "workspace": workspace,
        "iterations": iterations,
    });
    Some(ImageRow { json, tags, tagged, workspace })
}

/// Reduces one `predictions.jsonl` line; `None` when it is not an object with an id.
pub fn prediction_row(line: &Value, project: Uuid, table: &mut TagTable) -> Option<Value> {
    let obj = line.as_object()?;
    let id = obj.get("id")?.as_str()?;
    let mut preds: Vec<(f64, Value)> = Vec::new();
    for p in array(obj.get("predictions")) {
        let Some(tid) = p.get("tagId").and_then(Value::as_str) else { continue };
        let i = table.index_of(tid, str_or(p.get("tagName"), tid));
        let prob = num(p.get("probability"));
        let order = prob.as_f64().unwrap_or(0.0);
        let entry = match p.get("boundingBox") {
            Some(b) if b.is_object() => {
                json!([i, prob, num(b.get("left")), num(b.get("top")), num(b.get("width")), num(b.get("height"))])
            }
            _ => json!([i, prob]),
        };
        preds.push((order, entry));
    }
    let total = preds.len();
    preds.sort_by(|a, b| b.0.total_cmp(&a.0));
    preds.truncate(MAX_PREDICTED_TAGS);
    Some(json!({
        "id": id,
        "file": media_path(obj, project, "predictions"),
        "created": obj.get("created").and_then(Value::as_str),
        "iteration": obj.get("iteration").and_then(Value::as_str),
        "preds": preds.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "predCount": total,
        "size": obj.get("size").and_then(Value::as_u64),
        "sha256": obj.get("sha256").and_then(Value::as_str).filter(is_hex),
    }))
}

/// The record's `file` when it is exactly `projects/<project>/<folder>/<name>.<ext>` with a plain
/// name and a known extension; anything else (a URL, `..`, another project) is not linked.
pub fn media_path(obj: &Map<String, Value>, project: Uuid, folder: &str) -> Option<String> {
    let file = obj.get("file")?.as_str()?;
    is_media_path(file, project, folder).then(|| file.to_owned())
}

/// Whether `file` is a path the page may link to (see [`media_path`]).
pub fn is_media_path(file: &str, project: Uuid, folder: &str) -> bool {
    let Some(name) = file.strip_prefix(&format!("projects/{project}/{folder}/")) else { return false };
    let Some((stem, ext)) = name.rsplit_once('.') else { return false };
    !stem.is_empty()
        && stem.len() <= 64
        && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && matches!(ext, "jpg" | "png" | "gif" | "bmp" | "bin")
}

fn array(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn str_or<'a>(v: Option<&'a Value>, default: &'a str) -> &'a str {
    v.and_then(Value::as_str).unwrap_or(default)
}

/// A finite number, rounded to 4 decimals (enough for a region on a 10,000-pixel image).
fn num(v: Option<&Value>) -> Value {
    match v.and_then(Value::as_f64).filter(|f| f.is_finite()) {
        Some(f) => json!((f * 10_000.0).round() / 10_000.0),
        None => Value::Null,
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_hex(s: &&str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
