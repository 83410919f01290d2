//! `cvarchive convert`: an archive -> COCO datasets or tag folders, one per project.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use uuid::Uuid;

use super::archive_arg::ArchiveParser;
use super::progress::{Drawer, Mode};
use super::Exit;
use crate::convert::{convert, ConvertOptions, Report, Target};
use crate::store::Location;

/// Arguments of `cvarchive convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The archive to convert: a file, or an object in a store: az://CONTAINER/PATH.zip,
    /// https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH.zip or s3://BUCKET/KEY.zip (read in
    /// ranges, never downloaded whole; credentials from the environment). The output is local.
    #[arg(value_parser = ArchiveParser)]
    archive: Location,
    /// The format: `coco` (annotations.json + images/) or `folders` (one folder per tag).
    #[arg(long, value_enum)]
    to: Format,
    /// The folder that receives one folder per project: `<projectId>` for coco,
    /// `<name>-<projectId>` for folders (the name made safe for any file system).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Replace a project's folder an earlier convert wrote (a folder convert did not write is
    /// never replaced).
    #[arg(long)]
    force: bool,
    /// Convert only this project (repeatable); default: every project.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<Uuid>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The formats `--to` takes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// COCO object detection: annotations.json and images/.
    Coco,
    /// One folder per tag, untagged/ and labels.csv.
    Folders,
}

/// Runs `cvarchive convert`.
pub async fn run(args: ConvertArgs) -> anyhow::Result<Exit> {
    let mode = Mode::choose(args.json, false);
    let to = match args.to {
        Format::Coco => Target::Coco,
        Format::Folders => Target::Folders,
    };
    let opts = ConvertOptions { to, out: args.out.clone(), projects: args.projects.clone(), force: args.force };
    let archive = args.archive.clone();
    let report = tokio::task::spawn_blocking(move || {
        let drawer = Drawer::start(mode);
        let result = convert(&archive, &opts, drawer.as_ref());
        drawer.finish();
        result
    })
    .await
    .context("the convert task failed")?
    .with_context(|| format!("cannot convert {}", args.archive))?;
    print(&report, args.json)?;
    Ok(if report.is_complete() { Exit::Done } else { Exit::Incomplete })
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        return Ok(super::json::write("convertReport", report)?);
    }
    for p in &report.projects {
        let only = match p.only_in_iterations {
            0 => String::new(),
            n => format!(" ({n} held only by iterations, marked as such)"),
        };
        println_escaped!(
            "{} ({}): {} images{only}, {} categories, {} annotations -> {}",
            p.name,
            p.id,
            p.images,
            p.categories,
            p.annotations,
            p.path.display()
        );
        if p.replaced {
            println_escaped!("  (replaced the earlier output of convert there)");
        }
        for s in &p.skipped {
            println_escaped!("  SKIPPED image {}: {}", s.image_id, s.reason);
        }
    }
    Ok(())
}
