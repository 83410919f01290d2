//! `cvarchive delete` against the emulator: a dry run changes nothing, a missing or incomplete
//! backup is refused by name, deletes follow the service's order and batch sizes, what should be
//! gone is gone, and an interrupted run continues into one receipt.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use cvarchive::delete::{delete, Category, DeleteOptions, Outcome, RunOutcome, Targets};
use cvarchive::emulator::{Emulator, FaultConfig, Hostile};
use cvarchive::progress::{Event, NoProgress, Progress};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::delete::{backup_of, delete_cli};
use crate::support::fixtures::CLASSIFICATION;
use crate::support::*;

fn mutating(emu: &Emulator) -> Vec<String> {
    emu.requests().into_iter().filter(|r| r.mutating).map(|r| format!("{} {}", r.operation, r.path)).collect()
}

#[tokio::test]
async fn a_dry_run_makes_no_mutating_request() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let before: Vec<_> = emu.projects();
    emu.clear_requests();

    let o = delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--all-projects"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("DRY RUN"), "{out}");
    assert!(out.contains("unpublish iteration") && out.contains("fixture-classifier"), "{out}");
    assert!(out.contains("exported models") && out.contains("account keys"), "{out}");
    let o = delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--all-projects", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let plan = crate::support::last_json_line(&o.stdout);
    assert_eq!((&plan["type"], &plan["dryRun"]), (&"deletePlan".into(), &true.into()));
    assert_eq!(plan["projects"].as_array().unwrap().len(), before.len());
    assert!(plan["calls"].as_u64().unwrap() > 10);

    assert!(!emu.requests().is_empty(), "the plan read the service");
    assert_eq!(mutating(&emu), Vec::<String>::new(), "no mutating request");
    assert_eq!(emu.projects(), before);
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "no receipt written by a dry run");
}

#[tokio::test]
async fn no_backup_is_refused_before_any_request() {
    let emu = fixture_emulator().await;
    let project = CLASSIFICATION;
    let o = delete_cli(&emu, &["--project", project, "--yes"]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("--backup") && err.contains("--without-backup-accept-permanent-loss"), "{err}");
    assert!(emu.requests().is_empty(), "not a single request");
}

#[tokio::test]
async fn a_backup_lacking_images_is_refused_and_names_them() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let added = emu.add_images(project, 2);
    emu.clear_requests();

    let o = delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("lacks 2 item(s)"), "{err}");
    for id in &added {
        assert!(err.contains(&format!("image {id} of project {project}")), "{id} named in: {err}");
    }
    assert_eq!(mutating(&emu), Vec::<String>::new());
    assert!(emu.projects().contains(&project));
    assert!(!dir.path().join("backup.delete-receipt.json").exists());
}

#[tokio::test]
async fn a_damaged_backup_is_refused() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    // Flip one byte inside a stored image.
    let image = emu.image_bytes(project, emu.image_ids(project)[0]).unwrap();
    let mut zip = std::fs::read(&backup).unwrap();
    let at = zip.windows(image.len()).position(|w| w == image.as_slice()).expect("stored image in the zip");
    zip[at + image.len() / 2] ^= 0xFF;
    std::fs::write(&backup, zip).unwrap();

    let o = delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("does not verify"), "{}", text(&o.stderr));
    assert_eq!(mutating(&emu), Vec::<String>::new());
}

