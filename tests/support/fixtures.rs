//! The small good bag the archive, verify, findings and hostile-archive tests start from (one
//! classification project: three images, a stored prediction, an iteration with its
//! performance), its fixed ids and bag-info, and the fixture account exported into an archive.

use std::fs::File;
use std::path::{Path, PathBuf};

use cvarchive::archive::layout::{self, sniff_extension};
use cvarchive::archive::{BagInfo, BagWriter};
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{client_for, fixture_emulator, temp_archive};

/// The good bag's one project.
pub const PROJECT: Uuid = Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111);
/// The good bag's one iteration.
pub const ITERATION: Uuid = Uuid::from_u128(0x2222_2222_2222_2222_2222_2222_2222_2222);
/// The good bag's three images (the first two tagged).
pub const IMAGES: [Uuid; 3] = [Uuid::from_u128(0xa1), Uuid::from_u128(0xa2), Uuid::from_u128(0xa3)];
/// The good bag's stored prediction image.
pub const PREDICTION: Uuid = Uuid::from_u128(0xb1);

/// Distinct fake image bytes with real magic numbers, so sniffing picks their extensions.
pub fn image_bytes(i: usize) -> Vec<u8> {
    let mut bytes = match i % 3 {
        0 => vec![0xFF, 0xD8, 0xFF, 0xE0],
        1 => b"\x89PNG\r\n\x1a\n".to_vec(),
        _ => b"GIF89a".to_vec(),
    };
    bytes.extend((0..3000 + i * 100).map(|j| ((j * 31 + i * 7) % 251) as u8));
    bytes
}

/// The bag-info the good bag is finished with.
pub fn info() -> BagInfo {
    BagInfo {
        source_host: "westus.api.cognitive.microsoft.com".into(),
        api_version: "v3.3".into(),
        tool_version: "0.1.0".into(),
        bagging_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        extra: vec![("Source-Organization".into(), "Example Org".into())],
    }
}

/// One `images.jsonl` (or `predictions.jsonl`) line for image `id` stored at `file`.
pub fn listing_line(p: Uuid, id: Uuid, file: &str, bytes: &[u8], tagged: bool) -> String {
    let mut v = serde_json::json!({
        "id": id, "width": 10, "height": 10,
        "file": file, "sha256": hex::encode(Sha256::digest(bytes)), "size": bytes.len(),
    });
    if tagged {
        v["taggingStatus"] = "Tagged".into();
        v["tags"] = serde_json::json!([{"tagId": Uuid::from_u128(0xc1), "tagName": "cat"}]);
    } else {
        v["taggingStatus"] = "Untagged".into();
    }
    let _ = p;
    format!("{v}\n")
}

/// Writes a small good bag at `dir/<name>.zip` and returns its path.
pub fn write_good_bag(dir: &Path, name: &str) -> PathBuf {
    write_bag(dir, name, |_| {})
}

/// Writes the good bag, letting `more` add payload before it is finished.
pub fn write_bag(dir: &Path, name: &str, more: impl FnOnce(&mut BagWriter)) -> PathBuf {
    let path = dir.join(format!("{name}.zip"));
    let mut w = BagWriter::new(File::create(&path).unwrap(), &layout::bag_name_for(&path)).unwrap();
    let p = PROJECT;
    w.add_deflated(&layout::project_json(p), br#"{"id":"11111111-1111-1111-1111-111111111111","name":"cats"}"#)
        .unwrap();
    w.add_deflated(
        &layout::tags_json(p),
        br#"[{"id":"00000000-0000-0000-0000-0000000000c1","name":"cat","imageCount":2}]"#,
    )
    .unwrap();
    w.add_deflated(&layout::iterations_json(p), format!(r#"[{{"id":"{ITERATION}","name":"Iteration 1"}}]"#).as_bytes())
        .unwrap();
    w.add_deflated(&layout::performance_json(p, ITERATION), br#"{"precision":0.9,"recall":0.8}"#).unwrap();
    let perf = "{\"id\":\"a1\",\"predictions\":[]}\n{\"id\":\"a2\",\"predictions\":[]}\n";
    w.add_deflated_from(&layout::image_performances_jsonl(p, ITERATION), &mut perf.as_bytes()).unwrap();
    w.add_deflated(&layout::exports_json(p, ITERATION), b"[]").unwrap();
    let mut listing = String::new();
    for (i, id) in IMAGES.iter().enumerate() {
        let bytes = image_bytes(i);
        let file = layout::image_file(p, *id, sniff_extension(&bytes));
        w.add_stored(&file, &bytes, crc32fast::hash(&bytes), Sha256::digest(&bytes).into()).unwrap();
        listing.push_str(&listing_line(p, *id, &file, &bytes, i < 2));
    }
    w.add_deflated_from(&layout::images_jsonl(p), &mut listing.as_bytes()).unwrap();
    let pred = image_bytes(7);
    let pred_file = layout::prediction_file(p, PREDICTION, sniff_extension(&pred));
    w.add_stored(&pred_file, &pred, crc32fast::hash(&pred), Sha256::digest(&pred).into()).unwrap();
    w.add_deflated(&layout::predictions_jsonl(p), listing_line(p, PREDICTION, &pred_file, &pred, false).as_bytes())
        .unwrap();
    more(&mut w);
    // What inspect reports of the project comes from here: the bytes are the files'.
    let image_total: usize = (0..IMAGES.len()).map(|i| image_bytes(i).len()).sum();
    let account = serde_json::json!({
        "format": "cvarchive/1", "tool": {"name": "cvarchive", "version": "0.1.0"},
        "source": {"endpointHost": "westus.api.cognitive.microsoft.com", "apiVersion": "v3.3"},
        "started": "2026-11-27T10:00:00Z", "finished": "2026-11-27T10:05:00Z", "complete": true,
        "projects": [{"id": p, "name": "cats", "domainType": "Classification",
            "reported": {"tagged": 2, "untagged": 1},
            "archived": {"tagged": 2, "untagged": 1, "tags": 1, "iterations": 1, "predictions": 1,
                         "modelExports": 0, "imageBytes": image_total, "predictionBytes": pred.len(), "modelBytes": 0},
            "missing": []}],
        "missing": []
    });
    w.add_deflated(layout::account_json(), account.to_string().as_bytes()).unwrap();
    w.finish(&info()).unwrap();
    path
}

/// The fixture's classification project: a published iteration, tagged and untagged images,
/// stored predictions.
pub const CLASSIFICATION: &str = "e532f7f9-9827-476d-9159-4b592bf2ea6f";

/// The fixture account exported into a fresh archive.
pub async fn fixture_archive() -> (tempfile::TempDir, PathBuf) {
    let emu = fixture_emulator().await;
    let (dir, out) = temp_archive("demo.zip");
    export(&client_for(&emu), &ExportOptions::new(&out), &NoProgress, &CancellationToken::new())
        .await
        .expect("export succeeds");
    (dir, out)
}
