//! Issue 14 item 6: a symbolic link planted where cvarchive puts a side file (`OUT.partial`, its
//! journal, the restore report's `.tmp`, the receipt's pending log, convert's output) never makes
//! it write the file the link points to; the run stops with an error naming the side file.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use cvarchive::emulator::AccountSpec;
use cvarchive::export::{export, partial_path, ExportOptions};
use cvarchive::progress::NoProgress;
use tokio_util::sync::CancellationToken;

use crate::support::delete::{backup_of, delete_cli};
use crate::support::fixtures::{fixture_archive, CLASSIFICATION};
use crate::support::*;

const PRECIOUS: &[u8] = b"the victim's own bytes\n";

/// A victim file outside the output folder, and a link to it planted at `at`.
fn plant(dir: &Path, at: &Path) -> PathBuf {
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, PRECIOUS).unwrap();
    symlink(&victim, at).unwrap();
    victim
}

fn journal_of(partial: &Path) -> PathBuf {
    cvarchive::archive::journal_path(partial)
}

async fn export_error(out: &Path, fresh: bool) -> String {
    let emu = fixture_emulator().await;
    let opts = ExportOptions { fresh, ..ExportOptions::new(out) };
    let err = export(&client_for(&emu), &opts, &NoProgress, &CancellationToken::new())
        .await
        .expect_err("the export refuses the planted link");
    cvarchive::text::error_chain(&err)
}

#[tokio::test]
async fn a_link_at_the_partial_archive_is_refused_resumed_or_fresh() {
    for fresh in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("backup.zip");
        let partial = partial_path(&out);
        let victim = plant(dir.path(), &partial);
        let err = export_error(&out, fresh).await;
        assert!(err.contains(&partial.display().to_string()) && err.contains("symbolic link"), "fresh {fresh}: {err}");
        assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "fresh {fresh}: the victim is untouched");
        assert!(!out.exists());
    }
}

#[tokio::test]
async fn a_dangling_link_at_the_partial_archive_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.zip");
    let partial = partial_path(&out);
    let nowhere = dir.path().join("created-by-the-link.txt");
    symlink(&nowhere, &partial).unwrap();
    let err = export_error(&out, true).await;
    assert!(err.contains(&partial.display().to_string()), "{err}");
    assert!(!nowhere.exists(), "the link's target was not created");
}

#[tokio::test]
async fn a_link_at_the_journal_is_refused() {
    for fresh in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("backup.zip");
        let journal = journal_of(&partial_path(&out));
        let victim = plant(dir.path(), &journal);
        let err = export_error(&out, fresh).await;
        assert!(err.contains(&journal.display().to_string()) && err.contains("symbolic link"), "fresh {fresh}: {err}");
        assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "fresh {fresh}: the victim is untouched");
    }
}

#[tokio::test]
async fn a_link_at_the_restore_reports_temporary_file_is_refused() {
    let (dir, archive) = fixture_archive().await;
    let target = emulator_with(AccountSpec::Empty).await;
    let tmp = dir.path().join("demo.restore.json.tmp");
    let victim = plant(dir.path(), &tmp);
    let endpoint = target.endpoint();
    let args = ["restore", archive.to_str().unwrap(), "--endpoint", &endpoint, "--no-progress"];
    let o = cvarchive(&args, &[("VISION_TRAINING_KEY", target.key())]).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&tmp.display().to_string()) && stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "the victim is untouched");
}

#[tokio::test]
async fn a_link_at_the_receipts_pending_log_is_refused_before_any_delete() {
    let emu = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&emu, dir.path()).await;
    let receipt = dir.path().join("receipt.json");
    let pending = dir.path().join("receipt.json.pending");
    let victim = plant(dir.path(), &pending);
    let before = emu.image_ids(CLASSIFICATION.parse().unwrap()).len();
    let args = [
        "--backup",
        backup.to_str().unwrap(),
        "--project",
        CLASSIFICATION,
        "--yes",
        "--receipt",
        receipt.to_str().unwrap(),
    ];
    let o = delete_cli(&emu, &args).await;
    let stderr = text(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&pending.display().to_string()) && stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "the victim is untouched");
    assert_eq!(emu.image_ids(CLASSIFICATION.parse().unwrap()).len(), before, "nothing was deleted unlogged");
}

#[tokio::test]
async fn a_link_in_converts_output_is_not_followed() {
    use cvarchive::convert::{convert, ConvertOptions, Target};
    let (dir, archive) = fixture_archive().await;
    let out = dir.path().join("folders");
    std::fs::create_dir(&out).unwrap();
    // The staging folder of a project planted as a link to a folder of the victim's.
    let victim_dir = dir.path().join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("keep.txt"), PRECIOUS).unwrap();
    symlink(&victim_dir, out.join(format!(".{CLASSIFICATION}.partial"))).unwrap();
    let opts = ConvertOptions {
        to: Target::Folders,
        out: out.clone(),
        projects: vec![CLASSIFICATION.parse().unwrap()],
        force: false,
    };
    let report = convert(&archive, &opts, &NoProgress).expect("the stale link is replaced by a folder");
    assert_eq!(std::fs::read(victim_dir.join("keep.txt")).unwrap(), PRECIOUS);
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 1, "nothing written into the victim's folder");
    assert!(std::fs::symlink_metadata(&report.projects[0].path).unwrap().is_dir());
}
