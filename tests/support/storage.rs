//! Real object-storage servers for the tests, one per test on its own loopback port, stopped on
//! drop (panics included): [`Azurite`], Microsoft's Azure Storage emulator (Blob service only,
//! from `tests/storage/node_modules`, installed by `scripts/ci-storage-deps`), and [`S3Server`],
//! moto's S3 server (`$CVARCHIVE_PYTHON -m moto.server`, from `tests/python/requirements.txt`).
//! Each has the few direct calls a test needs around the code under test: create a container or
//! bucket, download an object, list the names. [`FaultProxy`] goes in front of either.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use super::fault_proxy::{Fault, FaultProxy, ProxiedRequest};

/// Azurite's well-known development account (public, documented, the same in every install).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// The development account's well-known key, base64.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How often a starting server is polled, and how long it may take.
const POLL: Duration = Duration::from_millis(50);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The storage API version the test helpers speak to Azurite.
const AZURE_VERSION: &str = "2021-08-06";

/// A server child process with its working directory; killed and reaped on drop.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    startup: Duration,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to run and how to tell it is up.
struct Launch<'a> {
    /// The server, for messages: `Azurite`.
    name: &'a str,
    /// How to install it, for messages.
    fix: &'a str,
    /// The command for a port and a data directory.
    command: &'a dyn Fn(u16, &Path) -> Command,
    /// A path on the server that answers (with any status) once it serves requests.
    probe: &'a str,
}

/// Starts `spec` on a free port and waits until it answers HTTP. A child that exits before
/// answering (its port taken in the meantime) is started again on another port, up to 3 times.
async fn launch(spec: &Launch<'_>) -> ServerProcess {
    let begun = Instant::now();
    let mut last_log = String::new();
    for _attempt in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = (spec.command)(port, dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e} ({})", spec.name, spec.fix));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = ServerProcess { child, addr, dir, startup: Duration::ZERO };
        match wait_ready(&mut server, spec.probe, begun).await {
            Ok(()) => {
                server.startup = begun.elapsed();
                return server;
            }
            Err(log) => last_log = log,
        }
    }
    panic!("{} exited before serving, 3 times ({}); its last log:\n{last_log}", spec.name, spec.fix);
}

