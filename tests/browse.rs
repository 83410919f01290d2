//! The page inside every archive (issue 9): rendered from the exported fixture, from hostile
//! data and from 100,000 images; then opened from file:// in headless Chromium.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use cvarchive::browse::{self, rows::is_media_path, DataSource, IMAGES_PER_CHUNK};
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

/// A data source over files in memory (the zip crate's view of an archive, or made up).
struct MemSource(BTreeMap<String, Vec<u8>>);

impl DataSource for MemSource {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
    fn lines(&self, path: &str) -> Option<Box<dyn Iterator<Item = Vec<u8>> + '_>> {
        let bytes = self.0.get(path)?;
        Some(Box::new(bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec)))
    }
}

/// Renders into a map of path -> bytes.
fn render_all(src: &dyn DataSource) -> (BTreeMap<String, Vec<u8>>, browse::RenderSummary) {
    let mut files = BTreeMap::new();
    let summary = browse::render(src, &mut |path: &str, bytes: Vec<u8>| {
        assert!(files.insert(path.to_owned(), bytes).is_none(), "{path} emitted twice");
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    (files, summary)
}

/// The key and parsed JSON of a `window.__cv_push(key, "json");` data file.
fn pushed(bytes: &[u8]) -> (String, Value) {
    let text = std::str::from_utf8(bytes).unwrap();
    let inner = text.strip_prefix("window.__cv_push(").and_then(|t| t.strip_suffix(");\n")).expect("a push call");
    let args: Vec<Value> = serde_json::from_str(&format!("[{inner}]")).expect("two JSON arguments");
    let data = serde_json::from_str(args[1].as_str().expect("the data travels as a string")).unwrap();
    (args[0].as_str().unwrap().to_owned(), data)
}

async fn fixture_archive(dir: &Path) -> (cvarchive::emulator::Emulator, PathBuf) {
    let emu = fixture_emulator().await;
    let out = dir.join("demo.zip");
    export(&client_for(&emu), &ExportOptions::new(&out), &NoProgress, &CancellationToken::new()).await.unwrap();
    (emu, out)
}

#[tokio::test]
async fn the_fixture_renders_every_project_image_and_tag_count() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, archive) = fixture_archive(dir.path()).await;
    let payload = payload(&archive);
    let (files, summary) = render_all(&MemSource(payload.clone()));

    // The archive's own reader gives the same page as the zip crate's.
    let reader = cvarchive::archive::BagReader::open(&archive).unwrap();
    let source = browse::ArchiveSource::new(&reader);
    let (again, _) = render_all(&source);
    assert_eq!(files, again);
    assert!(source.problems().is_empty(), "{:?}", source.problems());

    for f in ["index.html", "browse/app.js", "browse/style.css", "browse/account.js"] {
        assert!(files.contains_key(f), "{f} rendered");
    }
    let (key, account) = pushed(&files["browse/account.js"]);
    assert_eq!(key, "account");
    assert_eq!(account["account"]["format"], "cvarchive/1");
    assert_eq!(account["problems"], json!([]));
    let listed: HashSet<Uuid> =
        account["projects"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(listed, emu.projects().into_iter().collect::<HashSet<_>>());

    let mut total = 0u64;
    for p in emu.projects() {
        let lines = jsonl(&payload, &format!("projects/{p}/images.jsonl"));
        let (_, project) = pushed(&files[&format!("browse/{p}/project.js")]);
        let (_, index) = pushed(&files[&format!("browse/{p}/index.js")]);
        assert_eq!(project["images"], lines.len());
        assert_eq!(index["count"], lines.len());
        // Every image, in order, across the chunks; every link is the archived file.
        let mut shown = Vec::new();
        for c in 0..project["imageChunks"].as_u64().unwrap() {
            let (key, chunk) = pushed(&files[&format!("browse/{p}/images-{c:04}.js")]);
            assert_eq!(key, format!("images:{p}:{c}"));
            shown.extend(chunk.as_array().unwrap().iter().cloned());
        }
        assert_eq!(shown.len(), lines.len());
        for (rec, line) in shown.iter().zip(&lines) {
            assert_eq!(rec["id"], line["id"]);
            assert_eq!(rec["file"], line["file"]);
            assert!(payload.contains_key(rec["file"].as_str().unwrap()));
            assert_eq!(rec["regions"].as_array().unwrap().len(), line["regions"].as_array().map_or(0, Vec::len));
            assert_eq!(rec["tagged"], line["taggingStatus"] == "Tagged");
            assert_eq!(rec["workspace"], line["workspace"], "{}", line["id"]);
            assert_eq!(holder_ids(&project, rec), line["iterations"], "{}", line["id"]);
        }
        // Images only iterations hold: in the index to filter on, apart from the workspace's
        // counts as account.json keeps them, and named through iterations.json.
        let only: Vec<usize> =
            lines.iter().enumerate().filter(|(_, l)| l["workspace"] == false).map(|(i, _)| i).collect();
        assert_eq!(index["onlyInIterations"], json!(only));
        let record = account["account"]["projects"].as_array().unwrap().iter().find(|r| r["id"] == p.to_string());
        let summary = account["projects"].as_array().unwrap().iter().find(|r| r["id"] == p.to_string()).unwrap();
        let archived = &record.unwrap()["archived"];
        assert_eq!(summary["onlyInIterations"], archived["onlyInIterations"]);
        assert_eq!(project["onlyInIterations"], archived["onlyInIterations"]);
        assert_eq!((&summary["tagged"], &summary["untagged"]), (&archived["tagged"], &archived["untagged"]));
        for (row, it) in project["holders"]
            .as_array()
            .unwrap()
            .iter()
            .zip(json(&payload, &format!("projects/{p}/iterations.json")).as_array().unwrap())
        {
            assert_eq!((&row["id"], &row["name"], &row["listed"]), (&it["id"], &it["name"], &json!(true)));
        }
        check_tag_counts(p, &payload, &lines, &project, &index);
        let untagged = lines.iter().filter(|l| l["taggingStatus"] == "Untagged").count();
        assert_eq!(index["untagged"].as_array().unwrap().len(), untagged);
        let predictions = jsonl(&payload, &format!("projects/{p}/predictions.jsonl"));
        assert_eq!(project["predictions"], predictions.len());
        let iterations = json(&payload, &format!("projects/{p}/iterations.json"));
        assert_eq!(project["iterations"].as_array().unwrap().len(), iterations.as_array().unwrap().len());
        for it in project["iterations"].as_array().unwrap() {
            if it["iteration"]["status"] == "Completed" {
                assert!(it["performance"]["perTagPerformance"].is_array(), "{it}");
            }
        }
        total += lines.len() as u64;
    }
    assert_eq!(summary.images, total);
    assert_eq!(summary.unreadable_lines, 0);

    // No key, no address of any host, nothing the page could request outside its folder.
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!contains(bytes, emu.key().as_bytes()), "{path} holds the key");
        assert!(!text.contains("https:") && !text.contains("//127.0.0.1"), "{path} names a host");
        assert!(!text.contains("fetch(") && !text.contains("XMLHttpRequest"), "{path} makes requests");
    }
    let html = String::from_utf8_lossy(&files["index.html"]);
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
}

