//! `export --out` to a store, end to end against real servers (Azurite, moto's S3 server) and
//! the real binary: the archive is committed whole and validates (ours and bagit-python), nothing
//! is visible at the name before the commit, `kill -9` during the upload resumes without sending
//! accepted blocks again, and a failed upload resumes too. The store's faults are in [`faults`].

mod faults;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cvarchive::emulator::Emulator;
use cvarchive::store::upload::IN_FLIGHT;
use sha2::{Digest, Sha256};

use crate::support::storage::{Azurite, FaultProxy, ProxiedRequest, S3Server, AZURITE_KEY};
use crate::support::*;

/// The container (bucket) the tests write to.
const CONTAINER: &str = "backups";
/// A generated account of a few thousand small images: about 20 MiB of archive, so tens of
/// 1 MiB blocks.
const ACCOUNT: &str = "projects=2,images=1200,seed=1701,size=8192";

/// An emulator holding the generated account `spec`, each image download delayed by `blob_ms`.
pub(crate) use crate::resume::slow_emulator as account;

/// `cvarchive export` of `emu` to `out` with `--json`, the spool in `spool`, parts of
/// `part_mib`, and only `env` as the store's environment (the caller's `AZURE_*` and `AWS_*`
/// variables are removed, so a test sees exactly the credentials it gives).
pub(crate) fn export_cmd(
    emu: &Emulator,
    out: &str,
    spool: &Path,
    part_mib: u64,
    env: &[(&str, String)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(["export", "--endpoint", &emu.endpoint(), "--out", out, "--spool-dir", spool.to_str().unwrap()])
        .args(["--part-size", &part_mib.to_string(), "--no-predictions", "--json", "--api-rate", "unlimited"])
        .env("VISION_TRAINING_KEY", emu.key())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("AZURE_") || name.starts_with("AWS_") || name == "CVARCHIVE_SPOOL_DIR" {
            cmd.env_remove(name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The export's summary (the last `--json` line), checked to be one.
pub(crate) fn summary(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "export failed: {}", text(&o.stderr));
    let s = last_json_line(&o.stdout);
    assert_eq!(s["type"], "exportSummary", "{s}");
    s
}

/// Neither output stream holds any of `secrets`.
#[track_caller]
pub(crate) fn assert_no_secret(o: &Output, secrets: &[&str]) {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for (name, stream) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(!contains(stream, secret.as_bytes()), "{name} holds a secret: {}", text(stream));
        }
    }
}

/// An Azure block upload (`comp=block&blockid=...`), not the commit (`comp=blocklist`).
pub(crate) fn is_block(r: &ProxiedRequest) -> bool {
    r.is("PUT", "blockid=")
}

/// An S3 part upload.
pub(crate) fn is_part(r: &ProxiedRequest) -> bool {
    r.is("PUT", "partNumber=")
}

/// The upload record in `spool` (`<spool>/<folder>/<name>.partial.upload`), if there is one.
fn upload_record(spool: &Path) -> Option<PathBuf> {
    let folders = std::fs::read_dir(spool).ok()?;
    folders.flatten().filter(|f| f.path().is_dir()).find_map(|f| {
        std::fs::read_dir(f.path())
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".partial.upload")))
    })
}

/// Parts the upload record in `spool` holds as accepted.
fn recorded_parts(spool: &Path) -> usize {
    let Some(record) = upload_record(spool) else { return 0 };
    std::fs::read_to_string(record).unwrap_or_default().lines().filter(|l| l.contains("\"op\":\"part\"")).count()
}

/// Sends `kill -9` to `child` and reaps it.
async fn kill_9(child: &mut tokio::process::Child) {
    let pid = child.id().expect("still running").to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = child.wait().await;
}

