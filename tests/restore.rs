//! Restore, end to end: the demo archive restored into an empty emulator and exported again;
//! an interrupted restore resumed without duplicates; the emulator's create limits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use cvarchive::api::model::{ImageFileCreateBatch, ImageFileCreateEntry, Region};
use cvarchive::api::NewProject;
use cvarchive::emulator::AccountSpec;
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::{Event, NoProgress, Progress};
use cvarchive::restore::{restore, Report, RestoreOptions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::fixtures::fixture_archive;
use crate::support::*;

async fn export_to(emu: &cvarchive::emulator::Emulator, out: &Path) {
    export(&client_for(emu), &ExportOptions::new(out), &NoProgress, &CancellationToken::new()).await.expect("export");
}

/// Per project name: sha256 -> (tag names, regions as (tag name, coordinates), metadata),
/// merging images with equal bytes, as the service keeps one copy of each content.
type Content = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>, BTreeMap<String, String>)>;

fn contents(archive: &Path) -> BTreeMap<String, (Value, Content)> {
    let payload = payload(archive);
    let mut out = BTreeMap::new();
    for path in payload.keys().filter(|p| p.ends_with("/project.json")) {
        let project = json(&payload, path);
        let id = project["id"].as_str().unwrap();
        let tags = json(&payload, &format!("projects/{id}/tags.json"));
        let tag_name = |t: &Value| {
            tags.as_array().unwrap().iter().find(|x| x["id"] == *t).unwrap()["name"].as_str().unwrap().to_owned()
        };
        let mut content = Content::new();
        // The workspace as it was: images only trained iterations held are restored only when
        // asked (`--iteration-images`; see the test of that below).
        let lines = jsonl(&payload, &format!("projects/{id}/images.jsonl"));
        for line in lines.into_iter().filter(|l| l["workspace"] != false) {
            let entry = content.entry(line["sha256"].as_str().unwrap().to_owned()).or_default();
            for t in line["tags"].as_array().into_iter().flatten() {
                entry.0.insert(tag_name(&t["tagId"]));
            }
            for r in line["regions"].as_array().into_iter().flatten() {
                entry.1.insert(format!(
                    "{} {} {} {} {}",
                    tag_name(&r["tagId"]),
                    r["left"],
                    r["top"],
                    r["width"],
                    r["height"]
                ));
            }
            for (k, v) in line["metadata"].as_object().into_iter().flatten() {
                entry.2.insert(k.clone(), v.as_str().unwrap().to_owned());
            }
        }
        let mut tag_names: Vec<String> =
            tags.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
        tag_names.sort();
        let summary = serde_json::json!({
            "domainId": project["settings"]["domainId"],
            "classificationType": project["settings"]["classificationType"],
            "description": project["description"],
            "tags": tag_names,
        });
        out.insert(project["name"].as_str().unwrap().to_owned(), (summary, content));
    }
    out
}

