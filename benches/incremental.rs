//! Figure 6: incremental backups. An unchanged 10,000-image account is exported once in full,
//! then again with `--base` the first archive: the image bytes downloaded (from the emulator's
//! record of blob answers) and the time as a ratio to the full export. Then 1% new images are
//! added and the bytes downloaded are compared with the new images' own bytes. Both runs use
//! the binary at its defaults against the realistic latency of figure 2 (50 ms per API call,
//! 30 ms per blob), and each incremental archive must verify on its own.
//!
//! Until `export --base` exists in the binary, the rows say "not available".

mod common;

use std::time::Duration;

use common::{mib, note, Row};
use cvarchive::emulator::{Emulator, FaultConfig};
use cvarchive::verify::{verify, VerifyOptions};

const ACCOUNT: &str = "projects=1,images=10000,seed=6,size=65536";

fn has_base_option() -> bool {
    std::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"))
        .args(["export", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--base"))
}

/// Image bytes the emulator's blob answers carried since the record was last cleared.
fn blob_bytes(emu: &Emulator) -> (usize, u64) {
    let requests = emu.requests();
    let blobs: Vec<_> = requests.iter().filter(|r| r.operation == "Blob" && r.status < 300).collect();
    (blobs.len(), blobs.iter().map(|r| r.response_bytes).sum())
}

async fn export(emu: &Emulator, out: &std::path::Path, base: Option<&std::path::Path>) -> common::Measured {
    let (endpoint, key) = (emu.endpoint(), emu.key().to_owned());
    let out = out.to_path_buf();
    let base = base.map(|b| b.to_str().unwrap().to_owned());
    tokio::task::spawn_blocking(move || {
        let mut args = vec!["export", "--endpoint", &endpoint, "--out", out.to_str().unwrap(), "--no-progress"];
        if let Some(base) = &base {
            args.extend(["--base", base.as_str()]);
        }
        let m = common::run_measured(&args, &[("VISION_TRAINING_KEY", &key)]);
        assert_eq!(m.code, 0, "export failed: {}", m.stderr);
        m
    })
    .await
    .expect("the export runs")
}

fn assert_verifies(path: &std::path::Path) {
    let report = verify(path, &VerifyOptions::default()).expect("the archive reads");
    assert!(report.is_clean(), "{} verifies on its own: {:?}", path.display(), report.findings.first());
}

#[tokio::main]
async fn main() {
    if !has_base_option() {
        for what in [
            "unchanged 10,000 images: image bytes downloaded",
            "unchanged: time vs a full export",
            "1% new images: bytes downloaded",
        ] {
            Row {
                figure: "6",
                what,
                measured: "not available".into(),
                reference: "-".into(),
                result: "n/a".into(),
                target: "see README",
                met: None,
            }
            .print();
        }
        note("figure 6: this build of cvarchive has no `export --base`");
        return;
    }
    let faults = FaultConfig {
        api_latency: Duration::from_millis(50),
        blob_latency: Duration::from_millis(30),
        ..FaultConfig::default()
    };
    let emu = common::generated(ACCOUNT, faults).await;
    emu.store_md5s();
    let project = emu.projects()[0];
    let dir = common::scratch();
    let full_path = common::path_in(&dir, "full.zip");
    let full = export(&emu, &full_path, None).await;
    let (full_blobs, full_bytes) = blob_bytes(&emu);

    emu.clear_requests();
    let same_path = common::path_in(&dir, "unchanged.zip");
    let same = export(&emu, &same_path, Some(&full_path)).await;
    let (same_blobs, same_bytes) = blob_bytes(&emu);
    assert_verifies(&same_path);
    let _ = std::fs::remove_file(&same_path);

    let new = emu.add_images(project, 100);
    let new_bytes: u64 = new.iter().map(|id| emu.image_bytes(project, *id).map_or(0, |b| b.len() as u64)).sum();
    emu.clear_requests();
    let grown_path = common::path_in(&dir, "grown.zip");
    let grown = export(&emu, &grown_path, Some(&full_path)).await;
    let (grown_blobs, grown_bytes) = blob_bytes(&emu);
    assert_verifies(&grown_path);

    Row {
        figure: "6",
        what: "unchanged 10,000 images with --base: image bytes downloaded",
        measured: format!("{same_bytes} B ({same_blobs} blobs)"),
        reference: format!("{} in the full export", mib(full_bytes)),
        result: format!("{same_bytes} B"),
        target: "0",
        met: Some(same_bytes == 0),
    }
    .print();
    let ratio = full.seconds / same.seconds;
    Row {
        figure: "6",
        what: "unchanged 10,000 images with --base: time vs a full export (50 ms/call, 30 ms/blob)",
        measured: format!("{:.1} s", same.seconds),
        reference: format!("{:.1} s", full.seconds),
        result: format!("{ratio:.1}x faster"),
        target: ">= 10x faster",
        met: Some(ratio >= 10.0),
    }
    .print();
    Row {
        figure: "6",
        what: "1% new images (100) with --base: image bytes downloaded",
        measured: format!("{} ({grown_blobs} blobs)", mib(grown_bytes)),
        reference: format!("{} of new images", mib(new_bytes)),
        result: format!("{:.2}x the new bytes", grown_bytes as f64 / new_bytes.max(1) as f64),
        target: "only the new ones",
        met: Some(grown_bytes <= new_bytes),
    }
    .print();
    note(format!("figure 6: full export {full_blobs} blobs, {}; with 1% new: {:.1} s", mib(full_bytes), grown.seconds));
}
