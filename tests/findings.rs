//! One test per kind of finding that the damage matrix in `verify.rs` does not reach, each named
//! after its kind: the smallest archive that shows it, built from the good bag, and the finding
//! expected by kind and path (issue 18 item 5).

use std::path::{Path, PathBuf};

use cvarchive::archive::data::MAX_LINE_BYTES;
use cvarchive::archive::layout;
use cvarchive::verify::{verify, FindingKind, Report, VerifyOptions};

use crate::support::assert_finding;
use crate::support::bags::{grow_central_size, rebag, recompute_tagmanifest, replace_entry, rewrite};
use crate::support::fixtures::{write_good_bag, IMAGES, PROJECT};

/// The good bag edited by `edit` (entry by entry, manifests kept) and verified in full.
fn verify_rewritten(name: &str, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let damaged = dir.path().join(format!("{name}.zip"));
    rewrite(&good, &damaged, edit);
    verify(&damaged, &VerifyOptions::default()).unwrap()
}

/// The good bag's payload edited by `edit`, re-bagged so BagIt agrees, and verified in full.
fn verify_rebagged(name: &str, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let damaged = dir.path().join(format!("{name}.zip"));
    rebag(&good, &damaged, edit);
    verify(&damaged, &VerifyOptions::default()).unwrap()
}

fn drop_entry(list: &mut Vec<(String, Vec<u8>)>, suffix: &str) {
    let before = list.len();
    list.retain(|(n, _)| !n.ends_with(suffix));
    assert_eq!(list.len(), before - 1, "{suffix} was one entry");
}

#[test]
fn outside_bag() {
    let report = verify_rewritten("outside", |l| l.push(("elsewhere/notes.txt".into(), b"hi".to_vec())));
    assert_finding(&report, FindingKind::OutsideBag, "elsewhere/notes.txt");
}

#[test]
fn overlapping_entries() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let first = format!("good/data/{}", layout::image_file(PROJECT, IMAGES[0], "jpg"));
    let reader = cvarchive::archive::BagReader::open(&good).unwrap();
    let next = (crate::support::entries(&reader).iter())
        .filter(|e| e.header_offset > reader.entry(&first).unwrap().unwrap().header_offset)
        .min_by_key(|e| e.header_offset)
        .unwrap()
        .name
        .clone();
    drop(reader);
    grow_central_size(&good, &first, 100);
    let report = verify(&good, &VerifyOptions::default()).unwrap();
    let rel = next.strip_prefix("good/").unwrap();
    assert_finding(&report, FindingKind::OverlappingEntries, rel);
}

#[test]
fn invalid_bagit() {
    let report = verify_rewritten("old_bagit", |l| {
        replace_entry(l, "/bagit.txt", |_| "BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n".into());
        recompute_tagmanifest(l);
    });
    assert_finding(&report, FindingKind::InvalidBagit, "bagit.txt");
}

#[test]
fn missing_bag_info() {
    let report = verify_rewritten("no_bag_info", |l| drop_entry(l, "/bag-info.txt"));
    assert_finding(&report, FindingKind::MissingBagInfo, "bag-info.txt");
}

#[test]
fn invalid_bag_info() {
    let report = verify_rewritten("no_oxum", |l| {
        replace_entry(l, "/bag-info.txt", |s| {
            s.lines().filter(|l| !l.starts_with("Payload-Oxum:")).map(|l| format!("{l}\n")).collect()
        });
        recompute_tagmanifest(l);
    });
    assert_finding(&report, FindingKind::InvalidBagInfo, "bag-info.txt");
}

#[test]
fn missing_manifest() {
    let report = verify_rewritten("no_manifest", |l| drop_entry(l, "/manifest-sha256.txt"));
    assert_finding(&report, FindingKind::MissingManifest, "manifest-sha256.txt");
}

#[test]
fn invalid_manifest_line() {
    let report = verify_rewritten("bad_line", |l| {
        replace_entry(l, "/manifest-sha256.txt", |s| format!("{s}not a manifest line\n"));
        recompute_tagmanifest(l);
    });
    assert_finding(&report, FindingKind::InvalidManifestLine, "manifest-sha256.txt");
}

#[test]
fn missing_tag_manifest() {
    let report = verify_rewritten("no_tagmanifest", |l| drop_entry(l, "/tagmanifest-sha256.txt"));
    assert_finding(&report, FindingKind::MissingTagManifest, "tagmanifest-sha256.txt");
}

#[test]
fn missing_metadata() {
    let report = verify_rebagged("no_account", |p| {
        p.retain(|(n, _)| n != "account.json");
    });
    assert_finding(&report, FindingKind::MissingMetadata, "data/account.json");
}

#[test]
fn invalid_listing() {
    let listing = layout::images_jsonl(PROJECT);
    let report = verify_rebagged("no_file_field", |p| {
        let entry = p.iter_mut().find(|(n, _)| *n == listing).unwrap();
        let text = String::from_utf8(entry.1.clone()).unwrap();
        let mut lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        lines[0].as_object_mut().unwrap().remove("file");
        entry.1 = lines.iter().map(|v| format!("{v}\n")).collect::<String>().into_bytes();
    });
    assert_finding(&report, FindingKind::InvalidListing, &format!("data/{listing}"));
}

#[test]
fn too_large() {
    let listing = layout::images_jsonl(PROJECT);
    let report = verify_rebagged("long_line", |p| {
        let entry = p.iter_mut().find(|(n, _)| *n == listing).unwrap();
        let mut long = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(MAX_LINE_BYTES + 10)).into_bytes();
        long.extend_from_slice(&entry.1);
        entry.1 = long;
    });
    assert_finding(&report, FindingKind::TooLarge, &format!("data/{listing}"));
}

/// The paths the tests above build from, so a renamed layout fails here first.
#[test]
fn the_good_bag_has_what_these_tests_edit() {
    let dir = tempfile::tempdir().unwrap();
    let good: PathBuf = write_good_bag(dir.path(), "good");
    let names: Vec<String> = crate::support::bags::entries(Path::new(&good)).into_iter().map(|(n, _)| n).collect();
    for want in ["good/data/account.json".to_string(), format!("good/data/{}", layout::images_jsonl(PROJECT))] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(verify(&good, &VerifyOptions::default()).unwrap().is_clean());
}
