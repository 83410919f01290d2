//! Shared helpers of the integration tests: an emulator on a real socket, a client for it, the
//! CLI binary, and reading archives back. Test modules import shared builders from here, never
//! from each other: [`fixtures`] (the small good bag, the fixture account's archive), [`bags`]
//! (editing zips), [`delete`] (a backup and the delete command), [`tools`] (outside programs a
//! test needs, and the one skip policy), [`commands`] (the benchmark's list of commands, each
//! run as a measured child), [`storage`] (Azurite and moto's S3 server, per test, and the
//! [`fault_proxy`] in front of them).

#![allow(dead_code)]

pub mod bags;
/// The commands the million-image benchmark measures, so the memory test runs the same list.
#[path = "../benches/common/commands.rs"]
pub mod commands;
pub mod delete;
pub mod fault_proxy;
pub mod fixtures;
/// The benchmarks' reader of a child's peak memory, so tests measure it the same way.
#[path = "../benches/common/peak.rs"]
pub mod peak;
pub mod storage;
pub mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use cvarchive::api::{Client, ClientOptions};
use cvarchive::emulator::{self, AccountSpec, Emulator, EmulatorOptions};
use cvarchive::secret::TrainingKey;
use cvarchive::verify::{verify, FindingKind, Report, VerifyOptions};

/// An emulator on 127.0.0.1, port 0, holding `account`.
pub async fn emulator_with(account: AccountSpec) -> Emulator {
    let opts = EmulatorOptions { account, ..EmulatorOptions::default() };
    emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.expect("emulator starts")
}

/// An emulator holding the bundled fixture account.
pub async fn fixture_emulator() -> Emulator {
    emulator_with(AccountSpec::Fixture).await
}

/// An emulator holding a generated account (`projects=..,images=..,seed=..`).
pub async fn generated_emulator(spec: &str) -> Emulator {
    emulator_with(AccountSpec::Generated(spec.parse().expect("a generate spec"))).await
}

/// A client of `emu` with no pacing and quick retries.
pub fn client_for(emu: &Emulator) -> Client {
    let mut o = ClientOptions::new(emu.endpoint(), TrainingKey::new(emu.key()));
    o.api_rate = None;
    o.retry.base_delay = std::time::Duration::from_millis(20);
    o.retry.max_delay = std::time::Duration::from_millis(500);
    Client::new(o).expect("client")
}

/// The `cvarchive` binary, run with `args` and `env`, without the caller's key variables. Async,
/// so that an emulator on the test's own runtime keeps serving while it runs.
pub async fn cvarchive(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(args).env_remove("VISION_TRAINING_KEY").env_remove("VISION_TRAINING_ENDPOINT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true).output().await.expect("the binary runs")
}

/// Every entry of a zip, by name, decompressed.
pub fn zip_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).expect("archive opens");
    let mut zip = zip::ZipArchive::new(file).expect("a zip");
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(entry.name().unwrap().to_string(), bytes);
    }
    out
}

/// The entries under the bag's `data/`, keyed by their path below it.
pub fn payload(path: &Path) -> BTreeMap<String, Vec<u8>> {
    zip_entries(path)
        .into_iter()
        .filter_map(|(name, bytes)| {
            let (_, rest) = name.split_once('/')?;
            rest.strip_prefix("data/").map(|p| (p.to_owned(), bytes))
        })
        .collect()
}

/// The lines of a JSONL payload file, parsed.
pub fn jsonl(payload: &BTreeMap<String, Vec<u8>>, path: &str) -> Vec<serde_json::Value> {
    let bytes = payload.get(path).unwrap_or_else(|| panic!("{path} is in the archive"));
    std::str::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A JSON payload file, parsed.
pub fn json(payload: &BTreeMap<String, Vec<u8>>, path: &str) -> serde_json::Value {
    serde_json::from_slice(payload.get(path).unwrap_or_else(|| panic!("{path} is in the archive"))).unwrap()
}

/// A fresh temporary directory and a path for an archive in it.
pub fn temp_archive(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A generated account (see [`generated_emulator`]) exported over a real socket into
/// `dir/<name>.zip`, by the library; returns the emulator (still serving) and the archive.
pub async fn exported_generated(spec: &str, dir: &Path, name: &str) -> (Emulator, PathBuf) {
    use cvarchive::export::{export, ExportOptions};
    let emu = generated_emulator(spec).await;
    let out = dir.join(format!("{name}.zip"));
    export(&client_for(&emu), &ExportOptions::new(&out), &cvarchive::progress::NoProgress, &Default::default())
        .await
        .expect("export succeeds");
    (emu, out)
}

/// The `images.jsonl` lines of project `p` that say the workspace did not hold the image.
pub fn only_in_iterations(payload: &BTreeMap<String, Vec<u8>>, p: uuid::Uuid) -> Vec<serde_json::Value> {
    jsonl(payload, &format!("projects/{p}/images.jsonl")).into_iter().filter(|l| l["workspace"] == false).collect()
}

/// Runs the binary and returns its exit code and peak resident memory. The peak is the child's
/// own high-water mark (`VmHWM`, which starts afresh at exec), read until it exits, so neither
/// this test process nor the other tests running in it count.
pub fn run_measured(args: &[&str]) -> (i32, u64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    peak::wait_with_peak(&mut child)
}

/// The folder `convert --to folders` wrote for project `id` under `out` (`<name>-<id>`).
pub fn folder_of(out: &Path, id: impl std::fmt::Display) -> PathBuf {
    let suffix = format!("-{id}");
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("a folder for project {id} in {}", out.display()))
}

/// The last line of a command's `--json` output (its result, or its `error` line), parsed.
pub fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_else(|| panic!("no --json output"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// Bytes (a command's output) as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A JSON array of ids as a set.
pub fn ids(v: &serde_json::Value) -> BTreeSet<uuid::Uuid> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().parse().unwrap()).collect()
}

/// The full verification (every byte read and hashed) of the archive at `path`.
pub fn full(path: &Path) -> Report {
    verify(path, &VerifyOptions::default()).unwrap()
}

/// The report holds a finding of `kind` at `path` (and so is not clean).
#[track_caller]
pub fn assert_finding(report: &Report, kind: FindingKind, path: &str) {
    assert!(
        report.findings.iter().any(|f| f.kind == kind && f.path == path),
        "expected {kind:?} at {path}, got {:#?}",
        report.findings
    );
    assert!(!report.is_clean());
}

/// Every entry of `reader`, in directory order (the reader reads them back from the file).
pub fn entries(reader: &cvarchive::archive::BagReader) -> Vec<cvarchive::archive::Entry> {
    reader.entries().collect::<Result<_, _>>().expect("the directory reads back")
}