#[tokio::test]
async fn the_demo_archive_restores_into_an_empty_emulator_and_exports_the_same() {
    let (dir, archive) = fixture_archive().await;
    let target = emulator_with(AccountSpec::Empty).await;
    let report_path = dir.path().join("restore.json");
    let report = restore(
        &client_for(&target),
        &archive,
        &RestoreOptions::new(&report_path),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .expect("restore succeeds");
    assert!(report.complete, "{report:#?}");
    assert_eq!(Report::load(&report_path).unwrap().as_ref(), Some(&report), "the report on disk is the one returned");

    let again = dir.path().join("again.zip");
    export_to(&target, &again).await;
    let (before, after) = (contents(&archive), contents(&again));
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "same project names");
    // The comparison has something to compare: metadata, regions and multi-label tags.
    let cls = &before["Fixture classification"].1;
    assert_eq!(cls.len(), 6);
    assert!(cls.values().any(|(_, _, m)| m.get("photographer").map(String::as_str) == Some("Zoë")));
    assert!(
        cls.values().any(|(t, _, _)| t.len() == 2 && t.contains("cat") && t.contains("dog")),
        "dup-a and dup-b merged"
    );
    assert_eq!(before["Fixture object detection"].1.values().map(|(_, r, _)| r.len()).sum::<usize>(), 3);
    for (name, (settings, content)) in &before {
        assert_eq!(settings, &after[name].0, "project {name}: settings, domain and tags");
        assert_eq!(content, &after[name].1, "project {name}: images by SHA-256, their tags, regions and metadata");
    }

    // The report maps every archived image to an image of the new project, and nothing else.
    let payload = payload(&archive);
    for p in &report.projects {
        let new = p.new_id.expect("created");
        assert!(target.projects().contains(&new));
        let archived: Vec<_> = jsonl(&payload, &format!("projects/{}/images.jsonl", p.old_id))
            .into_iter()
            .filter(|l| l["workspace"] != false)
            .collect();
        assert_eq!(p.images.len(), archived.len(), "project {}", p.name);
        let new_ids: BTreeSet<_> = target.image_ids(new).into_iter().collect();
        assert_eq!(p.images.values().copied().collect::<BTreeSet<_>>(), new_ids);
        assert!(p.images.keys().all(|old| archived.iter().any(|l| l["id"] == old.to_string())));
        assert_eq!(p.tags.len(), json(&payload, &format!("projects/{}/tags.json", p.old_id)).as_array().unwrap().len());
        let c = p.counts.as_ref().unwrap();
        assert!(c.agree() && c.archived_images == archived.len() as u64);
    }
    // The fixture's two identical images (dup-a, dup-b) became one, with both tags.
    let cls = report.projects.iter().find(|p| p.name == "Fixture classification").unwrap();
    assert_eq!(cls.images.len(), 7);
    assert_eq!(cls.images.values().collect::<BTreeSet<_>>().len(), 6);
}

/// Cancels a restore once its first batch is recorded.
struct StopAfterFirstBatch(CancellationToken, AtomicUsize);

impl Progress for StopAfterFirstBatch {
    fn event(&self, event: Event) {
        if let Event::Transferred { .. } = event {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.cancel();
        }
    }
}

#[tokio::test]
async fn an_interrupted_restore_resumes_without_duplicates() {
    let source = generated_emulator("projects=1,images=150,seed=7,size=2048").await;
    let (dir, archive) = temp_archive("gen.zip");
    export_to(&source, &archive).await;
    let target = emulator_with(AccountSpec::Empty).await;
    let client = client_for(&target);
    let report_path = dir.path().join("restore.json");
    let opts = RestoreOptions::new(&report_path);

    let cancel = CancellationToken::new();
    let stop = StopAfterFirstBatch(cancel.clone(), AtomicUsize::new(0));
    let err = restore(&client, &archive, &opts, &stop, &cancel).await.expect_err("interrupted");
    assert!(matches!(err, cvarchive::restore::Error::Interrupted(_)), "{err}");
    let mut first = Report::load(&report_path).unwrap().expect("the journal was written");
    assert_eq!(first.projects[0].images.len(), 64, "one batch of 64 recorded");
    let new = first.projects[0].new_id.unwrap();
    assert_eq!(target.image_ids(new).len(), 64);

    // As if the process died after the service took a batch but before the journal said so.
    let forgotten: Vec<_> = first.projects[0].images.iter().take(10).map(|(o, n)| (*o, *n)).collect();
    for (old, _) in &forgotten {
        first.projects[0].images.remove(old);
    }
    first.save(&report_path).unwrap();

    let report = restore(&client, &archive, &opts, &NoProgress, &CancellationToken::new()).await.expect("resumed");
    assert!(report.complete, "{report:#?}");
    assert_eq!(target.projects(), vec![new], "no second project");
    let ids = target.image_ids(new);
    assert_eq!(ids.len(), 150, "every image once");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 150);
    for (old, was) in forgotten {
        assert_eq!(report.projects[0].images[&old], was, "the re-sent image kept its first new id");
    }
    let uploads = target.requests().iter().filter(|r| r.operation == "CreateImagesFromFiles").count();
    assert_eq!(uploads, 3, "64, then the 10 forgotten and 76 more in two batches");
}

