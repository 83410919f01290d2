//! `cvarchive inspect`: an adapter from arguments to [`crate::verify::inspect`], printing the
//! summary as text or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::Exit;
use crate::verify::{inspect, Summary};

/// Arguments of `cvarchive inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The archive to summarise.
    pub archive: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cvarchive inspect`.
pub async fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    let path = args.archive.clone();
    let result = tokio::task::spawn_blocking(move || inspect(&path)).await.context("inspect task failed")?;
    let summary = result.with_context(|| format!("cannot read {} as an archive", args.archive.display()))?;
    if args.json {
        super::json::write("inspectSummary", &summary)?;
    } else {
        print_human(&mut super::human::Escaping(std::io::stdout().lock()), &summary)?;
    }
    Ok(Exit::Done)
}

fn or_unknown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unknown")
}

fn print_human(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    writeln!(out, "archive:   {} ({} bytes, {} entries)", s.archive.display(), s.archive_bytes, s.entries)?;
    writeln!(out, "source:    {} (API {})", or_unknown(&s.source_host), or_unknown(&s.api_version))?;
    writeln!(
        out,
        "taken:     {} .. {} (bagged {})",
        or_unknown(&s.started),
        or_unknown(&s.finished),
        or_unknown(&s.bagging_date)
    )?;
    writeln!(out, "tool:      cvarchive {}", or_unknown(&s.tool_version))?;
    let complete = match s.complete {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "unknown",
    };
    writeln!(out, "complete:  {complete} ({} account-level items missing)", s.missing)?;
    writeln!(out, "payload:   {} files, {} bytes", s.payload_files, s.payload_bytes)?;
    for p in &s.projects {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        writeln!(
            out,
            "project {} {:?} ({})",
            p.id,
            p.name.as_deref().unwrap_or("?"),
            p.domain_type.as_deref().unwrap_or("?")
        )?;
        // Older archives do not say; a count of none says nothing worth a line's room either.
        let only_in_iterations = match p.only_in_iterations {
            Some(k) if k > 0 => format!(", {k} held only by iterations"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  images: {} tagged, {} untagged{only_in_iterations} ({} files, {} bytes); tags: {}; iterations: {}",
            n(p.tagged),
            n(p.untagged),
            p.image_files,
            p.image_bytes,
            n(p.tags),
            p.iterations
        )?;
        writeln!(
            out,
            "  predictions: {} ({} bytes); model exports: {} ({} bytes); missing: {}",
            p.predictions, p.prediction_bytes, p.model_exports, p.model_bytes, p.missing
        )?;
    }
    for note in &s.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}
