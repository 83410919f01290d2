//! TLS as enterprises run it: the emulator served over HTTPS (`cvarchive emulator --tls-cert
//! --tls-key`) with a certificate from a private CA made at test time, as a network that
//! inspects TLS presents one. An export trusts it through `--ca-cert` or `SSL_CERT_FILE`, and
//! without either is refused at once, saying what is wrong and how to fix it (exit 2).

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

/// `cvarchive export` of the emulator into `out`, with these extra arguments and environment;
/// no trust setting comes from the test's own environment.
async fn export(endpoint: &str, out: &Path, extra: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(["export", "--no-progress", "--api-rate", "1000", "--endpoint", endpoint, "--out"])
        .arg(out)
        .args(extra)
        .env("VISION_TRAINING_KEY", cvarchive::emulator::DEFAULT_KEY)
        .env_remove("VISION_TRAINING_ENDPOINT")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true).output().await.expect("the binary runs")
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
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    assert_eq!(flag.status.code(), Some(0), "--ca-cert: {}", text(&flag));
    assert_eq!(env.status.code(), Some(0), "SSL_CERT_FILE: {}", text(&env));
    for out in [&with_flag, &with_env] {
        let names = super::support::zip_entries(out);
        assert!(names.keys().any(|n| n.ends_with("/data/account.json")), "{} holds the account", out.display());
        assert!(names.keys().any(|n| n.contains("/images/")), "{} holds images fetched over HTTPS", out.display());
    }

    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for needed in ["certificate is not trusted", "UnknownIssuer", "--ca-cert FILE", "SSL_CERT_FILE"] {
        assert!(stderr.contains(needed), "the refusal says {needed:?}: {stderr}");
    }
    assert!(!without.exists(), "nothing written at --out");
    // Not retried: a certificate does not become trusted by asking again.
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
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
