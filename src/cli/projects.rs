//! `cvarchive projects`: the account's projects with their counts and an estimate of their
//! bytes, read with metadata calls only; and the plan `export --dry-run` prints from the same
//! survey ([`crate::export::plan`]).

use std::io::Write;
use std::path::Path;

use clap::Args;
use uuid::Uuid;

use super::common;
use super::human::Escaping;
use super::progress::human_bytes;
use super::Exit;
use crate::api::Client;
use crate::export::plan::{self, ExportPlan, ProjectSurvey, SurveyOptions};

/// How the byte estimate is made, said beside every estimate.
const ESTIMATE: &str = "estimated from the images' width and height (a sample of each project's oldest 256), at 0.3 \
                        bytes per pixel as a JPEG photo, no image being downloaded";

/// Arguments of `cvarchive projects`.
#[derive(Debug, Args)]
pub struct ProjectsArgs {
    #[command(flatten)]
    service: common::ServiceArgs,
    /// Only this project (repeatable); default: every project.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<Uuid>,
    /// One JSON object on stdout (camelCase keys).
    #[arg(long)]
    json: bool,
}

/// Runs `cvarchive projects`.
pub async fn run(args: ProjectsArgs) -> anyhow::Result<Exit> {
    let mut client_opts = args.service.client_options()?;
    client_opts.cancel = common::cancel_on_signals_telling(|m| eprintln_escaped!("{m}"));
    let client = Client::new(client_opts)?;
    let opts = SurveyOptions { iterations: true, predictions: true };
    let projects = plan::survey(&client, &args.projects, opts).await?;
    let mut out = Escaping(std::io::stdout().lock());
    if args.json {
        let doc = serde_json::json!({
            "endpoint": client.host(),
            "projects": projects,
            "totals": {
                "projects": projects.len(),
                "tagged": projects.iter().map(|p| p.tagged).sum::<u64>(),
                "untagged": projects.iter().map(|p| p.untagged).sum::<u64>(),
                "predictions": projects.iter().map(|p| p.predictions.unwrap_or(0)).sum::<u64>(),
                "estimatedBytes": projects.iter().map(|p| p.estimated_bytes).sum::<u64>(),
            },
            "estimate": ESTIMATE,
        });
        drop(out);
        super::json::write("projectList", &doc)?;
        return Ok(Exit::Done);
    }
    writeln!(out, "endpoint: {}", client.host())?;
    print_table(&mut out, &projects)?;
    let images: u64 = projects.iter().map(|p| p.tagged + p.untagged).sum();
    let bytes: u64 = projects.iter().map(|p| p.estimated_bytes).sum();
    writeln!(
        out,
        "{} project(s), {images} images, {} stored predictions, about {} ({bytes} bytes; {ESTIMATE})",
        projects.len(),
        projects.iter().map(|p| p.predictions.unwrap_or(0)).sum::<u64>(),
        human_bytes(bytes),
    )?;
    Ok(Exit::Done)
}

fn print_table(out: &mut impl Write, projects: &[ProjectSurvey]) -> std::io::Result<()> {
    let width = projects.iter().map(|p| p.name.chars().count()).max().unwrap_or(4).clamp(4, 40);
    writeln!(
        out,
        "{:<width$}  {:<36}  {:<14}  {:>8}  {:>8}  {:>10}  {:>11}  {:>10}",
        "NAME", "ID", "TYPE", "TAGGED", "UNTAGGED", "ITERATIONS", "PREDICTIONS", "ESTIMATED"
    )?;
    for p in projects {
        let name: String = p.name.chars().take(width).collect();
        let iterations = match (p.iterations, p.trained_iterations) {
            (Some(n), Some(t)) => format!("{n} ({t} tr.)"),
            _ => "-".to_owned(),
        };
        writeln!(
            out,
            "{name:<width$}  {:<36}  {:<14}  {:>8}  {:>8}  {:>10}  {:>11}  {:>10}",
            p.id,
            p.domain_type.as_deref().unwrap_or("-"),
            p.tagged,
            p.untagged,
            iterations,
            p.predictions.map_or("-".to_owned(), |n| n.to_string()),
            format!("~{}", human_bytes(p.estimated_bytes)),
        )?;
    }
    Ok(())
}

