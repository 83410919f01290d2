//! verify and inspect: a good bag is clean; one damaged archive per kind of damage, each
//! expecting its finding by kind and path; bounded memory on bombs; `--fast`'s limits; our
//! verdict cross-checked with the Python `bagit` library; the CLI's exit codes.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use cvarchive::archive::layout::{self, unsafe_path_reason};
use cvarchive::archive::BagReader;
use cvarchive::verify::{inspect, verify, FindingKind, Report, VerifyOptions};
use sha2::{Digest, Sha256};

use crate::support::bags::{rebag, recompute_tagmanifest, rename_raw, replace_entry, rewrite};
use crate::support::fixtures::{image_bytes, write_bag, write_good_bag, IMAGES, PROJECT};
use crate::support::tools::python;
use crate::support::{assert_finding, full, run_measured};

fn fast(path: &Path) -> Report {
    verify(path, &VerifyOptions { fast: true, ..VerifyOptions::default() }).unwrap()
}

fn image_path(i: usize) -> String {
    format!("data/{}", layout::image_file(PROJECT, IMAGES[i], layout::sniff_extension(&image_bytes(i))))
}

/// One damaged archive per kind of damage: (case name, path, expected kind, expected finding path,
/// whether it can be extracted safely for the Python cross-check).
struct Case {
    name: &'static str,
    path: PathBuf,
    kind: FindingKind,
    at: String,
    extractable: bool,
}

fn matrix(dir: &Path) -> Vec<Case> {
    let good = write_good_bag(dir, "good");
    let mut cases = Vec::new();
    let mut case = |name: &'static str, kind: FindingKind, at: String, extractable: bool| {
        let path = dir.join(format!("{name}.zip"));
        cases.push(Case { name, path, kind, at, extractable });
        cases.last().unwrap().path.clone()
    };

    // A flipped byte inside a stored image: same size, different content.
    let p = case("flipped_image", FindingKind::HashMismatch, image_path(1), true);
    let mut bytes = std::fs::read(&good).unwrap();
    let img = image_bytes(1);
    let at = bytes.windows(img.len()).position(|w| w == img.as_slice()).unwrap();
    bytes[at + 100] ^= 0x01;
    std::fs::write(&p, bytes).unwrap();

    // A changed character in a JSON file that the zip itself carries faithfully.
    let project = format!("data/{}", layout::project_json(PROJECT));
    let p = case("edited_json", FindingKind::HashMismatch, project.clone(), true);
    rewrite(&good, &p, |l| replace_entry(l, "/project.json", |s| s.replace("cats", "cbts")));

    let p = case("missing_image", FindingKind::MissingPayloadFile, image_path(0), true);
    rewrite(&good, &p, |l| l.retain(|(n, _)| !n.ends_with(&image_path(0))));

    let p = case("extra_file", FindingKind::UnlistedPayloadFile, "data/extra.txt".into(), true);
    rewrite(&good, &p, |l| l.push(("good/data/extra.txt".to_string(), b"hi".to_vec())));

    let tags = format!("data/{}", layout::tags_json(PROJECT));
    let p = case("edited_manifest", FindingKind::HashMismatch, tags.clone(), true);
    rewrite(&good, &p, |l| {
        replace_entry(l, "/manifest-sha256.txt", |s| {
            s.lines()
                .map(
                    |line| {
                        if line.ends_with(&tags) {
                            format!("{} {tags}\n", "0".repeat(64))
                        } else {
                            format!("{line}\n")
                        }
                    },
                )
                .collect()
        })
    });

    let p = case("tagmanifest_mismatch", FindingKind::TagManifestMismatch, "bag-info.txt".into(), true);
    rewrite(&good, &p, |l| replace_entry(l, "/bag-info.txt", |s| s.replace("Example Org", "Exemple Org")));

    let p = case("wrong_oxum", FindingKind::PayloadOxumMismatch, "bag-info.txt".into(), true);
    rewrite(&good, &p, |l| {
        replace_entry(l, "/bag-info.txt", |s| {
            s.lines()
                .map(|line| match line.strip_prefix("Payload-Oxum: ") {
                    Some(v) => {
                        let (b, f) = v.split_once('.').unwrap();
                        format!("Payload-Oxum: {}.{f}\n", b.parse::<u64>().unwrap() + 1)
                    }
                    None => format!("{line}\n"),
                })
                .collect()
        });
        recompute_tagmanifest(l);
    });

    let truncated = dir.join("truncated.zip");
    let p = case("truncated", FindingKind::Truncated, truncated.display().to_string(), true);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() * 6 / 10]).unwrap();

    let dup_name = image_path(0);
    let p = case("duplicate", FindingKind::DuplicateEntry, dup_name.clone(), false);
    let decoy = format!("{}q", &dup_name["data/".len()..dup_name.len() - 1]);
    write_bag(dir, "duplicate", |w| {
        w.add_stored(&decoy, b"other", crc32fast::hash(b"other"), Sha256::digest(b"other").into()).unwrap()
    });
    rename_raw(&p, &format!("duplicate/data/{decoy}"), &format!("duplicate/{dup_name}"));

    let evil = "x".repeat(40);
    let dotdot = format!("../../{}", "e".repeat(format!("dotdot/data/{evil}").len() - 6));
    let p = case("dotdot", FindingKind::UnsafeName, dotdot.clone(), false);
    write_bag(dir, "dotdot", |w| w.add_deflated(&evil, b"evil").unwrap());
    rename_raw(&p, &format!("dotdot/data/{evil}"), &dotdot);

    let absolute = format!("/tmp/{}", "a".repeat(format!("absolute/data/{evil}").len() - 5));
    let p = case("absolute", FindingKind::UnsafeName, absolute.clone(), false);
    write_bag(dir, "absolute", |w| w.add_deflated(&evil, b"evil").unwrap());
    rename_raw(&p, &format!("absolute/data/{evil}"), &absolute);

    let p = case("no_bagit", FindingKind::MissingBagit, "bagit.txt".into(), true);
    rewrite(&good, &p, |l| l.retain(|(n, _)| !n.ends_with("/bagit.txt")));
    // The rewritten archives keep the "good/" folder: verify does not tie the folder to the
    // file name, so a renamed archive still verifies.
    cases
}

