//! `cvarchive delete`: an adapter from arguments to [`crate::delete::delete`]: prints the plan (a
//! dry run unless `--yes`), or the receipt's summary and SHA-256, and chooses the exit code.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use uuid::Uuid;

use super::archive_arg::ArchiveParser;
use super::common;
use super::progress::{Drawer, Mode};
use super::Exit;
use crate::api::Client;
use crate::delete::{
    delete, Category, DeleteOptions, Error, Executed, Outcome, Plan, ProjectPlan, RunOutcome, Targets,
};
use crate::store::Location;

/// Arguments of `cvarchive delete`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("targets").required(true).args(["projects", "all_projects"])))]
pub struct DeleteArgs {
    #[command(flatten)]
    service: common::ServiceArgs,
    /// A cvarchive export of these projects. It must verify in full, come from this endpoint
    /// and hold everything that would be deleted as the service holds it now (tags, regions,
    /// metadata...), or nothing is deleted. A file, or an object in a store (az://, https://
    /// ACCOUNT.blob.core.windows.net/, s3://), read in ranges with the environment's credentials.
    #[arg(long, value_name = "PATH", value_parser = ArchiveParser)]
    backup: Option<Location>,
    /// Accept a backup whose account.json or bag-info.txt names another endpoint (or none), e.g.
    /// after the resource moved to another host.
    #[arg(long, requires = "backup")]
    backup_from_other_endpoint: bool,
    /// Delete with no backup: nothing can be restored afterwards.
    #[arg(long, conflicts_with = "backup")]
    without_backup_accept_permanent_loss: bool,
    /// Delete this project (repeatable).
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<Uuid>,
    /// Delete every project of the resource.
    #[arg(long)]
    all_projects: bool,
    /// Delete only this category of each project, keeping the project.
    #[arg(long, value_enum, value_name = "CATEGORY")]
    only: Option<OnlyArg>,
    /// Carry the deletion out. Without it, print the plan and change nothing.
    #[arg(long)]
    yes: bool,
    /// Where to write the receipt (and continue an earlier one); default: beside the backup.
    #[arg(long, value_name = "PATH")]
    receipt: Option<PathBuf>,
    /// Delete each project's images with one allImages call, polling the counts until zero.
    #[arg(long)]
    bulk_images: bool,
    /// With --only images: also remove the copies trained iterations keep of the images, and the
    /// images only trained iterations hold (DeleteImages with allIterations=true); the backup
    /// must then hold those too. Without it trained iterations keep their copies.
    #[arg(long)]
    all_iterations: bool,
    /// Print the plan or the receipt as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The categories of `--only`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnlyArg {
    Images,
    Tags,
    Iterations,
    Predictions,
}

impl From<OnlyArg> for Category {
    fn from(o: OnlyArg) -> Category {
        match o {
            OnlyArg::Images => Category::Images,
            OnlyArg::Tags => Category::Tags,
            OnlyArg::Iterations => Category::Iterations,
            OnlyArg::Predictions => Category::Predictions,
        }
    }
}

/// Runs `cvarchive delete`.
pub async fn run(args: DeleteArgs) -> anyhow::Result<Exit> {
    let opts = DeleteOptions {
        only: args.only.map(Category::from),
        without_backup: args.without_backup_accept_permanent_loss,
        backup_from_other_endpoint: args.backup_from_other_endpoint,
        execute: args.yes,
        receipt: args.receipt.clone(),
        bulk_images: args.bulk_images,
        all_iterations: args.all_iterations,
        ..DeleteOptions::new(
            if args.all_projects { Targets::AllProjects } else { Targets::Projects(args.projects.clone()) },
            args.backup.clone(),
        )
    };
    if opts.all_iterations && opts.only != Some(Category::Images) {
        return Err(common::UsageError(
            "--all-iterations goes with --only images (deleting projects or iterations destroys the iterations' \
             copies anyway)"
                .to_owned(),
        )
        .into());
    }
    if opts.backup.is_none() && !opts.without_backup {
        return refuse(&Error::NoBackup, args.json);
    }
    let mut client_opts = args.service.client_options()?;
    // With --json the events come first, then the plan or the receipt, as every command does.
    let drawer = Drawer::start(Mode::choose(args.json, false));
    client_opts.progress = drawer.clone();
    let client = Client::new(client_opts)?;
    let said = drawer.clone();
    let cancel = common::cancel_on_signals_telling(move |message| said.say(message));
    let outcome = delete(&client, &opts, drawer.as_ref(), &cancel).await;
    drawer.finish();
    match outcome {
        Err(e) => refuse(&e, args.json),
        Ok(Outcome::DryRun(plan)) => {
            print_plan(&plan, &opts, args.json)?;
            Ok(Exit::Done)
        }
        Ok(Outcome::Executed(done)) => {
            print_receipt(&done, args.json)?;
            Ok(match done.outcome {
                RunOutcome::Complete => Exit::Done,
                RunOutcome::Failures => Exit::Incomplete,
                RunOutcome::Interrupted => {
                    let message = format!(
                        "interrupted; run the same command again to continue (receipt {})",
                        done.receipt_path.display()
                    );
                    if args.json {
                        super::json::write_error(&super::json::ErrorLine::new(
                            message,
                            "interrupted",
                            Exit::Interrupted.code(),
                        ));
                    }
                    Exit::Interrupted
                }
            })
        }
    }
}

