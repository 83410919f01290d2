//! `cvarchive restore`: an archive's projects recreated in a Custom Vision resource, with a
//! report mapping old ids to new ones that a rerun resumes from.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use uuid::Uuid;

use super::archive_arg::ArchiveParser;
use super::common;
use super::progress::{human_bytes, Drawer, Mode};
use super::Exit;
use crate::api::{Client, MAX_UPLOAD_BATCH_BYTES};
use crate::restore::{plan, restore, Error as RestoreError, Report, RestoreOptions};
use crate::store::Location;

/// Arguments of `cvarchive restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive to restore: a file, or an object in a store: az://CONTAINER/PATH.zip,
    /// https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH.zip or s3://BUCKET/KEY.zip (read in
    /// ranges, never downloaded whole; credentials from the environment).
    #[arg(value_parser = ArchiveParser)]
    archive: Location,
    #[command(flatten)]
    service: common::ServiceArgs,
    /// Restore only this project (repeatable); default: every project.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<Uuid>,
    /// Appended to each restored project's name.
    #[arg(long, value_name = "TEXT", default_value = "")]
    name_suffix: String,
    /// The restore report (old ids -> new ids), also what a rerun resumes from
    /// (default: the archive's path with `.restore.json` in place of `.zip`; for an archive in a
    /// store, that name in the current folder).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// The most image bytes in one upload (before base64), e.g. `24MiB`, `512KiB` or a number
    /// of bytes; at most 40 MiB. Smaller batches suit a slow uplink: each upload may take
    /// 60 s plus its size at 1 Mbit/s.
    #[arg(long, value_name = "SIZE", default_value = "24MiB", value_parser = parse_batch_bytes)]
    batch_bytes: u64,
    /// Also upload the images only trained iterations held (deleted from the workspace, kept by
    /// an iteration) into the new project's workspace; by default they are left out and the
    /// report says how many.
    #[arg(long)]
    pub iteration_images: bool,
    /// Print the plan (per project: images, uploads, bytes, what would not be recreated) from
    /// the archive alone, and send nothing: no endpoint or key is needed.
    #[arg(long)]
    dry_run: bool,
    /// JSON lines on stdout: one event per line, then the report (with --dry-run, the plan).
    #[arg(long)]
    json: bool,
    /// No progress display (warnings and the summary only).
    #[arg(long)]
    no_progress: bool,
}

/// Runs `cvarchive restore`.
pub async fn run(args: RestoreArgs) -> anyhow::Result<Exit> {
    if args.dry_run {
        return dry_run(&args).await;
    }
    let mode = Mode::choose(args.json, args.no_progress);
    let drawer = Drawer::start(mode);
    let mut client_opts = args.service.client_options()?;
    client_opts.progress = drawer.clone();
    let client = Client::new(client_opts)?;
    let report_path = args.report.clone().unwrap_or_else(|| default_report(&args.archive));
    let opts = RestoreOptions {
        projects: args.projects.clone(),
        name_suffix: args.name_suffix.clone(),
        batch_bytes: args.batch_bytes as usize,
        iteration_images: args.iteration_images,
        ..RestoreOptions::new(&report_path)
    };
    let said = drawer.clone();
    let cancel = common::cancel_on_signals_telling(move |message| said.say(message));
    let result = restore(&client, &args.archive, &opts, drawer.as_ref(), &cancel).await;
    drawer.finish();
    let report = match result {
        Ok(report) => report,
        Err(e @ RestoreError::Interrupted(_)) => {
            eprintln_escaped!("cvarchive: {}", crate::text::error_chain(&e));
            return Ok(Exit::Interrupted);
        }
        Err(e) => return Err(e.into()),
    };
    print(&report, &report_path, mode)?;
    Ok(if report.complete { Exit::Done } else { Exit::Incomplete })
}

/// The report's default path: beside a local archive, `X.restore.json` for `X.zip`; for an
/// archive in a store (nothing can be put beside it), that name in the current folder.
fn default_report(archive: &Location) -> PathBuf {
    match archive {
        Location::Local(path) => path.with_extension("restore.json"),
        Location::Remote(_) => {
            PathBuf::from(archive.file_name().unwrap_or(std::ffi::OsStr::new("archive"))).with_extension("restore.json")
        }
    }
}

