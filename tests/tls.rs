//! TLS as enterprises run it: the emulator served over HTTPS (`cvarchive emulator --tls-cert
//! --tls-key`) with a certificate from a private CA made at test time, as a network that
//! inspects TLS presents one. Export, delete and restore trust it through `--ca-cert` or
//! `SSL_CERT_FILE`, and without either are refused at once, saying what is wrong and how to fix
//! it (exit 2).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

fn private_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "cvarchive test inspection CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let server_cert = params.signed_by(&server_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // The CA file holds another certificate first, as bundles do: every one of them is read.
    let other = CertificateParams::new(vec!["elsewhere.test".to_owned()])
        .unwrap()
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap();
    let ca = write("ca.pem", format!("{}{}", other.pem(), ca_cert.pem()));
    let cert = write("server.pem", server_cert.pem());
    let key = write("server.key", server_key.serialize_pem());
    let dir_path = dir.path().to_owned();
    Pki { _dir: dir, ca, cert, key, dir: dir_path }
}

/// `cvarchive emulator` over HTTPS on a free port, and its endpoint.
async fn https_emulator(pki: &Pki) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvarchive"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the emulator starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap();
    let endpoint = first.as_deref().and_then(|l| l.strip_prefix("endpoint: ")).expect("endpoint line").to_owned();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    // The reader goes after the first line, as a script's `read` does: the emulator must go on
    // serving (it once exited when printing its key into the closed pipe).
    drop(lines);
    (child, endpoint)
}

/// `cvarchive ARGS` with the key of the emulator; no trust setting or proxy comes from the test's
/// own environment.
async fn run(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(args).env("VISION_TRAINING_KEY", cvarchive::emulator::DEFAULT_KEY).env_remove("VISION_TRAINING_ENDPOINT");
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true).output().await.expect("the binary runs")
}

/// `cvarchive export` of the emulator into `out`, with these extra arguments and environment;
/// no trust setting comes from the test's own environment.
async fn export(endpoint: &str, out: &Path, extra: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let out = out.to_str().unwrap();
    let mut args = vec!["export", "--no-progress", "--api-rate", "1000", "--endpoint", endpoint, "--out", out];
    args.extend_from_slice(extra);
    run(&args, env).await
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The refusal names the problem and both fixes.
fn assert_refused_with_the_fix(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    for needed in ["certificate is not trusted", "UnknownIssuer", "--ca-cert FILE", "SSL_CERT_FILE"] {
        assert!(stderr.contains(needed), "the refusal says {needed:?}: {stderr}");
    }
}

#[tokio::test]
async fn an_emulator_behind_a_private_ca_is_trusted_through_ca_cert_or_ssl_cert_file_and_refused_otherwise() {
    let pki = private_pki();
    let (_emulator, endpoint) = https_emulator(&pki).await;
    let (with_flag, with_env, without) = (pki.dir.join("flag.zip"), pki.dir.join("env.zip"), pki.dir.join("no.zip"));
    let ca = pki.ca.to_str().unwrap();
    let started = Instant::now();
    let (flag_args, env_vars) = (["--ca-cert", ca], [("SSL_CERT_FILE", pki.ca.as_path())]);
    let (flag, env, refused) = tokio::join!(
        export(&endpoint, &with_flag, &flag_args, &[]),
        export(&endpoint, &with_env, &[], &env_vars),
        export(&endpoint, &without, &[], &[]),
    );
    assert_eq!(flag.status.code(), Some(0), "--ca-cert: {}", text(&flag));
    assert_eq!(env.status.code(), Some(0), "SSL_CERT_FILE: {}", text(&env));
    for out in [&with_flag, &with_env] {
        let names = super::support::zip_entries(out);
        assert!(names.keys().any(|n| n.ends_with("/data/account.json")), "{} holds the account", out.display());
        assert!(names.keys().any(|n| n.contains("/images/")), "{} holds images fetched over HTTPS", out.display());
    }

    assert_refused_with_the_fix(&refused);
    assert!(!without.exists(), "nothing written at --out");
    // Not retried: a certificate does not become trusted by asking again.
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());

    // delete and restore reach the service the same way.
    let backup = with_flag.to_str().unwrap();
    let delete = ["delete", "--endpoint", &endpoint, "--backup", backup, "--all-projects", "--api-rate", "1000"];
    let plan = run(&[&delete[..], &["--ca-cert", ca]].concat(), &[]).await;
    assert_eq!(plan.status.code(), Some(0), "delete's dry run with --ca-cert: {}", text(&plan));
    assert_refused_with_the_fix(&run(&delete, &[]).await);
    let report = pki.dir.join("restore.json");
    let restore = [
        "restore",
        backup,
        "--endpoint",
        &endpoint,
        "--name-suffix",
        " (restored)",
        "--api-rate",
        "1000",
        "--no-progress",
        "--report",
        report.to_str().unwrap(),
    ];
    let restored = run(&restore, &[("SSL_CERT_FILE", pki.ca.as_path())]).await;
    assert_eq!(restored.status.code(), Some(0), "restore with SSL_CERT_FILE: {}", text(&restored));
    std::fs::remove_file(&report).unwrap();
    assert_refused_with_the_fix(&run(&restore, &[]).await);
}

#[tokio::test]
async fn a_ca_cert_file_that_holds_no_certificate_is_refused_by_name() {
    let pki = private_pki();
    let not_pem = pki.dir.join("key-not-cert.pem");
    std::fs::copy(&pki.key, &not_pem).unwrap();
    let out = pki.dir.join("x.zip");
    // No server is needed: the file is read before any request.
    let o = export("https://127.0.0.1:9", &out, &["--ca-cert", not_pem.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("key-not-cert.pem") && stderr.contains("no PEM certificate"), "{stderr}");
    let missing = pki.dir.join("absent.pem");
    let o = export("https://127.0.0.1:9", &out, &[], &[("SSL_CERT_FILE", missing.as_path())]).await;
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("SSL_CERT_FILE") && stderr.contains("absent.pem"), "{stderr}");
}
