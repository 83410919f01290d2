//! Issue 13, item 1: images that only trained iterations hold. The emulator keeps each trained
//! iteration's own copy of its images (a workspace delete without `allIterations` leaves it), and
//! export archives every such image, marked, with few extra calls.

use std::collections::{BTreeMap, HashSet};

use cvarchive::api::DeleteImages;
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use cvarchive::verify::{verify, VerifyOptions};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

/// The fixture's classification project and its trained iteration.
const CLS: &str = "e532f7f9-9827-476d-9159-4b592bf2ea6f";
const CLS_ITERATION: &str = "661c64d6-e4ab-46a0-96c9-b06934fac218";

async fn export_to(emu: &cvarchive::emulator::Emulator, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, out) = temp_archive(name);
    let summary = export(&client_for(emu), &ExportOptions::new(&out), &NoProgress, &CancellationToken::new())
        .await
        .expect("export succeeds");
    assert!(summary.complete, "{:?}", summary.missing);
    (dir, out)
}

fn lines_by_id(payload: &BTreeMap<String, Vec<u8>>, project: Uuid) -> BTreeMap<Uuid, serde_json::Value> {
    jsonl(payload, &format!("projects/{project}/images.jsonl"))
        .into_iter()
        .map(|l| (l["id"].as_str().unwrap().parse().unwrap(), l))
        .collect()
}

#[tokio::test]
async fn images_only_iterations_hold_are_archived_byte_for_byte_and_marked() {
    let emu = generated_emulator("projects=2,images=300,seed=5,iteration_only=4").await;
    let (_dir, out) = export_to(&emu, "only.zip").await;
    assert!(verify(&out, &VerifyOptions::default()).unwrap().is_clean());
    let payload = payload(&out);
    let account = json(&payload, "account.json");
    for (n, project) in emu.projects().into_iter().enumerate() {
        let only: HashSet<Uuid> = emu.iteration_only_ids(project).into_iter().collect();
        assert_eq!(only.len(), 4);
        let lines = lines_by_id(&payload, project);
        let workspace: HashSet<Uuid> = emu.image_ids(project).into_iter().collect();
        assert_eq!(lines.len(), workspace.len() + only.len(), "every image once");
        let record = &account["projects"][n];
        assert_eq!(record["archived"]["onlyInIterations"], 4);
        let iteration: Uuid = record["iterations"][0]["id"].as_str().unwrap().parse().unwrap();
        let held: HashSet<Uuid> = emu.iteration_image_ids(project, iteration).into_iter().collect();
        for (id, line) in &lines {
            assert_eq!(line["workspace"], workspace.contains(id), "{id}");
            let holders: Vec<&str> =
                line["iterations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(holders.contains(&iteration.to_string().as_str()), held.contains(id), "{id}");
        }
        for id in &only {
            let line = &lines[id];
            let bytes = &payload[line["file"].as_str().unwrap()];
            assert_eq!(bytes, &emu.image_bytes(project, *id).unwrap(), "the bytes the iteration's link serves");
            assert_eq!(line["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(bytes)));
            assert_eq!(line["taggingStatus"], "Tagged", "an iteration holds what it was trained on");
        }
        // Its image performances covered the iteration: two counts and one GetImagesByIds.
        assert_eq!(record["iterations"][0]["foundBy"], "imagePerformances");
        assert_eq!(record["iterations"][0]["calls"], 3);
    }
}

#[tokio::test]
async fn an_account_whose_iterations_hold_nothing_extra_costs_two_calls_an_iteration() {
    let emu = generated_emulator("projects=2,images=600,seed=6").await;
    let (_dir, out) = export_to(&emu, "plain.zip").await;
    let with_iteration: Vec<_> = emu.requests().into_iter().filter(|r| r.path.contains("iterationId=")).collect();
    let ops: Vec<&str> = with_iteration.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(ops.len(), 4, "{ops:?}");
    assert!(ops.iter().all(|o| o.ends_with("ImageCount")), "{ops:?}");
    let account = json(&payload(&out), "account.json");
    assert!(account["projects"].as_array().unwrap().iter().all(|p| p["archived"]["onlyInIterations"] == 0));
}

#[tokio::test]
async fn an_iteration_its_results_do_not_cover_is_listed_in_full() {
    let emu = fixture_emulator().await;
    let (_dir, out) = export_to(&emu, "fixture.zip").await;
    let payload = payload(&out);
    let project: Uuid = CLS.parse().unwrap();
    let only = emu.iteration_only_ids(project);
    assert_eq!(only.len(), 1, "the demo account has one");
    let line = &lines_by_id(&payload, project)[&only[0]];
    assert_eq!(line["workspace"], false);
    assert_eq!(line["iterations"], serde_json::json!([CLS_ITERATION]));
    assert_eq!(line["metadata"]["note"], "deleted from the workspace after training");
    let account = json(&payload, "account.json");
    let record = account["projects"].as_array().unwrap().iter().find(|p| p["id"] == CLS).unwrap();
    assert_eq!(record["iterations"][0]["foundBy"], "listing");
}

#[tokio::test]
async fn a_workspace_delete_keeps_the_iterations_copy_unless_all_iterations_is_set() {
    let emu = generated_emulator("projects=1,images=100,seed=8").await;
    let client = client_for(&emu);
    let project = emu.projects()[0];
    let iteration = client.get_iterations(project).await.unwrap()[0].id;
    let held = emu.iteration_image_ids(project, iteration);
    let (a, b) = (held[0], held[1]);
    let before = client.get_iteration_image_counts(project, iteration).await.unwrap();

    client.delete_images(project, &DeleteImages::Ids { ids: vec![a], all_iterations: false }).await.unwrap();
    assert!(client.get_images_by_ids(project, &[a]).await.unwrap().is_empty(), "gone from the workspace");
    let kept = client.get_images_by_ids_in(project, Some(iteration), &[a]).await.unwrap();
    assert_eq!(kept.len(), 1, "the iteration keeps its copy");
    assert_eq!(client.get_iteration_image_counts(project, iteration).await.unwrap(), before);

    let url = format!(
        "{}/customvision/v3.3/training/projects/{project}/images?imageIds={b}&allIterations=true",
        emu.endpoint()
    );
    let answer = reqwest::Client::new().delete(url).header("Training-Key", emu.key()).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert!(client.get_images_by_ids_in(project, Some(iteration), &[b]).await.unwrap().is_empty());
    let after = client.get_iteration_image_counts(project, iteration).await.unwrap();
    assert_eq!(after.0 + after.1, before.0 + before.1 - 1);
}
