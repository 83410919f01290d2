//! `cvarchive verify`: an adapter from arguments to [`crate::verify::verify`], printing the
//! report grouped by kind (or as JSON) and choosing the exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::Exit;
use crate::progress::{Event, NoProgress, Progress};
use crate::verify::{verify, Report, VerifyOptions};

/// Arguments of `cvarchive verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive to verify.
    pub archive: PathBuf,
    /// Check structure, names, counts and sizes only, without re-hashing.
    #[arg(long)]
    pub fast: bool,
    /// Print a machine-readable JSON report.
    #[arg(long)]
    pub json: bool,
    /// Hashing threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// A byte counter on the terminal.
struct Spinner(indicatif::ProgressBar);

impl Progress for Spinner {
    fn event(&self, event: Event) {
        if let Event::Verified { bytes } = event {
            self.0.set_position(bytes);
        }
    }
}

/// Runs `cvarchive verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} verifying: {bytes} ({bytes_per_sec})") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let progress: Arc<dyn Progress> = match &bar {
        Some(bar) => Arc::new(Spinner(bar.clone())),
        None => Arc::new(NoProgress),
    };
    let opts = VerifyOptions { fast: args.fast, threads: args.threads, progress };
    let path = args.archive.clone();
    let result = tokio::task::spawn_blocking(move || verify(&path, &opts)).await.context("verify task failed")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result.with_context(|| format!("cannot read {} as an archive", args.archive.display()))?;
    if args.json {
        super::json::write("verifyReport", &report)?;
    } else {
        print_human(&mut super::human::Escaping(std::io::stdout().lock()), &report)?;
    }
    Ok(if report.is_clean() { Exit::Done } else { Exit::Findings })
}

fn print_human(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} entries, {} payload files, {} payload bytes, {} bytes re-hashed ({} check)",
        report.archive.display(),
        report.entries,
        report.payload_files,
        report.payload_bytes,
        report.bytes_hashed,
        report.mode
    )?;
    if report.is_clean() {
        return writeln!(out, "intact: no findings");
    }
    if report.data_intact() {
        writeln!(
            out,
            "intact data; the browse page's code differs from cvarchive {}'s: do not open index.html unless you trust where the archive came from",
            env!("CARGO_PKG_VERSION")
        )?;
    }
    let omitted: u64 = report.omitted.iter().map(|o| o.count).sum();
    writeln!(out, "{} finding(s):", report.findings.len() as u64 + omitted)?;
    for (kind, findings) in report.by_kind() {
        writeln!(out, "{} ({}):", kind.as_str(), findings.len())?;
        for f in findings {
            writeln!(out, "  {f}")?;
        }
        let more = report.omitted(kind);
        if more > 0 {
            writeln!(out, "  and {more} more")?;
        }
    }
    Ok(())
}