/// `restore --dry-run`: the plan, read from the archive off the async threads; no client.
async fn dry_run(args: &RestoreArgs) -> anyhow::Result<Exit> {
    let opts = RestoreOptions {
        projects: args.projects.clone(),
        iteration_images: args.iteration_images,
        ..RestoreOptions::new(PathBuf::new())
    };
    let archive = args.archive.clone();
    let plan = tokio::task::spawn_blocking(move || plan(&archive, &opts))
        .await
        .context("the restore plan task failed")?
        .with_context(|| format!("cannot plan a restore of {}", args.archive))?;
    if args.json {
        super::json::write("restorePlan", &plan)?;
        return Ok(Exit::Done);
    }
    for p in &plan.projects {
        println_escaped!(
            "{} ({}): {} of {} images in {} uploads, {}, {} tags",
            p.name,
            p.id,
            p.images,
            p.archived_images,
            p.uploads,
            human_bytes(p.bytes),
            p.tags
        );
        for n in &p.not_recreated {
            println_escaped!("  not recreated: {} {}: {}", n.count, n.what, n.why);
        }
    }
    println_escaped!(
        "dry run: {} project(s), {} images in {} uploads, {}; nothing was sent",
        plan.projects.len(),
        plan.images,
        plan.uploads,
        human_bytes(plan.bytes)
    );
    Ok(Exit::Done)
}

fn print(report: &Report, path: &std::path::Path, mode: Mode) -> anyhow::Result<()> {
    if mode == Mode::Json {
        return Ok(super::json::write("restoreReport", report)?);
    }
    for p in &report.projects {
        let new = p.new_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
        print_escaped!(
            "{} ({}) -> {:?} ({new}): {} tags, {} images",
            p.name,
            p.old_id,
            p.new_name,
            p.tags.len(),
            p.images.len()
        );
        match &p.counts {
            Some(c) if c.agree() => println_escaped!(", counts match"),
            Some(c) => println_escaped!(
                ", COUNTS DIFFER: service {} images / {} tags, archive {} / {}",
                c.service_images,
                c.service_tags,
                c.archived_distinct,
                c.archived_tags
            ),
            None => println_escaped!(),
        }
        for f in &p.failed {
            println_escaped!("  REFUSED {:?}: {}", f.image_ids, f.status);
        }
        for n in &p.notes {
            println_escaped!("  note: {n}");
        }
        for n in &p.not_recreated {
            println_escaped!("  not recreated: {} {}: {}", n.count, n.what, n.why);
        }
    }
    println_escaped!("report: {}", path.display());
    Ok(())
}

/// `--batch-bytes`: a number of bytes, or one with a `KiB`/`MiB` suffix, from 1 byte to
/// [`MAX_UPLOAD_BATCH_BYTES`].
fn parse_batch_bytes(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let (digits, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => raw.split_at(at),
        None => (raw, ""),
    };
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        other => return Err(format!("unknown unit {other:?}; use KiB or MiB")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{raw:?} is not a size"))?;
    let bytes = n.checked_mul(scale).ok_or_else(|| format!("{raw:?} is too large"))?;
    if bytes == 0 || bytes > MAX_UPLOAD_BATCH_BYTES {
        return Err(format!("a batch holds from 1 byte to {} MiB of images", MAX_UPLOAD_BATCH_BYTES >> 20));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{default_report, parse_batch_bytes};
    use crate::store::Location;

    #[test]
    fn the_report_goes_beside_a_local_archive_and_in_the_current_folder_for_a_remote_one() {
        let parse = |s: &str| Location::parse(std::ffi::OsStr::new(s)).unwrap();
        assert_eq!(default_report(&parse("out/nightly.zip")), PathBuf::from("out/nightly.restore.json"));
        assert_eq!(default_report(&parse("az://backups/2026/nightly.zip")), PathBuf::from("nightly.restore.json"));
        assert_eq!(default_report(&parse("s3://bucket/nightly.zip")), PathBuf::from("nightly.restore.json"));
    }

    #[test]
    fn batch_bytes_take_units_and_stay_within_the_limit() {
        assert_eq!(parse_batch_bytes("24MiB"), Ok(24 << 20));
        assert_eq!(parse_batch_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_batch_bytes("1000"), Ok(1000));
        assert_eq!(parse_batch_bytes("40m"), Ok(40 << 20));
        for bad in ["0", "41MiB", "-1", "1GiB", "MiB", "99999999999999999999"] {
            assert!(parse_batch_bytes(bad).is_err(), "{bad}");
        }
    }
}