/// The ids of the iterations an image record refers to, through its project's table (`null`
/// when the record says the archive does not record them).
fn holder_ids(project: &Value, rec: &Value) -> Value {
    match rec["iterations"].as_array() {
        None => rec["iterations"].clone(),
        Some(list) => list.iter().map(|i| project["holders"][i.as_u64().unwrap() as usize]["id"].clone()).collect(),
    }
}

/// Issue 13: images only trained iterations hold, exported over a real socket, are on the page
/// marked, filterable and named by the iterations holding them; an archive written before they
/// were recorded renders with every image in the workspace and its iterations unknown.
#[tokio::test]
async fn images_only_iterations_hold_are_marked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, archive) = exported_generated("projects=1,images=40,iteration_only=5,size=1000", dir.path(), "gen").await;
    let payload = payload(&archive);
    let (files, _) = render_all(&MemSource(payload.clone()));
    let p = emu.projects()[0];
    let workspace: HashSet<Uuid> = emu.image_ids(p).into_iter().collect();
    let (_, project) = pushed(&files[&format!("browse/{p}/project.js")]);
    let (_, index) = pushed(&files[&format!("browse/{p}/index.js")]);
    let (_, chunk) = pushed(&files[&format!("browse/{p}/images-0000.js")]);
    let records = chunk.as_array().unwrap();
    assert_eq!(records.len(), workspace.len() + 5);
    let mut only = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        let id: Uuid = rec["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(rec["workspace"], workspace.contains(&id), "{id}");
        if rec["workspace"] == false {
            only.push(i);
            let names: Vec<&Value> = rec["iterations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| &project["holders"][i.as_u64().unwrap() as usize]["name"])
                .collect();
            assert_eq!(names, [&json!("Iteration 1")], "{id}: held by the trained iteration, by name");
        }
    }
    assert_eq!(only.len(), 5);
    assert_eq!(index["onlyInIterations"], json!(only));
    assert_eq!(project["onlyInIterations"], 5);
    assert_eq!(project["holders"][0]["onlyHere"], 5);

    let old = crate::support::fixtures::write_good_bag(dir.path(), "old");
    let reader = cvarchive::archive::BagReader::open(&old).unwrap();
    let (files, _) = render_all(&browse::ArchiveSource::new(&reader));
    let p = crate::support::fixtures::PROJECT;
    let (_, chunk) = pushed(&files[&format!("browse/{p}/images-0000.js")]);
    for rec in chunk.as_array().unwrap() {
        assert_eq!((&rec["workspace"], &rec["iterations"]), (&json!(true), &Value::Null), "unknown, not none");
    }
    let (_, index) = pushed(&files[&format!("browse/{p}/index.js")]);
    assert_eq!(index["onlyInIterations"], json!([]));
}

