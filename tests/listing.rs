//! Issue 13, item 2: a listing that changes while it is read. Paging by `skip` skips images when
//! others are deleted or re-tagged between pages; export lists again until a pass sees the
//! workspace still, and reports `complete` only when it archived every image the service holds.

use std::collections::HashSet;

use cvarchive::emulator::{FaultConfig, ListingMutation};
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

fn archived_ids(out: &std::path::Path, project: Uuid) -> HashSet<Uuid> {
    jsonl(&payload(out), &format!("projects/{project}/images.jsonl"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_listing_changed_between_pages_is_listed_again_until_every_image_is_archived() {
    let emu = generated_emulator("projects=1,images=1200,seed=11").await;
    let project = emu.projects()[0];
    let mutate = ListingMutation { delete: 3, untag: 5, times: 2 };
    emu.set_faults(FaultConfig { mutate_listing: Some(mutate), ..FaultConfig::default() });
    let (_dir, out) = temp_archive("mutated.zip");
    let summary = export(&client_for(&emu), &ExportOptions::new(&out), &NoProgress, &CancellationToken::new())
        .await
        .expect("export succeeds");
    let now: HashSet<Uuid> = emu.image_ids(project).into_iter().collect();
    let archived = archived_ids(&out, project);
    let skipped: Vec<_> = now.difference(&archived).collect();
    assert!(skipped.is_empty(), "images the service holds but the archive lacks: {skipped:?}");
    assert!(summary.complete, "{:?}", summary.missing);
    let account = json(&payload(&out), "account.json");
    let notes = account["projects"][0]["notes"].to_string();
    assert!(notes.contains("listed 2 times"), "{notes}");
}

#[tokio::test]
async fn a_listing_that_never_settles_exits_1_and_says_what_is_missing() {
    let emu = generated_emulator("projects=1,images=1200,seed=12").await;
    let mutate = ListingMutation { delete: 2, untag: 0, times: 1000 };
    emu.set_faults(FaultConfig { mutate_listing: Some(mutate), ..FaultConfig::default() });
    let (_dir, out) = temp_archive("unsettled.zip");
    let path = out.to_str().unwrap();
    let o = cvarchive(
        &["export", "--endpoint", &emu.endpoint(), "--out", path, "--no-progress", "--api-rate", "1000"],
        &[("VISION_TRAINING_KEY", emu.key())],
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let account = json(&payload(&out), "account.json");
    assert_eq!(account["complete"], false);
    let missing = account["projects"][0]["missing"].as_array().unwrap();
    let listing = missing.iter().find(|m| m["kind"] == "image-listing").expect("the shortfall is recorded");
    assert!(listing["reason"].as_str().unwrap().contains("kept changing"), "{listing}");
}