#[test]
fn a_good_bag_is_clean_in_full_and_fast_mode() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let report = full(&good);
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert!(report.bytes_hashed >= report.payload_bytes && report.payload_bytes > 0);
    assert_eq!(report.bag_name.as_deref(), Some("good"));
    assert!(fast(&good).is_clean());
    assert_eq!(fast(&good).bytes_hashed, 0);
}

#[test]
fn every_kind_of_damage_is_found_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    for case in matrix(dir.path()) {
        let report = full(&case.path);
        assert!(!report.is_clean(), "{}: no findings", case.name);
        assert_finding(&report, case.kind, &case.at);
    }
}

#[test]
fn a_flipped_byte_in_compressed_json_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let reader = BagReader::open(&good).unwrap();
    let e = &reader.bag_entry("data/account.json").unwrap().unwrap();
    let mut bytes = std::fs::read(&good).unwrap();
    let name_len =
        u16::from_le_bytes([bytes[e.header_offset as usize + 26], bytes[e.header_offset as usize + 27]]) as u64;
    let extra_len =
        u16::from_le_bytes([bytes[e.header_offset as usize + 28], bytes[e.header_offset as usize + 29]]) as u64;
    let data = e.header_offset + 30 + name_len + extra_len;
    bytes[(data + e.compressed_size / 2) as usize] ^= 0x10;
    let damaged = dir.path().join("json_flip.zip");
    std::fs::write(&damaged, bytes).unwrap();
    let report = full(&damaged);
    let damage =
        [FindingKind::HashMismatch, FindingKind::UnreadableEntry, FindingKind::SizeMismatch, FindingKind::CrcMismatch];
    assert!(
        report.findings.iter().any(|f| f.path == "data/account.json" && damage.contains(&f.kind)),
        "{:#?}",
        report.findings
    );
}

#[test]
fn listings_must_agree_with_the_images() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let listing = layout::images_jsonl(PROJECT);

    let unlisted = dir.path().join("unlisted.zip");
    rebag(&good, &unlisted, |l| {
        let e = l.iter_mut().find(|(n, _)| *n == listing).unwrap();
        let text = String::from_utf8(e.1.clone()).unwrap();
        e.1 = text.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>().into_bytes();
    });
    let report = full(&unlisted);
    assert_finding(&report, FindingKind::UnlistedImage, &image_path(0));
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);

    let wrong_size = dir.path().join("wrong_size.zip");
    rebag(&good, &wrong_size, |l| {
        let e = l.iter_mut().find(|(n, _)| *n == listing).unwrap();
        let text = String::from_utf8(e.1.clone()).unwrap();
        let size = image_bytes(2).len();
        e.1 = text.replace(&format!("\"size\":{size}"), &format!("\"size\":{}", size + 1)).into_bytes();
    });
    assert_finding(&fast(&wrong_size), FindingKind::ListedFileMismatch, &image_path(2));

    let gone = dir.path().join("gone.zip");
    rebag(&good, &gone, |l| l.retain(|(n, _)| format!("data/{n}") != image_path(1)));
    assert_finding(&full(&gone), FindingKind::ListedFileMissing, &image_path(1));

    let bad_json = dir.path().join("bad_json.zip");
    rebag(&good, &bad_json, |l| {
        l.iter_mut().find(|(n, _)| n.ends_with("tags.json")).unwrap().1 = b"[{\"id\":".to_vec()
    });
    assert_finding(&full(&bad_json), FindingKind::InvalidJson, &format!("data/{}", layout::tags_json(PROJECT)));
}

