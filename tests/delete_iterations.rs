//! Issue 13, item 1, the delete side: images only trained iterations hold. Deleting a project
//! destroys them, so its backup must hold them; `--only images` says whether the iterations'
//! copies go too (`--all-iterations`), does what it says, and the receipt records it.

use std::collections::BTreeSet;

use cvarchive::delete::{delete, Category, DeleteOptions, Outcome, RunOutcome, Targets};
use cvarchive::emulator::{Emulator, FaultConfig, Hostile};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::delete::{backup_of, delete_cli};
use crate::support::fixtures::CLASSIFICATION;
use crate::support::*;

fn receipt_at(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("a receipt")).unwrap()
}

/// The DeleteImages requests served, by their query.
fn delete_images_paths(emu: &Emulator) -> Vec<String> {
    emu.requests().into_iter().filter(|r| r.operation == "DeleteImages").map(|r| r.path).collect()
}

/// Issue 13 done-when: a delete of a project with iteration-only images refuses a backup that
/// lacks them, naming each; with a backup that holds them it proceeds, and the receipt says they
/// were destroyed with the project.
#[tokio::test]
async fn deleting_a_project_refuses_a_backup_lacking_the_images_only_its_iterations_hold() {
    let emu = generated_emulator("projects=1,images=300,seed=11,size=2048,iteration_only=3").await;
    let project = emu.projects()[0];
    let only: BTreeSet<Uuid> = emu.iteration_only_ids(project).into_iter().collect();
    assert_eq!(only.len(), 3);
    let iteration = client_for(&emu).get_iterations(project).await.unwrap()[0].id;
    // A backup that could not read the iteration's own images (recorded missing there): it holds
    // the workspace and everything else, but not these three.
    let dir = tempfile::tempdir().unwrap();
    emu.set_faults(FaultConfig {
        hostile: Some(Hostile::GatewayNotFound { operation: "GetImagesByIds" }),
        ..FaultConfig::default()
    });
    let old = backup_of(&emu, dir.path()).await;
    emu.set_faults(FaultConfig::default());
    emu.clear_requests();

    let pid = project.to_string();
    let o = delete_cli(&emu, &["--backup", old.to_str().unwrap(), "--project", &pid, "--yes"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("lacks 3 item(s)"), "{err}");
    for id in &only {
        let named = format!(
            "image {id} of project {project} (not in the workspace; held only by trained iterations, e.g. {iteration})"
        );
        assert!(err.contains(&named), "{id} named in: {err}");
    }
    assert!(emu.requests().iter().all(|r| !r.mutating), "nothing deleted");
    assert_eq!(emu.iteration_only_ids(project).len(), 3);

    // The dry run with a fresh backup shows them, per project and per iteration.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = backup_of(&emu, fresh_dir.path()).await;
    let o = delete_cli(&emu, &["--backup", fresh.to_str().unwrap(), "--project", &pid]).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("3 image(s) only trained iterations hold: destroyed with the iterations"), "{out}");
    assert!(out.contains(&format!("iteration {iteration} \"Iteration 1\": holds ")), "{out}");
    assert!(out.contains("3 of them only trained iterations hold"), "{out}");

    let receipt = fresh_dir.path().join("receipt.json");
    let args =
        ["--backup", fresh.to_str().unwrap(), "--project", &pid, "--yes", "--receipt", receipt.to_str().unwrap()];
    let o = delete_cli(&emu, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(!emu.projects().contains(&project));
    let r = receipt_at(&receipt);
    assert_eq!(r["complete"], true);
    assert_eq!(r["allIterations"], false);
    assert_eq!(ids(&r["projects"][0]["onlyInIterations"]), only, "destroyed with the project, by id");
    assert_eq!(r["totals"]["onlyInIterations"], 3);
    assert!(text(&o.stdout).contains("3 image(s) only trained iterations held were destroyed with them"));
}

/// `--only images` keeps the iterations' copies unless `--all-iterations` is given; the plan says
/// which, the requests do it, and the receipt records it.
#[tokio::test]
async fn only_images_keeps_the_iterations_copies_unless_all_iterations_is_asked() {
    let emu = generated_emulator("projects=1,images=300,seed=12,size=2048,iteration_only=2").await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project = emu.projects()[0];
    let pid = project.to_string();
    let iteration = client_for(&emu).get_iterations(project).await.unwrap()[0].id;
    let held = emu.iteration_image_ids(project, iteration);
    let only: BTreeSet<Uuid> = emu.iteration_only_ids(project).into_iter().collect();
    let workspace: BTreeSet<Uuid> = emu.image_ids(project).into_iter().collect();
    let kept: BTreeSet<Uuid> = held.iter().copied().filter(|id| workspace.contains(id)).collect();
    assert!(kept.len() > 10 && only.len() == 2);
    let backup_arg = backup.to_str().unwrap();

    let o = delete_cli(&emu, &["--backup", backup_arg, "--project", &pid, "--only", "images"]).await;
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!(
            "DeleteImages without allIterations: trained iterations keep their copies of {} of these images, and the 2",
            kept.len()
        )),
        "{out}"
    );
    let o = delete_cli(&emu, &["--backup", backup_arg, "--project", &pid, "--only", "images", "--json"]).await;
    let plan = crate::support::last_json_line(&o.stdout);
    assert_eq!(plan["allIterations"], false);
    assert_eq!(ids(&plan["projects"][0]["keptInIterations"]), kept);

    let first = dir.path().join("first.json");
    let args =
        ["--backup", backup_arg, "--project", &pid, "--only", "images", "--yes", "--receipt", first.to_str().unwrap()];
    let o = delete_cli(&emu, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(emu.image_ids(project).is_empty(), "the workspace is empty");
    assert_eq!(emu.iteration_image_ids(project, iteration), held, "the iteration keeps every copy");
    assert!(delete_images_paths(&emu).iter().all(|p| !p.contains("allIterations")), "{:?}", delete_images_paths(&emu));
    let r = receipt_at(&first);
    assert_eq!(r["complete"], true);
    assert_eq!(r["allIterations"], false);
    assert_eq!(ids(&r["projects"][0]["keptInIterations"]), kept);
    assert!(text(&o.stdout).contains("allIterations not sent: trained iterations keep their copies"));

    // Now every image the iteration holds is one only it holds; --all-iterations deletes them,
    // checked against the backup.
    emu.clear_requests();
    let second = dir.path().join("second.json");
    let args = [
        "--backup",
        backup_arg,
        "--project",
        &pid,
        "--only",
        "images",
        "--all-iterations",
        "--yes",
        "--receipt",
        second.to_str().unwrap(),
    ];
    let o = delete_cli(&emu, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(emu.iteration_image_ids(project, iteration).is_empty(), "the iteration's copies are gone");
    let paths = delete_images_paths(&emu);
    assert!(!paths.is_empty() && paths.iter().all(|p| p.contains("allIterations=true")), "{paths:?}");
    let r = receipt_at(&second);
    assert_eq!(r["complete"], true, "{r:#}");
    assert_eq!(r["allIterations"], true);
    assert_eq!(ids(&r["projects"][0]["images"]), held.iter().copied().collect::<BTreeSet<_>>());
    assert!(r["projects"][0]["keptInIterations"].as_array().unwrap().is_empty());
    assert!(client_for(&emu).get_iterations(project).await.unwrap().iter().any(|i| i.id == iteration), "kept");

    // The same receipt cannot be continued with the other choice.
    let o = delete_cli(
        &emu,
        &[
            "--backup",
            backup_arg,
            "--project",
            &pid,
            "--only",
            "images",
            "--yes",
            "--receipt",
            second.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("allIterations true instead of false"), "{}", text(&o.stderr));
}

async fn bulk(emu: &Emulator, backup: std::path::PathBuf, only: Option<Category>, all_iterations: bool) -> String {
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup));
    opts.only = only;
    opts.execute = true;
    opts.bulk_images = true;
    opts.all_iterations = all_iterations;
    opts.poll_interval = std::time::Duration::from_millis(50);
    emu.clear_requests();
    let progress = cvarchive::progress::NoProgress;
    let Outcome::Executed(done) = delete(&client_for(emu), &opts, &progress, &CancellationToken::new()).await.unwrap()
    else {
        panic!("executed")
    };
    assert_eq!(done.outcome, RunOutcome::Complete, "{:?}", done.receipt.failures);
    let paths = delete_images_paths(emu);
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].contains("allImages=true"), "{paths:?}");
    paths[0].clone()
}

/// `--bulk-images` sends `allIterations=true` only when asked: never for `--only images` alone,
/// nor for a whole project (whose iterations go anyway), and then the iterations keep theirs.
#[tokio::test]
async fn bulk_images_sends_all_iterations_only_when_asked() {
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let iteration: Uuid = "661c64d6-e4ab-46a0-96c9-b06934fac218".parse().unwrap();

    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let held = emu.iteration_image_ids(project, iteration);
    assert!(!held.is_empty());
    let path = bulk(&emu, backup, Some(Category::Images), false).await;
    assert!(!path.contains("allIterations"), "{path}");
    assert!(emu.image_ids(project).is_empty());
    assert_eq!(emu.iteration_image_ids(project, iteration), held, "the iteration keeps its copies");

    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let path = bulk(&emu, backup, None, false).await;
    assert!(!path.contains("allIterations"), "{path}");
    assert!(!emu.projects().contains(&project));

    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let path = bulk(&emu, backup, Some(Category::Images), true).await;
    assert!(path.contains("allIterations=true"), "{path}");
    assert!(emu.iteration_image_ids(project, iteration).is_empty(), "asked for, the copies go");
}
