//! The spec's example responses and the real recorded traffic parse into `cvarchive::api::model`.
//!
//! Every file under `shared/spec/examples/` and every response in `shared/spec/recordings/` is
//! mapped explicitly to the wire type it must parse as; a file or operation with no mapping fails
//! the test, so new material cannot be ignored by accident. A parse must also be lossless: the
//! typed value serialises back to the same JSON (a null and an absent field count as the same),
//! and no field may land in the types' `extra` catch-all unless it is listed as newer than v3.3.
//! So a drift between the service's shapes and ours fails here, not in a customer's backup.
//!
//! Deliberately skipped: v1.x and v2.x files (PascalCase JSON names and other shapes, not the v3.x
//! wire format this tool speaks), binary bodies (GetArtifact), and two operations whose answers
//! are computed on request and never backed up (GetImageRegionProposals, QuerySuggestedImages).

use std::path::{Path, PathBuf};

use cvarchive::api::model::{
    parse_count, Export, Image, ImageCreateResult, ImageCreateSummary, ImagePerformance, ImageRegion, ImageTag,
    Iteration, IterationPerformance, Prediction, Project, ProjectExport, ProjectSettings, StoredImagePrediction, Tag,
    TagPerformance,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The wire type a response body must parse as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Projects,
    Project,
    Tags,
    Tag,
    Iterations,
    Iteration,
    IterationPerformance,
    ImagePerformances,
    Images,
    Exports,
    ProjectExport,
    ImageCreateSummary,
    Count,
    /// 202/204: no body at all.
    Empty,
    /// Raw bytes, not JSON.
    Binary,
    /// Known and deliberately not modelled; the reason is the payload.
    Unmodeled(&'static str),
}

/// Fields newer than v3.3 that v3.4-preview answers carry; kept in `extra`, losslessly.
const V34_PREVIEW_FIELDS: &[&str] = &["customBaseModelInfo", "trainingErrorDetails"];

fn spec_dir() -> PathBuf {
    let dir = std::env::var_os("CVARCHIVE_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec"));
    assert!(
        dir.join("examples").is_dir() && dir.join("recordings").is_dir(),
        "spec directory {} has no examples/ or recordings/: put shared/ beside the repository or set CVARCHIVE_SPEC_DIR",
        dir.display()
    );
    dir
}

/// The shape of an example file's 2xx response, by API version and operation (file name).
fn example_shape(version: &str, operation: &str, status: &str) -> Option<Shape> {
    if status == "202" || status == "204" {
        return Some(Shape::Empty);
    }
    Some(match (version, operation) {
        (_, "GetProjects") => Shape::Projects,
        (_, "GetProject") => Shape::Project,
        (_, "GetTags") => Shape::Tags,
        (_, "GetTag") => Shape::Tag,
        (_, "GetIterations") => Shape::Iterations,
        (_, "GetIteration") => Shape::Iteration,
        (_, "GetIterationPerformance") => Shape::IterationPerformance,
        (_, "GetImagePerformances") => Shape::ImagePerformances,
        (_, "GetImages" | "GetImagesByIds" | "GetTaggedImages" | "GetUntaggedImages") => Shape::Images,
        (_, "GetExports") => Shape::Exports,
        (_, "ExportProject") => Shape::ProjectExport,
        (_, "GetImageCount" | "GetImagePerformanceCount" | "GetTaggedImageCount" | "GetUntaggedImageCount") => {
            Shape::Count
        }
        (_, "GetArtifact") => Shape::Binary,
        (_, "GetImageRegionProposals") => Shape::Unmodeled("region proposals are computed on request, not stored data"),
        (_, "QuerySuggestedImages") => Shape::Unmodeled("suggestions are computed on request, not stored data"),
        _ => return None,
    })
}

/// The shape of a recorded response, by method and the path after `/training`.
fn recorded_shape(method: &str, uri: &str) -> Option<Shape> {
    let path = uri.split('?').next().unwrap_or(uri);
    let path = path.split("/training").nth(1)?;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method, segments.as_slice()) {
        ("DELETE", _) => Shape::Empty,
        ("POST", ["projects"]) | ("POST", ["projects", "import"]) => Shape::Project,
        ("GET", ["projects", _]) => Shape::Project,
        ("GET", ["projects", _, "export"]) => Shape::ProjectExport,
        ("POST", ["projects", _, "images", "urls"]) => Shape::ImageCreateSummary,
        ("GET", ["projects", _, "images"]) => Shape::Images,
        ("GET", ["projects", _, "images", "tagged" | "untagged"]) => Shape::Images,
        ("GET", ["projects", _, "images", "tagged" | "untagged", "count"]) => Shape::Count,
        ("GET", ["projects", _, "artifacts"]) => Shape::Binary,
        ("GET", ["projects", _, "tags"]) => Shape::Tags,
        ("GET", ["projects", _, "iterations"]) => Shape::Iterations,
        ("GET" | "PATCH", ["projects", _, "iterations", _]) => Shape::Iteration,
        _ => return None,
    })
}

