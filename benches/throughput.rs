//! Figures 1 and 5: export throughput against the hardware, and full-verify throughput, each as a
//! ratio to single-core SHA-256 over the same image bytes, measured in the same run.
//!
//! The account is generated (2 projects of 2,000 images of about 256 KiB, about 1 GiB) and served
//! by the emulator in this process on loopback with no added latency, so it shares the cores with
//! the export, as the issue asks. The export runs through the library with the default options
//! except API pacing (off: this figure is about bytes, not the service's call limit).

mod common;

use std::time::Instant;

use common::{mbps, note, Row};
use cvarchive::emulator::FaultConfig;
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use cvarchive::verify::{verify, VerifyOptions};
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "projects=2,images=2000,seed=1,size=262144";

#[tokio::main]
async fn main() {
    let emu = common::generated(ACCOUNT, FaultConfig::default()).await;
    emu.store_md5s();
    let dir = common::scratch();
    let out = common::path_in(&dir, "throughput.zip");
    let client = common::client(&emu, None);
    let opts = ExportOptions::new(&out);
    let started = Instant::now();
    let summary = export(&client, &opts, &NoProgress, &CancellationToken::new()).await.expect("the export succeeds");
    let seconds = started.elapsed().as_secs_f64();
    assert!(summary.complete, "the export is complete");
    drop(emu);

    let rate = summary.image_bytes as f64 / seconds;
    let (sha, hashed) = tokio::task::spawn_blocking({
        let out = out.clone();
        move || common::sha256_rate_of_images(&out)
    })
    .await
    .expect("hashing runs");
    assert_eq!(hashed, summary.image_bytes, "the reference hashes the same bytes");
    let ratio = rate / sha;
    Row {
        figure: "1",
        what: "export throughput vs single-core SHA-256 (2 x 2,000 images of 256 KiB, loopback)",
        measured: mbps(rate),
        reference: mbps(sha),
        result: format!("{ratio:.2}"),
        target: ">= 0.5",
        met: Some(ratio >= 0.5),
    }
    .print();
    note(format!(
        "figure 1: {} images, {:.0} MB of images in {seconds:.2} s, concurrency {}",
        summary.images,
        summary.image_bytes as f64 / 1e6,
        opts.concurrency
    ));

    let started = Instant::now();
    let report = tokio::task::spawn_blocking({
        let out = out.clone();
        move || verify(&out, &VerifyOptions::default()).expect("the archive reads")
    })
    .await
    .expect("verify runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.is_clean(), "the archive verifies: {:?}", report.findings.first());
    let rate = report.bytes_hashed as f64 / seconds;
    let ratio = rate / sha;
    Row {
        figure: "5",
        what: "full verify throughput vs single-core SHA-256 (same archive)",
        measured: mbps(rate),
        reference: mbps(sha),
        result: format!("{ratio:.2}"),
        target: ">= 0.8",
        met: Some(ratio >= 0.8),
    }
    .print();
    note(format!(
        "figure 5: {:.0} MB re-hashed in {seconds:.2} s ({} threads)",
        report.bytes_hashed as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    ));
}
