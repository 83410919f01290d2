//! The delete gate cannot be fooled (issue 14, item 3): the backup is verified, hashed and read
//! from one open file, whatever happens to its path meanwhile; what the backup holds of each thing
//! about to be deleted must be what the service holds now (tags, regions, metadata), not only the
//! same ids; and a backup of another endpoint is refused unless the user says otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cvarchive::delete::{delete, DeleteOptions, Error, Outcome, RunOutcome, Targets};
use cvarchive::progress::{Event, NoProgress, Progress};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::delete::{backup_of, delete_cli};
use crate::support::fixtures::CLASSIFICATION;
use crate::support::*;

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn mutating(emu: &cvarchive::emulator::Emulator) -> Vec<String> {
    emu.requests().into_iter().filter(|r| r.mutating).map(|r| format!("{} {}", r.operation, r.path)).collect()
}

/// A copy of `backup` with one byte of a stored image flipped: it does not verify.
fn damaged_copy(emu: &cvarchive::emulator::Emulator, backup: &Path, to: &Path) {
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let image = emu.image_bytes(project, emu.image_ids(project)[0]).unwrap();
    let mut zip = std::fs::read(backup).unwrap();
    let at = zip.windows(image.len()).position(|w| w == image.as_slice()).expect("stored image in the zip");
    zip[at + image.len() / 2] ^= 0xFF;
    std::fs::write(to, zip).unwrap();
}

/// Renames files at chosen events, as an attacker who can write in the backup's folder would
/// between the gate's steps.
struct SwapAt {
    /// At `BackupVerified` (verified, not yet hashed or read): `(from, to)`.
    verified: Option<(PathBuf, PathBuf)>,
    /// At `Started` (the backup is hashed and indexed, the survey begins): `(from, to)`.
    started: Option<(PathBuf, PathBuf)>,
    swapped: Mutex<Vec<&'static str>>,
}

impl Progress for SwapAt {
    fn event(&self, event: Event) {
        let (name, swap) = match event {
            Event::BackupVerified { .. } => ("verified", &self.verified),
            Event::Started { .. } => ("started", &self.started),
            _ => return,
        };
        if let Some((from, to)) = swap {
            std::fs::rename(from, to).unwrap();
            self.swapped.lock().unwrap().push(name);
        }
    }
}

/// A different archive renamed over the backup once it is verified must not be what is hashed
/// and read; the path no longer names what was verified, so nothing is deleted.
#[tokio::test]
async fn a_backup_replaced_after_it_was_verified_is_refused() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let other = dir.path().join("other.zip");
    damaged_copy(&emu, &backup, &other);
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup.clone()));
    opts.execute = true;
    let swap = SwapAt { verified: Some((other, backup.clone())), started: None, swapped: Mutex::new(Vec::new()) };
    emu.clear_requests();

    let result = delete(&client_for(&emu), &opts, &swap, &CancellationToken::new()).await;
    assert_eq!(*swap.swapped.lock().unwrap(), ["verified"], "the hook ran");
    match result {
        Err(e @ Error::BackupChanged { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&backup.display().to_string()) && msg.contains("replaced"), "{msg}");
        }
        other => panic!("refused as changed, got {other:?}"),
    }
    assert_eq!(mutating(&emu), Vec::<String>::new(), "nothing deleted");
    assert!(emu.projects().contains(&project));
    assert!(!dir.path().join("backup.delete-receipt.json").exists(), "no receipt");
}

/// Swapped between verifying and hashing, then put back before deleting: what is hashed and
/// read is the file verified, so the receipt's hash is that of the verified bytes.
#[tokio::test]
async fn the_receipt_hashes_the_bytes_that_were_verified() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let verified_sha = sha256_of(&backup);
    let kept = dir.path().join("kept.zip");
    std::fs::hard_link(&backup, &kept).unwrap();
    let other = dir.path().join("other.zip");
    damaged_copy(&emu, &backup, &other);
    let other_sha = sha256_of(&other);
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup.clone()));
    opts.execute = true;
    let swap = SwapAt {
        verified: Some((other, backup.clone())),
        started: Some((kept, backup.clone())),
        swapped: Mutex::new(Vec::new()),
    };

    let outcome = delete(&client_for(&emu), &opts, &swap, &CancellationToken::new()).await.expect("deleted");
    assert_eq!(*swap.swapped.lock().unwrap(), ["verified", "started"], "both hooks ran");
    let Outcome::Executed(done) = outcome else { panic!("executed") };
    assert_eq!(done.outcome, RunOutcome::Complete);
    let recorded = done.receipt.backup.as_ref().expect("a backup recorded").sha256.clone();
    assert_ne!(recorded, other_sha, "not the hash of the archive swapped in");
    assert_eq!(recorded, verified_sha, "the hash of the bytes verified");
    assert_eq!(sha256_of(&backup), verified_sha, "the backup is back in place");
}