#[tokio::test]
async fn deleting_a_project_leaves_nothing_and_the_receipt_lists_everything() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let images: BTreeSet<Uuid> = emu.image_ids(project).into_iter().collect();
    let predictions: BTreeSet<Uuid> = emu.prediction_ids(project).into_iter().collect();
    let client = client_for(&emu);
    let tags: BTreeSet<Uuid> = client.get_tags(project, None).await.unwrap().into_iter().map(|t| t.id).collect();
    let iterations: BTreeSet<Uuid> = client.get_iterations(project).await.unwrap().into_iter().map(|i| i.id).collect();
    assert!(images.len() >= 5 && !predictions.is_empty() && !tags.is_empty() && iterations.len() == 2);
    let untagged = client.get_untagged_image_count(project).await.unwrap();
    assert!(untagged > 0 && client.get_tagged_image_count(project).await.unwrap() > 0);
    let others: Vec<Uuid> = emu.projects().into_iter().filter(|p| *p != project).collect();
    emu.clear_requests();

    let receipt_path = dir.path().join("receipt.json");
    let o = delete_cli(
        &emu,
        &[
            "--backup",
            backup.to_str().unwrap(),
            "--project",
            CLASSIFICATION,
            "--yes",
            "--receipt",
            receipt_path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));

    let listed = client.get_projects().await.unwrap();
    assert!(listed.iter().all(|p| p.id != project), "GetProjects no longer lists it");
    assert_eq!(emu.projects(), others, "the other projects are untouched");

    // Order: unpublish before any iteration or the project is deleted; the project last.
    let ops: Vec<String> = emu.requests().into_iter().filter(|r| r.mutating).map(|r| r.operation).collect();
    let first = |op: &str| ops.iter().position(|o| o == op).unwrap_or_else(|| panic!("{op} in {ops:?}"));
    assert!(first("UnpublishIteration") < first("DeleteIteration"));
    assert_eq!(ops.last().map(String::as_str), Some("DeleteProject"));
    assert_eq!(ops.iter().filter(|o| *o == "DeleteImages").count(), 1, "{ops:?}");
    assert!(emu.requests().iter().filter(|r| r.mutating).all(|r| r.status < 300));

    let bytes = std::fs::read(&receipt_path).unwrap();
    let stdout = text(&o.stdout);
    assert!(stdout.contains(&format!("sha256:  {}", hex::encode(Sha256::digest(&bytes)))), "{stdout}");
    let r: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(r["complete"], true);
    assert_eq!(r["backup"]["sha256"], hex::encode(Sha256::digest(std::fs::read(&backup).unwrap())));
    assert_eq!(r["endpointHost"], emu.endpoint().trim_start_matches("http://"));
    let p = &r["projects"][0];
    assert_eq!(p["id"], CLASSIFICATION);
    assert_eq!(p["projectDeleted"], true);
    assert_eq!(ids(&p["images"]), images);
    assert_eq!(ids(&p["tags"]), tags);
    assert_eq!(ids(&p["iterations"]), iterations);
    assert_eq!(ids(&p["predictions"]), predictions);
    assert_eq!(p["unpublished"][0]["publishName"], "fixture-classifier");
    assert!(p["unpublished"][0]["predictionResource"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(r["totals"]["images"], images.len() as u64);
    assert_eq!(r["totals"]["projects"], 1);
    let whats: Vec<&str> = r["notDeletable"].as_array().unwrap().iter().map(|n| n["what"].as_str().unwrap()).collect();
    assert!(whats.contains(&"exported models") && whats.contains(&"account keys"), "{whats:?}");
    assert!(p["confirmed"].as_array().unwrap().iter().all(|c| c["ok"] == true));
    assert_eq!(r["failures"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn deleting_only_images_keeps_tags_and_iterations_and_the_counts_reach_zero() {
    let emu = generated_emulator("projects=1,images=600,seed=3,size=2048").await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project = emu.projects()[0];
    let client = client_for(&emu);
    let tags = client.get_tags(project, None).await.unwrap().len();
    let iterations = client.get_iterations(project).await.unwrap().len();
    let predictions = emu.prediction_ids(project);
    assert!(tags > 0 && iterations > 0);
    emu.clear_requests();

    let pid = project.to_string();
    let o =
        delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--project", &pid, "--only", "images", "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(client.get_tagged_image_count(project).await.unwrap(), 0);
    assert_eq!(client.get_untagged_image_count(project).await.unwrap(), 0);
    assert_eq!(client.get_tags(project, None).await.unwrap().len(), tags);
    assert_eq!(client.get_iterations(project).await.unwrap().len(), iterations);
    assert_eq!(emu.prediction_ids(project), predictions);
    assert!(emu.projects().contains(&project));
    let batches: Vec<usize> = emu
        .requests()
        .into_iter()
        .filter(|r| r.operation == "DeleteImages")
        .map(|r| r.path.split("imageIds=").nth(1).unwrap().split("%2C").count())
        .collect();
    assert_eq!(batches, vec![256, 256, 88], "batches of at most 256 ids");
    assert!(mutating(&emu).iter().all(|m| m.starts_with("DeleteImages")), "{:?}", mutating(&emu));

    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("backup.delete-receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["only"], "images");
    assert_eq!(receipt["totals"]["images"], 600);
    assert_eq!(receipt["projects"][0]["projectDeleted"], false);
}

#[tokio::test]
async fn bulk_images_polls_the_counts_to_zero() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let images = emu.image_ids(project).len();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup));
    opts.only = Some(Category::Images);
    opts.execute = true;
    opts.bulk_images = true;
    opts.poll_interval = std::time::Duration::from_millis(50);
    let client = client_for(&emu);
    let Outcome::Executed(done) = delete(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap() else {
        panic!("executed")
    };
    assert_eq!(done.outcome, RunOutcome::Complete, "{:?}", done.receipt.failures);
    assert!(emu.image_ids(project).is_empty());
    assert_eq!(done.receipt.totals.images, images as u64);
    let reqs = emu.requests();
    let bulk = reqs.iter().position(|r| r.operation == "DeleteImages").unwrap();
    assert_eq!(reqs[bulk].status, 202);
    assert!(reqs[bulk].path.contains("allImages=true"));
    assert!(reqs[bulk + 1..].iter().any(|r| r.operation == "GetTaggedImageCount"), "counts polled after the 202");
    assert_eq!(reqs.iter().filter(|r| r.mutating).count(), 1);
}

/// Cancels the run after `after` delete steps.
struct CancelAfter {
    token: CancellationToken,
    after: usize,
    seen: AtomicUsize,
}

impl Progress for CancelAfter {
    fn event(&self, event: Event) {
        if matches!(event, Event::Deleted { .. }) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.token.cancel();
        }
    }
}

#[tokio::test]
async fn an_interrupted_deletion_rerun_finishes_with_one_receipt_for_both_runs() {
    let emu = generated_emulator("projects=2,images=600,seed=5,size=2048").await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project = emu.projects()[0];
    let images: HashSet<Uuid> = emu.image_ids(project).into_iter().collect();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup));
    opts.execute = true;
    let client = client_for(&emu);

    // First run: stopped after the unpublish and the first batch of images.
    let token = CancellationToken::new();
    let stop = CancelAfter { token: token.clone(), after: 2, seen: AtomicUsize::new(0) };
    let Outcome::Executed(first) = delete(&client, &opts, &stop, &token).await.unwrap() else { panic!("executed") };
    assert_eq!(first.outcome, RunOutcome::Interrupted);
    assert!(emu.projects().contains(&project), "the project survives the interruption");
    let left = emu.image_ids(project).len();
    assert!(left > 0 && left < images.len(), "{left} images left");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&first.receipt_path).unwrap()).unwrap();
    assert_eq!(saved["runs"][0]["outcome"], "interrupted");
    assert_eq!(saved["complete"], false);

    // The rerun continues from what is left.
    let Outcome::Executed(second) = delete(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap()
    else {
        panic!("executed")
    };
    assert_eq!(second.outcome, RunOutcome::Complete, "{:?}", second.receipt.failures);
    assert!(!emu.projects().contains(&project));
    let r = &second.receipt;
    assert_eq!(r.runs.len(), 2);
    assert_eq!(r.runs[0].outcome, Some(RunOutcome::Interrupted));
    assert_eq!(r.runs[1].outcome, Some(RunOutcome::Complete));
    assert_eq!(r.runs[0].deleted.images + r.runs[1].deleted.images, images.len() as u64);
    assert_eq!(r.runs[0].deleted.images, (images.len() - left) as u64);
    assert_eq!(r.runs[0].deleted.unpublished + r.runs[1].deleted.unpublished, 1);
    assert_eq!(r.projects.len(), 1);
    assert_eq!(r.projects[0].images.iter().copied().collect::<HashSet<_>>(), images);
    assert_eq!(r.projects[0].unpublished.len(), 1, "the publication recorded in the first run is kept");
    assert!(r.projects[0].project_deleted);
    assert_eq!(r.totals.projects, 1);
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&second.receipt_path).unwrap()).unwrap();
    assert_eq!(on_disk["runs"].as_array().unwrap().len(), 2);
    assert_eq!(hex::encode(Sha256::digest(std::fs::read(&second.receipt_path).unwrap())), second.receipt_sha256);

    // A third run finds the project gone and counts that as done.
    let Outcome::Executed(third) = delete(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap() else {
        panic!("executed")
    };
    assert_eq!(third.outcome, RunOutcome::Complete);
    assert_eq!(third.receipt.runs.len(), 3);
    assert_eq!(third.receipt.totals, r.totals, "nothing counted twice");
}

