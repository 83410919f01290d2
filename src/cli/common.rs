//! What several commands share: the training key and the endpoint, whom to trust over TLS,
//! Ctrl-C and SIGTERM handling.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::api::ClientOptions;
use crate::secret::TrainingKey;

/// The environment variable holding the training key (the name Microsoft's quickstarts use).
pub const KEY_ENV: &str = "VISION_TRAINING_KEY";
/// The environment variable holding the endpoint.
pub const ENDPOINT_ENV: &str = "VISION_TRAINING_ENDPOINT";

/// A mistake in the arguments or the environment, found before any work: `usage` in the
/// `--json` error line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The training key, from `--key-file` or the environment; never from the command line.
pub fn load_key(key_file: Option<&Path>) -> anyhow::Result<TrainingKey> {
    if let Some(path) = key_file {
        warn_if_readable_by_others(path);
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
        let key = TrainingKey::new(text);
        if key.is_empty() {
            return Err(UsageError(format!("the key file {} is empty", path.display())).into());
        }
        return Ok(key);
    }
    match std::env::var(KEY_ENV) {
        Ok(k) if !k.trim().is_empty() => Ok(TrainingKey::new(k)),
        _ => Err(UsageError(format!(
            "no training key: set {KEY_ENV} or pass --key-file PATH (the key is never taken on the command line)"
        ))
        .into()),
    }
}

/// The endpoint from the flag or the environment.
pub fn endpoint(flag: Option<String>) -> anyhow::Result<String> {
    match flag.or_else(|| std::env::var(ENDPOINT_ENV).ok()).filter(|e| !e.trim().is_empty()) {
        Some(e) => Ok(e),
        None => Err(UsageError(format!(
            "no endpoint: pass --endpoint URL or set {ENDPOINT_ENV} (e.g. https://NAME.cognitiveservices.azure.com)"
        ))
        .into()),
    }
}

/// Where the training resource is and how to reach it: the options every command that talks to
/// the service shares (export, projects, delete, restore).
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// The training resource's endpoint, e.g. https://NAME.cognitiveservices.azure.com
    /// (default: $VISION_TRAINING_ENDPOINT). The key comes from $VISION_TRAINING_KEY or --key-file.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Read the training key from this file instead of $VISION_TRAINING_KEY.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// API calls per second (the S0 tier allows 10), or `unlimited`.
    #[arg(long, default_value = "10", value_name = "RPS", value_parser = parse_api_rate, allow_negative_numbers = true)]
    pub api_rate: ApiRate,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl ServiceArgs {
    /// The client's options for this endpoint and key (from the environment or --key-file), with
    /// the rate and the TLS choices applied.
    pub fn client_options(&self) -> anyhow::Result<ClientOptions> {
        let key = load_key(self.key_file.as_deref())?;
        let mut opts = ClientOptions::new(endpoint(self.endpoint.clone())?, key);
        opts.api_rate = self.api_rate.0;
        self.tls.apply(&mut opts);
        Ok(opts)
    }
}

/// The TLS flags of every command that talks to the service.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Also trust the certificate authorities in this PEM file (it may hold several), e.g. the
    /// root your network's TLS inspection signs with. The operating system's store is always
    /// trusted, or instead $SSL_CERT_FILE / $SSL_CERT_DIR when set; proxies come from
    /// $HTTPS_PROXY and $NO_PROXY.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl TlsArgs {
    /// Puts these choices into the client's options.
    pub fn apply(&self, opts: &mut ClientOptions) {
        opts.ca_cert = self.ca_cert.clone();
    }
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        if crate::platform::mode(&meta) & 0o077 != 0 {
            eprintln_escaped!(
                "cvarchive: warning: the key file {} can be read by other users; `chmod 600` it",
                path.display()
            );
        }
    }
}

/// A token cancelled on the first Ctrl-C or SIGTERM, saying so through `tell` (the command's
/// [`Drawer`](super::progress::Drawer): a progress bar must print the line itself, or its next
/// redraw erases it and the first Ctrl-C looks ignored). A second one exits at once with status
/// 130, as most command-line tools do, leaving what the first could not finish.
pub fn cancel_on_signals_telling(tell: impl Fn(&str) + Send + 'static) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = crate::platform::sigterm().ok();
        let mut terminate = async move || match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
        }
        tell("stopping (press Ctrl-C again to quit at once)");
        t.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
        }
        super::json::write_error(&super::json::ErrorLine::new("stopped at once (a second Ctrl-C)", "interrupted", 130));
        std::process::exit(130);
    });
    token
}

/// `--api-rate`: API calls per second, or no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiRate(pub Option<f64>);

/// The words of `--api-rate` that mean no limit.
pub const UNLIMITED: &str = "unlimited";

/// Parses `--api-rate`: a positive, finite number of calls per second, or `unlimited`. Zero,
/// negative numbers, NaN and infinity are refused rather than taken to mean no limit.
pub fn parse_api_rate(text: &str) -> Result<ApiRate, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case(UNLIMITED) {
        return Ok(ApiRate(None));
    }
    let hint = format!("give API calls per second as a positive number (e.g. 10), or `{UNLIMITED}` for no limit");
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(ApiRate(Some(r))),
        Ok(0.0) => Err(format!("0 calls per second would never call; {hint}")),
        Ok(_) => Err(format!("`{text}` is not a rate; {hint}")),
        Err(_) => Err(format!("`{text}` is not a number; {hint}")),
    }
}
