//! Rendering: read `account.json` and each project's files through a [`DataSource`], stream
//! `images.jsonl` and `predictions.jsonl` into fixed-size chunks, and emit every page file as
//! soon as it is complete. Damaged or missing data never stops the render: it is counted and
//! shown on the page.

use serde_json::{json, Value};
use uuid::Uuid;

use super::rows::{image_row, prediction_row, IterationTable, TagTable};
use super::{DataSource, BROWSE_DIR, IMAGES_PER_CHUNK, INDEX_HTML, PREDICTIONS_PER_CHUNK};
use crate::archive::layout;

const INDEX_HTML_TEXT: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// What every data file starts with: a call of the function `app.js` defines, whose two
/// arguments are JSON strings (see `Emitter::push`).
pub const DATA_CALL_PREFIX: &str = "window.__cv_push(";

/// The page's code as this version of cvarchive writes it: each file's path relative to `data/`
/// and its bytes. Every other file the page loads is a data file (a [`DATA_CALL_PREFIX`] call).
pub fn page_code() -> [(&'static str, &'static [u8]); 3] {
    [
        ("browse/app.js", APP_JS.as_bytes()),
        ("browse/style.css", STYLE_CSS.as_bytes()),
        (INDEX_HTML, INDEX_HTML_TEXT.as_bytes()),
    ]
}

/// The callback [`render`] hands each file to: its path relative to `data/` and its bytes.
pub type Emit<'a, E> = dyn FnMut(&str, Vec<u8>) -> Result<(), E> + 'a;

/// What [`render`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderSummary {
    /// Files handed to `emit`.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Projects shown.
    pub projects: usize,
    /// Images listed on the page.
    pub images: u64,
    /// Stored predictions listed on the page.
    pub predictions: u64,
    /// JSONL lines that could not be read as an image or a prediction (shown on the page).
    pub unreadable_lines: u64,
}

/// Renders `data/index.html` and everything it loads (paths relative to `data/`: `index.html`,
/// `browse/app.js`, `browse/<projectId>/images-0000.js`, ...), handing each file to `emit` as
/// soon as it is complete. At most one chunk of images is held at a time, plus each project's
/// tag index (a few bytes per image). The only error is one returned by `emit`.
pub fn render<E>(src: &dyn DataSource, emit: &mut Emit<'_, E>) -> Result<RenderSummary, E> {
    let mut out = Emitter { emit, summary: RenderSummary::default() };
    let mut problems: Vec<String> = Vec::new();
    let account = match src.read(layout::account_json()) {
        None => {
            problems.push("account.json is missing from the archive".into());
            Value::Null
        }
        Some(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| {
            problems.push(format!("account.json cannot be read: {e}"));
            Value::Null
        }),
    };
    let mut seen = std::collections::HashSet::new();
    let mut summaries = Vec::new();
    for entry in account.get("projects").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = entry.get("id").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok()) else {
            problems.push(format!("a project entry of account.json has no valid id: {}", short(entry)));
            continue;
        };
        if !seen.insert(id) {
            problems.push(format!("project {id} is listed twice in account.json"));
            continue;
        }
        summaries.push(render_project(src, &mut out, id, entry)?);
    }
    out.summary.projects = summaries.len();
    let doc = json!({
        "account": account,
        "projects": summaries,
        "problems": problems,
        "chunks": {"images": IMAGES_PER_CHUNK, "predictions": PREDICTIONS_PER_CHUNK},
        "renderedBy": format!("cvarchive {}", env!("CARGO_PKG_VERSION")),
    });
    out.push(&format!("{BROWSE_DIR}/account.js"), "account", &doc)?;
    for (path, bytes) in page_code() {
        out.file(path, bytes.to_vec())?;
    }
    Ok(out.summary)
}

struct Emitter<'a, E> {
    emit: &'a mut Emit<'a, E>,
    summary: RenderSummary,
}

impl<E> Emitter<'_, E> {
    fn file(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), E> {
        self.summary.files += 1;
        self.summary.bytes += bytes.len() as u64;
        (self.emit)(path, bytes)
    }

    /// A data file: `window.__cv_push(key, "<json>")`. The JSON travels as a string for
    /// `JSON.parse`, so that no key (`__proto__` in user metadata, say) is read as JavaScript.
    fn push(&mut self, path: &str, key: &str, value: &Value) -> Result<(), E> {
        let text = serde_json::to_string(value).expect("a Value serialises");
        let mut js = Vec::with_capacity(text.len() + text.len() / 8 + 64);
        js.extend_from_slice(DATA_CALL_PREFIX.as_bytes());
        serde_json::to_writer(&mut js, key).expect("in memory");
        js.push(b',');
        serde_json::to_writer(&mut js, &text).expect("in memory");
        js.extend_from_slice(b");\n");
        self.file(path, js)
    }
}

fn read_json(src: &dyn DataSource, path: &str, problems: &mut Vec<String>) -> Value {
    match src.read(path) {
        None => Value::Null,
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            problems.push(format!("{path} cannot be read: {e}"));
            Value::Null
        }),
    }
}

