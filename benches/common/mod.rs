//! What every benchmark shares: emulators, the in-run SHA-256 reference, the binary as a measured
//! child (wall time and its own peak RSS), and the rows of the results table.
//!
//! Every figure is a ratio to a reference measured in the same run, because the machines that
//! run these are shared and noisy. Rows are printed as Markdown table lines starting with `| `,
//! which `scripts/bench` gathers into one table.

#![allow(dead_code)]

pub mod azurite;
pub mod commands;
pub mod peak;
pub mod watch;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cvarchive::api::{Client, ClientOptions};
use cvarchive::archive::BagReader;
use cvarchive::emulator::{self, AccountSpec, Emulator, EmulatorOptions, FaultConfig, GenerateSpec};
use cvarchive::secret::TrainingKey;
use sha2::{Digest, Sha256};

/// The header of the results table (the same columns every row has).
pub const TABLE_HEADER: &str =
    "| # | figure | measured | reference | result | target | met |\n|---|---|---|---|---|---|---|";

/// One line of the results table.
pub struct Row<'a> {
    /// The figure number (1 to 6).
    pub figure: &'a str,
    /// What is measured.
    pub what: &'a str,
    /// Our measurement, with units.
    pub measured: String,
    /// The reference it is compared with, with units.
    pub reference: String,
    /// The figure itself (usually a ratio).
    pub result: String,
    /// The target, as the issue states it.
    pub target: &'a str,
    /// Whether the target is met; `None` when it cannot be judged.
    pub met: Option<bool>,
}

impl Row<'_> {
    /// Prints the row (stdout, one line), so `scripts/bench` can collect it.
    pub fn print(&self) {
        let met = match self.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            self.figure, self.what, self.measured, self.reference, self.result, self.target, met
        );
    }
}

/// A detail line under the table (context for a figure), printed with a `  ` prefix.
pub fn note(text: impl AsRef<str>) {
    println!("  {}", text.as_ref());
}

/// Starts an emulator on 127.0.0.1 holding a generated account, with these faults.
pub async fn generated(spec: &str, faults: FaultConfig) -> Emulator {
    let spec: GenerateSpec = spec.parse().expect("a valid generate spec");
    let opts = EmulatorOptions { account: AccountSpec::Generated(spec), faults, ..EmulatorOptions::default() };
    emulator::start("127.0.0.1:0".parse().expect("address"), opts).await.expect("the emulator starts")
}

/// A library client of `emu` with the defaults except pacing (`api_rate`).
pub fn client(emu: &Emulator, api_rate: Option<f64>) -> Client {
    let mut o = ClientOptions::new(emu.endpoint(), TrainingKey::new(emu.key()));
    o.api_rate = api_rate;
    Client::new(o).expect("a client")
}

/// A scratch directory for archives: `$CVARCHIVE_BENCH_DIR` if set, else the system temp dir.
pub fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CVARCHIVE_BENCH_DIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("the bench directory can be created");
            tempfile::tempdir_in(dir).expect("a scratch directory")
        }
        None => tempfile::tempdir().expect("a scratch directory"),
    }
}

/// Single-core SHA-256 throughput, in bytes per second, over every image entry of `archive`
/// (the same bytes the export wrote and verify re-hashes). Reading is not timed, hashing is.
pub fn sha256_rate_of_images(archive: &Path) -> (f64, u64) {
    let reader = BagReader::open(archive).expect("the archive opens");
    let mut hashed = 0u64;
    let mut busy = Duration::ZERO;
    for entry in reader.entries() {
        let entry = entry.expect("the directory reads back");
        if !entry.name.contains("/images/") {
            continue;
        }
        let bytes = reader.read_entry(&entry, 1 << 30).expect("an image entry reads");
        let t = Instant::now();
        let digest = Sha256::digest(&bytes);
        busy += t.elapsed();
        std::hint::black_box(digest);
        hashed += bytes.len() as u64;
    }
    (hashed as f64 / busy.as_secs_f64(), hashed)
}

/// What a child process did: its exit code, wall time and its own peak resident set.
pub struct Measured {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Wall time from spawn to exit.
    pub seconds: f64,
    /// The child's `VmHWM`, in bytes.
    pub peak_rss: u64,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs the `cvarchive` binary with `args` and `env`, sampling its own `VmHWM` from
/// `/proc/<pid>/status` until it exits. Blocking: the emulator must run on other threads.
pub fn run_measured(args: &[&str], env: &[(&str, &str)]) -> Measured {
    let out = tempfile::tempfile().expect("a stdout file");
    let err = tempfile::tempfile().expect("a stderr file");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(args)
        .env_remove("VISION_TRAINING_KEY")
        .env_remove("VISION_TRAINING_ENDPOINT")
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("the binary runs");
    let (code, peak) = peak::wait_with_peak(&mut child);
    let seconds = started.elapsed().as_secs_f64();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().ok();
        f.read_to_string(&mut s).ok();
        s
    };
    Measured { code, seconds, peak_rss: peak, stdout: read(out), stderr: read(err) }
}

/// `cvarchive export` of `emu` into `out` as a measured child, with extra arguments.
pub fn export_child(emu: &Emulator, out: &Path, extra: &[&str]) -> Measured {
    let endpoint = emu.endpoint();
    let out = out.to_str().expect("a UTF-8 path");
    let mut args = vec!["export", "--endpoint", endpoint.as_str(), "--out", out, "--no-progress", "--force"];
    args.extend_from_slice(extra);
    let m = run_measured(&args, &[("VISION_TRAINING_KEY", emu.key())]);
    assert!(
        m.code == 0,
        "cvarchive export exited with {}:\n{}\n{}",
        m.code,
        m.stdout.chars().take(2000).collect::<String>(),
        m.stderr.chars().take(2000).collect::<String>()
    );
    m
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// A rate as MB/s (10^6 bytes), no decimals.
pub fn mbps(bytes_per_second: f64) -> String {
    format!("{:.0} MB/s", bytes_per_second / 1e6)
}

/// The machine the figures come from: CPU model and core count.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// The path of a file inside a scratch directory.
pub fn path_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// The emulator's requests of one operation since it was last cleared.
pub fn requests_of<'a>(
    requests: &'a [emulator::RecordedRequest],
    operation: &'a str,
) -> impl Iterator<Item = &'a emulator::RecordedRequest> + 'a {
    requests.iter().filter(move |r| r.operation == operation)
}
