//! `cvarchive emulator`: run the local Custom Vision Training service until Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::Exit;
use crate::emulator::{self, AccountSpec, EmulatorOptions, FaultConfig, GenerateSpec};

/// Arguments of `cvarchive emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Serve a generated account instead of the bundled fixture:
    /// `projects=2,images=600,seed=1[,size=262144][,relative=true]`.
    #[arg(long, value_name = "SPEC")]
    generate: Option<GenerateSpec>,
    /// Serve an account with no projects.
    #[arg(long, conflicts_with = "generate")]
    empty: bool,
    /// The Training-Key to accept (default: the well-known emulator key).
    #[arg(long, env = "CVARCHIVE_EMULATOR_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Lifetime of blob links, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 24 * 3600)]
    sas_ttl: u64,
    /// API requests per second; beyond it the answer is 429.
    #[arg(long, value_name = "RPS")]
    rate_limit: Option<f64>,
    /// Send 429 without a Retry-After header (the hint stays in the message).
    #[arg(long)]
    no_retry_after: bool,
    /// Share (0..1) of API and blob answers that are 503.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    error_rate: f64,
    /// Share (0..1) of blob bodies cut mid-way.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    reset_rate: f64,
    /// Delay before every API answer, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    api_latency_ms: u64,
    /// Delay before every blob answer, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    blob_latency_ms: u64,
    /// Serve HTTPS with this certificate (PEM: the server's, then any intermediates), e.g. to
    /// try --ca-cert or SSL_CERT_FILE; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Seed of the fault dice.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fault_seed: u64,
}

impl EmulatorArgs {
    fn options(&self) -> anyhow::Result<EmulatorOptions> {
        for (name, share) in [("--error-rate", self.error_rate), ("--reset-rate", self.reset_rate)] {
            anyhow::ensure!((0.0..=1.0).contains(&share), "{name} must be between 0 and 1, not {share}");
        }
        anyhow::ensure!(self.rate_limit.is_none_or(|r| r > 0.0), "--rate-limit must be above 0");
        let account = match (&self.generate, self.empty) {
            (Some(spec), _) => AccountSpec::Generated(spec.clone()),
            (None, true) => AccountSpec::Empty,
            (None, false) => AccountSpec::Fixture,
        };
        Ok(EmulatorOptions {
            account,
            key: self.key.clone().unwrap_or_else(|| emulator::DEFAULT_KEY.to_owned()),
            sas_ttl: Duration::from_secs(self.sas_ttl),
            faults: FaultConfig {
                rate_limit: self.rate_limit,
                retry_after_header: !self.no_retry_after,
                error_rate: self.error_rate,
                reset_rate: self.reset_rate,
                api_latency: Duration::from_millis(self.api_latency_ms),
                blob_latency: Duration::from_millis(self.blob_latency_ms),
                seed: self.fault_seed,
                ..FaultConfig::default()
            },
        })
    }
}

/// Runs `cvarchive emulator`.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<Exit> {
    let opts = args.options()?;
    let server = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = emulator::TlsFiles { cert: cert.clone(), key: key.clone() };
            emulator::start_tls(args.listen, opts, &files).await
        }
        _ => emulator::start(args.listen, opts).await,
    }
    .context("cannot start the emulator")?;
    // A script that reads the first line and closes the pipe must not stop the server.
    let banner = format!("endpoint: {}\nkey: {}\n", server.endpoint(), server.key());
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!("cannot print the endpoint and key: {e}");
    }
    drop(out);
    wait_for_stop().await?;
    server.shutdown().await;
    Ok(Exit::Done)
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = crate::platform::sigterm().context("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot watch Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
