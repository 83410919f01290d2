//! Export, end to end against the emulator over real sockets: every category archived, bytes
//! identical to what the service serves, secrets nowhere, bad input refused clearly.

use std::collections::{BTreeMap, HashSet};

use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use cvarchive::verify::{verify, VerifyOptions};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

async fn export_all(
    emu: &cvarchive::emulator::Emulator,
    name: &str,
) -> (tempfile::TempDir, std::path::PathBuf, cvarchive::export::ExportSummary) {
    let (dir, out) = temp_archive(name);
    let client = client_for(emu);
    let summary = export(&client, &ExportOptions::new(&out), &NoProgress, &CancellationToken::new())
        .await
        .expect("export succeeds");
    (dir, out, summary)
}

/// Every image of every project is in the archive, byte for byte, and listed in images.jsonl
/// with its hash, size and file.
fn assert_every_image_archived(emu: &cvarchive::emulator::Emulator, payload: &BTreeMap<String, Vec<u8>>) -> usize {
    let mut total = 0;
    for project in emu.projects() {
        let lines = jsonl(payload, &format!("projects/{project}/images.jsonl"));
        let listed: BTreeMap<Uuid, &serde_json::Value> =
            lines.iter().map(|l| (l["id"].as_str().unwrap().parse().unwrap(), l)).collect();
        assert_eq!(listed.len(), lines.len(), "no image listed twice in project {project}");
        let mut ids = emu.image_ids(project);
        ids.extend(emu.iteration_only_ids(project));
        assert_eq!(
            listed.keys().copied().collect::<HashSet<_>>(),
            ids.iter().copied().collect::<HashSet<_>>(),
            "project {project}"
        );
        for id in ids {
            let line = listed[&id];
            let file = line["file"].as_str().unwrap();
            let bytes = payload.get(file).unwrap_or_else(|| panic!("{file} archived"));
            let served = emu.image_bytes(project, id).unwrap();
            assert!(bytes == &served, "image {id} bytes equal what the emulator serves");
            assert_eq!(line["size"].as_u64().unwrap(), served.len() as u64);
            assert_eq!(line["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(&served)));
            assert!(line.get("originalImageUri").is_none() && line.get("thumbnailUri").is_none(), "URIs removed");
            total += 1;
        }
    }
    total
}

#[tokio::test]
async fn fixture_account_exports_every_category_and_verifies() {
    let emu = fixture_emulator().await;
    let (_dir, out, summary) = export_all(&emu, "fixture.zip").await;
    assert!(summary.complete, "{:?}", summary.missing);
    let report = verify(&out, &VerifyOptions::default()).expect("readable");
    assert!(report.is_clean(), "{:#?}", report.findings);

    let payload = payload(&out);
    let images = assert_every_image_archived(&emu, &payload);
    assert_eq!(summary.images as usize, images);
    let account = json(&payload, "account.json");
    assert_eq!(account["format"], "cvarchive/1");
    assert_eq!(account["projects"].as_array().unwrap().len(), emu.projects().len());
    let types: Vec<&str> =
        account["projects"].as_array().unwrap().iter().filter_map(|p| p["domainType"].as_str()).collect();
    assert!(types.contains(&"ObjectDetection") && types.contains(&"Classification"), "{types:?}");

    let mut saw_regions = false;
    let mut saw_metadata = false;
    let mut saw_unicode = false;
    let mut saw_trained = false;
    let mut saw_predictions = false;
    let mut saw_empty = false;
    for project in emu.projects() {
        for f in ["project.json", "tags.json", "iterations.json"] {
            json(&payload, &format!("projects/{project}/{f}"));
        }
        let tags = json(&payload, &format!("projects/{project}/tags.json"));
        saw_unicode |= tags.as_array().unwrap().iter().any(|t| !t["name"].as_str().unwrap().is_ascii());
        let lines = jsonl(&payload, &format!("projects/{project}/images.jsonl"));
        saw_empty |= lines.is_empty();
        saw_regions |= lines.iter().any(|l| l["regions"].as_array().is_some_and(|r| !r.is_empty()));
        saw_metadata |= lines.iter().any(|l| l["metadata"].as_object().is_some_and(|m| !m.is_empty()));
        for it in json(&payload, &format!("projects/{project}/iterations.json")).as_array().unwrap() {
            let id = it["id"].as_str().unwrap();
            json(&payload, &format!("projects/{project}/iterations/{id}/exports.json"));
            if it["status"] == "Completed" {
                json(&payload, &format!("projects/{project}/iterations/{id}/performance.json"));
                let perf = jsonl(&payload, &format!("projects/{project}/iterations/{id}/image-performances.jsonl"));
                saw_trained |= !perf.is_empty();
            }
        }
        let predictions = jsonl(&payload, &format!("projects/{project}/predictions.jsonl"));
        assert_eq!(predictions.len(), emu.prediction_ids(project).len());
        for p in &predictions {
            let file = p["file"].as_str().unwrap();
            assert_eq!(hex::encode(Sha256::digest(&payload[file])), p["sha256"].as_str().unwrap());
            saw_predictions = true;
        }
    }
    assert!(saw_regions && saw_metadata && saw_unicode && saw_trained && saw_predictions && saw_empty);
}

#[tokio::test]
async fn the_extracted_demo_archive_passes_python_bagit() {
    let emu = fixture_emulator().await;
    let (dir, out, _) = export_all(&emu, "demo.zip").await;
    // Python's own zipfile extracts (an independent zip reader), the Library of Congress's
    // bagit validates every checksum.
    let script = "import bagit, sys, zipfile\n\
        zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])\n\
        bag = bagit.Bag(sys.argv[2] + '/demo')\n\
        bag.validate()\n\
        print('valid', len(bag.payload_entries()))\n";
    let o = std::process::Command::new(crate::support::tools::python())
        .args(["-c", script, out.to_str().unwrap(), dir.path().join("x").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "bagit.py: {stdout} {}", String::from_utf8_lossy(&o.stderr));
    let files: usize = stdout.trim().strip_prefix("valid ").unwrap().parse().unwrap();
    assert_eq!(files, payload(&out).len());
}

#[tokio::test]
async fn identical_bytes_under_two_ids_are_both_archived() {
    let emu = fixture_emulator().await;
    let (_dir, out, _) = export_all(&emu, "dupes.zip").await;
    let payload = payload(&out);
    let mut by_hash: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for project in emu.projects() {
        for l in jsonl(&payload, &format!("projects/{project}/images.jsonl")) {
            by_hash
                .entry(l["sha256"].as_str().unwrap().to_owned())
                .or_default()
                .push(l["file"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        by_hash.values().any(|files| files.len() >= 2 && files.iter().all(|f| payload.contains_key(f))),
        "the fixture has two images with identical bytes"
    );
}

#[tokio::test]
async fn generated_account_over_many_pages_is_complete() {
    let emu = generated_emulator("projects=3,images=1000,seed=7").await;
    let (_dir, out, summary) = export_all(&emu, "generated.zip").await;
    assert!(summary.complete);
    assert_eq!(summary.projects, 3);
    let payload = payload(&out);
    assert_eq!(assert_every_image_archived(&emu, &payload), 3000);
    let report = verify(&out, &VerifyOptions::default()).expect("readable");
    assert!(report.is_clean(), "{:#?}", report.findings);
    // images.jsonl is in listing order (tagged oldest first, then untagged), whatever the
    // download order was.
    let project = emu.projects()[0];
    let lines = jsonl(&payload, &format!("projects/{project}/images.jsonl"));
    let statuses: Vec<&str> = lines.iter().map(|l| l["taggingStatus"].as_str().unwrap()).collect();
    let first_untagged = statuses.iter().position(|s| *s == "Untagged").unwrap_or(statuses.len());
    assert!(statuses[first_untagged..].iter().all(|s| *s == "Untagged"));
}

#[tokio::test]
async fn relative_uris_are_fetched_through_get_artifact() {
    let emu = generated_emulator("projects=1,images=40,seed=3,relative=true").await;
    let (_dir, out, summary) = export_all(&emu, "vnet.zip").await;
    assert!(summary.complete);
    assert_eq!(assert_every_image_archived(&emu, &payload(&out)), 40);
    assert!(emu.requests().iter().any(|r| r.operation == "GetArtifact" && r.status == 200));
}

#[tokio::test]
async fn images_added_during_the_export_leave_a_consistent_archive() {
    let emu = generated_emulator("projects=1,images=700,seed=11").await;
    let project = emu.projects()[0];
    let before: HashSet<Uuid> = emu.image_ids(project).into_iter().collect();
    let client = client_for(&emu);
    let (_dir, out) = temp_archive("changing.zip");
    let adder = async {
        // Once the listing has begun, add images, as a labeller working during the backup would.
        loop {
            if emu.requests().iter().any(|r| r.operation == "GetTaggedImages") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        emu.add_images(project, 30)
    };
    let (opts, cancel) = (ExportOptions::new(&out), CancellationToken::new());
    let (summary, added) = tokio::join!(export(&client, &opts, &NoProgress, &cancel), adder);
    let summary = summary.expect("export succeeds");
    assert_eq!(added.len(), 30);
    let report = verify(&out, &VerifyOptions::default()).expect("readable");
    assert!(report.is_clean(), "{:#?}", report.findings);
    let payload = payload(&out);
    let archived: HashSet<Uuid> = jsonl(&payload, &format!("projects/{project}/images.jsonl"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(before.is_subset(&archived), "every image that existed before the export is archived");
    let account = json(&payload, "account.json");
    let p = &account["projects"][0];
    let after = p["reportedAfter"]["tagged"].as_u64().unwrap() + p["reportedAfter"]["untagged"].as_u64().unwrap();
    assert_eq!(after as usize, before.len() + 30);
    if archived.len() != after as usize {
        assert!(summary.notes.iter().any(|n| n.contains("added during the export")), "{:?}", summary.notes);
    }
}

#[tokio::test]
async fn a_project_that_does_not_exist_is_a_clear_error_and_writes_nothing() {
    let emu = fixture_emulator().await;
    let (dir, out) = temp_archive("nope.zip");
    let missing = Uuid::new_v4().to_string();
    let o = cvarchive(
        &[
            "export",
            "--endpoint",
            &emu.endpoint(),
            "--out",
            out.to_str().unwrap(),
            "--project",
            &missing,
            "--no-progress",
        ],
        &[("VISION_TRAINING_KEY", emu.key())],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&missing) && err.contains("does not exist"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
}

#[tokio::test]
async fn wrong_key_wrong_endpoint_and_not_custom_vision_are_named() {
    let emu = fixture_emulator().await;
    let (dir, out) = temp_archive("x.zip");
    let out = out.to_str().unwrap();
    let o = cvarchive(
        &["export", "--endpoint", &emu.endpoint(), "--out", out, "--no-progress"],
        &[("VISION_TRAINING_KEY", "not-the-key")],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the key was refused by 127.0.0.1:"), "{err}");
    assert!(!err.contains("not-the-key"));

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = cvarchive(
        &["export", "--endpoint", &format!("http://127.0.0.1:{port}"), "--out", out, "--no-progress"],
        &[("VISION_TRAINING_KEY", "k")],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no answer from"), "{err}");

    // Something that answers HTTP, but not the Custom Vision API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new().fallback(|| async { axum::response::Html("<html><body>Welcome to nginx!</body></html>") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let o = cvarchive(
        &["export", "--endpoint", &format!("http://{addr}"), "--out", out, "--no-progress"],
        &[("VISION_TRAINING_KEY", "k")],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not speak the Custom Vision Training API"), "{err}");

    let o = cvarchive(&["export", "--endpoint", &emu.endpoint(), "--out", out, "--no-progress"], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("VISION_TRAINING_KEY"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
}

#[tokio::test]
async fn the_key_and_signatures_appear_nowhere() {
    let emu = fixture_emulator().await;
    let (dir, out) = temp_archive("secret.zip");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{}\n", emu.key())).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = cvarchive(
        &[
            "export",
            "--endpoint",
            &emu.endpoint(),
            "--key-file",
            key_file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // The key file was created readable by everyone: the user is told.
    assert!(String::from_utf8_lossy(&o.stderr).contains("can be read by other users"));
    let mut everything = o.stdout.clone();
    everything.extend_from_slice(&o.stderr);
    for bytes in zip_entries(&out).values() {
        everything.extend_from_slice(bytes);
    }
    everything.extend_from_slice(&std::fs::read(&out).unwrap());
    assert!(!contains(&everything, emu.key().as_bytes()), "the key leaked");
    assert!(!contains(&everything, b"sig="), "a SAS signature leaked");
    assert!(!contains(&everything, b"se="), "a SAS expiry leaked");
    // --json: every stdout line is a JSON object, the last one the summary.
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "exportSummary");
    assert!(lines.iter().all(|l| l["schema"] == "cvarchive/1" && l["time"].is_string()), "{stdout}");
    assert_eq!(last["complete"], true);
    assert_eq!(last["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(std::fs::read(&out).unwrap())));
}

#[tokio::test]
async fn an_existing_archive_is_kept_unless_forced() {
    let emu = fixture_emulator().await;
    let (_dir, out) = temp_archive("exists.zip");
    std::fs::write(&out, b"precious").unwrap();
    let client = client_for(&emu);
    let err = export(&client, &ExportOptions::new(&out), &NoProgress, &CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let opts = ExportOptions { force: true, ..ExportOptions::new(&out) };
    export(&client, &opts, &NoProgress, &CancellationToken::new()).await.expect("forced export");
    assert!(verify(&out, &VerifyOptions::default()).unwrap().is_clean());
}

#[tokio::test]
async fn the_demo_command_writes_a_clean_archive() {
    let (_dir, out) = temp_archive("demo.zip");
    let o = cvarchive(&["export", "--demo", "--out", out.to_str().unwrap(), "--no-progress"], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("sha256:"), "{stdout}");
    let names = zip_entries(&out).into_keys().collect::<Vec<_>>();
    assert!(names.iter().all(|n| n.starts_with("demo/")), "one top-level folder named after the file");
    assert!(names.contains(&"demo/bagit.txt".to_owned()) && names.contains(&"demo/manifest-sha256.txt".to_owned()));
    let o = cvarchive(&["verify", out.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

#[tokio::test]
async fn only_the_projects_asked_for() {
    let emu = fixture_emulator().await;
    let wanted = emu.projects()[1];
    let (_dir, out) = temp_archive("one.zip");
    let opts = ExportOptions { projects: vec![wanted], predictions: false, ..ExportOptions::new(&out) };
    let summary = export(&client_for(&emu), &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    assert_eq!(summary.projects, 1);
    let payload = payload(&out);
    assert!(payload
        .keys()
        .filter(|k| k.starts_with("projects/"))
        .all(|k| k.starts_with(&format!("projects/{wanted}/"))));
    assert!(!payload.keys().any(|k| k.ends_with("predictions.jsonl")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_export_copies_what_the_base_holds_and_downloads_only_what_is_new() {
    let emu = generated_emulator("projects=2,images=300,seed=31").await;
    let client = client_for(&emu);
    let (dir, first) = temp_archive("monday.zip");
    let full = export(&client, &ExportOptions::new(&first), &NoProgress, &CancellationToken::new()).await.unwrap();
    assert_eq!(full.from_base, 0);
    assert!(full.downloaded_bytes >= full.image_bytes);

    // Nothing changed: nothing is downloaded, and the archive stands on its own.
    let second = dir.path().join("tuesday.zip");
    let opts = ExportOptions { base: Some(first.clone().into()), ..ExportOptions::new(&second) };
    let unchanged = export(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    assert_eq!(unchanged.downloaded_bytes, 0, "no image bytes downloaded");
    assert_eq!(unchanged.from_base, full.images + full.predictions);
    assert!(verify(&second, &VerifyOptions::default()).unwrap().is_clean());
    let (a, b) = (payload(&first), payload(&second));
    for project in emu.projects() {
        let lines = |p: &BTreeMap<String, Vec<u8>>| {
            let mut l: Vec<String> =
                jsonl(p, &format!("projects/{project}/images.jsonl")).iter().map(|v| v.to_string()).collect();
            l.sort();
            l
        };
        assert_eq!(lines(&a), lines(&b), "the same images, tags, regions and metadata");
    }
    assert!(a.iter().filter(|(k, _)| k.contains("/images/")).all(|(k, v)| b.get(k) == Some(v)));

    // 1% new images: only those are downloaded.
    let project = emu.projects()[0];
    let added = emu.add_images(project, 6);
    let third = dir.path().join("wednesday.zip");
    let opts = ExportOptions { base: Some(second.clone().into()), ..ExportOptions::new(&third) };
    let grown = export(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    let new_bytes: u64 = added.iter().map(|id| emu.image_bytes(project, *id).unwrap().len() as u64).sum();
    assert_eq!(grown.downloaded_bytes, new_bytes, "only the new images were downloaded");
    assert_eq!(grown.images, full.images + 6);
    assert!(verify(&third, &VerifyOptions::default()).unwrap().is_clean());
}

#[tokio::test]
async fn a_damaged_base_is_not_trusted() {
    let emu = generated_emulator("projects=1,images=20,seed=33").await;
    let client = client_for(&emu);
    let (dir, first) = temp_archive("base.zip");
    export(&client, &ExportOptions::new(&first), &NoProgress, &CancellationToken::new()).await.unwrap();
    // Flip one byte inside a stored image of the base.
    let project = emu.projects()[0];
    let victim = emu.image_ids(project)[0];
    let bytes = emu.image_bytes(project, victim).unwrap();
    let mut zip = std::fs::read(&first).unwrap();
    let at = zip.windows(bytes.len()).position(|w| w == bytes.as_slice()).expect("stored bytes are in the zip");
    zip[at + bytes.len() / 2] ^= 0xff;
    std::fs::write(&first, zip).unwrap();
    let second = dir.path().join("next.zip");
    let opts = ExportOptions { base: Some(first.clone().into()), ..ExportOptions::new(&second) };
    let summary = export(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    assert_eq!(summary.downloaded_bytes, bytes.len() as u64, "the damaged image was downloaded again");
    assert!(verify(&second, &VerifyOptions::default()).unwrap().is_clean());
    let payload = payload(&second);
    let line = jsonl(&payload, &format!("projects/{project}/images.jsonl"))
        .into_iter()
        .find(|l| l["id"] == victim.to_string())
        .unwrap();
    assert_eq!(payload[line["file"].as_str().unwrap()], bytes);
}
