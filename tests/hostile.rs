//! Hostile service answers (issue 14 items 4, 5 and 8): a redirect that would carry the key
//! elsewhere, error messages that echo secrets, names that drive the terminal, and links that
//! point at the cloud metadata service or a local file.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, Uri};
use cvarchive::api::{Error as ApiError, NewProject};
use cvarchive::emulator::{FaultConfig, Hostile};
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;

use crate::support::*;

/// Headers of every request a server saw.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// A server on 127.0.0.1 that records every request's headers and answers `[]`.
async fn recording_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(headers);
            ([("content-type", "application/json")], "[]")
        }
    });
    (serve(app).await, seen)
}

/// A server on 127.0.0.1 that answers every request with 307 to the same path at `target`.
async fn redirecting_server(target: String) -> String {
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let to = format!("{target}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
    });
    serve(app).await
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

fn keys_seen(seen: &Seen) -> usize {
    seen.lock().unwrap().iter().filter(|h| h.contains_key("training-key")).count()
}

#[tokio::test]
async fn regression_14_4_the_key_never_follows_a_redirect_to_another_origin() {
    let (elsewhere, seen) = recording_server().await;
    let endpoint = redirecting_server(elsewhere.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    let key = "0123456789abcdef0123456789abcdef";
    let run =
        cvarchive(&["export", "--endpoint", &endpoint, "-o", out.to_str().unwrap()], &[("VISION_TRAINING_KEY", key)])
            .await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(keys_seen(&seen), 0, "the other origin got the key; stderr: {stderr}");
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another origin") && stderr.contains(&endpoint) && stderr.contains(&elsewhere), "{stderr}");
    assert!(!out.exists());

    // A download link goes only where it says, and never carries the key.
    let emu = fixture_emulator().await;
    let client = client_for(&emu);
    let project = emu.projects()[0];
    let err = client.download(project, &format!("{endpoint}/blob/x"), 1 << 20).await.unwrap_err();
    assert!(matches!(err, ApiError::CrossOriginRedirect { .. }), "{err}");
    client.download(project, &format!("{elsewhere}/blob/x"), 1 << 20).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "the direct download reached the server");
    assert_eq!(keys_seen(&seen), 0, "a blob download carried the key");
}

/// Every place a secret could leak to: the run's output and every entry of the archive.
fn assert_clean(what: &str, haystacks: &[&[u8]], secrets: &[&str]) {
    for secret in secrets {
        for (i, hay) in haystacks.iter().enumerate() {
            assert!(!contains(hay, secret.as_bytes()), "{what}: {secret:?} leaked into output #{i}");
        }
    }
}

#[tokio::test]
async fn regression_14_5_service_errors_are_redacted_everywhere() {
    let emu = fixture_emulator().await;
    let key = emu.key().to_owned();
    let encoded = percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC).to_string();
    assert_ne!(encoded, key, "the emulator's key has characters that percent-encoding changes");
    let secrets = ["LEAKEDSIG", key.as_str(), encoded.as_str(), "hunter2", "\x1b", "\r"];
    let env = [("VISION_TRAINING_KEY", key.as_str())];
    let dir = tempfile::tempdir().unwrap();

    // An optional call fails: the export goes on, and the message lands in missing[].
    emu.set_faults(FaultConfig {
        hostile: Some(Hostile::LeakyErrors { operation: "GetIterationPerformance" }),
        ..FaultConfig::default()
    });
    let out = dir.path().join("a.zip");
    let run = cvarchive(&["export", "--endpoint", &emu.endpoint(), "-o", out.to_str().unwrap()], &env).await;
    assert_eq!(run.status.code(), Some(3), "{}", String::from_utf8_lossy(&run.stderr));
    let entries = zip_entries(&out);
    let account = entries.iter().find(|(n, _)| n.ends_with("/data/account.json")).expect("account.json").1;
    let account = String::from_utf8_lossy(account);
    assert!(account.contains("sig=REDACTED") && account.contains("https://REDACTED@status.invalid"), "{account}");
    for (name, bytes) in &entries {
        let text = [".json", ".jsonl", ".txt", ".js", ".html"].iter().any(|e| name.ends_with(e));
        assert_clean(name, &[bytes], if text { &secrets } else { &secrets[..4] });
    }
    assert_clean("a recorded failure", &[&run.stdout, &run.stderr], &secrets);
    assert!(contains(&run.stdout, b"sig=REDACTED"), "the summary names the failure");

    // A call the export needs fails: the error is printed, and clean.
    emu.set_faults(FaultConfig {
        hostile: Some(Hostile::LeakyErrors { operation: "GetProjects" }),
        ..FaultConfig::default()
    });
    let out = dir.path().join("b.zip");
    let run = cvarchive(&["export", "--endpoint", &emu.endpoint(), "-o", out.to_str().unwrap()], &env).await;
    assert_eq!(run.status.code(), Some(2));
    assert!(contains(&run.stderr, b"sig=REDACTED"), "{}", String::from_utf8_lossy(&run.stderr));
    assert_clean("a fatal failure", &[&run.stdout, &run.stderr], &secrets);
}