/// Streams a JSONL file into chunk files; calls `each` on every parsed line, which returns the
/// record to show or `None` to count the line as unreadable. Returns (records, chunks, unreadable).
fn chunked<E>(
    src: &dyn DataSource,
    out: &mut Emitter<'_, E>,
    path: &str,
    name: &str,
    p: Uuid,
    per_chunk: usize,
    mut each: impl FnMut(&Value, u32) -> Option<Value>,
) -> Result<(u64, usize, u64), E> {
    let (mut count, mut chunks, mut unreadable) = (0u64, 0usize, 0u64);
    let mut chunk: Vec<Value> = Vec::with_capacity(per_chunk);
    let flush = |chunk: &mut Vec<Value>, chunks: &mut usize, out: &mut Emitter<'_, E>| {
        let items = Value::Array(std::mem::take(chunk));
        let r =
            out.push(&format!("{BROWSE_DIR}/{p}/{name}-{:04}.js", *chunks), &format!("{name}:{p}:{}", *chunks), &items);
        *chunks += 1;
        r
    };
    for line in src.lines(path).into_iter().flatten() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = serde_json::from_slice::<Value>(&line).ok().and_then(|v| each(&v, count as u32));
        let Some(record) = record else {
            unreadable += 1;
            continue;
        };
        chunk.push(record);
        count += 1;
        if chunk.len() == per_chunk {
            flush(&mut chunk, &mut chunks, out)?;
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut chunks, out)?;
    }
    Ok((count, chunks, unreadable))
}

fn render_project<E>(src: &dyn DataSource, out: &mut Emitter<'_, E>, p: Uuid, entry: &Value) -> Result<Value, E> {
    let mut problems = Vec::new();
    let project = read_json(src, &layout::project_json(p), &mut problems);
    let tags = read_json(src, &layout::tags_json(p), &mut problems);
    let iterations = read_json(src, &layout::iterations_json(p), &mut problems);
    let mut table = TagTable::from_tags_json(Some(&tags));
    let mut holders = IterationTable::from_iterations_json(Some(&iterations));

    // Images: chunks, plus the index the page filters with (image ordinals per tag, untagged,
    // held only by iterations).
    let mut per_tag: Vec<Vec<u32>> = Vec::new();
    let mut untagged: Vec<u32> = Vec::new();
    let mut only_in_iterations: Vec<u32> = Vec::new();
    let mut untagged_in_workspace = 0u64;
    let mut regions = 0u64;
    let (images, image_chunks, bad_images) =
        chunked(src, out, &layout::images_jsonl(p), "images", p, IMAGES_PER_CHUNK, |line, ordinal| {
            let rec = image_row(line, p, &mut table, &mut holders)?;
            regions += rec.json["regions"].as_array().map_or(0, |r| r.len() as u64);
            if per_tag.len() < table.tags().len() {
                per_tag.resize_with(table.tags().len(), Vec::new);
            }
            for &t in &rec.tags {
                per_tag[t].push(ordinal);
            }
            if !rec.tagged {
                untagged.push(ordinal);
                untagged_in_workspace += u64::from(rec.workspace);
            }
            if !rec.workspace {
                only_in_iterations.push(ordinal);
            }
            table.count_image(&rec.tags);
            Some(rec.json)
        })?;
    per_tag.resize_with(table.tags().len(), Vec::new);
    let only = only_in_iterations.len() as u64;
    let index = json!({"count": images, "chunkSize": IMAGES_PER_CHUNK, "tags": per_tag, "untagged": untagged,
                       "onlyInIterations": only_in_iterations});
    drop(per_tag);
    out.push(&format!("{BROWSE_DIR}/{p}/index.js"), &format!("index:{p}"), &index)?;
    drop(index);

    let (predictions, prediction_chunks, bad_predictions) =
        chunked(src, out, &layout::predictions_jsonl(p), "predictions", p, PREDICTIONS_PER_CHUNK, |line, _| {
            prediction_row(line, p, &mut table)
        })?;

    let its = iteration_docs(src, p, &iterations, &mut problems);
    if bad_images > 0 {
        problems.push(format!("{bad_images} line(s) of images.jsonl could not be read"));
    }
    if bad_predictions > 0 {
        problems.push(format!("{bad_predictions} line(s) of predictions.jsonl could not be read"));
    }
    let name = entry.get("name").cloned().or_else(|| project.get("name").cloned()).unwrap_or(Value::Null);
    let doc = json!({
        "id": p,
        "name": name,
        "record": entry,
        "project": project,
        "tags": table.to_json(),
        "iterations": its,
        "holders": holders.to_json(),
        "onlyInIterations": only,
        "images": images,
        "imageChunks": image_chunks,
        "regions": regions,
        "predictions": predictions,
        "predictionChunks": prediction_chunks,
        "problems": problems,
    });
    out.push(&format!("{BROWSE_DIR}/{p}/project.js"), &format!("project:{p}"), &doc)?;
    out.summary.images += images;
    out.summary.predictions += predictions;
    out.summary.unreadable_lines += bad_images + bad_predictions;
    Ok(json!({
        "id": p,
        "name": name,
        "domainType": entry.get("domainType").cloned().unwrap_or(Value::Null),
        "images": images,
        // Tagged and untagged count the workspace's images, as account.json's do.
        "tagged": images - only - untagged_in_workspace,
        "untagged": untagged_in_workspace,
        "onlyInIterations": only,
        "regions": regions,
        "predictions": predictions,
        "tags": table.tags().len(),
        "iterations": its.len(),
        "problems": doc["problems"].as_array().map_or(0, Vec::len),
    }))
}

/// Each iteration of `iterations.json` with its performance and model exports.
fn iteration_docs(src: &dyn DataSource, p: Uuid, iterations: &Value, problems: &mut Vec<String>) -> Vec<Value> {
    let mut its = Vec::new();
    for it in iterations.as_array().into_iter().flatten() {
        let id = it.get("id").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
        let (performance, exports) = match id {
            Some(i) => (
                read_json(src, &layout::performance_json(p, i), problems),
                read_json(src, &layout::exports_json(p, i), problems),
            ),
            None => (Value::Null, Value::Null),
        };
        its.push(json!({"iteration": it, "performance": performance, "exports": exports}));
    }
    its
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        return s;
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