/// Says why nothing was deleted: on stderr, and with `--json` as the `error` line, with what
/// the backup lacks or what changed since it was taken when that is the reason.
fn refuse(e: &Error, json: bool) -> anyhow::Result<Exit> {
    let message = crate::text::error_chain(e);
    if json {
        let mut line = super::json::ErrorLine::new(message.as_str(), super::json::cause_kind(e), Exit::Error.code());
        if let Error::BackupLacks { lacking, .. } = e {
            line.lacking = Some(serde_json::to_value(lacking)?);
        }
        if let Error::BackupDiffers { differences, .. } = e {
            line.differences = Some(serde_json::to_value(differences)?);
        }
        super::json::write_error(&line);
    }
    eprintln_escaped!("cvarchive: {message}");
    Ok(if matches!(e, Error::Interrupted) { Exit::Interrupted } else { Exit::Error })
}

fn print_plan(plan: &Plan, opts: &DeleteOptions, json: bool) -> anyhow::Result<()> {
    if json {
        // Serialised as it is, not through a `serde_json::Value` of every id (a hundred bytes
        // an image).
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct DryRun<'a> {
            #[serde(flatten)]
            plan: &'a Plan,
            dry_run: bool,
        }
        return Ok(super::json::write("deletePlan", &DryRun { plan, dry_run: true })?);
    }
    let mut out = super::human::Escaping(std::io::stdout().lock());
    writeln!(out, "DRY RUN: nothing was deleted. Run again with --yes to delete.")?;
    writeln!(out, "endpoint: {}", plan.endpoint_host)?;
    if let Some(other) = &plan.backup_from_other_endpoint {
        writeln!(
            out,
            "WARNING:  the backup is of ANOTHER ENDPOINT ({other}), not {}; accepted because of \
             --backup-from-other-endpoint",
            plan.endpoint_host
        )?;
    }
    match &opts.backup {
        Some(b) => writeln!(out, "backup:   {} (verified in full; holds everything below as the service does now)", b)?,
        None => writeln!(out, "backup:   NONE: what is deleted cannot be restored")?,
    }
    for p in &plan.projects {
        let name = p.name.as_deref().unwrap_or("?");
        if p.gone {
            writeln!(out, "project {} : not at the endpoint (already deleted)", p.id)?;
            continue;
        }
        writeln!(
            out,
            "project {} {name:?}: {}",
            p.id,
            if p.delete_project { "delete the whole project" } else { "keep the project" }
        )?;
        for it in p.iterations.iter().filter_map(|i| i.published.as_ref()) {
            writeln!(out, "  unpublish iteration {} (published as {:?})", it.iteration, it.publish_name)?;
        }
        let line = |what: &str, n: usize, batch: usize| -> String {
            format!("  {n} {what} in {} call(s)", if n == 0 { 0 } else { n.div_ceil(batch) })
        };
        if opts.only.is_none() || opts.only == Some(Category::Images) {
            let batch = if opts.bulk_images { usize::MAX } else { crate::api::MAX_IMAGE_IDS };
            writeln!(
                out,
                "{} ({} tagged, {} untagged reported)",
                line("images", p.images.len(), batch),
                p.tagged,
                p.untagged
            )?;
        }
        print_iteration_copies(&mut out, p, plan.all_iterations)?;
        if opts.only.is_none() || opts.only == Some(Category::Tags) {
            writeln!(out, "{}", line("tags", p.tags.len(), 1))?;
        }
        if opts.only.is_none() || opts.only == Some(Category::Iterations) {
            writeln!(out, "{}", line("iterations", p.iterations.len(), 1))?;
        }
        if opts.only.is_none() || opts.only == Some(Category::Predictions) {
            writeln!(out, "{}", line("stored predictions", p.predictions.len(), crate::api::MAX_PREDICTION_IDS))?;
        }
        if p.delete_project {
            writeln!(out, "  then the project itself (1 call)")?;
        }
    }
    writeln!(out, "{} mutating call(s) in all", plan.calls)?;
    writeln!(out, "cannot be deleted through the API:")?;
    for n in &plan.not_deletable {
        let count = n.count.map(|c| format!(" ({c})")).unwrap_or_default();
        writeln!(out, "  {}{count}: {}", n.what, n.why)?;
    }
    for note in &plan.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