fn carries(line: &Value, tag: &str) -> bool {
    let has = |k: &str| line[k].as_array().is_some_and(|a| a.iter().any(|t| t["tagId"] == tag));
    has("tags") || has("regions")
}

#[test]
fn hostile_lines_are_counted_and_never_linked() {
    let p = Uuid::from_u128(7);
    let other = Uuid::from_u128(8);
    let account =
        json!({"projects": [{"id": p.to_string(), "name": "x"}, {"id": "not-a-uuid"}, {"id": p.to_string()}]});
    let lines = [
        json!({"id": "a", "file": "https://evil.example/x.jpg", "metadata": {"__proto__": "polluted", "k": 1}}),
        json!({"id": "b", "file": format!("projects/{p}/images/../../../../etc/passwd.jpg")}),
        json!({"id": "c", "file": format!("projects/{other}/images/c.jpg")}),
        json!({"id": "d", "file": format!("projects/{p}/images/d.png"), "regions": [{"tagId": "t9", "left": "x"}]}),
    ];
    let mut jsonl_text: Vec<u8> = Vec::new();
    for l in &lines {
        jsonl_text.extend(serde_json::to_vec(l).unwrap());
        jsonl_text.push(b'\n');
    }
    jsonl_text.extend_from_slice(b"{not json\n[1,2]\n");
    let mut files = BTreeMap::new();
    files.insert("account.json".to_owned(), serde_json::to_vec(&account).unwrap());
    files.insert(format!("projects/{p}/images.jsonl"), jsonl_text);
    files.insert(format!("projects/{p}/tags.json"), b"{\"broken\"".to_vec());
    let (out, summary) = render_all(&MemSource(files));
    assert_eq!(summary.projects, 1);
    assert_eq!(summary.images, 4);
    assert_eq!(summary.unreadable_lines, 2);
    let (_, account) = pushed(&out["browse/account.js"]);
    let problems = account["problems"].to_string();
    assert!(problems.contains("no valid id") && problems.contains("listed twice"), "{problems}");
    let (_, chunk) = pushed(&out[&format!("browse/{p}/images-0000.js")]);
    let files: Vec<&Value> = chunk.as_array().unwrap().iter().map(|r| &r["file"]).collect();
    assert_eq!(files, [&Value::Null, &Value::Null, &Value::Null, &json!(format!("projects/{p}/images/d.png"))]);
    assert_eq!(chunk[0]["meta"], json!([["__proto__", "polluted"], ["k", "1"]]));
    assert_eq!(chunk[3]["regions"], json!([[0, null, null, null, null]]));
    let (_, project) = pushed(&out[&format!("browse/{p}/project.js")]);
    assert!(project["problems"].to_string().contains("tags.json cannot be read"));
    assert!(project["problems"].to_string().contains("2 line(s) of images.jsonl"));
    assert_eq!(project["tags"][0]["listed"], false, "a tag met only on a region is still shown");
    assert!(!is_media_path("projects/x/images/a.jpg", p, "images"));
    assert!(!is_media_path(&format!("projects/{p}/images/a.exe"), p, "images"));
}