/// Names every field that landed in a type's `extra` catch-all, with its JSON path.
trait Unknown {
    fn unknown(&self, at: &str, out: &mut Vec<String>);
}

fn keys_of(extra: &serde_json::Map<String, Value>, at: &str, out: &mut Vec<String>) {
    out.extend(extra.keys().map(|k| format!("{at}.{k}")));
}

impl<T: Unknown> Unknown for Vec<T> {
    fn unknown(&self, at: &str, out: &mut Vec<String>) {
        for (i, item) in self.iter().enumerate() {
            item.unknown(&format!("{at}[{i}]"), out);
        }
    }
}

impl<T: Unknown> Unknown for Option<T> {
    fn unknown(&self, at: &str, out: &mut Vec<String>) {
        if let Some(inner) = self {
            inner.unknown(at, out);
        }
    }
}

/// `Unknown` for a type: its own `extra`, then each named nested field.
macro_rules! unknown_fields {
    ($ty:ty $(, $field:ident)*) => {
        impl Unknown for $ty {
            fn unknown(&self, at: &str, out: &mut Vec<String>) {
                keys_of(&self.extra, at, out);
                $( self.$field.unknown(&format!("{at}.{}", stringify!($field)), out); )*
            }
        }
    };
}

unknown_fields!(Project, settings);
unknown_fields!(ProjectSettings);
unknown_fields!(Tag);
unknown_fields!(Iteration);
unknown_fields!(TagPerformance);
unknown_fields!(IterationPerformance, per_tag_performance);
unknown_fields!(ImageTag);
unknown_fields!(ImageRegion);
unknown_fields!(Image, tags, regions);
unknown_fields!(Prediction);
unknown_fields!(ImagePerformance, predictions, tags, regions);
unknown_fields!(Export);
unknown_fields!(ProjectExport);
unknown_fields!(StoredImagePrediction, predictions);

impl Unknown for ImageCreateResult {
    fn unknown(&self, at: &str, out: &mut Vec<String>) {
        self.image.unknown(&format!("{at}.image"), out);
    }
}

impl Unknown for ImageCreateSummary {
    fn unknown(&self, at: &str, out: &mut Vec<String>) {
        self.images.unknown(&format!("{at}.images"), out);
    }
}