/// What happens to the images trained iterations hold: per project, then per iteration.
fn print_iteration_copies(out: &mut impl Write, p: &ProjectPlan, all_iterations: bool) -> anyhow::Result<()> {
    if p.iteration_images.is_empty() {
        return Ok(());
    }
    let only = p.only_in_iterations.len();
    if p.iteration_copies_go && all_iterations {
        writeln!(
            out,
            "  DeleteImages with allIterations=true: trained iterations' copies go too; {only} of these images \
             only trained iterations hold"
        )?;
    } else if p.iteration_copies_go {
        writeln!(out, "  {only} image(s) only trained iterations hold: destroyed with the iterations")?;
    } else {
        writeln!(
            out,
            "  DeleteImages without allIterations: trained iterations keep their copies of {} of these images, \
             and the {only} image(s) only they hold (--all-iterations removes them too)",
            p.kept_in_iterations.len()
        )?;
    }
    for it in &p.iteration_images {
        writeln!(
            out,
            "    iteration {} {:?}: holds {} image(s), {} of them only trained iterations hold",
            it.id,
            it.name,
            it.listed,
            it.only_in_iterations.len()
        )?;
    }
    Ok(())
}

fn print_receipt(done: &Executed, json: bool) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({
            "outcome": done.outcome,
            "receiptPath": done.receipt_path,
            "receiptSha256": done.receipt_sha256,
            "receipt": done.receipt,
        });
        return Ok(super::json::write("deleteReceipt", &doc)?);
    }
    let mut out = super::human::Escaping(std::io::stdout().lock());
    let r = &done.receipt;
    let run = r.runs.last().map(|r| r.deleted).unwrap_or_default();
    let t = r.totals;
    let outcome = match done.outcome {
        RunOutcome::Complete => "complete: everything planned is gone, and confirmed gone",
        RunOutcome::Failures => "done WITH FAILURES (listed below); run the same command again to continue",
        RunOutcome::Interrupted => "INTERRUPTED; run the same command again to continue",
    };
    writeln!(out, "{outcome}")?;
    if let Some(other) = r.backup.as_ref().and_then(|b| b.other_endpoint.as_ref()) {
        writeln!(
            out,
            "the backup is of ANOTHER ENDPOINT ({other}), not {}; accepted because of --backup-from-other-endpoint",
            r.endpoint_host
        )?;
    }
    writeln!(
        out,
        "this run: {} project(s), {} unpublished, {} images, {} tags, {} iterations, {} predictions",
        run.projects, run.unpublished, run.images, run.tags, run.iterations, run.predictions
    )?;
    if r.runs.len() > 1 {
        writeln!(
            out,
            "all {} runs: {} project(s), {} unpublished, {} images, {} tags, {} iterations, {} predictions",
            r.runs.len(),
            t.projects,
            t.unpublished,
            t.images,
            t.tags,
            t.iterations,
            t.predictions
        )?;
    }
    let kept: usize = r.projects.iter().map(|p| p.kept_in_iterations.len()).sum();
    if r.only == Some(Category::Images) {
        match r.all_iterations {
            true => writeln!(out, "allIterations=true: trained iterations' copies were deleted too")?,
            false => writeln!(
                out,
                "allIterations not sent: trained iterations keep their copies of {kept} deleted image(s) (listed in \
                 the receipt as keptInIterations)"
            )?,
        }
    }
    if t.only_in_iterations > 0 {
        writeln!(out, "{} image(s) only trained iterations held were destroyed with them", t.only_in_iterations)?;
    }
    for f in &r.failures {
        writeln!(out, "FAILED: {f}")?;
    }
    for n in &r.not_deletable {
        writeln!(out, "not deletable through the API: {}: {}", n.what, n.why)?;
    }
    writeln!(out, "receipt: {}", done.receipt_path.display())?;
    writeln!(out, "sha256:  {}", done.receipt_sha256)?;
    Ok(())
}