/// 100,000 images in a project: chunks of a fixed size, each emitted as it fills (the renderer
/// never holds more than one), and an index that filters without loading any chunk.
#[test]
fn a_hundred_thousand_images_render_in_bounded_chunks() {
    const N: usize = 100_000;
    struct Big(Uuid, Vec<u8>, Vec<u8>);
    impl DataSource for Big {
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            match path {
                "account.json" => Some(self.1.clone()),
                p if p == format!("projects/{}/tags.json", self.0) => Some(self.2.clone()),
                _ => None,
            }
        }
        fn lines(&self, path: &str) -> Option<Box<dyn Iterator<Item = Vec<u8>> + '_>> {
            if path != format!("projects/{}/images.jsonl", self.0) {
                return None;
            }
            let p = self.0;
            Some(Box::new((0..N).map(move |i| {
                let id = Uuid::from_u128(i as u128 + 1);
                let tags =
                    if i % 10 == 0 { json!([]) } else { json!([{"tagId": format!("t{}", i % 3), "tagName": "n"}]) };
                let status = if i % 10 == 0 { "Untagged" } else { "Tagged" };
                serde_json::to_vec(&json!({"id": id, "file": format!("projects/{p}/images/{id}.jpg"), "tags": tags,
                    "taggingStatus": status, "width": 640, "height": 480, "metadata": {"i": i.to_string()}}))
                .unwrap()
            })))
        }
    }
    let p = Uuid::from_u128(42);
    let tags = json!([{"id": "t0", "name": "zero", "imageCount": 30000}, {"id": "t1", "name": "one"}, {"id": "t2", "name": "two"}]);
    let src =
        Big(p, serde_json::to_vec(&json!({"projects": [{"id": p}]})).unwrap(), serde_json::to_vec(&tags).unwrap());

    let mut chunks = 0usize;
    let mut largest_chunk = 0usize;
    let mut index = None;
    let mut order = Vec::new();
    // CVARCHIVE_BROWSE_KEEP_BIG=<dir> keeps the rendered page there, to time it in a browser.
    let keep = std::env::var_os("CVARCHIVE_BROWSE_KEEP_BIG").map(PathBuf::from);
    let summary = browse::render(&src, &mut |path: &str, bytes: Vec<u8>| {
        if let Some(dir) = &keep {
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.join(path), &bytes).unwrap();
        }
        order.push(path.to_owned());
        if path.contains("/images-") {
            let (_, chunk) = pushed(&bytes);
            let first = chunk[0]["id"].as_str().unwrap().parse::<Uuid>().unwrap().as_u128() as usize - 1;
            assert_eq!(first, chunks * IMAGES_PER_CHUNK, "chunks arrive in order");
            assert!(chunk.as_array().unwrap().len() <= IMAGES_PER_CHUNK);
            chunks += 1;
            largest_chunk = largest_chunk.max(bytes.len());
        } else if path.ends_with("/index.js") {
            index = Some((pushed(&bytes).1, bytes.len()));
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    assert_eq!(summary.images, N as u64);
    assert_eq!(chunks, N.div_ceil(IMAGES_PER_CHUNK));
    assert!(largest_chunk < 128 << 10, "a chunk is {largest_chunk} bytes");
    // Chunks are emitted while images.jsonl is read, before the index needs the whole pass.
    assert!(order.iter().position(|p| p.ends_with("index.js")) > order.iter().position(|p| p.contains("images-0399")));
    let (index, index_bytes) = index.unwrap();
    assert!(index_bytes < 1 << 20, "the index is {index_bytes} bytes");
    assert_eq!(index["untagged"].as_array().unwrap().len(), N / 10);
    let zero = index["tags"][0].as_array().unwrap();
    assert_eq!(zero.len(), (0..N).filter(|i| i % 10 != 0 && i % 3 == 0).count());
    assert!(zero.windows(2).all(|w| w[0].as_u64() < w[1].as_u64()), "ordinals ascend");
}

/// The page in a real browser: every project, its tag counts and first page of images, a tag
/// filter, regions drawn, details on selection, no console error, no request off file://.
#[tokio::test]
async fn the_page_works_in_headless_chromium() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready = Path::new("/usr/bin/chromium").exists() && browser_dir.join("node_modules/playwright-core").exists();
    let fix = "run scripts/ci-browser-deps";
    if !crate::support::tools::require("Chromium or tests/browser/node_modules/playwright-core", ready, fix) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (emu, archive) = fixture_archive(dir.path()).await;
    let payload = payload(&archive);
    // CVARCHIVE_BROWSE_KEEP=<dir> keeps the laid-out archive there, to open by hand.
    let site = std::env::var_os("CVARCHIVE_BROWSE_KEEP").map_or_else(|| dir.path().join("x"), PathBuf::from);
    let (index_html, _) = browse::materialize(&archive, &site).unwrap();
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browse.png");
    let _ = std::fs::remove_file(&shot);
    let o = tokio::process::Command::new("node")
        .arg(browser_dir.join("check.mjs"))
        .arg(&index_html)
        .arg(&shot)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    assert!(o.status.success(), "check.mjs failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let seen: Value = serde_json::from_slice(&o.stdout).expect("check.mjs prints JSON");

    assert_eq!(seen["consoleErrors"], json!([]), "console");
    assert_eq!(seen["pageErrors"], json!([]), "page errors");
    assert_eq!(seen["failedRequests"], json!([]));
    let requests = seen["requests"].as_array().unwrap();
    assert!(requests.iter().all(|r| r.as_str().unwrap().starts_with("file://")), "{requests:?}");
    let data_url = url::Url::from_file_path(index_html.parent().unwrap()).unwrap().to_string();
    assert!(requests.iter().all(|r| r.as_str().unwrap().starts_with(&data_url)), "only files beside the page");

    let projects = emu.projects();
    let shown: HashMap<String, &Value> =
        seen["projects"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap().to_owned(), p)).collect();
    assert_eq!(shown.len(), projects.len(), "every project in the navigation");
    assert_eq!(seen["home"]["rows"].as_array().unwrap().len(), projects.len(), "every project on the summary");
    let (mut drawn, mut filtered, mut details, mut marked) = (0, 0, 0, 0);
    for p in projects {
        let view = shown[&p.to_string()];
        let account = json(&payload, "account.json");
        let name =
            account["projects"].as_array().unwrap().iter().find(|r| r["id"] == p.to_string()).unwrap()["name"].clone();
        assert_eq!(view["title"], name);
        let lines = jsonl(&payload, &format!("projects/{p}/images.jsonl"));
        let tags = json(&payload, &format!("projects/{p}/tags.json"));
        let rows = view["tags"].as_array().unwrap();
        assert_eq!(rows.len(), tags.as_array().unwrap().len(), "{p}: a row per tag");
        for (row, t) in rows.iter().zip(tags.as_array().unwrap()) {
            assert_eq!(row["id"], t["id"]);
            assert_eq!(row["reported"].as_str().unwrap(), t["imageCount"].to_string());
            let carrying = lines.iter().filter(|l| carries(l, t["id"].as_str().unwrap())).count();
            assert_eq!(row["archived"].as_str().unwrap(), carrying.to_string());
        }
        // The first page: every image, in archive order, loaded, with its regions drawn.
        let grid = view["images"].as_array().unwrap();
        let ids: Vec<&Value> = grid.iter().map(|t| &t["id"]).collect();
        let expected: Vec<&Value> = lines.iter().take(48).map(|l| &l["id"]).collect();
        assert_eq!(ids, expected, "{p}: first page");
        for (tile, line) in grid.iter().zip(&lines) {
            assert_eq!(tile["loaded"], true, "{p}: image {} loads", line["id"]);
            assert_eq!(tile["onlyInIterations"], line["workspace"] == false, "{p}: {} marked", line["id"]);
            marked += usize::from(line["workspace"] == false);
            let regions = line["regions"].as_array().map_or(0, Vec::len);
            assert_eq!(tile["regions"].as_array().unwrap().len(), regions, "{p}: regions of {}", line["id"]);
            drawn += regions;
        }
        filtered += check_filters(p, view, &lines, &tags);
        check_membership(p, view, &lines, &payload);
        if let Some(d) = view.get("detail") {
            let line = lines.iter().find(|l| l["id"] == d["id"]).unwrap();
            let regions = line["regions"].as_array().map_or(0, Vec::len);
            assert_eq!(d["regions"], regions);
            assert_eq!(d["drawn"], regions);
            let meta = line["metadata"].as_object().map_or(0, |m| m.len());
            assert_eq!(d["meta"].as_array().unwrap().len(), meta);
            details += 1;
        }
        let predictions = jsonl(&payload, &format!("projects/{p}/predictions.jsonl"));
        let got: Vec<&Value> = view["predictions"].as_array().unwrap().iter().map(|t| &t["id"]).collect();
        assert_eq!(got, predictions.iter().map(|l| &l["id"]).collect::<Vec<_>>());
        for (i, it) in view["iterations"].as_array().unwrap().iter().enumerate() {
            let perf = payload.get(&format!("projects/{p}/iterations/{}/performance.json", it["id"].as_str().unwrap()));
            if let Some(perf) = perf {
                let perf: Value = serde_json::from_slice(perf).unwrap();
                let n = perf["perTagPerformance"].as_array().unwrap().len();
                assert_eq!(it["perfTags"].as_array().unwrap().len(), n, "{p}: iteration {i}");
                assert_eq!(it["chartBars"], n.min(40) * 3);
            }
        }
    }
    assert!(drawn > 0 && filtered > 0 && details > 0, "regions drawn, a filter applied, details shown");
    assert!(marked > 0, "the fixture's image only an iteration holds is marked");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "a real screenshot at {}", shot.display());
}

