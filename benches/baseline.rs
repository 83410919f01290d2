//! Figure 2: cvarchive at its default settings against the way people export today, a
//! sequential script on the official Python SDK (`benches/baseline/export_sdk.py`), both against
//! the same emulator with realistic latency (50 ms per API call, 30 ms per blob).
//!
//! The Python interpreter (with the SDK installed) comes from `$CVARCHIVE_PYTHON`, else
//! `.venv/bin/python`; `scripts/bench` sets it up. Without one the row says "not available".

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{note, Row};
use cvarchive::emulator::FaultConfig;

const ACCOUNT: &str = "projects=2,images=1000,seed=2,size=262144";

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("CVARCHIVE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    path.exists().then_some(path)
}

#[tokio::main]
async fn main() {
    let faults = FaultConfig {
        api_latency: Duration::from_millis(50),
        blob_latency: Duration::from_millis(30),
        ..FaultConfig::default()
    };
    let emu = common::generated(ACCOUNT, faults).await;
    emu.store_md5s();
    let dir = common::scratch();

    let ours = tokio::task::spawn_blocking({
        let out = common::path_in(&dir, "ours.zip");
        let (endpoint, key) = (emu.endpoint(), emu.key().to_owned());
        move || {
            let args = ["export", "--endpoint", &endpoint, "--out", out.to_str().unwrap(), "--no-progress"];
            common::run_measured(&args, &[("VISION_TRAINING_KEY", &key)])
        }
    })
    .await
    .expect("the export runs");
    assert_eq!(ours.code, 0, "cvarchive export failed: {}", ours.stderr);
    let api_calls =
        |emu: &cvarchive::emulator::Emulator| emu.requests().iter().filter(|r| r.operation != "Blob").count();
    let our_calls = api_calls(&emu);
    emu.clear_requests();

    let Some(python) = python() else {
        Row {
            figure: "2",
            what: "wall time vs sequential Python SDK script (50 ms/call, 30 ms/blob)",
            measured: format!("{:.1} s", ours.seconds),
            reference: "not available (no Python with the SDK; run scripts/bench)".into(),
            result: "n/a".into(),
            target: ">= 20x faster",
            met: None,
        }
        .print();
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline/export_sdk.py");
    let baseline = tokio::task::spawn_blocking({
        let out = common::path_in(&dir, "baseline.zip");
        let (endpoint, key) = (emu.endpoint(), emu.key().to_owned());
        move || {
            let started = std::time::Instant::now();
            let output = std::process::Command::new(python)
                .arg(script)
                .args(["--endpoint", &endpoint, "--out", out.to_str().unwrap()])
                .env("VISION_TRAINING_KEY", &key)
                .output()
                .expect("python runs");
            (started.elapsed().as_secs_f64(), output)
        }
    })
    .await
    .expect("the baseline runs");
    let (seconds, output) = baseline;
    assert!(output.status.success(), "the baseline failed: {}", String::from_utf8_lossy(&output.stderr));
    let stats: serde_json::Value =
        serde_json::from_slice(output.stdout.trim_ascii()).expect("the baseline prints its summary");
    let ratio = seconds / ours.seconds;
    Row {
        figure: "2",
        what: "wall time vs sequential Python SDK script (2 x 1,000 images of 256 KiB, 50 ms/call, 30 ms/blob)",
        measured: format!("{:.1} s", ours.seconds),
        reference: format!("{seconds:.1} s"),
        result: format!("{ratio:.1}x faster"),
        target: ">= 20x faster",
        met: Some(ratio >= 20.0),
    }
    .print();
    note(format!(
        "figure 2: the baseline archived {} images ({:.0} MB); cvarchive ran with its defaults (its summary: {})",
        stats["images"],
        stats["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        ours.stdout.lines().next().unwrap_or("").trim()
    ));
    note(format!("figure 2: API calls: cvarchive {our_calls}, the baseline {}", api_calls(&emu)));
}
