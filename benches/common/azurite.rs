//! Azurite (Microsoft's Azure Storage emulator, Blob service) for the benchmarks: started as a
//! child on a free loopback port with its data in a folder the caller chooses (so it lands on the
//! same disk as the local archive it is compared with), killed on drop. A small copy of what
//! `tests/support/storage.rs` does for the tests: start, create a container with a hand-signed
//! SharedKey request, read a blob's size, and the connection string the binary reads.
//! Installed by `scripts/ci-storage-deps` into `tests/storage/node_modules`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Azurite's well-known development account (public, documented, the same in every install).
const ACCOUNT: &str = "devstoreaccount1";
/// The development account's well-known key, base64.
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The storage API version the requests here speak.
const VERSION: &str = "2021-08-06";
/// How long Azurite may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Azurite Blob service; killed and reaped on drop.
pub struct Azurite {
    child: Child,
    port: u16,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    /// Where `scripts/ci-storage-deps` installs Azurite's Blob service.
    pub fn main_js() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/storage/node_modules/azurite/dist/src/blob/main.js")
    }

    /// Starts the Blob service with its data (and log) under `location`, and waits until it
    /// answers.
    pub async fn start(location: &Path) -> Azurite {
        let main = Self::main_js();
        assert!(main.exists(), "Azurite is not installed at {}: run scripts/ci-storage-deps", main.display());
        std::fs::create_dir_all(location).expect("Azurite's folder can be created");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(location.join("azurite.log")).expect("a log file");
        let child = Command::new("node")
            .arg(&main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(location)
            .args(["--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("node runs Azurite");
        let mut azurite = Azurite { child, port };
        let probe = format!("{}?comp=list", azurite.endpoint());
        let began = Instant::now();
        loop {
            if let Some(status) = azurite.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(location.join("azurite.log")).unwrap_or_default();
                panic!("Azurite exited before serving ({status}):\n{log}");
            }
            if http().get(&probe).send().await.is_ok() {
                return azurite;
            }
            assert!(began.elapsed() < START_TIMEOUT, "Azurite did not answer within {START_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node process's id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`, the account's Blob endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The development account's connection string (its key is public) for this server.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// Creates container `name`.
    pub async fn create_container(&self, name: &str) {
        let res = self.send("PUT", &format!("/{name}"), &[("restype", "container")]).await;
        assert_eq!(res.status(), 201, "create container {name}: {}", res.text().await.unwrap_or_default());
    }

    /// The size of committed blob `name` in `container`, or `None` when there is none.
    pub async fn blob_size(&self, container: &str, name: &str) -> Option<u64> {
        let res = self.send("HEAD", &format!("/{container}/{name}"), &[]).await;
        match res.status().as_u16() {
            200 => res.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok()),
            404 => None,
            s => panic!("HEAD {container}/{name}: {s}"),
        }
    }

    /// Sends a body-less request for `path` below the account, signed with the account key.
    async fn send(&self, method: &str, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let auth = shared_key(method, &date, &format!("/{ACCOUNT}/{ACCOUNT}{path}"), query);
        let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{}{path}{}{}", self.endpoint(), if qs.is_empty() { "" } else { "?" }, qs.join("&"));
        http()
            .request(method.parse().unwrap(), url)
            .header("x-ms-date", &date)
            .header("x-ms-version", VERSION)
            .header("authorization", auth)
            .header("content-length", "0")
            .send()
            .await
            .expect("Azurite answers")
    }
}

/// A plain HTTP client (no proxy from the environment).
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// The `Authorization: SharedKey` value for a body-less request; `resource` is
/// `/<account>/<path>` (Azurite's path-style URLs repeat the account in the path).
fn shared_key(method: &str, date: &str, resource: &str, query: &[(&str, &str)]) -> String {
    let mut params: Vec<_> = query.iter().map(|(k, v)| (k.to_lowercase(), *v)).collect();
    params.sort();
    let mut canonical = resource.to_owned();
    for (k, v) in params {
        canonical.push_str(&format!("\n{k}:{v}"));
    }
    // VERB, eleven standard headers (all empty here), the x-ms-* headers sorted, the resource.
    let to_sign = format!("{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n{canonical}");
    let key = base64::engine::general_purpose::STANDARD.decode(KEY).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("SharedKey {ACCOUNT}:{sig}")
}