#[tokio::test]
async fn the_emulator_enforces_the_upload_limits() {
    let emu = emulator_with(AccountSpec::Empty).await;
    let client = client_for(&emu);
    let detection = "da2e3a8a-40a5-4171-82f4-58522f70fbc1".parse().unwrap();
    let project = client
        .create_project(&NewProject { name: "limits".into(), domain_id: Some(detection), ..Default::default() })
        .await
        .unwrap();
    let dup = client.create_project(&NewProject { name: "limits".into(), ..Default::default() }).await;
    assert!(dup.unwrap_err().to_string().contains("BadRequestProjectNameNotUnique"));
    let tag = client.create_tag(project.id, "thing", None, None).await.unwrap();
    assert!(client.create_tag(project.id, "THING", None, None).await.is_err(), "tag names are unique");

    let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/od-park.png")).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let entry = |bytes: &[u8], regions: usize| ImageFileCreateEntry {
        name: None,
        contents: b64(bytes),
        tag_ids: None,
        regions: Some(vec![Region { tag_id: tag.id, left: 0.1, top: 0.1, width: 0.2, height: 0.2 }; regions]),
    };
    // A larger-than-6-MB PNG: the same header, then a private chunk of filler.
    let mut big = png.clone();
    big.extend(std::iter::repeat_n(0u8, 6 * 1024 * 1024));
    let mut other = png.clone();
    other.push(0);
    let mut batch = ImageFileCreateBatch {
        images: vec![entry(&png, 1), entry(&png, 1), entry(&big, 1), entry(&other, 301), entry(b"not an image", 0)],
        tag_ids: None,
        metadata: None,
    };
    for (n, e) in batch.images.iter_mut().enumerate() {
        e.name = Some(format!("image-{n}"));
    }
    let mut summary = client.create_images_from_files(project.id, &batch).await.unwrap();
    let results = summary.images.take().expect("per-image results");
    // Each result names its entry; they come back in another order than sent.
    let names: Vec<_> = results.iter().map(|r| r.source_url.clone().unwrap()).collect();
    let sent: Vec<_> = batch.images.iter().map(|e| e.name.clone().unwrap()).collect();
    assert_ne!(names, sent, "the emulator does not answer in the order sent");
    let status = |name: &str| results.iter().find(|r| r.source_url.as_deref() == Some(name)).unwrap();
    let statuses: Vec<&str> = sent.iter().map(|n| status(n).status.as_str()).collect();
    assert_eq!(statuses, ["OK", "OKDuplicate", "ErrorImageSize", "ErrorRegionLimitExceed", "ErrorImageFormat"]);
    let (first, dup) = (status(&sent[0]), status(&sent[1]));
    assert!(!summary.is_batch_successful);
    assert_eq!(first.image.as_ref().unwrap().id, dup.image.as_ref().unwrap().id);
    assert_eq!(first.image.as_ref().unwrap().width, Some(64));
    assert_eq!(emu.image_ids(project.id).len(), 1);

    // 21 distinct tags over the images of one batch: refused, though no image has more than 2.
    let mut tags = vec![tag.id];
    for n in 1..21 {
        tags.push(client.create_tag(project.id, &format!("t{n}"), None, None).await.unwrap().id);
    }
    let tagged = |n: usize| ImageFileCreateEntry {
        name: Some(n.to_string()),
        contents: b64(&png),
        tag_ids: None,
        regions: Some(
            [tags[2 * n], tags[(2 * n + 1) % 21]]
                .map(|tag_id| Region { tag_id, left: 0.1, top: 0.1, width: 0.2, height: 0.2 })
                .to_vec(),
        ),
    };
    let many = ImageFileCreateBatch { images: (0..11).map(tagged).collect(), tag_ids: None, metadata: None };
    let err = client.create_images_from_files(project.id, &many).await.unwrap_err();
    assert!(err.to_string().contains("BadRequestExceededBatchSize"), "{err}");

    // 65 images in one call: the client refuses, and so does the service.
    let url = format!("{}/customvision/v3.3/training/projects/{}/images/files", emu.endpoint(), project.id);
    let body = serde_json::json!({"images": vec![serde_json::json!({"contents": b64(&png)}); 65]});
    let resp = reqwest::Client::new().post(url).header("Training-Key", emu.key()).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("BadRequestExceededBatchSize"));

    // Metadata merges into the image; unknown ids are named in a 207.
    let id = emu.image_ids(project.id)[0];
    let meta = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let summary = client.update_image_metadata(project.id, &[id, uuid::Uuid::new_v4()], &meta).await.unwrap();
    let statuses: Vec<&str> = summary.images.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["OK", "ErrorImageNotFound"]);
    let image = &client.get_images_by_ids(project.id, &[id]).await.unwrap()[0];
    assert_eq!(image.metadata.as_ref().unwrap()["k"], "v");
}

