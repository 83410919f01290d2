//! Commands that read an archive in a store (issue 17): `verify` (full and `--fast`),
//! `inspect`, `convert`, `restore --dry-run`, `delete --backup` and `export --base` take an
//! `az://` or `s3://` address and read the object by ranged GETs, agreeing with what they say of
//! the same archive as a local file; a missing object or container, a refused key and no
//! credential at all are one clear line and exit code 2, with no secret in the output.
//!
//! The archives are exported locally by the library and put into the store with `object_store`
//! directly, so these tests depend on nothing but the reading side. The commands run as the real
//! binary, with the store's credentials in its environment as a user would set them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use serde_json::Value;

use crate::support::storage::{Azurite, Fault, FaultProxy, S3Server, AZURITE_ACCOUNT, AZURITE_KEY};
use crate::support::{exported_generated, last_json_line, text};

/// The most a ranged read of the store asks for at once (`store::RemoteFile`'s block).
const READ_BLOCK: u64 = 4 << 20;

/// The container (bucket) the tests put archives in.
const CONTAINER: &str = "backups";

/// Variables that would hand the binary a credential from the developer's own environment.
const STORE_VARS: &[&str] = &[
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
];

/// The binary with `args`, the store variables of the caller's environment removed and `env`
/// set (the training key variables too, as [`crate::support::cvarchive`] does).
async fn run(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(args).env_remove("VISION_TRAINING_KEY").env_remove("VISION_TRAINING_ENDPOINT");
    for var in STORE_VARS {
        cmd.env_remove(var);
    }
    // No profile files from the developer's home either.
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent").env("AWS_CONFIG_FILE", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true).output().await.expect("the binary runs")
}

