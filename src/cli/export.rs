//! `cvarchive export`: a whole account, or some projects, into one verifiable BagIt zip.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use uuid::Uuid;

use super::common;
use super::progress::{human_bytes, Drawer, Mode};
use super::Exit;
use crate::api::{Client, ClientOptions, RetryHook};
use crate::export::{export, ExportOptions, ExportSummary};
use crate::progress::{Event, Progress};

/// Arguments of `cvarchive export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The training resource's endpoint, e.g. https://NAME.cognitiveservices.azure.com
    /// (default: $VISION_TRAINING_ENDPOINT). The key comes from $VISION_TRAINING_KEY or --key-file.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Read the training key from this file instead of $VISION_TRAINING_KEY.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// The archive to write (a .zip).
    #[arg(long, short, value_name = "PATH")]
    out: PathBuf,
    /// Export only this project (repeatable); default: every project.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<Uuid>,
    /// Image downloads in flight at once.
    #[arg(long, default_value_t = crate::export::DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
    /// API calls per second (the S0 tier allows 10).
    #[arg(long, default_value_t = 10.0, value_name = "RPS")]
    api_rate: f64,
    /// Seconds to wait for a connection, and for an answer to start (or go on), before a request
    /// is retried. A call gives up after 5 minutes in all, or after 3 tries if the endpoint has
    /// never answered.
    #[arg(long, default_value_t = crate::api::DEFAULT_TIMEOUT.as_secs(), value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Also download every finished model export.
    #[arg(long)]
    include_models: bool,
    /// Leave stored predictions out.
    #[arg(long)]
    no_predictions: bool,
    /// JSON lines on stdout: one event per line, then a summary object.
    #[arg(long)]
    json: bool,
    /// No progress display (warnings and the summary only).
    #[arg(long)]
    no_progress: bool,
    /// Replace an existing archive at --out.
    #[arg(long)]
    force: bool,
    /// Discard the partial archive an interrupted export left (by default the same command
    /// continues it).
    #[arg(long)]
    fresh: bool,
    /// An earlier archive of the same account: images it holds are copied from it instead of
    /// downloaded (a fast incremental backup that is still complete on its own).
    #[arg(long, value_name = "PREVIOUS.zip")]
    base: Option<PathBuf>,
    /// Export the bundled demo account from an emulator started in-process.
    #[arg(long, conflicts_with_all = ["endpoint", "key_file"])]
    demo: bool,
}

/// Runs `cvarchive export`.
pub async fn run(args: ExportArgs) -> anyhow::Result<Exit> {
    let mode = Mode::choose(args.json, args.no_progress);
    let drawer = Arc::new(Drawer::new(mode));
    let said = drawer.clone();
    let cancel = common::cancel_on_signals_telling(move |message| said.say(message));
    let retry_drawer = drawer.clone();
    let hook = RetryHook(Arc::new(move |kind, wait| {
        retry_drawer.event(Event::Retry { kind: kind.key().to_owned(), wait_ms: wait.as_millis() as u64 })
    }));

    // The demo's emulator lives until the export is done.
    let (_demo, mut client_opts) = if args.demo {
        let emu = crate::emulator::start("127.0.0.1:0".parse()?, crate::emulator::EmulatorOptions::default())
            .await
            .context("cannot start the demo emulator")?;
        let mut o = ClientOptions::new(emu.endpoint(), crate::secret::TrainingKey::new(emu.key()));
        o.api_rate = None;
        if mode != Mode::Json {
            eprintln_escaped!("cvarchive: demo: exporting the bundled account from an emulator at {}", emu.endpoint());
        }
        (Some(emu), o)
    } else {
        let key = common::load_key(args.key_file.as_deref())?;
        (None, ClientOptions::new(common::endpoint(args.endpoint.clone())?, key))
    };
    if !args.demo {
        client_opts.api_rate = Some(args.api_rate).filter(|r| *r > 0.0);
    }
    client_opts.on_retry = Some(hook);
    client_opts.connect_timeout = Duration::from_secs(args.timeout);
    client_opts.read_timeout = Duration::from_secs(args.timeout);
    // Calls in flight stop with the export, not after their timeouts.
    client_opts.cancel = cancel.clone();
    let client = Client::new(client_opts)?;

    let opts = ExportOptions {
        projects: args.projects.clone(),
        concurrency: usize::from(args.concurrency),
        include_models: args.include_models,
        predictions: !args.no_predictions,
        force: args.force,
        fresh: args.fresh,
        base: args.base.clone(),
        ..ExportOptions::new(&args.out)
    };
    let result = export(&client, &opts, drawer.as_ref(), &cancel).await;
    drawer.finish();
    let summary = result?;
    print_summary(&summary, mode)?;
    Ok(if summary.complete { Exit::Done } else { Exit::Findings })
}

fn print_summary(s: &ExportSummary, mode: Mode) -> anyhow::Result<()> {
    if mode == Mode::Json {
        return Ok(super::json::write("exportSummary", s)?);
    }
    println_escaped!(
        "exported {} project(s): {} images ({}), {} stored predictions, {} model exports in {:.1} s",
        s.projects,
        s.images,
        human_bytes(s.image_bytes),
        s.predictions,
        s.models,
        s.seconds
    );
    if s.only_in_iterations > 0 {
        println_escaped!(
            "{} of the images are held only by trained iterations (deleted from the workspace, kept by the \
             iterations); the archive marks them \"workspace\": false",
            s.only_in_iterations
        );
    }
    if s.from_base > 0 {
        println_escaped!(
            "{} images and prediction images copied from the base archive; {} downloaded",
            s.from_base,
            human_bytes(s.downloaded_bytes)
        );
    }
    println_escaped!("archive: {} ({})", s.path.display(), human_bytes(s.archive_bytes));
    println_escaped!("sha256:  {}", s.sha256);
    if !s.retries.is_empty() {
        let parts: Vec<String> = s.retries.iter().map(|(k, n)| format!("{} {n}", k.name())).collect();
        println_escaped!("retries: {}", parts.join(", "));
    }
    for note in &s.notes {
        println_escaped!("note: {note}");
    }
    if !s.missing.is_empty() {
        println_escaped!("MISSING: {} item(s) could not be archived (also listed in account.json):", s.missing.len());
        for m in &s.missing {
            println_escaped!("  {} {} (project {}): {}", m.kind, m.id, m.project, m.reason);
        }
    }
    Ok(())
}