#[tokio::test]
async fn the_cli_restores_the_demo_archive_and_writes_its_report() {
    let (dir, archive) = fixture_archive().await;
    let target = emulator_with(AccountSpec::Empty).await;
    let endpoint = target.endpoint();
    let args = [
        "restore",
        archive.to_str().unwrap(),
        "--endpoint",
        &endpoint,
        "--name-suffix",
        " (restored)",
        "--no-progress",
        "--batch-bytes",
        "1",
    ];
    let mut too_big = args.to_vec();
    *too_big.last_mut().unwrap() = "41MiB";
    let o = cvarchive(&too_big, &[("VISION_TRAINING_KEY", target.key())]).await;
    assert_eq!(o.status.code(), Some(2), "a batch over the service's limit is refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--batch-bytes"));
    let o = cvarchive(&args, &[("VISION_TRAINING_KEY", target.key())]).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let report = Report::load(&dir.path().join("demo.restore.json")).unwrap().expect("the report beside the archive");
    assert!(report.complete);
    let distinct: usize = report.projects.iter().map(|p| p.images.values().collect::<BTreeSet<_>>().len()).sum();
    assert_eq!(uploads(&target), distinct, "--batch-bytes 1: one image a call");
    assert!(report.projects.iter().all(|p| p.new_name.ends_with(" (restored)")));
    // A second run finds everything done and uploads nothing.
    target.clear_requests();
    let o = cvarchive(&args, &[("VISION_TRAINING_KEY", target.key())]).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(target.requests().iter().all(|r| !r.mutating), "nothing created twice");
}