/// Azurite with container [`CONTAINER`], and the variables that reach it.
async fn azurite() -> (Azurite, Vec<(&'static str, String)>) {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let env = vec![("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())];
    (azurite, env)
}

/// Puts the file at `local` into Azurite's [`CONTAINER`] as `key`; returns its `az://` address.
async fn put_azure(azurite: &Azurite, key: &str, bytes: Vec<u8>) -> String {
    let store = MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_endpoint(azurite.endpoint())
        .with_allow_http(true)
        .with_container_name(CONTAINER)
        .build()
        .expect("an Azure client");
    put(&store, key, bytes).await;
    format!("az://{CONTAINER}/{key}")
}

/// Puts `bytes` into moto's [`CONTAINER`] bucket as `key`; returns its `s3://` address.
async fn put_s3(moto: &S3Server, key: &str, bytes: Vec<u8>) -> String {
    let store = AmazonS3Builder::new()
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_bucket_name(CONTAINER)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("an S3 client");
    put(&store, key, bytes).await;
    format!("s3://{CONTAINER}/{key}")
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    store.put(&StorePath::from(key), PutPayload::from(bytes)).await.expect("the archive uploads");
}

/// The last JSON line of `out`, without what names the archive or the moment (`archive`,
/// `time`), so the reports of a local and a remote copy can be compared whole.
fn report(out: &Output) -> BTreeMap<String, Value> {
    let Value::Object(map) = last_json_line(&out.stdout) else { panic!("a JSON object: {}", text(&out.stdout)) };
    map.into_iter().filter(|(k, _)| k != "archive" && k != "time").collect()
}

/// The archive field of the last JSON line of `out`.
fn archive_named(out: &Output) -> String {
    last_json_line(&out.stdout)["archive"].as_str().unwrap_or_default().to_owned()
}

/// Every file below `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Asserts `out` failed with exit code 2 and one error line on stderr holding every one of `words`,
/// and that no secret of `env` (the connection string, its key) shows anywhere.
#[track_caller]
fn assert_clear_failure(out: &Output, words: &[&str], env: &[(&str, String)]) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "stdout: {stdout}\nstderr: {stderr}");
    // Progress lines (time-stamped) may come first; the error is one line of its own.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("cvarchive: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    for w in words {
        assert!(errors[0].contains(w), "{w:?} in {stderr}");
    }
    for (_, value) in env {
        let key = value.split(';').find_map(|p| p.strip_prefix("AccountKey=")).unwrap_or(value);
        for secret in [value.as_str(), key] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret in the output: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_and_fast_of_a_remote_archive_agree_with_the_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=2,images=40,seed=71", dir.path(), "nightly").await;
    let (azurite, env) = azurite().await;
    let url = put_azure(&azurite, "nightly/2026-12-05.zip", std::fs::read(&local).unwrap()).await;
    let local = local.to_str().unwrap();
    for fast in [None, Some("--fast")] {
        let args = |archive| ["verify", archive, "--json"].into_iter().chain(fast).collect::<Vec<&str>>();
        let here = run(&args(local), &env).await;
        let there = run(&args(&url), &env).await;
        assert_eq!(here.status.code(), Some(0), "{}", text(&here.stderr));
        assert_eq!(there.status.code(), Some(0), "{}", text(&there.stderr));
        assert_eq!(report(&there), report(&here), "the same report, apart from the archive's name");
        assert_eq!(report(&there)["complete"], true);
        assert_eq!(archive_named(&there), url, "the report names the address");
    }
    // The text report names it too.
    let human = run(&["verify", &url], &env).await;
    assert!(text(&human.stdout).starts_with(&format!("{url}: ")), "{}", text(&human.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_archive_with_one_byte_changed_is_reported_damaged_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, local) = exported_generated("projects=1,images=12,seed=72", dir.path(), "nightly").await;
    let project = emu.projects()[0];
    let victim = emu.image_ids(project)[3];
    let image = emu.image_bytes(project, victim).unwrap();
    let mut zip = std::fs::read(&local).unwrap();
    let at = zip.windows(image.len()).position(|w| w == image.as_slice()).expect("stored bytes are in the zip");
    zip[at + image.len() / 2] ^= 0x01;
    let (azurite, env) = azurite().await;
    let url = put_azure(&azurite, "tampered.zip", zip).await;

    let out = run(&["verify", &url, "--json"], &env).await;
    assert_eq!(out.status.code(), Some(1), "findings: {}", text(&out.stderr));
    let findings = last_json_line(&out.stdout)["findings"].as_array().cloned().unwrap_or_default();
    let victim = victim.to_string();
    assert!(
        findings.iter().any(|f| f["path"].as_str().is_some_and(|p| p.contains(&victim))),
        "a finding names image {victim}: {findings:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_of_a_remote_archive_agrees_with_the_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=2,images=30,seed=73", dir.path(), "nightly").await;
    let (azurite, env) = azurite().await;
    let url = put_azure(&azurite, "a/b/nightly.zip", std::fs::read(&local).unwrap()).await;
    let here = run(&["inspect", local.to_str().unwrap(), "--json"], &env).await;
    let there = run(&["inspect", &url, "--json"], &env).await;
    assert_eq!(there.status.code(), Some(0), "{}", text(&there.stderr));
    assert_eq!(report(&there), report(&here));
    assert_eq!(report(&there)["projects"].as_array().map(Vec::len), Some(2));
    assert_eq!(archive_named(&there), url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_inspect_read_an_archive_in_an_s3_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=1,images=25,seed=74", dir.path(), "nightly").await;
    let moto = S3Server::start().await;
    moto.create_bucket(CONTAINER).await;
    let env: Vec<(&str, String)> = moto.env();
    let url = put_s3(&moto, "nightly.zip", std::fs::read(&local).unwrap()).await;
    let local = local.to_str().unwrap();
    for command in ["verify", "inspect"] {
        let here = run(&[command, local, "--json"], &env).await;
        let there = run(&[command, &url, "--json"], &env).await;
        assert_eq!(there.status.code(), Some(0), "{command}: {}", text(&there.stderr));
        assert_eq!(report(&there), report(&here), "{command}");
        assert_eq!(archive_named(&there), url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_to_coco_from_a_remote_archive_writes_what_the_local_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=2,images=30,seed=75", dir.path(), "nightly").await;
    let (azurite, env) = azurite().await;
    let url = put_azure(&azurite, "nightly.zip", std::fs::read(&local).unwrap()).await;
    let (from_local, from_remote) = (dir.path().join("coco-local"), dir.path().join("coco-remote"));
    for (archive, out) in [(local.to_str().unwrap(), &from_local), (url.as_str(), &from_remote)] {
        let done = run(&["convert", archive, "--to", "coco", "--out", out.to_str().unwrap(), "--json"], &env).await;
        assert_eq!(done.status.code(), Some(0), "{archive}: {}", text(&done.stderr));
    }
    let (a, b) = (tree(&from_local), tree(&from_remote));
    assert!(a.keys().any(|k| k.ends_with("annotations.json")), "{:?}", a.keys());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        if name.ends_with("annotations.json") {
            // The same document but for the moment it was written (`info.date_created`).
            let undated = |bytes: &[u8]| {
                let mut doc: Value = serde_json::from_slice(bytes).unwrap();
                doc["info"].as_object_mut().unwrap().remove("date_created");
                doc
            };
            assert_eq!(undated(&b[name]), undated(bytes), "{name}");
        } else {
            assert!(b[name] == *bytes, "{name} differs");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_its_dry_run_read_a_remote_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=2,images=20,seed=76", dir.path(), "nightly").await;
    let (azurite, env) = azurite().await;
    let url = put_azure(&azurite, "nightly.zip", std::fs::read(&local).unwrap()).await;
    let here = run(&["restore", local.to_str().unwrap(), "--dry-run", "--json"], &env).await;
    let there = run(&["restore", &url, "--dry-run", "--json"], &env).await;
    assert_eq!(there.status.code(), Some(0), "{}", text(&there.stderr));
    assert_eq!(report(&there), report(&here));
    assert_eq!(report(&there)["images"], 40);
    assert_eq!(archive_named(&there), url);

    // And the restore itself, into an empty resource; its report goes where --report says.
    let target = crate::support::emulator_with(cvarchive::emulator::AccountSpec::Empty).await;
    let mut env = env;
    env.push(("VISION_TRAINING_KEY", target.key().to_owned()));
    let (endpoint, written) = (target.endpoint(), dir.path().join("restore.json"));
    let args = ["restore", &url, "--endpoint", &endpoint, "--report", written.to_str().unwrap(), "--no-progress"];
    let done = run(&args, &env).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let images: usize = target.projects().into_iter().map(|p| target.image_ids(p).len()).sum();
    assert_eq!((target.projects().len(), images), (2, 40), "both projects and their images restored");
    let saved: Value = serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert_eq!(saved["archive"], url.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_dry_run_accepts_a_backup_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, local) = exported_generated("projects=1,images=15,seed=77", dir.path(), "backup").await;
    let (azurite, mut env) = azurite().await;
    let url = put_azure(&azurite, "backup.zip", std::fs::read(&local).unwrap()).await;
    env.push(("VISION_TRAINING_KEY", emu.key().to_owned()));
    let project = emu.projects()[0].to_string();
    let endpoint = emu.endpoint();
    let args = ["delete", "--endpoint", &endpoint, "--api-rate", "unlimited", "--backup", &url, "--project", &project];
    let out = run(&args, &env).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(&format!("backup:   {url} (verified in full")), "{stdout}");
    assert_eq!(emu.image_ids(emu.projects()[0]).len(), 15, "a dry run deletes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_a_backup_in_the_store_deletes_and_its_receipt_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, local) = exported_generated("projects=2,images=10,seed=81", dir.path(), "backup").await;
    let (azurite, mut env) = azurite().await;
    let url = put_azure(&azurite, "backup.zip", std::fs::read(&local).unwrap()).await;
    env.push(("VISION_TRAINING_KEY", emu.key().to_owned()));
    let (gone, kept) = (emu.projects()[0], emu.projects()[1]);
    let (endpoint, project) = (emu.endpoint(), gone.to_string());
    let receipt = dir.path().join("receipt.json");
    let receipt_arg = receipt.to_str().unwrap();
    let args = [
        "delete",
        "--endpoint",
        &endpoint,
        "--api-rate",
        "unlimited",
        "--backup",
        &url,
        "--project",
        &project,
        "--yes",
        "--receipt",
        receipt_arg,
    ];
    let out = run(&args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(!emu.projects().contains(&gone) && emu.projects().contains(&kept), "only {gone} deleted");
    let written: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(written["backup"]["path"], url.as_str(), "{written}");
    let sha = cvarchive::archive::digest::hash_file(&std::fs::File::open(&local).unwrap()).unwrap().0;
    assert_eq!(written["backup"]["sha256"], sha.as_str(), "the object's SHA-256, read in ranges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_export_copies_from_a_base_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, first) = exported_generated("projects=2,images=300,seed=78", dir.path(), "monday").await;
    let (azurite, _) = azurite().await;
    let base = std::fs::read(&first).unwrap();
    let len = base.len() as u64;
    let url = put_azure(&azurite, "nightly/monday.zip", base).await;
    let proxy = FaultProxy::start(azurite.addr());
    let mut env = vec![("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];
    env.push(("VISION_TRAINING_KEY", emu.key().to_owned()));
    let second = dir.path().join("tuesday.zip");
    let (endpoint, out) = (emu.endpoint(), second.to_str().unwrap());
    let args = ["export", "--endpoint", &endpoint, "--api-rate", "unlimited", "--out", out, "--base", &url, "--json"];
    let done = run(&args, &env).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let summary = last_json_line(&done.stdout);
    let copied = summary["images"].as_u64().unwrap() + summary["predictions"].as_u64().unwrap();
    assert!(copied >= 600, "{summary}");
    assert_eq!(summary["fromBase"].as_u64(), Some(copied), "every image copied from the base: {summary}");
    assert_eq!(summary["downloadedBytes"], 0, "no image downloaded again: {summary}");
    // The base is read once, in ranges: the copies follow its order.
    let gets = proxy.count(|r| r.method == "GET") as u64;
    eprintln!("export --base of {len} bytes: {gets} ranged GETs");
    assert!(gets * READ_BLOCK <= 2 * len + 4 * READ_BLOCK, "{gets} GETs for a base of {len} bytes");
    let verified = run(&["verify", out, "--json"], &env).await;
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_a_missing_container_and_a_refused_key_are_one_clear_line_and_exit_2() {
    let (azurite, env) = azurite().await;
    for command in [&["verify"][..], &["verify", "--fast", "--json"], &["inspect"], &["restore", "--dry-run"]] {
        let missing = run(&[command, &["az://backups/no-such.zip"]].concat(), &env).await;
        assert_clear_failure(&missing, &["az://backups/no-such.zip", "does not exist"], &env);
    }
    let out = dir_arg();
    let convert = ["convert", "az://no-container/a.zip", "--to", "coco", "--out", out.1.as_str()];
    assert_clear_failure(&run(&convert, &env).await, &["az://no-container/a.zip", "does not exist"], &env);
    // delete and export open the backup (base) before they call the service, here nowhere.
    let mut keyed = env.clone();
    keyed.push(("VISION_TRAINING_KEY", "0123456789abcdef0123456789abcdef".to_owned()));
    let nowhere = ["--endpoint", "http://127.0.0.1:9", "--api-rate", "unlimited"];
    let project = uuid::Uuid::new_v4().to_string();
    let delete = [&["delete"][..], &nowhere, &["--backup", "az://backups/gone.zip", "--project", &project]].concat();
    assert_clear_failure(&run(&delete, &keyed).await, &["az://backups/gone.zip", "does not exist"], &keyed);
    let (_held, folder) = dir_arg();
    let out = format!("{folder}.zip");
    let export = [&["export"][..], &nowhere, &["--skip-space-check", "--out", &out, "--base", "az://backups/gone.zip"]];
    assert_clear_failure(&run(&export.concat(), &keyed).await, &["az://backups/gone.zip", "does not exist"], &keyed);

    let wrong_key = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
        AccountKey=V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=;BlobEndpoint=";
    let wrong = vec![("AZURE_STORAGE_CONNECTION_STRING", format!("{wrong_key}{};", azurite.endpoint()))];
    let refused = run(&["verify", "az://backups/any.zip"], &wrong).await;
    assert_clear_failure(&refused, &["az://backups/any.zip", "refused the credential"], &wrong);

    let none = run(&["inspect", "az://backups/any.zip", "--json"], &[]).await;
    assert_clear_failure(&none, &["no credential", "AZURE_STORAGE_CONNECTION_STRING"], &[]);
    assert_eq!(last_json_line(&none.stdout)["kind"], "archive", "{}", text(&none.stdout));

    // An address with a SAS token is refused without clap's echo of the value, for what is read
    // and what is written alike.
    let signed_url = "https://acct.blob.core.windows.net/c/a.zip?sv=1&sig=SECRETSIG";
    for args in [
        &["verify", signed_url][..],
        &["export", "--out", signed_url],
        &["export", "--out", "x.zip", "--base", signed_url],
    ] {
        let signed = run(args, &env).await;
        assert_eq!(signed.status.code(), Some(2), "{args:?}");
        assert!(text(&signed.stderr).contains("query string"), "{}", text(&signed.stderr));
        assert!(!text(&signed.stderr).contains("SECRETSIG"), "{}", text(&signed.stderr));
    }
}

/// A fresh folder for a command's output: the guard and its path as text.
fn dir_arg() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out").to_string_lossy().into_owned();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_ranged_read_is_retried_and_verify_still_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=1,images=20,seed=79", dir.path(), "nightly").await;
    let (azurite, _) = azurite().await;
    let url = put_azure(&azurite, "nightly.zip", std::fs::read(&local).unwrap()).await;
    let proxy = FaultProxy::start(azurite.addr());
    let env = vec![("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];
    proxy.fail_next(2, Fault::AzureServerBusy, |r| r.method == "GET");

    let there = run(&["verify", &url, "--json"], &env).await;
    let here = run(&["verify", local.to_str().unwrap(), "--json"], &env).await;
    assert_eq!(there.status.code(), Some(0), "{}", text(&there.stderr));
    assert_eq!(report(&there), report(&here));
    assert_eq!(proxy.pending_faults(), 0, "both throttling answers were given");
    let gets = proxy.count(|r| r.method == "GET" && r.fault.is_none());
    assert!(gets >= 1, "the ranged reads went through after the throttling: {:?}", proxy.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fast_reads_a_few_ranges_of_a_large_remote_archive_not_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, local) = exported_generated("projects=1,images=1000,seed=80", dir.path(), "large").await;
    let bytes = std::fs::read(&local).unwrap();
    let len = bytes.len() as u64;
    let (azurite, _) = azurite().await;
    let url = put_azure(&azurite, "large.zip", bytes).await;
    let proxy = FaultProxy::start(azurite.addr());
    let env = vec![("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];

    let out = run(&["verify", &url, "--fast", "--json"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let gets = proxy.count(|r| r.method == "GET") as u64;
    eprintln!("verify --fast of {len} bytes: {gets} ranged GETs of at most {READ_BLOCK} bytes");
    assert!(gets * READ_BLOCK < len / 2, "{gets} GETs for {len} bytes: read nearly whole");

    let full = run(&["verify", &url, "--json"], &env).await;
    assert_eq!(full.status.code(), Some(0), "{}", text(&full.stderr));
    let all = proxy.count(|r| r.method == "GET") as u64 - gets;
    eprintln!("verify (full) of {len} bytes: {all} ranged GETs");
    assert!(all * READ_BLOCK >= len, "a full verify reads every byte: {all} GETs for {len} bytes");
}
