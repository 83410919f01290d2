//! Issue 15, items 2 and 3: seeing the account before exporting it (`cvarchive projects`,
//! `export --dry-run`) with metadata calls only, and arguments refused before any work.

use std::path::Path;

use cvarchive::emulator::Emulator;
use serde_json::Value;
use uuid::Uuid;

use crate::support::*;

/// Runs the binary against `emu` with its key in the environment.
async fn run(emu: &Emulator, args: &[&str]) -> (Option<i32>, String, String) {
    let o = cvarchive(args, &[("VISION_TRAINING_KEY", emu.key()), ("VISION_TRAINING_ENDPOINT", &emu.endpoint())]).await;
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Requests that fetched a blob: an image, a prediction image, a model package.
fn blob_requests(emu: &Emulator) -> Vec<String> {
    emu.requests()
        .into_iter()
        .filter(|r| r.operation == "Blob" || r.operation == "GetArtifact")
        .map(|r| format!("{} {}", r.operation, r.path))
        .collect()
}

/// What the service holds per project: (tagged, untagged, iterations, stored predictions).
async fn truth(emu: &Emulator, project: Uuid) -> (u64, u64, u64, u64) {
    let client = client_for(emu);
    (
        client.get_tagged_image_count(project).await.unwrap(),
        client.get_untagged_image_count(project).await.unwrap(),
        client.get_iterations(project).await.unwrap().len() as u64,
        emu.prediction_ids(project).len() as u64,
    )
}

fn counts_of(p: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{k} in {p}"));
    (n("tagged"), n("untagged"), n("iterations"), n("predictions"))
}

#[tokio::test]
async fn projects_agree_with_the_service_sorted_by_name_and_download_nothing() {
    let emu = generated_emulator("projects=3,images=300,seed=15").await;
    let (code, out, err) = run(&emu, &["projects", "--json", "--api-rate", "unlimited"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(blob_requests(&emu), Vec::<String>::new(), "no blob is fetched");
    let doc: Value = serde_json::from_str(&out).expect("one JSON object");
    let projects = doc["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 3);
    let names: Vec<String> = projects.iter().map(|p| p["name"].as_str().unwrap().to_lowercase()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    let mut images = 0;
    for p in projects {
        let id: Uuid = p["id"].as_str().unwrap().parse().unwrap();
        let (tagged, untagged, iterations, predictions) = truth(&emu, id).await;
        assert_eq!(counts_of(p), (tagged, untagged, iterations, predictions), "{p}");
        assert!(p["domainType"].is_string() && p["trainedIterations"].is_u64(), "{p}");
        assert!(p["estimatedBytes"].as_u64().unwrap() > 0 && p["sampledImages"].as_u64().unwrap() > 0, "{p}");
        images += tagged + untagged;
    }
    assert_eq!(doc["totals"]["tagged"].as_u64().unwrap() + doc["totals"]["untagged"].as_u64().unwrap(), images);
    assert!(doc["estimate"].as_str().unwrap().contains("estimated"), "the estimate says how it was made");

    // The human table names every project and labels the total an estimate.
    let (code, out, _) = run(&emu, &["projects"]).await;
    assert_eq!(code, Some(0));
    for p in projects {
        assert!(out.contains(p["id"].as_str().unwrap()), "{out}");
    }
    assert!(out.contains("about") && out.contains("estimated from"), "{out}");
}

#[tokio::test]
async fn a_dry_run_plans_from_counts_writes_nothing_and_foresees_the_export_calls() {
    let emu = generated_emulator("projects=2,images=600,seed=16").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("planned.zip");
    let path = out.to_str().unwrap();
    let (code, stdout, err) =
        run(&emu, &["export", "--out", path, "--dry-run", "--json", "--api-rate", "unlimited"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(blob_requests(&emu), Vec::<String>::new(), "no blob is fetched");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is written beside --out");
    let plan: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(plan["dryRun"], true);
    let mut images = 0;
    let mut predictions = 0;
    for id in emu.projects() {
        let (tagged, untagged, _, stored) = truth(&emu, id).await;
        images += tagged + untagged;
        predictions += stored;
    }
    assert_eq!(plan["projects"].as_array().unwrap().len(), 2);
    assert_eq!(plan["images"].as_u64(), Some(images));
    assert_eq!(plan["predictions"].as_u64(), Some(predictions));
    assert_eq!(plan["downloads"].as_u64(), Some(images + predictions));
    assert_eq!(plan["room"], true);
    assert!(plan["freeBytes"].as_u64().unwrap() > 0);
    let foreseen = plan["apiCalls"].as_u64().unwrap();

    // The export itself: its API calls (everything but blobs) come close to the plan's.
    emu.clear_requests();
    let (code, _, err) = run(&emu, &["export", "--out", path, "--no-progress", "--api-rate", "unlimited"]).await;
    assert_eq!(code, Some(0), "{err}");
    let made = emu.requests().iter().filter(|r| r.operation != "Blob").count() as u64;
    let off = made.abs_diff(foreseen) as f64 / made as f64;
    eprintln!("the plan foresaw {foreseen} API calls; the export made {made}");
    assert!(off <= 0.15, "the plan foresaw {foreseen} API calls; the export made {made}");

    // At a rate, the plan gives the time those calls take.
    let (code, stdout, _) = run(&emu, &["export", "--out", path, "--force", "--dry-run", "--api-rate", "4"]).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("DRY RUN") && stdout.contains("at --api-rate 4"), "{stdout}");
    assert!(stdout.contains(&format!("images: {images} and {predictions} stored predictions")), "{stdout}");
}

/// The room check before the downloads reads the projects, domains and workspace counts once;
/// the export takes them over instead of reading them again.
#[tokio::test]
async fn the_export_reuses_what_the_room_check_read() {
    let emu = generated_emulator("projects=2,images=60,seed=17").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reused.zip");
    let (code, _, err) =
        run(&emu, &["export", "--out", out.to_str().unwrap(), "--no-progress", "--api-rate", "unlimited"]).await;
    assert_eq!(code, Some(0), "{err}");
    let requests = emu.requests();
    let calls = |op: &str, workspace: bool| {
        requests.iter().filter(|r| r.operation == op && r.path.contains("iterationId") != workspace).count()
    };
    assert_eq!(calls("GetProjects", true), 1);
    assert_eq!(calls("GetDomains", true), 1);
    // Per project: the room check's count, and the one after the (single, still) listing.
    for op in ["GetTaggedImageCount", "GetUntaggedImageCount"] {
        assert_eq!(calls(op, true), 2 * 2, "{op}");
    }
}

/// The refusals that need no service: each exits 2, says why, and sends no request.
#[tokio::test]
async fn bad_arguments_are_refused_before_any_request() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap().to_owned();
    let orphan = dir.path().join("no-such-folder/backup.zip");
    let zip = dir.path().join("backup.zip");
    let zip = zip.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["export", "--out", &folder, "--force"], "is a folder"),
        (vec!["export", "--out", &folder, "--dry-run"], "is a folder"),
        (vec!["export", "--out", orphan.to_str().unwrap()], "does not exist"),
        (vec!["export", "--out", zip, "--api-rate=-1"], "not a rate"),
        (vec!["export", "--out", zip, "--api-rate", "-1"], "not a rate"),
        (vec!["export", "--out", zip, "--api-rate", "0"], "unlimited"),
        (vec!["export", "--out", zip, "--api-rate", "NaN"], "not a rate"),
        (vec!["export", "--out", zip, "--api-rate", "inf"], "not a rate"),
        (vec!["export", "--out", zip, "--api-rate", "fast"], "not a number"),
        (vec!["projects", "--api-rate", "0"], "unlimited"),
        (vec!["delete", "--all-projects", "--without-backup-accept-permanent-loss", "--api-rate", "-3"], "not a rate"),
    ];
    for (args, says) in cases {
        let (code, _, err) = run(&emu, &args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
        assert!(emu.requests().is_empty(), "{args:?} sent a request: {:?}", emu.requests());
    }
    assert!(!dir.path().join("backup.zip").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

/// The refusals that need the service's counts: no room, an unknown project. Each exits 2
/// before the first download.
#[tokio::test]
async fn no_room_and_an_unknown_project_are_refused_before_the_first_download() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.zip");
    let path = out.to_str().unwrap();
    let env = [("VISION_TRAINING_KEY", emu.key()), ("CVARCHIVE_ASSUME_FREE_BYTES", "1000")];
    let o = cvarchive(&["export", "--endpoint", &emu.endpoint(), "--out", path, "--no-progress"], &env).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not enough room") && err.contains("1000 bytes are free"), "{err}");
    assert_eq!(blob_requests(&emu), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written, not even a partial archive");

    // The dry run says the same, with the plan.
    let o = cvarchive(&["export", "--endpoint", &emu.endpoint(), "--out", path, "--dry-run"], &env).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT ENOUGH ROOM"));

    // An unknown project names the ones there are, by id and name, in every command.
    let stranger = Uuid::from_u128(0x1234).to_string();
    let first = emu.projects()[0].to_string();
    for args in [
        vec!["export", "--out", path, "--project", stranger.as_str()],
        vec!["export", "--out", path, "--project", first.as_str(), "--project", stranger.as_str(), "--dry-run"],
        vec!["projects", "--project", stranger.as_str()],
    ] {
        let (code, _, err) = run(&emu, &args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("project {stranger} does not exist")), "{err}");
        for p in emu.projects() {
            assert!(err.contains(&p.to_string()), "{args:?} should list {p}: {err}");
        }
        assert!(err.contains("Fixture classification"), "by name too: {err}");
    }
    let (code, out, err) =
        run(&emu, &["delete", "--project", stranger.as_str(), "--without-backup-accept-permanent-loss"]).await;
    assert_eq!(code, Some(0), "a plan, deleting nothing: {err}");
    assert!(out.contains("if an id is mistyped") && out.contains("Fixture classification"), "{out}");
    assert_eq!(blob_requests(&emu), Vec::<String>::new());
    assert!(!emu.requests().iter().any(|r| r.mutating));
    assert!(!Path::new(path).exists());
}

#[tokio::test]
async fn endpoint_mistakes_get_a_hint() {
    let emu = fixture_emulator().await;
    let plain = emu.endpoint();
    let authority = plain.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let tls = format!("https://{authority}");
    let wrong_path = format!("http://{authority}/training/v3.3");
    let cases = [
        (authority.as_str(), "has no scheme"),
        (tls.as_str(), "plain HTTP"),
        (wrong_path.as_str(), "expected https://NAME.cognitiveservices.azure.com"),
        ("ftp://example.com", "expected https://NAME.cognitiveservices.azure.com"),
    ];
    for (endpoint, says) in cases {
        let (code, _, err) = run(&emu, &["projects", "--endpoint", endpoint]).await;
        assert_eq!(code, Some(2), "{endpoint}: {err}");
        assert!(err.contains(says), "{endpoint} should say {says:?}: {err}");
        assert!(!err.contains("404 404"), "{err}");
    }
    let (_, _, err) = run(&emu, &["projects", "--endpoint", &authority]).await;
    assert!(err.contains(&format!("write https://{authority}")), "{err}");
}