/// Does `then` once, at the first delete step (to break the service mid-run).
struct AfterFirstDelete<F> {
    then: F,
    seen: AtomicUsize,
}

impl<F: Fn()> AfterFirstDelete<F> {
    fn new(then: F) -> AfterFirstDelete<F> {
        AfterFirstDelete { then, seen: AtomicUsize::new(0) }
    }
}

impl<F: Fn() + Send + Sync> Progress for AfterFirstDelete<F> {
    fn event(&self, event: Event) {
        if matches!(event, Event::Deleted { .. }) && self.seen.fetch_add(1, Ordering::SeqCst) == 0 {
            (self.then)();
        }
    }
}

#[tokio::test]
async fn failed_steps_keep_the_project_and_a_rerun_finishes() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup));
    opts.execute = true;
    let mut client_opts =
        cvarchive::api::ClientOptions::new(emu.endpoint(), cvarchive::secret::TrainingKey::new(emu.key()));
    client_opts.api_rate = None;
    client_opts.retry.max_attempts = 2;
    client_opts.retry.base_delay = std::time::Duration::from_millis(1);
    let client = cvarchive::api::Client::new(client_opts).unwrap();

    // Every answer a 503 after the first delete step.
    let breaker = AfterFirstDelete::new(|| {
        emu.set_faults(cvarchive::emulator::FaultConfig { error_rate: 1.0, ..Default::default() })
    });
    let Outcome::Executed(first) = delete(&client, &opts, &breaker, &CancellationToken::new()).await.unwrap() else {
        panic!("executed")
    };
    assert_eq!(first.outcome, RunOutcome::Failures);
    assert!(emu.projects().contains(&project), "no DeleteProject after a failed step");
    let steps: HashSet<&str> = first.receipt.failures.iter().map(|f| f.step.as_str()).collect();
    for step in ["images", "tags", "iterations", "predictions", "project"] {
        assert!(steps.contains(step), "{step} failure listed: {:?}", first.receipt.failures);
    }
    assert!(!emu.requests().iter().any(|r| r.operation == "DeleteProject"));
    assert_eq!(first.receipt.totals.unpublished, 1);

    emu.set_faults(cvarchive::emulator::FaultConfig::default());
    let Outcome::Executed(second) = delete(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap()
    else {
        panic!("executed")
    };
    assert_eq!(second.outcome, RunOutcome::Complete, "{:?}", second.receipt.failures);
    assert!(!emu.projects().contains(&project));
    assert!(second.receipt.failures.is_empty());
    assert_eq!(second.receipt.runs[0].outcome, Some(RunOutcome::Failures));
    assert!(!second.receipt.runs[0].failures.is_empty(), "the first run's failures stay in its record");
    assert_eq!(second.receipt.projects[0].unpublished[0].publish_name, "fixture-classifier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_killed_mid_project_still_accounts_for_every_image() {
    let emu = generated_emulator("projects=1,images=2000,seed=5,size=1024").await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project = emu.projects()[0];
    let all: BTreeSet<Uuid> = emu.image_ids(project).into_iter().collect();
    // Slow deletes, so that the kill lands between batches of the one project.
    emu.set_faults(FaultConfig { api_latency: std::time::Duration::from_millis(400), ..FaultConfig::default() });
    let pid = project.to_string();
    let receipt_path = dir.path().join("receipt.json");
    let args = [
        "--backup",
        backup.to_str().unwrap(),
        "--project",
        &pid,
        "--only",
        "images",
        "--yes",
        "--receipt",
        receipt_path.to_str().unwrap(),
    ];
    let endpoint = emu.endpoint();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"))
        .args(["delete", "--endpoint", endpoint.as_str(), "--api-rate", "unlimited"])
        .args(args)
        .env("VISION_TRAINING_KEY", emu.key())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    while emu.requests().iter().filter(|r| r.operation == "DeleteImages" && r.status == 204).count() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let deleted_before: usize = 2000 - emu.image_ids(project).len();
    assert!(deleted_before > 0 && deleted_before < 2000, "killed mid-project ({deleted_before} deleted)");

    emu.set_faults(FaultConfig::default());
    let o = delete_cli(&emu, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(emu.image_ids(project).is_empty());
    let receipt: serde_json::Value = serde_json::from_slice(&std::fs::read(&receipt_path).unwrap()).unwrap();
    let named = ids(&receipt["projects"][0]["images"]);
    let unnamed = all.difference(&named).count();
    assert_eq!(unnamed, 0, "the receipt names every deleted image, the killed run's too ({} named)", named.len());
    assert_eq!(named.len(), 2000);
    assert_eq!(receipt["totals"]["images"], 2000);
}

/// Makes every request of one operation answer the gateway's 404 for an unknown path.
fn gateway_404_on(emu: &Emulator, operation: &'static str) {
    emu.set_faults(FaultConfig { hostile: Some(Hostile::GatewayNotFound { operation }), ..FaultConfig::default() });
}

fn receipt_at(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("a receipt")).unwrap()
}

/// Issue 13, item 5: a gateway 404 (a wrong path or endpoint) on DeleteProject says nothing about
/// the project; delete fails, names the URL, and its receipt does not call the project gone.
#[tokio::test]
async fn a_gateway_404_on_delete_project_is_a_failure_not_a_deletion() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    gateway_404_on(&emu, "DeleteProject");
    let receipt = dir.path().join("receipt.json");
    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"];
    let o = delete_cli(&emu, &[&args[..], &["--receipt", receipt.to_str().unwrap()]].concat()).await;
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_ne!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(emu.projects().contains(&project), "the project is still there");
    assert!(emu.requests().iter().any(|r| r.operation == "DeleteProject" && r.status == 404));

    let r = receipt_at(&receipt);
    assert_eq!(r["complete"], false);
    assert_eq!(r["projects"][0]["projectDeleted"], false, "{r:#}");
    assert_eq!(r["totals"]["projects"], 0);
    let failure = r["failures"].as_array().unwrap().iter().find(|f| f["step"] == "project").expect("a project failure");
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains(&format!("/customvision/v3.3/training/projects/{project}")), "names the URL: {error}");
    assert!(error.contains("Resource not found") && error.contains("endpoint"), "hints at the endpoint: {error}");
    for text in [&out, &err, &r.to_string()] {
        assert!(!text.contains(emu.key()), "no key in any output");
    }
}

