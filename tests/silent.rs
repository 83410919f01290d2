//! A server that never answers (issue 13, item 8): connect and first-byte timeouts, the overall
//! bound of one call, and Ctrl-C or SIGTERM stopping the requests in flight within seconds while
//! keeping the resumable state. Real sockets throughout; the CLI runs as a child process.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cvarchive::api::{Client, ClientOptions, Error};
use cvarchive::emulator::{self, AccountSpec, EmulatorOptions, FaultConfig, Hostile};
use cvarchive::secret::TrainingKey;
use cvarchive::verify::{verify, VerifyOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// The longest an interrupted export may take to stop: a correctness bound, not a benchmark.
const STOPS_WITHIN: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 that accepts every connection and never writes a byte. Returns its
/// address and how many connections it accepted; the sockets are held open until the test ends.
async fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

fn export_cmd(endpoint: &str, key: &str, out: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(["export", "--endpoint", endpoint, "--out", out.to_str().unwrap(), "--no-predictions", "--no-progress"])
        .args(["--api-rate", "unlimited"])
        .env("VISION_TRAINING_KEY", key)
        .env_remove("VISION_TRAINING_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

/// Sends `sig` to the child and returns how long it took to exit, and its output. A child still
/// running 20 s later is killed, so that a regression fails the test instead of hanging it.
async fn stop(child: tokio::process::Child, sig: &str) -> (Duration, std::process::Output) {
    let pid = child.id().unwrap();
    let sent = Instant::now();
    signal(pid, sig);
    let waited = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await;
    let took = sent.elapsed();
    match waited {
        Ok(output) => (took, output.unwrap()),
        Err(_) => {
            signal(pid, "-KILL");
            panic!("the export was still running {took:?} after {sig}");
        }
    }
}

fn partial(out: &Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    p.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_fails_within_the_bound_naming_the_host() {
    let (addr, accepted) = silent_server().await;
    let (_dir, out) = temp_archive("silent.zip");
    let started = Instant::now();
    let o =
        export_cmd(&format!("http://{addr}"), "not-a-real-key", &out).args(["--timeout", "1"]).output().await.unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("a silent server: failed after {took:?}, {} connections: {err}", accepted.load(Ordering::SeqCst));
    assert_eq!(o.status.code(), Some(2), "{err}");
    // An endpoint that never answered gets three attempts of one second each, plus short waits.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(took >= Duration::from_secs(2), "the timeouts were waited out: {took:?}");
    assert!(err.contains("GetProjects") && err.contains(&addr) && err.contains("timed out"), "{err}");
    assert!(!err.contains("not-a-real-key"), "no secret in the message: {err}");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_an_export_waiting_on_a_silent_server() {
    let (addr, accepted) = silent_server().await;
    let (_dir, out) = temp_archive("silent.zip");
    // The default timeouts: only the interrupt can stop it this soon.
    let child = export_cmd(&format!("http://{addr}"), "k", &out).spawn().unwrap();
    while accepted.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (took, o) = stop(child, "-INT").await;
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("Ctrl-C on a silent server: stopped in {took:?}");
    assert!(took < STOPS_WITHIN, "took {took:?}: {err}");
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_an_export_whose_last_call_hangs_and_the_next_run_resumes() {
    // Every image downloads (the bar would show full) while GetIterations never answers.
    let images = 200;
    let faults = FaultConfig {
        hostile: Some(Hostile::SilentOperation("GetIterations")),
        blob_latency: Duration::from_millis(2),
        ..FaultConfig::default()
    };
    let opts = EmulatorOptions {
        account: AccountSpec::Generated(format!("projects=1,images={images},seed=31").parse().unwrap()),
        faults,
        ..EmulatorOptions::default()
    };
    let emu = emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.unwrap();
    let project = emu.projects()[0];
    let downloads = |emu: &emulator::Emulator| emu.requests().iter().filter(|r| r.operation == "Blob").count();
    let (_dir, out) = temp_archive("hung.zip");
    let child = export_cmd(&emu.endpoint(), emu.key(), &out).spawn().unwrap();
    let waiting = Instant::now();
    while downloads(&emu) < images {
        assert!(waiting.elapsed() < Duration::from_secs(60), "{} of {images} downloaded", downloads(&emu));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (took, o) = stop(child, "-TERM").await;
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("SIGTERM with GetIterations hung: stopped in {took:?}");
    assert!(took < STOPS_WITHIN, "took {took:?}: {err}");
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("run the same command again"), "{err}");
    assert!(!out.exists(), "the final path never holds a partial archive");
    assert!(partial(&out).exists(), "the resumable state is kept");

    emu.set_faults(FaultConfig::default());
    let before = downloads(&emu);
    let o = export_cmd(&emu.endpoint(), emu.key(), &out).output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let again = downloads(&emu) - before;
    eprintln!("the resumed run downloaded {again} of {images} images");
    assert!(again < images / 10, "the resumed run downloaded {again} of {images} images");
    let report = verify(&out, &VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let archived: std::collections::HashSet<String> =
        jsonl(&payload(&out), &format!("projects/{project}/images.jsonl"))
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(archived, emu.image_ids(project).iter().map(|id| id.to_string()).collect());
}
fn silent_client(addr: &str, tune: impl FnOnce(&mut ClientOptions)) -> Client {
    let mut o = ClientOptions::new(format!("http://{addr}"), TrainingKey::new("k"));
    o.api_rate = None;
    tune(&mut o);
    Client::new(o).unwrap()
}

#[tokio::test]
async fn the_overall_bound_cuts_a_call_whose_timeouts_are_longer() {
    let (addr, _) = silent_server().await;
    let client = silent_client(&addr, |o| {
        o.read_timeout = Duration::from_secs(60);
        o.retry.max_total = Duration::from_millis(800);
    });
    let started = Instant::now();
    let err = client.get_projects().await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Deadline { .. }), "{err:?}");
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(3), "{took:?}");
    let text = err.to_string();
    assert!(text.contains("GetProjects") && text.contains(&addr), "{text}");
    assert_eq!(err.retry_kind(), None, "the bound is final");
}

#[tokio::test]
async fn cancelling_stops_a_call_in_flight_and_a_retry_wait() {
    let (addr, _) = silent_server().await;
    let cancel = CancellationToken::new();
    let client = silent_client(&addr, |o| o.cancel = cancel.clone());
    let call = tokio::spawn(async move { client.get_projects().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled = Instant::now();
    cancel.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert!(cancelled.elapsed() < Duration::from_secs(1), "{:?}", cancelled.elapsed());
    assert!(matches!(err, Error::Interrupted { op: "GetProjects" }), "{err:?}");

    // A service that asks for a long wait (429, retry after about 100 s).
    let faults = FaultConfig { rate_limit: Some(0.01), ..FaultConfig::default() };
    let opts = EmulatorOptions { account: AccountSpec::Fixture, faults, ..EmulatorOptions::default() };
    let emu = emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.unwrap();
    let cancel = CancellationToken::new();
    let mut o = ClientOptions::new(emu.endpoint(), TrainingKey::new(emu.key()));
    o.cancel = cancel.clone();
    let client = Client::new(o).unwrap();
    client.get_projects().await.expect("the first call is within the limit");
    let waiting = client.clone();
    let call = tokio::spawn(async move { waiting.get_projects().await });
    while client.stats().total() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = Instant::now();
    cancel.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert!(cancelled.elapsed() < Duration::from_secs(1), "{:?}", cancelled.elapsed());
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    // A cancelled client waits for nothing, not even the rate limiter's pause.
    let started = Instant::now();
    assert!(matches!(client.get_projects().await, Err(Error::Interrupted { .. })));
    assert!(started.elapsed() < Duration::from_millis(500));
}
