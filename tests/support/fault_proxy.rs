//! A fault-injecting, request-counting HTTP/1.1 reverse proxy for the storage tests: it sits
//! between a client (object_store, the CLI) and a real storage server (Azurite, moto), forwards
//! every request unchanged, logs each one, and answers the requests a test scripts with a
//! failure instead (a throttling 503, a plain 500, or a dropped connection).
//!
//! It runs on its own thread and runtime, so it keeps serving while a test blocks (a child
//! process, a synchronous call), and it stops when its [`FaultProxy`] is dropped, panics
//! included.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A request the proxy saw, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// The method, `PUT`.
    pub method: String,
    /// The path, percent-encoded as sent, `/devstoreaccount1/c/archive.zip`.
    pub path: String,
    /// The query string without `?`, empty when there is none, `comp=block&blockid=...`.
    pub query: String,
    /// The scripted failure the proxy answered with, or `None` when it forwarded the request.
    pub fault: Option<Fault>,
}

impl ProxiedRequest {
    /// Whether the method is `method` and the query contains `fragment`, the usual predicate:
    /// `r.is("PUT", "comp=block")` for an Azure block, `r.is("PUT", "partNumber=")` for an S3 part.
    pub fn is(&self, method: &str, fragment: &str) -> bool {
        self.method == method && self.query.contains(fragment)
    }
}

/// A scripted failure, answered instead of forwarding. The request body is read to its end
/// first (as a server does before it answers), so the client sees the response, not a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Azure Storage's throttling answer: `503 Server Busy`, `x-ms-error-code: ServerBusy` and the
    /// XML error body of the Storage REST API. Code, status and message from the table of common
    /// error codes, <https://learn.microsoft.com/en-us/rest/api/storageservices/common-rest-api-error-codes>;
    /// the body's shape from <https://learn.microsoft.com/en-us/rest/api/storageservices/status-and-error-codes2>.
    AzureServerBusy,
    /// S3's throttling answer: `503 Slow Down` with the `<Error><Code>SlowDown</Code>` XML body
    /// ("Please reduce your request rate."), from the list of error codes in
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>.
    S3SlowDown,
    /// A bare `500 Internal Server Error` with an empty body, as from a failing front end.
    InternalError,
    /// No response at all: the proxy closes the connection once it has the request.
    DropConnection,
}

/// Which requests a script applies to.
type Predicate = Box<dyn Fn(&ProxiedRequest) -> bool + Send + Sync>;

/// One scripted failure: answer the next `remaining` requests matching `when` with `fault`.
struct Script {
    remaining: usize,
    fault: Fault,
    when: Predicate,
}

/// What the proxy's connections share with the test.
struct State {
    upstream: SocketAddr,
    log: Mutex<Vec<ProxiedRequest>>,
    scripts: Mutex<Vec<Script>>,
}

impl State {
    /// Logs the request and returns the failure scripted for it, using one up.
    fn admit(&self, mut seen: ProxiedRequest) -> Option<Fault> {
        let mut scripts = self.scripts.lock().unwrap();
        let script = scripts.iter_mut().find(|s| s.remaining > 0 && (s.when)(&seen));
        seen.fault = script.map(|s| {
            s.remaining -= 1;
            s.fault
        });
        let fault = seen.fault;
        self.log.lock().unwrap().push(seen);
        fault
    }
}