/// `restore --dry-run` reads the archive alone: no endpoint, no key, no report written; its
/// plan's uploads and images per project are what the real restore then sends.
#[tokio::test]
async fn a_dry_run_plans_from_the_archive_alone_and_the_restore_agrees() {
    let (dir, archive) = fixture_archive().await;
    let o = cvarchive(&["restore", archive.to_str().unwrap(), "--dry-run", "--json"], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).expect("one JSON line");
    assert_eq!((plan["type"].as_str(), plan["dryRun"].as_bool()), (Some("restorePlan"), Some(true)));
    assert!(!dir.path().join("demo.restore.json").exists(), "a dry run writes no report");
    let o = cvarchive(&["restore", archive.to_str().unwrap(), "--dry-run"], &[]).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing was sent"));

    let target = emulator_with(AccountSpec::Empty).await;
    let opts = RestoreOptions { batch_images: 1, ..RestoreOptions::new(dir.path().join("r.json")) };
    let report = restore(&client_for(&target), &archive, &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    assert!(report.complete);
    let planned = plan["projects"].as_array().unwrap();
    assert_eq!(planned.len(), report.projects.len());
    for p in &report.projects {
        let planned = planned.iter().find(|x| x["id"] == p.old_id.to_string()).expect("every project planned");
        let distinct = p.images.values().collect::<BTreeSet<_>>().len() as u64;
        assert_eq!(planned["uploads"].as_u64(), Some(distinct), "{}", p.name);
        assert_eq!(planned["images"].as_u64(), Some(p.images.len() as u64), "{}", p.name);
        assert_eq!(planned["tags"].as_u64(), Some(p.tags.len() as u64), "{}", p.name);
        assert_eq!(planned["bytes"].as_u64().unwrap() > 0, distinct > 0, "{}", p.name);
    }
    assert_eq!(plan["uploads"].as_u64(), Some(uploads(&target) as u64), "one upload a unit (batches of 1)");
}

/// The CreateImagesFromFiles calls `emu` has answered.
fn uploads(emu: &cvarchive::emulator::Emulator) -> usize {
    emu.requests().iter().filter(|r| r.operation == "CreateImagesFromFiles").count()
}

/// An archive of one multi-label project with 30 tags and 60 images of distinct bytes, each
/// with two tags that neighbouring images do not share, and metadata on every fifth; exported
/// from an emulator the test fills one image per call.
async fn many_tags_archive() -> (tempfile::TempDir, std::path::PathBuf) {
    let source = emulator_with(AccountSpec::Empty).await;
    let client = client_for(&source);
    let new =
        NewProject { name: "many tags".into(), classification_type: Some("Multilabel".into()), ..Default::default() };
    let project = client.create_project(&new).await.unwrap();
    let mut tags = Vec::new();
    for n in 0..30 {
        tags.push(client.create_tag(project.id, &format!("tag {n:02}"), None, None).await.unwrap().id);
    }
    let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/od-park.png")).unwrap();
    for i in 0..60usize {
        let mut bytes = png.clone();
        bytes.extend_from_slice(&(i as u32).to_le_bytes());
        let entry = ImageFileCreateEntry {
            name: Some(format!("image {i}")),
            contents: base64::engine::general_purpose::STANDARD.encode(&bytes),
            tag_ids: Some(vec![tags[i % 30], tags[(i * 7 + 3) % 30]]),
            regions: None,
        };
        let metadata = (i % 5 == 0).then(|| BTreeMap::from([("n".to_owned(), i.to_string())]));
        let batch = ImageFileCreateBatch { images: vec![entry], tag_ids: None, metadata };
        let summary = client.create_images_from_files(project.id, &batch).await.unwrap();
        assert!(summary.is_batch_successful);
    }
    let (dir, archive) = temp_archive("many-tags.zip");
    export_to(&source, &archive).await;
    (dir, archive)
}

/// Restores `archive` into `target` and checks that exporting `target` gives the same projects,
/// images (by SHA-256), tags, regions and metadata.
async fn restore_and_compare(archive: &Path, target: &cvarchive::emulator::Emulator) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let opts = RestoreOptions::new(dir.path().join("restore.json"));
    let report =
        restore(&client_for(target), archive, &opts, &NoProgress, &CancellationToken::new()).await.expect("restored");
    assert!(report.complete, "{report:#?}");
    let again = dir.path().join("again.zip");
    export_to(target, &again).await;
    let (before, after) = (contents(archive), contents(&again));
    assert!(before.values().map(|(_, c)| c.len()).sum::<usize>() > 0, "something to compare");
    assert_eq!(before, after, "every image recreated exactly");
    report
}

#[tokio::test]
async fn a_restore_matches_reordered_results_by_name_and_keeps_20_tags_a_batch() {
    // Issue 13 item 4: results were matched by position and batches mixed any number of tags.
    let (_dir, archive) = many_tags_archive().await;
    let target = emulator_with(AccountSpec::Empty).await;
    let report = restore_and_compare(&archive, &target).await;
    assert_eq!(report.projects[0].images.len(), 60);
    // 60 images fit one batch by count and bytes; 30 tags do not (the emulator refuses a batch
    // naming more than 20, so every batch sent kept to the limit).
    let calls = uploads(&target);
    assert!((2..=8).contains(&calls), "{calls} CreateImagesFromFiles calls");
}