/// Each tag filter of the page shows exactly the images carrying the tag (untagged, tagged and
/// the iteration filters likewise); returns how many tag filters showed any.
fn check_filters(p: Uuid, view: &Value, lines: &[Value], tags: &Value) -> usize {
    let mut filtered = 0;
    for (value, tiles) in view["filters"].as_object().unwrap() {
        let got: Vec<&str> = tiles.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        let want: Vec<&str> = lines
            .iter()
            .filter(|l| match value.as_str() {
                "untagged" => l["taggingStatus"] == "Untagged",
                "tagged" => l["taggingStatus"] == "Tagged",
                "iteration-only" => l["workspace"] == false,
                "workspace" => l["workspace"] != false,
                v => {
                    carries(l, tags[v.strip_prefix("tag:").unwrap().parse::<usize>().unwrap()]["id"].as_str().unwrap())
                }
            })
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{p}: filter {value}");
        filtered += usize::from(value.starts_with("tag:") && !want.is_empty());
    }
    let only = lines.iter().filter(|l| l["workspace"] == false).count();
    assert_eq!(view["filters"].get("iteration-only").is_some(), only > 0, "{p}: the filter when there are any");
    filtered
}

/// Each image's details say whether the workspace holds it and name its iterations.
fn check_membership(p: Uuid, view: &Value, lines: &[Value], payload: &BTreeMap<String, Vec<u8>>) {
    let iterations = json(payload, &format!("projects/{p}/iterations.json"));
    let names: HashMap<&str, &str> = iterations
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["name"].as_str().unwrap()))
        .collect();
    assert_eq!(view["membership"].as_array().map_or(0, Vec::len), lines.len().min(12), "{p}: details opened");
    for (seen, line) in view["membership"].as_array().into_iter().flatten().zip(lines) {
        assert_eq!(seen["id"], line["id"]);
        let workspace = seen["workspace"].as_str().unwrap();
        assert_eq!(workspace == "yes", line["workspace"] != false, "{p}: {workspace}");
        let held: Vec<&str> =
            line["iterations"].as_array().unwrap().iter().map(|i| names[i.as_str().unwrap()]).collect();
        let want = if held.is_empty() { "none".to_owned() } else { held.join(", ") };
        assert_eq!(seen["iterations"], want.as_str(), "{p}: {}", line["id"]);
    }
}

/// Tag counts on the page: the service's, and the archive's own from images.jsonl.
fn check_tag_counts(p: Uuid, payload: &BTreeMap<String, Vec<u8>>, lines: &[Value], project: &Value, index: &Value) {
    let tags = json(payload, &format!("projects/{p}/tags.json"));
    for (i, t) in tags.as_array().unwrap().iter().enumerate() {
        let row = &project["tags"][i];
        assert_eq!(row["id"], t["id"]);
        assert_eq!(row["imageCount"], t["imageCount"]);
        let carrying = lines.iter().filter(|l| carries(l, t["id"].as_str().unwrap())).count();
        assert_eq!(row["archived"], carrying, "tag {}", t["name"]);
        assert_eq!(index["tags"][i].as_array().unwrap().len(), carrying);
    }
}