#[tokio::test]
async fn regression_14_5_names_cannot_drive_the_terminal() {
    let emu = generated_emulator("projects=1,images=3,seed=1").await;
    let name = "evil\x1b[2J\x1b[1;1H\rproject\u{9b}31m";
    client_for(&emu).create_project(&NewProject { name: name.into(), ..NewProject::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    let env = [("VISION_TRAINING_KEY", emu.key())];
    let run = cvarchive(&["export", "--endpoint", &emu.endpoint(), "-o", out.to_str().unwrap()], &env).await;
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        contains(&run.stderr, b"evil\\x1b[2J\\x1b[1;1H\\rproject\\x9b31m"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (what, bytes) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!contains(bytes, b"\x1b") && !contains(bytes, b"\r"), "raw control characters on {what}");
        assert!(!contains(bytes, "\u{9b}".as_bytes()), "a raw C1 control on {what}");
    }
    let inspect = cvarchive(&["inspect", out.to_str().unwrap()], &[]).await;
    assert!(contains(&inspect.stdout, b"evil"));
    assert!(!contains(&inspect.stdout, b"\x1b") && !contains(&inspect.stdout, b"\r"));
}

#[tokio::test]
async fn regression_14_5_an_entry_name_cannot_make_verify_read_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, good) = exported_generated("projects=1,images=2,seed=3", dir.path(), "good").await;
    let bad = dir.path().join("bad.zip");
    std::fs::copy(&good, &bad).unwrap();
    let bag = zip_entries(&good).into_keys().next().unwrap().split('/').next().unwrap().to_owned();
    {
        let mut zip =
            zip::ZipWriter::new_append(std::fs::File::options().read(true).write(true).open(&bad).unwrap()).unwrap();
        zip.start_file(format!("{bag}/data/x\r\x1b[2Kintact: no findings"), zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"planted").unwrap();
        zip.finish().unwrap();
    }
    let run = cvarchive(&["verify", bad.to_str().unwrap()], &[]).await;
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains('\r') && !stdout.contains('\x1b'), "{stdout:?}");
    assert!(stdout.contains("x\\r\\x1b[2Kintact: no findings"), "{stdout}");
}

#[tokio::test]
async fn regression_14_8_links_to_the_metadata_service_or_files_are_not_fetched() {
    let emu = generated_emulator("projects=1,images=6,seed=2").await;
    let project = emu.projects()[0];
    let ids = emu.image_ids(project);
    let (metadata, file) = (ids[0], ids[1]);
    emu.set_faults(FaultConfig { hostile: Some(Hostile::ForeignLinks { metadata, file }), ..FaultConfig::default() });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    let summary = export(&client_for(&emu), &ExportOptions::new(&out), &NoProgress, &Default::default())
        .await
        .expect("the export finishes");
    let reason = |id| {
        let m = summary.missing.iter().find(|m| m.id == id && m.kind == "image");
        m.unwrap_or_else(|| panic!("image {id} is missing, in {:?}", summary.missing)).reason.clone()
    };
    assert!(reason(metadata).contains("link-local"), "{}", reason(metadata));
    assert!(reason(file).contains("only http and https"), "{}", reason(file));
    assert_eq!(summary.images as usize, ids.len() - 2, "the other images are archived");
    let asked: Vec<_> = emu.requests().into_iter().filter(|r| r.operation == "GetArtifact").collect();
    assert!(asked.is_empty(), "a file: link went to GetArtifact: {asked:?}");
    let images = payload(&out).into_keys().filter(|p| p.contains("/images/")).count();
    assert_eq!(images, ids.len() - 2);
}