/// Runs `cmd` until `ready` holds (polled), then kills it with `kill -9`. Returns false when the
/// command finished first, successfully. Its stdout (`--json` events) is not read, so it goes
/// nowhere: a full pipe would stop the export.
async fn kill_when(mut cmd: tokio::process::Command, ready: impl Fn() -> bool) -> bool {
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::inherit()).spawn().unwrap();
    loop {
        if ready() {
            kill_9(&mut child).await;
            return true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the export failed before the kill (its stderr is above)");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The downloaded archive `bytes` is intact by `cvarchive verify`, has the summary's SHA-256,
/// and, unzipped, validates with bagit-python. Returns the file.
async fn assert_valid_download(bytes: &[u8], summary: &serde_json::Value, dir: &Path) -> PathBuf {
    let file = dir.join("downloaded.zip");
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(hex::encode(Sha256::digest(bytes)), summary["sha256"].as_str().unwrap());
    assert_eq!(summary["archiveBytes"].as_u64(), Some(bytes.len() as u64), "{summary}");
    let o = cvarchive(&["verify", file.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("intact: no findings"), "{}", text(&o.stdout));
    // Python's own zipfile extracts (an independent zip reader), the Library of Congress's bagit
    // validates every checksum.
    let script = "import bagit, os, sys, zipfile\n\
        zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])\n\
        [top] = os.listdir(sys.argv[2])\n\
        bag = bagit.Bag(os.path.join(sys.argv[2], top))\n\
        bag.validate()\n\
        print('valid', len(bag.payload_entries()))\n";
    let unzipped = dir.join("unzipped");
    let o = std::process::Command::new(crate::support::tools::python())
        .args(["-c", script, file.to_str().unwrap(), unzipped.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "bagit.py: {} {}", text(&o.stdout), text(&o.stderr));
    let files: usize = text(&o.stdout).trim().strip_prefix("valid ").unwrap().parse().unwrap();
    assert_eq!(files, payload(&file).len());
    file
}

/// Every path below `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.path().is_dir() {
            out.extend(walkdir(&e.path()));
        }
    }
    out
}

/// The spool folder holds nothing once the archive is committed.
#[track_caller]
fn assert_spool_empty(spool: &Path) {
    let left: Vec<_> = walkdir(spool);
    assert!(left.is_empty(), "the spool is left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_azurite_is_committed_whole_and_validates_with_bagit_python() {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let emu = account(ACCOUNT, 2).await;
    let spool = tempfile::tempdir().unwrap();
    let env = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())];
    let out = format!("az://{CONTAINER}/nightly/backup.zip");
    let cmd = || export_cmd(&emu, &out, spool.path(), 1, &env);

    // Killed once a few blocks are accepted: nothing is visible at the name.
    assert!(kill_when(cmd(), || recorded_parts(spool.path()) >= 3).await, "the export ran too fast to kill");
    assert!(azurite.blob_bytes(CONTAINER, "nightly/backup.zip").await.is_none());
    assert_eq!(azurite.list_blobs(CONTAINER).await, Vec::<String>::new(), "uncommitted blocks are invisible");

    let o = cmd().output().await.unwrap();
    assert_no_secret(&o, &[AZURITE_KEY, &env[0].1]);
    let s = summary(&o);
    let upload = &s["upload"];
    assert!(upload["parts"].as_u64().unwrap() >= 10, "tens of 1 MiB blocks: {s}");
    assert!(upload["kept"].as_u64().unwrap() >= 1, "the killed run's blocks are kept: {s}");
    assert_eq!(azurite.list_blobs(CONTAINER).await, vec!["nightly/backup.zip".to_owned()]);
    let bytes = azurite.blob_bytes(CONTAINER, "nightly/backup.zip").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_valid_download(&bytes, &s, dir.path()).await;
    assert_spool_empty(spool.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_s3_is_committed_whole_and_validates_with_bagit_python() {
    let s3 = S3Server::start().await;
    s3.create_bucket(CONTAINER).await;
    // About 16 MiB: four parts of 5 MiB, the smallest S3 takes.
    let emu = account("projects=2,images=1000,seed=1702,size=16384", 2).await;
    let spool = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = s3.env();
    let out = format!("s3://{CONTAINER}/nightly/backup.zip");
    let cmd = || export_cmd(&emu, &out, spool.path(), 5, &env);

    assert!(kill_when(cmd(), || recorded_parts(spool.path()) >= 1).await, "the export ran too fast to kill");
    assert_eq!(s3.list_objects(CONTAINER).await, Vec::<String>::new(), "an incomplete upload is invisible");

    let o = cmd().output().await.unwrap();
    assert_no_secret(&o, &["AWS_SECRET_ACCESS_KEY=test"]);
    let s = summary(&o);
    assert!(s["upload"]["parts"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s3.list_objects(CONTAINER).await, vec!["nightly/backup.zip".to_owned()]);
    let bytes = s3.object_bytes(CONTAINER, "nightly/backup.zip").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_valid_download(&bytes, &s, dir.path()).await;
    assert_spool_empty(spool.path());
}

/// Block (part) uploads the proxy forwarded to the store, all runs together. object_store
/// names each Azure block afresh (a random block id per send), so what went twice is counted
/// as the uploads beyond the parts the archive is made of.
fn forwarded_uploads(proxy: &FaultProxy, is_upload: fn(&ProxiedRequest) -> bool) -> usize {
    proxy.count(|r| is_upload(r) && r.fault.is_none())
}

/// The archive's entries, named below the bag's folder (which is named after the archive),
/// with what says when the export ran taken out: `account.json`'s `started` and `finished`, the
/// browse page's copy of it, their manifest lines (sorted), and the dated `bag-info.txt` with the tag
/// manifests that hash it.
fn timeless_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let dated = ["data/account.json", "data/browse/account.js"];
    let mut entries: BTreeMap<String, Vec<u8>> = zip_entries(path)
        .into_iter()
        .filter_map(|(name, bytes)| name.split_once('/').map(|(_, rest)| (rest.to_owned(), bytes)))
        .filter(|(name, _)| name != "bag-info.txt" && !name.starts_with("tagmanifest-") && name != dated[1])
        .collect();
    let mut account: serde_json::Value = serde_json::from_slice(&entries[dated[0]]).unwrap();
    let fields = account.as_object_mut().unwrap();
    assert!(fields.remove("started").is_some() && fields.remove("finished").is_some());
    entries.insert(dated[0].into(), serde_json::to_vec(&account).unwrap());
    let manifest = text(&entries["manifest-sha256.txt"]);
    // Sorted: a resumed run may write the entries in another order.
    let mut kept: Vec<&str> = manifest.lines().filter(|l| !dated.iter().any(|d| l.ends_with(d))).collect();
    kept.sort_unstable();
    entries.insert("manifest-sha256.txt".into(), kept.join("\n").into_bytes());
    entries
}

/// Kills the export with `kill -9` once the proxy has forwarded each of `moments` uploads (all
/// runs counted), runs the same command to the end, and checks what went twice: at most the
/// uploads in flight at each kill, plus one. Returns the final
/// run's summary, the number of kills and the duplicate uploads.
async fn kill_and_resume(
    cmd: &dyn Fn() -> tokio::process::Command,
    proxy: &FaultProxy,
    is_upload: fn(&ProxiedRequest) -> bool,
    moments: &[usize],
) -> (serde_json::Value, usize, usize) {
    let mut kills = 0;
    for &n in moments {
        let seen = || proxy.count(|r| is_upload(r) && r.fault.is_none()) >= n;
        if !kill_when(cmd(), seen).await {
            break;
        }
        kills += 1;
    }
    let o = cmd().output().await.unwrap();
    let s = summary(&o);
    let (sent, parts) = (forwarded_uploads(proxy, is_upload), s["upload"]["parts"].as_u64().unwrap() as usize);
    let dups = sent - parts;
    eprintln!("kill -9 x{kills}: {sent} uploads for {parts} parts, {dups} sent again; last run {}", s["upload"]);
    assert!(dups <= kills * (IN_FLIGHT + 1), "{dups} parts sent twice after {kills} kills");
    (s, kills, dups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_upload_then_the_same_command_completes_without_resending_accepted_parts() {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let proxy = FaultProxy::start(azurite.addr());
    let emu = account(ACCOUNT, 2).await;
    let spool = tempfile::tempdir().unwrap();
    let env = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];
    let out = format!("az://{CONTAINER}/killed.zip");
    let cmd = || export_cmd(&emu, &out, spool.path(), 1, &env);
    let (s, kills, _) = kill_and_resume(&cmd, &proxy, is_block, &[3, 8, 14]).await;
    assert_eq!(kills, 3, "three kills before the export could finish");
    let image_bytes = s["imageBytes"].as_u64().unwrap();
    assert!(s["downloadedBytes"].as_u64().unwrap() < image_bytes, "images archived before are kept: {s}");
    assert!(s["upload"]["kept"].as_u64().unwrap() > 0, "{s}");

    // The same account, uninterrupted, to another name.
    let direct = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())];
    let other = tempfile::tempdir().unwrap();
    let reference = summary(
        &export_cmd(&emu, &format!("az://{CONTAINER}/reference.zip"), other.path(), 1, &direct).output().await.unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (killed, whole) = (dir.path().join("killed.zip"), dir.path().join("reference.zip"));
    std::fs::write(&killed, azurite.blob_bytes(CONTAINER, "killed.zip").await.unwrap()).unwrap();
    std::fs::write(&whole, azurite.blob_bytes(CONTAINER, "reference.zip").await.unwrap()).unwrap();
    assert_eq!(hex::encode(Sha256::digest(std::fs::read(&killed).unwrap())), s["sha256"].as_str().unwrap());
    assert_eq!(reference["images"], s["images"]);
    for path in [&killed, &whole] {
        let report = full(path);
        assert!(report.is_clean(), "{}: {:#?}", path.display(), report.findings);
    }
    let (a, b) = (timeless_entries(&killed), timeless_entries(&whole));
    let only: Vec<&String> =
        a.keys().filter(|k| !b.contains_key(*k)).chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
    assert!(only.is_empty(), "entries in one archive only: {only:?}");
    let differ: Vec<&String> = a.iter().filter(|(k, v)| b[*k] != **v).map(|(k, _)| k).collect();
    assert!(differ.is_empty(), "entries differ from the uninterrupted export: {differ:?}");
    assert_spool_empty(spool.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_s3_upload_then_the_same_command_completes_without_resending_accepted_parts() {
    let s3 = S3Server::start().await;
    s3.create_bucket(CONTAINER).await;
    let proxy = FaultProxy::start(s3.addr());
    let emu = account("projects=2,images=1200,seed=1703,size=16384", 2).await;
    let spool = tempfile::tempdir().unwrap();
    let env = S3Server::env_for(&proxy.url());
    let out = format!("s3://{CONTAINER}/killed.zip");
    let cmd = || export_cmd(&emu, &out, spool.path(), 5, &env);
    let (s, kills, _) = kill_and_resume(&cmd, &proxy, is_part, &[1, 3]).await;
    assert!(kills >= 1, "killed at least once");
    let bytes = s3.object_bytes(CONTAINER, "killed.zip").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_valid_download(&bytes, &s, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_is_resumed_by_the_same_command_keeping_the_accepted_blocks() {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let proxy = FaultProxy::start(azurite.addr());
    let emu = account(ACCOUNT, 2).await;
    let spool = tempfile::tempdir().unwrap();
    let out = format!("az://{CONTAINER}/failed.zip");
    // Block PUTs fail for good after the first few: more 500s than the client's retries.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    proxy.fail_next(200, crate::support::storage::Fault::InternalError, move |r| {
        is_block(r) && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 5
    });
    let via = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];
    let o = export_cmd(&emu, &out, spool.path(), 1, &via).output().await.unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    assert!(err.contains(&format!("az://{CONTAINER}/failed.zip")), "the message names the archive: {err}");
    assert_no_secret(&o, &[AZURITE_KEY, &via[0].1]);
    assert!(azurite.blob_bytes(CONTAINER, "failed.zip").await.is_none());

    let direct = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())];
    let s = summary(&export_cmd(&emu, &out, spool.path(), 1, &direct).output().await.unwrap());
    assert!(s["upload"]["kept"].as_u64().unwrap() > 0, "{s}");
    let bytes = azurite.blob_bytes(CONTAINER, "failed.zip").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_valid_download(&bytes, &s, dir.path()).await;
}