#[tokio::test]
async fn a_restore_learns_the_ids_an_answer_without_results_left_out() {
    use cvarchive::emulator::{FaultConfig, Hostile};
    let (dir, archive) = fixture_archive().await;
    let null =
        |answers| FaultConfig { hostile: Some(Hostile::NullUploadResults { answers }), ..FaultConfig::default() };

    // The first answer has `images: null`: its images are sent again, answered OKDuplicate.
    let target = emulator_with(AccountSpec::Empty).await;
    target.set_faults(null(1));
    restore_and_compare(&archive, &target).await;
    let archived = payload(&archive);
    let with_images = archived.keys().filter(|p| p.ends_with("/images.jsonl") && !archived[*p].is_empty()).count();
    assert_eq!(uploads(&target), with_images + 1, "one batch a project with images, and one sent twice");

    // Every answer without results: the restore stops naming an image, maps nothing it cannot
    // prove, and a later run against a well-behaved service finishes without duplicates.
    let target = emulator_with(AccountSpec::Empty).await;
    target.set_faults(null(u32::MAX));
    let opts = RestoreOptions::new(dir.path().join("null.restore.json"));
    let client = client_for(&target);
    let err = restore(&client, &archive, &opts, &NoProgress, &CancellationToken::new()).await.unwrap_err();
    let cvarchive::restore::Error::Unmatched { image, .. } = &err else { panic!("{err}") };
    let first = Report::load(&opts.report).unwrap().unwrap();
    assert!(first.projects[0].images.is_empty(), "nothing mapped without a result");
    let archived = jsonl(&payload(&archive), &format!("projects/{}/images.jsonl", first.projects[0].old_id));
    assert!(archived.iter().any(|l| l["id"] == image.as_str()), "{err}");
    assert!(err.to_string().contains(image.as_str()));
    target.set_faults(FaultConfig::default());
    let report = restore(&client, &archive, &opts, &NoProgress, &CancellationToken::new()).await.expect("resumed");
    assert!(report.complete, "{report:#?}");
    for p in &report.projects {
        let ids = target.image_ids(p.new_id.unwrap());
        assert_eq!(ids.len(), p.images.values().collect::<BTreeSet<_>>().len(), "project {}: no duplicates", p.name);
    }
}

#[tokio::test]
async fn an_upload_slower_than_the_read_timeout_is_not_cut_off() {
    // reqwest's read timeout also runs while a request body is sent: a large batch over a slow
    // uplink timed out on every attempt. Here the service takes 1.5 s to answer, the read
    // timeout is 1 s, and the upload still succeeds.
    use cvarchive::api::ClientOptions;
    use cvarchive::emulator::FaultConfig;
    use cvarchive::secret::TrainingKey;
    use std::time::Duration;
    let emu = emulator_with(AccountSpec::Empty).await;
    let project = client_for(&emu).create_project(&NewProject { name: "slow".into(), ..Default::default() }).await;
    let project = project.unwrap();
    emu.set_faults(FaultConfig { api_latency: Duration::from_millis(1500), ..FaultConfig::default() });
    let mut o = ClientOptions::new(emu.endpoint(), TrainingKey::new(emu.key()));
    o.read_timeout = Duration::from_secs(1);
    o.retry.max_attempts = 2;
    o.retry.base_delay = Duration::from_millis(10);
    let client = cvarchive::api::Client::new(o).unwrap();
    assert!(client.get_domains().await.is_err(), "other calls keep the read timeout");
    let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/od-park.png")).unwrap();
    let entry = ImageFileCreateEntry {
        name: Some("slow".into()),
        contents: base64::engine::general_purpose::STANDARD.encode(&png),
        tag_ids: None,
        regions: None,
    };
    let batch = ImageFileCreateBatch { images: vec![entry], tag_ids: None, metadata: None };
    let summary = client.create_images_from_files(project.id, &batch).await.expect("the upload waits for its answer");
    assert_eq!(summary.images.unwrap()[0].status, "OK");
}

#[tokio::test]
async fn images_only_iterations_held_are_left_out_unless_asked_and_the_report_says_so() {
    let (dir, archive) = fixture_archive().await;
    const CLS: &str = "Fixture classification";
    for (asked, expected) in [(false, 6), (true, 7)] {
        let target = emulator_with(AccountSpec::Empty).await;
        let opts = RestoreOptions {
            iteration_images: asked,
            ..RestoreOptions::new(dir.path().join(format!("restore-{asked}.json")))
        };
        let report =
            restore(&client_for(&target), &archive, &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
        assert!(report.complete, "{report:#?}");
        let project = report.projects.iter().find(|p| p.name == CLS).unwrap();
        let note = project.notes.iter().find(|n| n.contains("only trained iterations held")).expect("a note");
        assert!(note.contains(if asked { "were uploaded" } else { "were not restored" }), "{note}");
        assert_eq!(target.image_ids(project.new_id.unwrap()).len(), expected);
    }
}
