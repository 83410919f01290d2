//! `cvarchive inspect`: an adapter from arguments to [`crate::verify::inspect`], printing the
//! summary as text or JSON.

use anyhow::Context;
use clap::Args;
use std::io::Write;

use super::archive_arg::ArchiveParser;
use super::Exit;
use crate::store::Location;
use crate::verify::{inspect, Summary};

/// Arguments of `cvarchive inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The archive to summarise: a file, or an object in a store: az://CONTAINER/PATH.zip,
    /// https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH.zip or s3://BUCKET/KEY.zip (read in
    /// ranges, never downloaded whole; credentials from the environment).
    #[arg(value_parser = ArchiveParser)]
    pub archive: Location,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cvarchive inspect`.
pub async fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    let path = args.archive.clone();
    let result = tokio::task::spawn_blocking(move || inspect(&path)).await.context("inspect task failed")?;
    let summary = result.with_context(|| format!("cannot read {} as an archive", args.archive))?;
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
    writeln!(out, "archive:   {}, {} in {} entries", s.archive.display(), size(s.archive_bytes), grouped(s.entries))?;
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
    writeln!(out, "payload:   {} files, {}", grouped(s.payload_files), size(s.payload_bytes))?;
    for p in &s.projects {
        let n = |v: Option<u64>| v.map_or("?".to_string(), grouped);
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
            "  images: {} tagged, {} untagged{only_in_iterations}; {} files, {}; tags: {}; iterations: {}",
            n(p.tagged),
            n(p.untagged),
            grouped(p.image_files),
            size(p.image_bytes),
            n(p.tags),
            p.iterations
        )?;
        writeln!(
            out,
            "  predictions: {}, {}; model exports: {}, {}; missing: {}",
            grouped(p.predictions),
            size(p.prediction_bytes),
            p.model_exports,
            size(p.model_bytes),
            p.missing
        )?;
    }
    for note in &s.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

/// A size in binary units with the exact count beside it: `1.2 GiB (1,234,567,890 bytes)`;
/// under a KiB only the count.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let exact = format!("{} bytes", grouped(bytes));
    if bytes < 1024 {
        return exact;
    }
    let (mut value, mut unit) = (bytes as f64 / 1024.0, 0);
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({exact})", UNITS[unit])
}

/// A count with a comma between each group of three digits: `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units_with_the_exact_count() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1,023 bytes");
        assert_eq!(size(1024), "1.0 KiB (1,024 bytes)");
        assert_eq!(size(1_234_567_890), "1.1 GiB (1,234,567,890 bytes)");
        assert_eq!(size(u64::MAX), "16.0 EiB (18,446,744,073,709,551,615 bytes)");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(123_456), "123,456");
    }
}
