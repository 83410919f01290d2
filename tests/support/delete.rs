//! What the delete tests share: a backup of an emulator's account to delete against, and the
//! `delete` command run against the emulator.

use std::path::{Path, PathBuf};

use cvarchive::emulator::Emulator;
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use tokio_util::sync::CancellationToken;

use super::{client_for, cvarchive};

/// The account `emu` holds, exported into `dir/backup.zip`.
pub async fn backup_of(emu: &Emulator, dir: &Path) -> PathBuf {
    let out = dir.join("backup.zip");
    export(&client_for(emu), &ExportOptions::new(&out), &NoProgress, &CancellationToken::new())
        .await
        .expect("export succeeds");
    out
}

/// `cvarchive delete` against `emu`, unpaced, with `args` after the endpoint.
pub async fn delete_cli(emu: &Emulator, args: &[&str]) -> std::process::Output {
    let endpoint = emu.endpoint();
    let mut all = vec!["delete", "--endpoint", endpoint.as_str(), "--api-rate", "unlimited"];
    all.extend_from_slice(args);
    cvarchive(&all, &[("VISION_TRAINING_KEY", emu.key())]).await
}