/// Issue 13, item 5: reading back with a gateway 404 is no confirmation. A rerun whose GetProject
/// answers the gateway's 404 must not take the project for already deleted.
#[tokio::test]
async fn a_gateway_404_on_get_project_is_not_taken_for_already_deleted() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    gateway_404_on(&emu, "GetProject");
    emu.clear_requests();
    let receipt = dir.path().join("receipt.json");
    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"];
    let o = delete_cli(&emu, &[&args[..], &["--receipt", receipt.to_str().unwrap()]].concat()).await;
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_ne!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("Resource not found") && err.contains(&format!("projects/{project}")), "{err}");
    assert!(!out.contains("complete"), "{out}");
    assert!(emu.projects().contains(&project));
    assert_eq!(mutating(&emu), Vec::<String>::new());
    if receipt.exists() {
        let r = receipt_at(&receipt);
        assert_eq!(r["complete"], false);
        let claims =
            r["projects"].as_array().unwrap().iter().any(|p| {
                p["projectDeleted"] == true || p["confirmed"].as_array().unwrap().iter().any(|c| c["ok"] == true)
            });
        assert!(!claims, "the receipt claims nothing: {r:#}");
    }
}

/// The check after DeleteProject does not accept a gateway 404 as proof either.
#[tokio::test]
async fn a_gateway_404_on_the_read_back_is_not_a_confirmation() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    gateway_404_on(&emu, "GetProjects");
    let receipt = dir.path().join("receipt.json");
    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"];
    let o = delete_cli(&emu, &[&args[..], &["--receipt", receipt.to_str().unwrap()]].concat()).await;
    assert_eq!(o.status.code(), Some(3), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let r = receipt_at(&receipt);
    assert_eq!(r["complete"], false);
    let confirmed = r["projects"][0]["confirmed"].as_array().unwrap();
    assert!(!confirmed.is_empty() && confirmed.iter().all(|c| c["ok"] == false), "{confirmed:?}");
}

/// The emptiness check before DeleteProject cannot pass on a gateway 404: the project is kept.
#[tokio::test]
async fn a_gateway_404_while_checking_the_project_is_empty_keeps_the_project() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup));
    opts.execute = true;
    let breaker = AfterFirstDelete::new(|| gateway_404_on(&emu, "GetTaggedImageCount"));
    let Outcome::Executed(done) = delete(&client_for(&emu), &opts, &breaker, &CancellationToken::new()).await.unwrap()
    else {
        panic!("executed")
    };
    assert_eq!(done.outcome, RunOutcome::Failures);
    assert!(emu.projects().contains(&project), "no DeleteProject without an emptiness check");
    assert!(!emu.requests().iter().any(|r| r.operation == "DeleteProject"));
    assert!(!done.receipt.projects[0].project_deleted);
    assert!(done.receipt.failures.iter().any(|f| f.step == "project" && f.error.contains("Resource not found")));
}