#[test]
fn fast_mode_catches_size_and_structure_damage_but_not_a_same_size_flip() {
    let dir = tempfile::tempdir().unwrap();
    let cases = matrix(dir.path());
    let by_name = |n: &str| cases.iter().find(|c| c.name == n).unwrap();
    assert!(fast(&by_name("flipped_image").path).is_clean(), "fast mode should not re-hash");
    for name in [
        "missing_image",
        "extra_file",
        "wrong_oxum",
        "truncated",
        "duplicate",
        "dotdot",
        "absolute",
        "no_bagit",
        "tagmanifest_mismatch",
    ] {
        let c = by_name(name);
        assert_finding(&fast(&c.path), c.kind, &c.at);
    }
}

#[test]
fn random_bytes_are_not_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.zip");
    let noise: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(&path, noise).unwrap();
    assert!(verify(&path, &VerifyOptions::default()).is_err());
    assert!(inspect(&path).is_err());
}

#[test]
fn a_high_ratio_entry_is_verified_in_bounded_memory() {
    const BOMB: u64 = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = write_bag(dir.path(), "bomb", |w| {
        let mut spaces = std::io::repeat(b' ').take(BOMB).chain(&b"{}"[..]);
        w.add_deflated_from("bomb.json", &mut spaces).unwrap();
    });
    let reader = BagReader::open(&path).unwrap();
    let e = &reader.bag_entry("data/bomb.json").unwrap().unwrap();
    assert!(e.size / e.compressed_size.max(1) > 500, "not a high-ratio entry");
    let (code, peak) = run_measured(&["verify", path.to_str().unwrap()]);
    assert_eq!(code, 0, "the bomb bag is a valid bag");
    assert!(peak > 0, "the child's memory was measured");
    assert!(peak < BOMB / 4, "peak memory {peak} bytes while verifying a {BOMB}-byte entry");
}

#[test]
fn a_lying_declared_size_is_a_finding_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_good_bag(dir.path(), "liar");
    let name = format!("liar/data/{}", layout::project_json(PROJECT));
    let mut bytes = std::fs::read(&path).unwrap();
    // Patch the central directory's uncompressed size to nearly 2 GiB.
    let central = (0..bytes.len() - name.len())
        .find(|&i| i >= 46 && bytes[i - 46..i - 42] == *b"PK\x01\x02" && bytes[i..i + name.len()] == *name.as_bytes())
        .unwrap();
    bytes[central - 46 + 24..central - 46 + 28].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let report = full(&path);
    assert_finding(&report, FindingKind::SizeMismatch, &format!("data/{}", layout::project_json(PROJECT)));
    assert_finding(&fast(&path), FindingKind::PayloadOxumMismatch, "bag-info.txt");
}

/// Extracts with our own safe code: skips unsafe names, duplicates and unreadable entries.
fn safe_extract(zip: &Path, dest: &Path) -> Option<PathBuf> {
    let reader = BagReader::open(zip).ok()?;
    let mut seen = HashSet::new();
    for e in crate::support::entries(&reader) {
        if e.is_dir() || unsafe_path_reason(&e.name).is_some() || !seen.insert(e.name.clone()) {
            continue;
        }
        let Ok(bytes) = reader.read_entry(&e, 64 << 20) else {
            continue;
        };
        let out = dest.join(&e.name);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(out, bytes).unwrap();
    }
    Some(dest.join(reader.bag_name()?))
}