/// The proxy on `127.0.0.1:<port>`, forwarding to one upstream; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`. It accepts connections as
    /// soon as this returns.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("the proxy binds a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State { upstream, log: Mutex::default(), scripts: Mutex::default() });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(serve(listener, shared, stopped));
            })
            .expect("the proxy thread starts");
        FaultProxy { addr, state, stop: Some(stop), thread: Some(thread) }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, the proxy's origin.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `times` requests for which `when` holds with `fault` instead of
    /// forwarding them. Scripts apply in the order they were added; later requests go through.
    pub fn fail_next(
        &self,
        times: usize,
        fault: Fault,
        when: impl Fn(&ProxiedRequest) -> bool + Send + Sync + 'static,
    ) {
        self.state.scripts.lock().unwrap().push(Script { remaining: times, fault, when: Box::new(when) });
    }

    /// Every request seen so far, in arrival order, failed ones included.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// How many requests seen so far satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&ProxiedRequest) -> bool) -> usize {
        self.state.log.lock().unwrap().iter().filter(|r| pred(r)).count()
    }

    /// How many scripted failures are still to be answered (0 once every script was used up).
    pub fn pending_faults(&self) -> usize {
        self.state.scripts.lock().unwrap().iter().map(|s| s.remaining).sum()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped`; dropping the runtime then ends every connection.
async fn serve(listener: std::net::TcpListener, state: Arc<State>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
                    // A dropped connection ends here as an error; the client sees it.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// The body both ways: the upstream's streamed through, or a scripted one.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Why the proxy gave no response: a scripted drop, or the upstream failed.
#[derive(Debug)]
struct NoResponse(String);

impl std::fmt::Display for NoResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoResponse {}

/// Logs `req`, then answers its scripted failure or forwards it.
async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<ProxyBody>, NoResponse> {
    let seen = ProxiedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        fault: None,
    };
    let Some(fault) = state.admit(seen) else { return forward(state.upstream, req).await };
    // Read the request to its end, as a server does before it answers.
    let _ = req.into_body().collect().await;
    match fault {
        Fault::DropConnection => Err(NoResponse("scripted: connection dropped".into())),
        Fault::AzureServerBusy => {
            Ok(scripted(StatusCode::SERVICE_UNAVAILABLE, Some("ServerBusy"), azure_server_busy()))
        }
        Fault::S3SlowDown => Ok(scripted(StatusCode::SERVICE_UNAVAILABLE, None, S3_SLOW_DOWN.to_owned())),
        Fault::InternalError => Ok(scripted(StatusCode::INTERNAL_SERVER_ERROR, None, String::new())),
    }
}

/// Sends `req` to `upstream` on a fresh connection, headers (`Host` included) unchanged, and
/// streams the response back.
async fn forward(upstream: SocketAddr, req: Request<Incoming>) -> Result<Response<ProxyBody>, NoResponse> {
    let fail = |what: &str, e: &dyn std::fmt::Display| NoResponse(format!("upstream {upstream}: {what}: {e}"));
    let stream = tokio::net::TcpStream::connect(upstream).await.map_err(|e| fail("connect", &e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail("handshake", &e))?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await.map_err(|e| fail("request", &e))?;
    Ok(response.map(BodyExt::boxed))
}

/// A scripted response: `status`, XML `body`, and Azure's error-code header when given.
fn scripted(status: StatusCode, azure_code: Option<&str>, body: String) -> Response<ProxyBody> {
    let mut builder = Response::builder().status(status).header("content-length", body.len());
    if !body.is_empty() {
        builder = builder.header("content-type", "application/xml");
    }
    if let Some(code) = azure_code {
        builder = builder
            .header("x-ms-error-code", code)
            .header("x-ms-request-id", uuid::Uuid::new_v4().to_string())
            .header("x-ms-version", "2021-08-06");
    } else {
        builder = builder.header("x-amz-request-id", "FAULTPROXY0000001");
    }
    let body = Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {}).boxed();
    builder.body(body).unwrap()
}

/// Azure's ServerBusy error body: the message of the common error-code table, then the request
/// id and time lines the service appends.
fn azure_server_busy() -> String {
    format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>The server is \
         currently unable to receive requests. Please retry your request.\nRequestId:{}\nTime:{}</Message></Error>",
        uuid::Uuid::new_v4(),
        // Azure writes seven digits of the second; chrono formats three, six or nine.
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f0Z"),
    )
}

/// S3's SlowDown error body.
const S3_SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please \
     reduce your request rate.</Message><RequestId>FAULTPROXY0000001</RequestId><HostId>faultproxy</HostId></Error>";