/// JSON equality where null equals absent and numbers compare by value (`0` == `0.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> =
                x.iter().chain(y.iter()).filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            keys.into_iter().all(|k| same(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Parses `body` as `T`, then checks the parse was lossless and every field is named.
fn typed<T: DeserializeOwned + Serialize + Unknown>(body: &Value, allowed_extra: &[&str]) -> Result<T, String> {
    let value: T = serde_json::from_value(body.clone()).map_err(|e| format!("does not parse: {e}"))?;
    let back = serde_json::to_value(&value).map_err(|e| format!("does not serialise: {e}"))?;
    if !same(body, &back) {
        return Err(format!("round trip changed the JSON:\n  sent: {body}\n  back: {back}"));
    }
    let mut unknown = Vec::new();
    value.unknown("$", &mut unknown);
    unknown.retain(|path| !allowed_extra.iter().any(|field| path.ends_with(&format!(".{field}"))));
    if !unknown.is_empty() {
        return Err(format!("fields the model does not name: {unknown:?}"));
    }
    Ok(value)
}

/// Checks one response body against its shape.
fn check(shape: Shape, body: &Value, allowed_extra: &[&str]) -> Result<(), String> {
    match shape {
        Shape::Projects => typed::<Vec<Project>>(body, allowed_extra).map(drop),
        Shape::Project => typed::<Project>(body, allowed_extra).map(drop),
        Shape::Tags => typed::<Vec<Tag>>(body, allowed_extra).map(drop),
        Shape::Tag => typed::<Tag>(body, allowed_extra).map(drop),
        Shape::Iterations => typed::<Vec<Iteration>>(body, allowed_extra).map(drop),
        Shape::Iteration => typed::<Iteration>(body, allowed_extra).map(drop),
        Shape::IterationPerformance => typed::<IterationPerformance>(body, allowed_extra).map(drop),
        Shape::ImagePerformances => typed::<Vec<ImagePerformance>>(body, allowed_extra).map(drop),
        Shape::Images => typed::<Vec<Image>>(body, allowed_extra).map(drop),
        Shape::Exports => typed::<Vec<Export>>(body, allowed_extra).map(drop),
        Shape::ProjectExport => typed::<ProjectExport>(body, allowed_extra).map(drop),
        Shape::ImageCreateSummary => typed::<ImageCreateSummary>(body, allowed_extra).map(drop),
        Shape::Count => {
            let text = serde_json::to_vec(body).expect("a JSON value serialises");
            parse_count(&text).map(drop).map_err(|e| format!("not a count: {e}"))
        }
        Shape::Empty => match body {
            Value::Null => Ok(()),
            Value::String(s) if s.is_empty() => Ok(()),
            other => Err(format!("expected no body, found {other}")),
        },
        Shape::Binary | Shape::Unmodeled(_) => Ok(()),
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn every_v3_example_response_parses_into_the_model() {
    let examples = spec_dir().join("examples");
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&examples).unwrap().map(|e| e.unwrap().path()).collect();
    versions.sort();
    for version_dir in versions {
        let version = version_dir.file_name().unwrap().to_string_lossy().into_owned();
        // v1.x and v2.x use PascalCase names and older shapes: not the wire format we speak.
        if version.starts_with("v1.") || version.starts_with("v2.") {
            continue;
        }
        assert!(version.starts_with("v3."), "unexpected example version directory {version}: map it");
        let allowed: &[&str] = if version == "v3.4-preview" { V34_PREVIEW_FIELDS } else { &[] };
        for file in json_files(&version_dir) {
            let operation = file.file_stem().unwrap().to_string_lossy().into_owned();
            let doc = read_json(&file);
            let responses = doc["responses"].as_object().unwrap_or_else(|| panic!("{}: no responses", file.display()));
            for (status, response) in responses {
                if !status.starts_with('2') {
                    continue;
                }
                let origin = format!("{version}/{operation} {status}");
                let Some(shape) = example_shape(&version, &operation, status) else {
                    failures.push(format!("{origin}: no mapping to a model type; add one"));
                    continue;
                };
                checked += 1;
                if let Err(e) = check(shape, &response["body"], allowed) {
                    failures.push(format!("{origin} as {shape:?}: {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} example responses failed:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 24, "only {checked} example responses checked: are the examples there?");
}

#[test]
fn every_recorded_v3_response_parses_into_the_model() {
    let recordings = spec_dir().join("recordings");
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in json_files(&recordings) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let doc = read_json(&file);
        for (i, entry) in doc["Entries"].as_array().unwrap_or_else(|| panic!("{name}: no Entries")).iter().enumerate() {
            let method = entry["RequestMethod"].as_str().unwrap_or_default();
            let uri = entry["RequestUri"].as_str().unwrap_or_default();
            let origin = format!("{name}#{i} {method} {uri}");
            // v1.x answered in PascalCase: not our wire format.
            if uri.contains("/v1.") || uri.contains("/v2.") {
                continue;
            }
            let Some(shape) = recorded_shape(method, uri) else {
                failures.push(format!("{origin}: no mapping to a model type; add one"));
                continue;
            };
            let allowed: &[&str] = if uri.contains("/v3.4-preview/") { V34_PREVIEW_FIELDS } else { &[] };
            // The recorder stores bodies as text; the GetArtifacts excerpt stores items apart.
            let body = match (&entry["ResponseBody"], entry.get("ResponseBody_first_and_last_items")) {
                (_, Some(items)) => items.clone(),
                (Value::String(text), _) if shape == Shape::Binary || shape == Shape::Empty => {
                    Value::String(text.clone())
                }
                (Value::String(text), _) => match serde_json::from_str(text) {
                    Ok(v) => v,
                    Err(e) => {
                        failures.push(format!("{origin}: body is not JSON: {e}"));
                        continue;
                    }
                },
                (other, _) => other.clone(),
            };
            checked += 1;
            if let Err(e) = check(shape, &body, allowed) {
                failures.push(format!("{origin} as {shape:?}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} recorded responses failed:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 20, "only {checked} recorded responses checked: are the recordings there?");
}

/// The body of entry `index` of a recording, parsed from the recorder's text.
fn recorded_body(file: &str, index: usize) -> Value {
    let doc = read_json(&spec_dir().join("recordings").join(file));
    let text = doc["Entries"][index]["ResponseBody"].as_str().expect("a text body");
    serde_json::from_str(text).expect("a JSON body")
}

#[test]
fn recorded_images_keep_their_created_text_verbatim_and_their_uris() {
    let images: Vec<Image> = typed(&recorded_body("GetTaggedImages.json", 0), &[]).unwrap();
    let first = &images[0];
    assert_eq!(first.id.to_string(), "5700bb6b-5a3e-48e7-b16b-1b98b968693e");
    assert_eq!(first.created.as_ref().unwrap().as_str(), "2020-06-06T16:44:43.3417089");
    assert_eq!((first.width, first.height), (Some(900), Some(1600)));
    assert!(first.is_tagged());
    assert!(first.original_image_uri.as_deref().unwrap().starts_with("https://"));
    // Seen in every 2020 recording: the resized link is the original blob.
    assert_eq!(first.resized_image_uri, first.original_image_uri);

    let doc = read_json(&spec_dir().join("recordings/GetArtifacts.EXCERPT.json"));
    let mixed: Vec<Image> = typed(&doc["Entries"][0]["ResponseBody_first_and_last_items"], &[]).unwrap();
    let last = mixed.last().unwrap();
    assert!(last.original_image_uri.as_deref().unwrap().starts_with("/i-"), "relative original kept as sent");
    assert!(last.thumbnail_uri.as_deref().unwrap().starts_with("https://"), "absolute thumbnail kept as sent");
}

#[test]
fn recorded_tags_accept_a_null_description_and_counts_parse() {
    let tags: Vec<Tag> = typed(&recorded_body("ImportExportProject.v3.4-preview.json", 5), V34_PREVIEW_FIELDS).unwrap();
    assert_eq!(tags.len(), 2);
    assert!(tags.iter().all(|t| t.description.is_none()));
    assert_eq!(tags[0].name, "Tag2");
    assert_eq!(tags[0].tag_type.as_deref(), Some("Regular"));
    assert_eq!(tags[0].image_count, Some(5));

    let doc = read_json(&spec_dir().join("recordings/ImportExportProject.v3.4-preview.json"));
    let count_text = doc["Entries"][3]["ResponseBody"].as_str().unwrap();
    assert_eq!(parse_count(count_text.as_bytes()).unwrap(), 10);
    let example = read_json(&spec_dir().join("examples/v3.4-preview/GetImagePerformanceCount.json"));
    let as_string = serde_json::to_vec(&example["responses"]["200"]["body"]).unwrap();
    assert_eq!(parse_count(&as_string).unwrap(), 1, "the example's count is the JSON string \"1\"");
}

#[test]
fn recorded_project_export_and_iterations_keep_their_values() {
    let export: ProjectExport = typed(&recorded_body("ImportExportProject.v3.4-preview.json", 0), &[]).unwrap();
    assert_eq!(export.image_count, Some(10));
    assert_eq!(export.tag_count, Some(4));
    assert_eq!(export.estimated_import_time_in_ms, Some(5081));
    assert!(export.token.as_deref().unwrap().contains("/project-export-info?"));

    let imported: Project = typed(&recorded_body("ImportExportProject.v3.4-preview.json", 1), &[]).unwrap();
    assert_eq!(imported.status.as_deref(), Some("Importing"));
    assert_eq!(imported.thumbnail_uri, None, "thumbnailUri: null is accepted");
    assert_eq!(imported.created.as_ref().unwrap().as_str(), "2020-11-06T16:31:44.723Z");

    let iteration: Iteration = typed(&recorded_body("GetIterations.json", 1), &[]).unwrap();
    assert!(iteration.is_trained() && iteration.is_published());
    assert_eq!(iteration.training_time_in_minutes, Some(1));

    let preview: Vec<Iteration> =
        typed(&recorded_body("ImportExportProject.v3.4-preview.json", 8), V34_PREVIEW_FIELDS).unwrap();
    assert_eq!(preview[0].exportable_to, None, "exportableTo: null is accepted");
    assert!(preview[0].extra.contains_key("trainingErrorDetails"), "newer fields are kept, not dropped");
}

#[test]
fn drift_is_caught_by_the_checks_themselves() {
    // An unnamed field fails, a renamed field fails, and the allow-list is per field.
    let tag = serde_json::json!({"id": "9e27bc1b-7ae7-4e3b-a4e5-36153479dc01", "name": "a", "colour": "red"});
    assert!(typed::<Tag>(&tag, &[]).unwrap_err().contains("$.colour"));
    assert!(typed::<Tag>(&tag, &["colour"]).is_ok());
    let image = serde_json::json!([{"id": "9e27bc1b-7ae7-4e3b-a4e5-36153479dc01", "tags": [{"tagId": "9e27bc1b-7ae7-4e3b-a4e5-36153479dc01", "tagname": "x"}]}]);
    assert!(typed::<Vec<Image>>(&image, &[]).unwrap_err().contains("$[0].tags[0].tagname"));
    assert!(check(Shape::Empty, &serde_json::json!({"a": 1}), &[]).is_err());
    assert!(check(Shape::Count, &serde_json::json!("x"), &[]).is_err());
    assert!(same(&serde_json::json!({"a": 0, "b": null}), &serde_json::json!({"a": 0.0})));
}