fn python_says_valid(python: &Path, bag: &Path) -> bool {
    let script = "import sys, bagit\ntry:\n    bagit.Bag(sys.argv[1]).validate()\nexcept (bagit.BagError, bagit.BagValidationError) as e:\n    print(e)\n    sys.exit(1)\n";
    let out = Command::new(python).arg("-c").arg(script).arg(bag).output().unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!("python bagit failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn python_bagit_agrees_with_our_verdicts() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let mut checked = vec![("good".to_string(), good)];
    checked.extend(matrix(dir.path()).into_iter().filter(|c| c.extractable).map(|c| (c.name.to_string(), c.path)));
    for (name, zip) in checked {
        let ours = full(&zip).is_clean();
        let out = tempfile::tempdir().unwrap();
        let theirs = match safe_extract(&zip, out.path()) {
            Some(bag) => python_says_valid(&python, &bag),
            None => false,
        };
        assert_eq!(ours, theirs, "{name}: we say clean={ours}, python bagit says valid={theirs}");
    }
}

fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cvarchive")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_cli_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let (code, text) = cli(&["verify", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("intact"), "{text}");

    let damaged = dir.path().join("damaged.zip");
    rewrite(&good, &damaged, |l| l.retain(|(n, _)| !n.ends_with(&image_path(0))));
    let (code, text) = cli(&["verify", "--json", damaged.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let kinds: Vec<_> =
        json["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"missingPayloadFile".to_string()), "{kinds:?}");
    let (code, text) = cli(&["verify", damaged.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(text.contains("missingPayloadFile (1):"), "{text}");

    let noise = dir.path().join("noise.zip");
    std::fs::write(&noise, vec![0x42u8; 5000]).unwrap();
    assert_eq!(cli(&["verify", noise.to_str().unwrap()]).0, 2);
    assert_eq!(cli(&["inspect", noise.to_str().unwrap()]).0, 2);
}

#[test]
fn inspect_summarises_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_good_bag(dir.path(), "good");
    let s = inspect(&good).unwrap();
    assert_eq!(s.source_host.as_deref(), Some("westus.api.cognitive.microsoft.com"));
    assert_eq!(s.tool_version.as_deref(), Some("0.1.0"));
    assert_eq!(s.started.as_deref(), Some("2026-11-27T10:00:00Z"));
    assert_eq!(s.projects.len(), 1);
    let p = &s.projects[0];
    assert_eq!((p.tagged, p.untagged, p.tags), (Some(2), Some(1), Some(1)));
    assert_eq!((p.image_files, p.iterations, p.predictions, p.model_exports), (3, 1, 1, 0));
    let image_bytes_total: u64 = (0..3).map(|i| image_bytes(i).len() as u64).sum();
    assert_eq!(p.image_bytes, image_bytes_total);
    // Written before images only iterations hold were archived: it says nothing about them.
    assert_eq!(p.only_in_iterations, None);
    let (code, text) = cli(&["inspect", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(text.contains("images: 2 tagged, 1 untagged; 3 files,"), "{text}");
    let (_, text) = cli(&["inspect", "--json", good.to_str().unwrap()]);
    assert!(!text.contains("onlyInIterations"), "{text}");

    // Without account.json it still says what the listing shows.
    let bare = dir.path().join("bare.zip");
    rebag(&good, &bare, |l| l.retain(|(n, _)| n != "account.json"));
    let s = inspect(&bare).unwrap();
    assert_eq!(s.projects[0].image_files, 3);
    assert_eq!(s.projects[0].tagged, None);
    assert!(s.notes.iter().any(|n| n.contains("account.json")), "{:?}", s.notes);
    let (code, text) = cli(&["inspect", bare.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(text.contains("3 files"), "{text}");
}

/// Issue 13: an export over a real socket from an account whose trained iterations hold images
/// the workspace lost; inspect counts them apart from tagged and untagged, in text and JSON.
#[tokio::test]
async fn inspect_counts_images_only_iterations_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, archive) =
        crate::support::exported_generated("projects=2,images=30,iteration_only=4,size=1000", dir.path(), "gen").await;
    let s = inspect(&archive).unwrap();
    assert_eq!(s.projects.len(), 2);
    for p in &s.projects {
        let workspace = emu.image_ids(p.id.parse().unwrap()).len() as u64;
        assert_eq!(p.only_in_iterations, Some(4), "{}", p.id);
        assert_eq!(p.tagged.unwrap() + p.untagged.unwrap(), workspace, "tagged and untagged are the workspace's");
        assert_eq!(p.image_files, workspace + 4, "every image's file is archived");
    }
    let out = crate::support::cvarchive(&["inspect", archive.to_str().unwrap()], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(", 4 held only by iterations; 34 files,").count(), 2, "{text}");
    let out = crate::support::cvarchive(&["inspect", "--json", archive.to_str().unwrap()], &[]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in json["projects"].as_array().unwrap() {
        assert_eq!(p["onlyInIterations"], 4, "{p}");
    }
}