/// `export --dry-run`: surveys the projects, prints the plan, writes nothing. Exit 0 when the
/// export would start, 2 when it would be refused for want of room.
pub async fn dry_run(
    client: &Client,
    ids: &[Uuid],
    predictions: bool,
    api_rate: Option<f64>,
    out_path: &Path,
    json: bool,
) -> anyhow::Result<Exit> {
    let opts = SurveyOptions { iterations: true, predictions };
    let projects = plan::survey(client, ids, opts).await?;
    let plan = plan::plan(projects, predictions, api_rate, out_path);
    let exit = if plan.room == Some(false) { Exit::Error } else { Exit::Done };
    let mut out = Escaping(std::io::stdout().lock());
    if json {
        let mut doc = serde_json::to_value(&plan)?;
        doc["dryRun"] = true.into();
        doc["endpoint"] = client.host().into();
        doc["estimate"] = ESTIMATE.into();
        super::json::write("exportPlan", &doc)?;
    } else {
        print_plan(&mut out, &plan, client.host(), predictions)?;
    }
    drop(out);
    if exit == Exit::Error {
        let message = format!(
            "not enough room at {}: about {} needed, {} free; the export would be refused",
            plan::folder_of(out_path).display(),
            human_bytes(plan.estimated_bytes),
            human_bytes(plan.free_bytes.unwrap_or(0))
        );
        super::json::write_error(&super::json::ErrorLine::new(message.as_str(), "refused", Exit::Error.code()));
        eprintln_escaped!("cvarchive: {message}");
    }
    Ok(exit)
}

fn print_plan(out: &mut impl Write, plan: &ExportPlan, host: &str, predictions: bool) -> std::io::Result<()> {
    writeln!(out, "DRY RUN: nothing was downloaded or written. Run again without --dry-run to export.")?;
    writeln!(out, "endpoint: {host}")?;
    writeln!(out, "projects: {}", plan.projects.len())?;
    for p in &plan.projects {
        let iterations = p.iterations.unwrap_or(0);
        let trained = p.trained_iterations.unwrap_or(0);
        let stored = match (predictions, p.predictions) {
            (true, Some(n)) => format!(", {n} stored predictions"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {} ({}): {} tagged, {} untagged images, {iterations} iterations ({trained} trained){stored}, about {}",
            p.name,
            p.id,
            p.tagged,
            p.untagged,
            human_bytes(p.estimated_bytes)
        )?;
    }
    let stored = if predictions {
        format!("{} stored predictions", plan.predictions)
    } else {
        "no stored predictions (--no-predictions)".to_owned()
    };
    writeln!(out, "images: {} and {stored}: {} downloads", plan.images, plan.downloads)?;
    writeln!(
        out,
        "estimated archive: about {} ({} bytes; {ESTIMATE})",
        human_bytes(plan.estimated_bytes),
        plan.estimated_bytes
    )?;
    match (plan.api_rate, plan.api_seconds) {
        (Some(rate), Some(secs)) => writeln!(
            out,
            "API calls: about {}, taking at least {} at --api-rate {rate} (downloads are not paced)",
            plan.api_calls,
            human_seconds(secs)
        )?,
        _ => writeln!(out, "API calls: about {}, not paced (--api-rate unlimited)", plan.api_calls)?,
    }
    let folder = plan::folder_of(&plan.out);
    match (plan.free_bytes, plan.room) {
        (Some(free), Some(true)) => {
            writeln!(out, "disk: {} free in {}: room for the archive", human_bytes(free), folder.display())?
        }
        (Some(free), _) => writeln!(
            out,
            "disk: {} free in {}: NOT ENOUGH ROOM for about {}",
            human_bytes(free),
            folder.display(),
            human_bytes(plan.estimated_bytes)
        )?,
        (None, _) => writeln!(out, "disk: free space in {} unknown", folder.display())?,
    }
    Ok(())
}

/// Seconds as `42 s`, `3 min 20 s` or `2 h 05 min`.
fn human_seconds(secs: f64) -> String {
    let s = secs.ceil() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}
