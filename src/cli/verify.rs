//! `cvarchive verify`: an adapter from arguments to [`crate::verify::verify`], printing the
//! report grouped by kind (or as JSON) and choosing the exit code.

use anyhow::Context;
use clap::Args;
use std::io::Write;

use super::archive_arg::ArchiveParser;
use super::progress::{Drawer, Mode};
use super::Exit;
use crate::store::Location;
use crate::verify::{verify, Report, VerifyOptions};

/// Arguments of `cvarchive verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive to verify: a file, or an object in a store: az://CONTAINER/PATH.zip,
    /// https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH.zip or s3://BUCKET/KEY.zip (read in
    /// ranges, never downloaded whole; credentials from the environment).
    #[arg(value_parser = ArchiveParser)]
    pub archive: Location,
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

/// Runs `cvarchive verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    // The report is the JSON document: no events beside it.
    let mode = if args.json { Mode::Silent } else { Mode::choose(false, false) };
    let drawer = Drawer::start(mode);
    let opts = VerifyOptions { fast: args.fast, threads: args.threads, progress: drawer.clone() };
    let path = args.archive.clone();
    let result = tokio::task::spawn_blocking(move || verify(&path, &opts)).await.context("verify task failed")?;
    drawer.finish();
    let report = result.with_context(|| format!("cannot read {} as an archive", args.archive))?;
    if args.json {
        super::json::write("verifyReport", &report)?;
    } else {
        print_human(&mut super::human::Escaping(std::io::stdout().lock()), &report)?;
    }
    Ok(match (report.is_clean(), report.is_complete()) {
        (false, _) => Exit::Findings,
        (true, false) => Exit::Incomplete,
        (true, true) => Exit::Done,
    })
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
    for check in &report.not_checked {
        writeln!(out, "not checked (--fast): {}", check.describe())?;
    }
    if report.is_clean() {
        if report.is_complete() {
            let scope = if report.not_checked.is_empty() { "" } else { " in what --fast checks" };
            return writeln!(out, "intact: no findings{scope}");
        }
        writeln!(out, "intact, but INCOMPLETE: no findings, and the export did not archive everything it listed")?;
        return print_missing(out, report);
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
    if !report.is_complete() {
        writeln!(out, "INCOMPLETE: the export did not archive everything it listed")?;
        print_missing(out, report)?;
    }
    Ok(())
}

/// The items `account.json` records as not archived, as many as the report keeps.
fn print_missing(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(out, "missing ({}), as recorded in account.json:", report.missing_total)?;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    for m in &report.missing {
        writeln!(
            out,
            "  {} {} (project {}): {}",
            or_dash(&m.kind),
            or_dash(&m.id),
            or_dash(&m.project),
            or_dash(&m.reason)
        )?;
    }
    let more = report.missing_total.saturating_sub(report.missing.len() as u64);
    if more > 0 {
        writeln!(out, "  and {more} more")?;
    }
    if report.missing_total == 0 {
        writeln!(out, "  (account.json says \"complete\": false but lists no item)")?;
    }
    Ok(())
}
