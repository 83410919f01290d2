//! Builders the writer tests share: a complete bag as a list of items, writing it resumably,
//! reading an archive back by bag-relative name, and the outside readers (Python, unzip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cvarchive::archive::layout::{self, sniff_extension};
use cvarchive::archive::{BagWriter, Error};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::support::fixtures::{image_bytes, info, listing_line, ITERATION, PROJECT};

/// The bag folder every writer test uses.
pub const BAG: &str = "bag";
/// The fingerprint every writer test uses.
pub const FP: &str = "job-1";

/// One payload file and how it is written.
#[derive(Debug, Clone)]
pub enum Item {
    Stored(String, Vec<u8>),
    Deflated(String, Vec<u8>),
    Streamed(String, Vec<u8>),
}

impl Item {
    pub fn path(&self) -> &str {
        match self {
            Item::Stored(p, _) | Item::Deflated(p, _) | Item::Streamed(p, _) => p,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Item::Stored(_, b) | Item::Deflated(_, b) | Item::Streamed(_, b) => b,
        }
    }

    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.bytes()).into()
    }

    pub fn add(&self, w: &mut BagWriter) -> Result<(), Error> {
        match self {
            Item::Stored(p, b) => w.add_stored(p, b, crc32fast::hash(b), Sha256::digest(b).into()),
            Item::Deflated(p, b) => w.add_deflated(p, b),
            Item::Streamed(p, b) => w.add_deflated_from(p, &mut b.as_slice()),
        }
    }
}

/// The image id of image `i`.
pub fn image_id(i: usize) -> Uuid {
    Uuid::from_u128(0x1000 + i as u128)
}

/// A complete bag with `n` images (every third one larger), as verify wants it: metadata, the
/// images, their listing, one prediction and `account.json`.
pub fn items(n: usize) -> Vec<Item> {
    let p = PROJECT;
    let mut v = vec![
        Item::Deflated(
            layout::project_json(p),
            br#"{"id":"11111111-1111-1111-1111-111111111111","name":"cats"}"#.into(),
        ),
        Item::Deflated(layout::tags_json(p), br#"[{"id":"00000000-0000-0000-0000-0000000000c1","name":"cat"}]"#.into()),
        Item::Deflated(layout::iterations_json(p), format!(r#"[{{"id":"{ITERATION}"}}]"#).into_bytes()),
        Item::Streamed(layout::image_performances_jsonl(p, ITERATION), b"{\"id\":\"a1\"}\n".repeat(500)),
    ];
    let mut listing = String::new();
    for i in 0..n {
        let mut bytes = image_bytes(i);
        if i % 3 == 0 {
            bytes.extend((0..40_000).map(|j| ((j * 13 + i) % 256) as u8));
        }
        let file = layout::image_file(p, image_id(i), sniff_extension(&bytes));
        listing.push_str(&listing_line(p, image_id(i), &file, &bytes, i % 2 == 0));
        v.push(Item::Stored(file, bytes));
    }
    v.push(Item::Streamed(layout::images_jsonl(p), listing.into_bytes()));
    let pred = image_bytes(7);
    let pred_file = layout::prediction_file(p, Uuid::from_u128(0xb1), sniff_extension(&pred));
    let pred_line = listing_line(p, Uuid::from_u128(0xb1), &pred_file, &pred, false);
    v.push(Item::Stored(pred_file, pred));
    v.push(Item::Deflated(layout::predictions_jsonl(p), pred_line.into_bytes()));
    let account = serde_json::json!({
        "format": "cvarchive/1", "complete": true,
        "projects": [{"id": p, "name": "cats", "missing": []}], "missing": []
    });
    v.push(Item::Deflated(layout::account_json().into(), account.to_string().into_bytes()));
    v
}

/// `dir/name.partial`, the partial file for the final archive `dir/name`.
pub fn partial_for(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Finishes `w` and renames its partial file to `final_path`, as the export does.
pub fn finish_to(w: BagWriter, final_path: &Path) {
    let partial = w.path().to_path_buf();
    w.finish(&info()).unwrap();
    std::fs::rename(&partial, final_path).unwrap();
}

/// Writes `items` without interruption to `dir/name`, resumably, and returns the path.
pub fn write_items(dir: &Path, name: &str, items: &[Item], tune: impl FnOnce(&mut BagWriter)) -> PathBuf {
    let final_path = dir.join(name);
    let mut w = BagWriter::create(&partial_for(&final_path), BAG, FP).unwrap();
    tune(&mut w);
    for item in items {
        item.add(&mut w).unwrap();
    }
    finish_to(w, &final_path);
    final_path
}

/// Every entry of a zip, decompressed, keyed by its name below the bag folder (so archives with
/// different folder names compare).
pub fn bag_contents(path: &Path) -> BTreeMap<String, Vec<u8>> {
    crate::support::zip_entries(path)
        .into_iter()
        .map(|(name, bytes)| (name.split_once('/').map(|(_, rest)| rest.to_string()).unwrap_or(name), bytes))
        .collect()
}

/// Asserts a full verify finds nothing.
pub fn assert_verifies(path: &Path) {
    let report = cvarchive::verify::verify(path, &Default::default()).unwrap();
    assert!(report.is_clean(), "{}: {:#?}", path.display(), report.findings);
}

/// What Python's `zipfile` reads: per entry its name, SHA-256, year and UTF-8 flag, after
/// `testzip()` (which checks every CRC) found nothing.
pub fn python_listing(path: &Path) -> BTreeMap<String, (String, u16, bool)> {
    let script = r#"
import hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    if bad is not None:
        sys.exit("bad CRC in " + bad)
    for i in z.infolist():
        print(repr((i.filename, hashlib.sha256(z.read(i)).hexdigest(), i.date_time[0], bool(i.flag_bits & 0x800))))
"#;
    let out =
        std::process::Command::new(crate::support::tools::python()).args(["-c", script]).arg(path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python zipfile: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .map(|l| {
            let l = l.trim_start_matches('(').trim_end_matches(')');
            let parts: Vec<&str> = l.split(", ").collect();
            let unquote = |s: &str| s.trim_matches('\'').to_string();
            (unquote(parts[0]), (unquote(parts[1]), parts[2].parse().unwrap(), parts[3] == "True"))
        })
        .collect()
}

/// `unzip -t` on the archive, if `unzip` is installed: `Some(passed)`; a missing `unzip` is
/// under the skip policy (`support::tools`).
pub fn unzip_test(path: &Path) -> Option<bool> {
    if !crate::support::tools::require_command("unzip", "install unzip (Debian: apt-get install unzip)") {
        return None;
    }
    let out = std::process::Command::new("unzip").arg("-tq").arg(path).output().unwrap();
    if !out.status.success() {
        eprintln!("unzip -t {}: {}", path.display(), String::from_utf8_lossy(&out.stdout));
    }
    Some(out.status.success())
}