/// Polls `server` every [`POLL`] until `probe` gets an HTTP answer. `Err` holds the log of a
/// child that exited; a child still silent after [`START_TIMEOUT`] is a panic.
async fn wait_ready(server: &mut ServerProcess, probe: &str, begun: Instant) -> Result<(), String> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
    let url = format!("http://{}{probe}", server.addr);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            return Err(format!("({status})\n{log}"));
        }
        if http.get(&url).send().await.is_ok() {
            return Ok(());
        }
        assert!(
            begun.elapsed() < START_TIMEOUT,
            "{url} did not answer within {START_TIMEOUT:?}; server log:\n{}",
            std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A loopback port free a moment ago (the server binds it next; see [`launch`] for the race).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP client for the helpers (no proxy from the environment).
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Azurite's Blob service on `127.0.0.1:<port>`, data in a temporary directory; stopped on drop.
pub struct Azurite {
    server: ServerProcess,
}

impl Azurite {
    /// Where `scripts/ci-storage-deps` installs Azurite's Blob service.
    pub fn main_js() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/storage/node_modules/azurite/dist/src/blob/main.js")
    }

    /// Starts the Blob service (`--loose --skipApiVersionCheck --silent`, in-memory-free: its data
    /// lives in a temporary directory) and waits until it answers.
    pub async fn start() -> Azurite {
        let main = Self::main_js();
        let fix = "run scripts/ci-storage-deps (needs node and npm) to install Azurite into tests/storage";
        assert!(main.exists(), "Azurite is not installed at {}: {fix}", main.display());
        let command = |port: u16, dir: &Path| {
            let mut cmd = Command::new("node");
            cmd.arg(&main)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
                .arg(dir)
                .args(["--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"]);
            cmd
        };
        let probe = format!("/{AZURITE_ACCOUNT}?comp=list");
        let server = launch(&Launch { name: "Azurite", fix, command: &command, probe: &probe }).await;
        Azurite { server }
    }

    /// The Blob service's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// How long the start took, until the first answer.
    pub fn startup(&self) -> Duration {
        self.server.startup
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`, the account's Blob endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{AZURITE_ACCOUNT}", self.addr())
    }

    /// The account's endpoint through `proxy` (which forwards to this server).
    pub fn endpoint_via(&self, proxy: &FaultProxy) -> String {
        format!("{}/{AZURITE_ACCOUNT}", proxy.url())
    }

    /// The development account's connection string (with its well-known key) for this server.
    pub fn connection_string(&self) -> String {
        connection_string(&self.endpoint())
    }

    /// The connection string for the endpoint through `proxy`.
    pub fn connection_string_via(&self, proxy: &FaultProxy) -> String {
        connection_string(&self.endpoint_via(proxy))
    }

    /// Creates container `name` (`PUT ?restype=container`, SharedKey-signed).
    pub async fn create_container(&self, name: &str) {
        let res = self.send("PUT", &format!("/{name}"), &[("restype", "container")]).await;
        assert_eq!(res.status(), 201, "create container {name}: {}", res.text().await.unwrap_or_default());
    }

    /// The bytes of committed blob `name` in `container`, or `None` when there is none.
    pub async fn blob_bytes(&self, container: &str, name: &str) -> Option<Vec<u8>> {
        let res = self.send("GET", &format!("/{container}/{}", encode_path(name)), &[]).await;
        match res.status().as_u16() {
            200 => Some(res.bytes().await.unwrap().to_vec()),
            404 => None,
            s => panic!("get blob {container}/{name}: {s} {}", res.text().await.unwrap_or_default()),
        }
    }

    /// The names of the committed blobs in `container`, in the service's (lexical) order.
    pub async fn list_blobs(&self, container: &str) -> Vec<String> {
        let query = [("comp", "list"), ("restype", "container")];
        let res = self.send("GET", &format!("/{container}"), &query).await;
        assert_eq!(res.status(), 200, "list blobs in {container}");
        xml_elements(&res.text().await.unwrap(), "Name")
    }

    /// Sends a body-less request for `path` below the account, signed with the account key.
    async fn send(&self, method: &str, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let resource = format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}");
        let auth = shared_key(method, &date, &resource, query);
        let qs: String = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let url = format!("{}{path}{}{qs}", self.endpoint(), if qs.is_empty() { "" } else { "?" });
        http()
            .request(method.parse().unwrap(), url)
            .header("x-ms-date", &date)
            .header("x-ms-version", AZURE_VERSION)
            .header("authorization", auth)
            .header("content-length", "0")
            .send()
            .await
            .expect("Azurite answers")
    }
}

/// An `Authorization` header of the shape SigV4 has, for access key `test`: moto reads the
/// key from it (to find the account) and verifies nothing else.
pub const MOTO_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// A development-account connection string for `endpoint`.
fn connection_string(endpoint: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
}

/// The `Authorization: SharedKey` value for a body-less request (Blob service, version
/// 2009-09-19 and later), per <https://learn.microsoft.com/en-us/rest/api/storageservices/authorize-with-shared-key>.
/// `resource` is `/<account>/<path>`; for Azurite's path-style URLs the path repeats the account.
fn shared_key(method: &str, date: &str, resource: &str, query: &[(&str, &str)]) -> String {
    let mut params: Vec<_> = query.iter().map(|(k, v)| (k.to_lowercase(), *v)).collect();
    params.sort();
    let mut canonical = resource.to_owned();
    for (k, v) in params {
        canonical.push_str(&format!("\n{k}:{v}"));
    }
    // VERB, then eleven standard headers (all empty here), then the x-ms-* headers, sorted.
    let to_sign =
        format!("{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{AZURE_VERSION}\n{canonical}");
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("SharedKey {AZURITE_ACCOUNT}:{sig}")
}

/// moto's S3 server on `127.0.0.1:<port>`; stopped on drop. It checks no signatures and keeps
/// everything in memory, but it does check ACLs: an anonymous GET of an object a signed request
/// wrote is `403 AccessDenied`, so the helpers send [`MOTO_AUTH`].
pub struct S3Server {
    server: ServerProcess,
}

impl S3Server {
    /// Starts `$CVARCHIVE_PYTHON -m moto.server` and waits until it answers.
    pub async fn start() -> S3Server {
        let python = super::tools::python();
        let fix = "run scripts/test once (it installs tests/python/requirements.txt, moto among them, into .venv), \
                   or set CVARCHIVE_PYTHON to a Python with moto[s3], flask and flask-cors";
        let command = |port: u16, dir: &Path| {
            let mut cmd = Command::new(&python);
            cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(dir);
            cmd
        };
        let server = launch(&Launch { name: "moto's S3 server", fix, command: &command, probe: "/moto-api/" }).await;
        S3Server { server }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// How long the start took, until the first answer.
    pub fn startup(&self) -> Duration {
        self.server.startup
    }

    /// `http://127.0.0.1:<port>`, the S3 endpoint (path-style requests).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The variables an S3 client reads (object_store's `AmazonS3Builder::from_env`, the AWS
    /// SDKs) to reach this server at `endpoint` (this server's, or a proxy's in front of it).
    pub fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", endpoint.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// [`Self::env_for`] this server's own endpoint.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        Self::env_for(&self.endpoint())
    }

    /// Creates bucket `name` (3 to 63 characters, as S3 requires; moto refuses shorter ones).
    pub async fn create_bucket(&self, name: &str) {
        let res = self.send(reqwest::Method::PUT, &format!("/{name}")).await;
        assert_eq!(res.status(), 200, "create bucket {name}: {}", res.text().await.unwrap_or_default());
    }

    /// The bytes of object `key` in `bucket`, or `None` when there is none.
    pub async fn object_bytes(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let res = self.send(reqwest::Method::GET, &format!("/{bucket}/{}", encode_path(key))).await;
        match res.status().as_u16() {
            200 => Some(res.bytes().await.unwrap().to_vec()),
            404 => None,
            s => panic!("get object {bucket}/{key}: {s} {}", res.text().await.unwrap_or_default()),
        }
    }

    /// The keys in `bucket` (completed objects only), in lexical order.
    pub async fn list_objects(&self, bucket: &str) -> Vec<String> {
        let res = self.send(reqwest::Method::GET, &format!("/{bucket}?list-type=2")).await;
        assert_eq!(res.status(), 200, "list objects in {bucket}");
        xml_elements(&res.text().await.unwrap(), "Key")
    }

    /// Sends a body-less request for `path_and_query` as access key `test` ([`MOTO_AUTH`]).
    async fn send(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::Response {
        let url = format!("{}{path_and_query}", self.endpoint());
        http().request(method, url).header("authorization", MOTO_AUTH).send().await.expect("moto answers")
    }
}

/// `name` percent-encoded for a URL path, slashes kept.
fn encode_path(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

/// The text of every `<tag>` element in `xml`, entities decoded (enough for listing results).
fn xml_elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text))
        .map(|t| {
            t.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}