/// Metadata changed after the backup: the image would lose it, so nothing is deleted, and the
/// refusal names the image and what differs. A fresh backup passes.
#[tokio::test]
async fn an_image_whose_metadata_changed_after_the_backup_is_not_deleted() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let image = emu.image_ids(project)[1];
    let update = BTreeMap::from([("reviewed-by".to_string(), "someone".to_string())]);
    client_for(&emu).update_image_metadata(project, &[image], &update).await.unwrap();
    emu.clear_requests();

    let o = delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("1 item(s) changed at the service"), "{err}");
    assert!(err.contains(&format!("image {image} of project {project}: metadata changed")), "{err}");
    assert_eq!(mutating(&emu), Vec::<String>::new(), "nothing deleted");
    let o = delete_cli(&emu, &["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--json"]).await;
    let doc = crate::support::last_json_line(&o.stdout);
    assert_eq!((&doc["type"], &doc["kind"]), (&"error".into(), &"refused".into()), "{doc}");
    assert_eq!(doc["differences"][0]["id"], image.to_string(), "{doc}");
    assert_eq!(doc["differences"][0]["what"], serde_json::json!(["metadata"]), "{doc}");

    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = backup_of(&emu, fresh_dir.path()).await;
    let o = delete_cli(&emu, &["--backup", fresh.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!emu.projects().contains(&project));
}

/// Tags changed after the backup (`--only images`): refused, naming the image and its tags.
#[tokio::test]
async fn an_image_retagged_after_the_backup_is_not_deleted() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let tags: Vec<Uuid> = client_for(&emu).get_tags(project, None).await.unwrap().iter().map(|t| t.id).collect();
    let image = emu.image_ids(project)[0];
    let before = emu.image_ids(project).len();
    assert!(emu.set_image_tags(project, image, &tags), "re-tagged with every tag");
    emu.clear_requests();

    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--only", "images", "--yes"];
    let o = delete_cli(&emu, &args).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("image {image} of project {project}: tags changed")), "{err}");
    assert_eq!(mutating(&emu), Vec::<String>::new(), "nothing deleted");
    assert_eq!(emu.image_ids(project).len(), before);
}

/// A backup of another endpoint is refused, naming both hosts; `--backup-from-other-endpoint`
/// accepts it.
#[tokio::test]
async fn a_backup_of_another_endpoint_is_refused_unless_asked() {
    let source = fixture_emulator().await;
    let target = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&source, dir.path()).await;
    let (source_host, target_host) = (host(&source), host(&target));
    assert_ne!(source_host, target_host);

    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--yes"];
    let o = delete_cli(&target, &args).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("taken from {source_host}, not from {target_host}")), "{err}");
    assert!(err.contains("--backup-from-other-endpoint"), "{err}");
    assert_eq!(mutating(&target), Vec::<String>::new(), "nothing deleted");
    assert!(target.projects().contains(&CLASSIFICATION.parse().unwrap()));

    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--backup-from-other-endpoint"];
    let o = delete_cli(&target, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("DRY RUN"), "{}", text(&o.stdout));
}

fn host(emu: &cvarchive::emulator::Emulator) -> String {
    client_for(emu).host().to_owned()
}

/// Deleting a tag takes it off every image: when image batches fail, the run deletes no tag, so
/// the images left keep the content the backup holds and a rerun is not refused as changed.
#[tokio::test]
async fn failed_image_batches_keep_the_tags_so_a_rerun_passes_the_gate() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let project: Uuid = CLASSIFICATION.parse().unwrap();
    let mut opts = DeleteOptions::new(Targets::Projects(vec![project]), Some(backup));
    opts.execute = true;
    let client = client_for(&emu);
    emu.set_faults(cvarchive::emulator::FaultConfig {
        hostile: Some(cvarchive::emulator::Hostile::GatewayNotFound { operation: "DeleteImages" }),
        ..Default::default()
    });
    emu.clear_requests();

    let Outcome::Executed(first) = delete(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap() else {
        panic!("executed")
    };
    assert_eq!(first.outcome, RunOutcome::Failures);
    assert!(!mutating(&emu).iter().any(|r| r.starts_with("DeleteTag")), "no tag deleted: {:?}", mutating(&emu));
    assert!(first.receipt.failures.iter().any(|f| f.step == "tags"), "{:?}", first.receipt.failures);

    emu.set_faults(cvarchive::emulator::FaultConfig::default());
    let second =
        delete(&client, &opts, &NoProgress, &CancellationToken::new()).await.expect("the rerun passes the gate");
    let Outcome::Executed(second) = second else { panic!("executed") };
    assert_eq!(second.outcome, RunOutcome::Complete, "{:?}", second.receipt.failures);
    assert!(!emu.projects().contains(&project));
}
