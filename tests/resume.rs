//! Interruption and resume: Ctrl-C, `kill -9` at random moments, a different job on the same
//! partial archive, and a full disk. The final path never holds a partial archive; running the
//! same command again continues without downloading again what was kept.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use cvarchive::emulator::{self, AccountSpec, Emulator, EmulatorOptions, FaultConfig};
use cvarchive::verify::{verify, VerifyOptions};
use rand::{Rng, SeedableRng};
use sha2::Digest;
use uuid::Uuid;

use crate::support::*;

/// An emulator holding the generated account `spec`, each image download delayed by `blob_ms`.
pub(crate) async fn slow_emulator(spec: &str, blob_ms: u64) -> Emulator {
    let faults = FaultConfig { blob_latency: Duration::from_millis(blob_ms), ..FaultConfig::default() };
    let opts = EmulatorOptions {
        account: AccountSpec::Generated(spec.parse().unwrap()),
        faults,
        ..EmulatorOptions::default()
    };
    emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn export_cmd(emu: &Emulator, out: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args([
        "export",
        "--endpoint",
        &emu.endpoint(),
        "--out",
        out.to_str().unwrap(),
        "--no-predictions",
        "--no-progress",
    ])
    .args(["--api-rate", "unlimited"])
    .env("VISION_TRAINING_KEY", emu.key())
    .env_remove("VISION_TRAINING_ENDPOINT")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    cmd
}

fn blob_downloads(emu: &Emulator) -> usize {
    emu.requests().iter().filter(|r| r.operation == "Blob" && r.status == 200).count()
}

fn partial(out: &Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    p.into()
}

fn archived_ids(out: &Path, project: Uuid) -> HashSet<Uuid> {
    jsonl(&payload(out), &format!("projects/{project}/images.jsonl"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_keeps_a_resumable_state_and_the_same_command_continues() {
    let emu = slow_emulator("projects=1,images=600,seed=21", 20).await;
    let project = emu.projects()[0];
    let (_dir, out) = temp_archive("backup.zip");
    let child = export_cmd(&emu, &out).spawn().unwrap();
    // Interrupt once some images are archived.
    while blob_downloads(&emu) < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(child.id().unwrap(), "-INT");
    let o = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("run the same command again"), "{err}");
    assert!(!out.exists(), "the final path never holds a partial archive");
    assert!(partial(&out).exists(), "the resumable state is kept");

    let before = blob_downloads(&emu);
    let o = export_cmd(&emu, &out).output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let again = blob_downloads(&emu) - before;
    // The SHA-256 printed for a resumed archive is the file's (it is read again, not guessed).
    let printed =
        String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("sha256:").map(|h| h.trim().to_owned()));
    assert_eq!(printed.as_deref(), Some(hex::encode(sha2::Sha256::digest(std::fs::read(&out).unwrap())).as_str()));
    assert!(again < 600 - 100, "the second run downloaded {again} images of 600");
    assert!(!partial(&out).exists(), "the partial state is gone once complete");
    assert!(verify(&out, &VerifyOptions::default()).unwrap().is_clean());
    assert_eq!(archived_ids(&out, project), emu.image_ids(project).into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_ten_random_moments_loses_nothing() {
    let emu = slow_emulator("projects=1,images=2000,seed=23,size=4096", 20).await;
    let project = emu.projects()[0];
    let (_dir, out) = temp_archive("killed.zip");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut kills = 0;
    while kills < 10 && !out.exists() {
        // Eight downloads in flight: what a kill loses is those, plus at most one journal batch.
        let mut child = export_cmd(&emu, &out).args(["--concurrency", "8"]).spawn().unwrap();
        let at = Duration::from_millis(rng.random_range(50..900));
        tokio::select! {
            _ = tokio::time::sleep(at) => {
                signal(child.id().unwrap(), "-KILL");
                let _ = child.wait().await;
                kills += 1;
            }
            status = child.wait() => assert!(status.unwrap().success(), "an uninterrupted run succeeds"),
        }
        assert!(!out.exists() || verify(&out, &VerifyOptions::default()).unwrap().is_clean());
    }
    if !out.exists() {
        let o = export_cmd(&emu, &out).output().await.unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let report = verify(&out, &VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(archived_ids(&out, project), emu.image_ids(project).into_iter().collect());
    let downloads = blob_downloads(&emu);
    assert_eq!(kills, 10, "ten kills before the export could finish");
    let ratio = downloads as f64 / 2000.0;
    eprintln!("kill -9 x{kills}: {downloads} image downloads for 2000 images ({ratio:.3}x)");
    assert!(ratio <= 1.1, "downloaded {downloads} images for 2000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_archive_of_another_job_is_not_mixed_in() {
    let emu = slow_emulator("projects=2,images=300,seed=25", 20).await;
    let (_dir, out) = temp_archive("mixed.zip");
    let child = export_cmd(&emu, &out).spawn().unwrap();
    while blob_downloads(&emu) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(child.id().unwrap(), "-INT");
    let _ = child.wait_with_output().await.unwrap();
    let one = emu.projects()[0].to_string();
    let o = export_cmd(&emu, &out).args(["--project", &one]).output().await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--fresh"), "{err}");
    let o = export_cmd(&emu, &out).args(["--project", &one, "--fresh"]).output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let payload = payload(&out);
    assert!(payload.keys().filter(|k| k.starts_with("projects/")).all(|k| k.starts_with(&format!("projects/{one}/"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_named_and_keeps_the_resumable_state() {
    // A 1 MiB filesystem of our own, in a private mount namespace (needs root, as CI is).
    if !crate::support::tools::require_unshare() {
        return;
    }
    let emu = slow_emulator("projects=1,images=100,seed=27,size=32768", 0).await;
    let bin = env!("CARGO_BIN_EXE_cvarchive");
    let script = format!(
        "set -u; d=$(mktemp -d); mount -t tmpfs -o size=1m tmpfs \"$d\" || exit 99; \
         VISION_TRAINING_KEY='{key}' '{bin}' export --endpoint '{ep}' --out \"$d/backup.zip\" --no-predictions --no-progress; \
         echo \"exit=$?\"; ls -a \"$d\"",
        key = emu.key(),
        ep = emu.endpoint(),
    );
    let o = tokio::process::Command::new("unshare").args(["-m", "sh", "-c", &script]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stdout.contains("exit=2"), "{stdout}\n{stderr}");
    assert!(stderr.contains("No space left on device") && stderr.contains("backup.zip"), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let listing: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("exit=")).skip(1).collect();
    assert!(!listing.contains(&"backup.zip"), "nothing at the final path: {listing:?}");
    assert!(listing.contains(&"backup.zip.partial"), "the resumable state is kept: {listing:?}");
}

#[tokio::test]
async fn a_partial_archive_without_its_journal_is_not_overwritten_silently() {
    let emu = crate::support::fixture_emulator().await;
    let client = client_for(&emu);
    let (_dir, out) = temp_archive("finished.zip");
    let opts = cvarchive::export::ExportOptions::new(&out);
    let cancel = tokio_util::sync::CancellationToken::new();
    cvarchive::export::export(&client, &opts, &cvarchive::progress::NoProgress, &cancel).await.unwrap();
    // As if the export had been stopped between removing its journal and the final rename.
    std::fs::rename(&out, partial(&out)).unwrap();
    let err = cvarchive::export::export(&client, &opts, &cvarchive::progress::NoProgress, &cancel).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cvarchive verify") && text.contains("--fresh"), "{text}");
    assert!(partial(&out).exists(), "the possibly complete archive is kept");
    let fresh = cvarchive::export::ExportOptions { fresh: true, ..opts.clone() };
    cvarchive::export::export(&client, &fresh, &cvarchive::progress::NoProgress, &cancel).await.unwrap();
    assert!(verify(&out, &VerifyOptions::default()).unwrap().is_clean());
}
