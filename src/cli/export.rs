//! `cvarchive export`: a whole account, or some projects, into one verifiable BagIt zip.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use uuid::Uuid;

use super::common;
use super::progress::{human_bytes, Drawer, Mode};
use super::Exit;
use crate::api::{Client, ClientOptions};
use crate::export::{export, plan, Error as ExportError, ExportOptions, ExportSummary};
use crate::store::upload::{Target, IN_FLIGHT, S3_MIN_PART};
use crate::store::{Backend, Location, RemoteUrl};

/// Arguments of `cvarchive export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    service: common::ServiceArgs,
    /// The archive to write (a .zip): a local path, or an object in a store,
    /// `az://CONTAINER/PATH.zip`, `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH.zip` or
    /// `s3://BUCKET/KEY.zip` (credentials from the environment; see the README). A remote
    /// archive is uploaded while it is written and committed only when complete.
    #[arg(long, short, value_name = "PATH|URL", value_parser = parse_location)]
    out: Location,
    /// For a remote --out: the local folder for the spool file, the journal and the upload's
    /// record (resume state). Default: $XDG_CACHE_HOME/cvarchive/uploads (~/.cache/...).
    #[arg(long, value_name = "DIR", env = "CVARCHIVE_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// For a remote --out: the size of the first 1,000 blocks (parts) in MiB; the size doubles
    /// every 1,000 parts, so S3's 10,000 parts hold 6 TiB. S3 needs at least 5.
    #[arg(long, value_name = "MiB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=15))]
    part_size: u64,
    /// Export only this project (repeatable); default: every project.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<Uuid>,
    /// Image downloads in flight at once.
    #[arg(long, default_value_t = crate::export::DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
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
    /// Print the plan (projects, images, estimated bytes, API calls and their time at
    /// --api-rate, whether the disk at --out has room) from metadata calls only, and write
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Export even when the disk at --out seems to lack room for the estimated archive (the
    /// estimate comes from the images' dimensions; see `--dry-run`).
    #[arg(long)]
    skip_space_check: bool,
}

/// Runs `cvarchive export`.
pub async fn run(args: ExportArgs) -> anyhow::Result<Exit> {
    // Arguments first: a wrong --out is refused before any request.
    let (out, upload) = match &args.out {
        Location::Local(path) => (path.clone(), None),
        Location::Remote(url) => remote_out(url, &args).await?,
    };
    plan::check_out(&out, args.force)?;
    let mode = Mode::choose(args.json, args.no_progress);
    let drawer = Drawer::start(mode);
    let said = drawer.clone();
    let cancel = common::cancel_on_signals_telling(move |message| said.say(message));

    // The demo's emulator lives until the export is done.
    let (_demo, mut client_opts) = if args.demo {
        let emu = crate::emulator::start("127.0.0.1:0".parse()?, crate::emulator::EmulatorOptions::default())
            .await
            .context("cannot start the demo emulator")?;
        let mut o = ClientOptions::new(emu.endpoint(), crate::secret::TrainingKey::new(emu.key()));
        o.api_rate = None;
        drawer.say(&format!("demo: exporting the bundled account from an emulator at {}", emu.endpoint()));
        (Some(emu), o)
    } else {
        (None, args.service.client_options()?)
    };
    let key_for_redaction = (!args.demo).then(|| client_opts.key.clone());
    client_opts.progress = drawer.clone();
    client_opts.connect_timeout = Duration::from_secs(args.timeout);
    client_opts.read_timeout = Duration::from_secs(args.timeout);
    // Calls in flight stop with the export, not after their timeouts.
    client_opts.cancel = cancel.clone();
    let client = Client::new(client_opts)?;
    let rate = if args.demo { None } else { args.service.api_rate.0 };
    if args.dry_run {
        drawer.finish();
        return super::projects::dry_run(&client, &args.projects, !args.no_predictions, rate, &out, args.json)
            .await;
    }
    // The room check reads the projects, domains and image counts (three calls a project, images
    // only: stored predictions are read by the export itself); the export takes them over.
    let mut surveyed = None;
    if !args.skip_space_check {
        let checked = match plan::survey_for_export(&client, &args.projects, plan::SurveyOptions::default()).await {
            Ok((projects, read)) => {
                surveyed = Some(read);
                let estimated: u64 = projects.iter().map(|p| p.estimated_bytes).sum();
                // A remote archive needs room for a few parts only (see store::upload).
                let need = match &upload {
                    Some(t) => estimated.min(t.part_size * (IN_FLIGHT as u64 + 2) + (64 << 20)),
                    None => estimated,
                };
                plan::check_room(&out, need)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            drawer.finish();
            return Err(e.into());
        }
    }

    let opts = ExportOptions {
        projects: args.projects.clone(),
        concurrency: usize::from(args.concurrency),
        include_models: args.include_models,
        predictions: !args.no_predictions,
        force: args.force,
        fresh: args.fresh,
        base: args.base.clone(),
        surveyed,
        upload,
        ..ExportOptions::new(&out)
    };
    let result = export(&client, &opts, drawer.as_ref(), &cancel).await;
    if result.is_ok() && opts.upload.is_some() {
        // The spool folder held only this archive's resume state, removed with the commit.
        if let Some(folder) = out.parent() {
            // A run killed with `kill -9` leaves its metadata staging folder behind; the folder
            // is this address's own, so whatever staging is left in it belongs to a dead run.
            for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(".cvarchive-staging-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
            let _ = std::fs::remove_file(folder.join("destination.txt"));
            let _ = std::fs::remove_dir(folder);
        }
    }
    drawer.finish();
    let summary = match result {
        Ok(summary) => summary,
        Err(e) if interrupted(&e) => {
            eprintln_escaped!("cvarchive: {}", crate::text::error_chain(&e));
            return Ok(Exit::Interrupted);
        }
        Err(e) => return Err(e.into()),
    };
    let rerun = (!summary.complete).then(|| fetch_rest_command(&args, &key_for_redaction));
    print_summary(&summary, rerun.as_deref(), mode)?;
    Ok(if summary.complete { Exit::Done } else { Exit::Incomplete })
}

/// Whether the export stopped because it was asked to (Ctrl-C, SIGTERM).
fn interrupted(e: &ExportError) -> bool {
    match e {
        ExportError::Interrupted | ExportError::Api(crate::api::Error::Interrupted { .. }) => true,
        ExportError::Resumable { cause, .. } => interrupted(cause),
        _ => false,
    }
}

/// The command that fetches what an incomplete export missed: a new export of the same account
/// and options with `--base` the archive just written, so that only what it lacks is
/// downloaded. Never holds a secret: the key stays in the environment or its file, and the
/// endpoint is printed redacted.
fn fetch_rest_command(args: &ExportArgs, key: &Option<crate::secret::TrainingKey>) -> String {
    let mut words: Vec<String> = vec!["cvarchive".into(), "export".into()];
    let mut push = |flag: &str, value: Option<String>| {
        words.push(flag.to_owned());
        if let Some(v) = value {
            words.push(shell_word(&v));
        }
    };
    if args.demo {
        push("--demo", None);
    }
    if let Some(endpoint) = &args.service.endpoint {
        push("--endpoint", Some(crate::secret::redact(endpoint, key.as_ref())));
    }
    if let Some(file) = &args.service.key_file {
        push("--key-file", Some(file.display().to_string()));
    }
    push("--out", Some(next_name(&args.out.to_string())));
    push("--base", Some(args.out.to_string()));
    for p in &args.projects {
        push("--project", Some(p.to_string()));
    }
    if args.include_models {
        push("--include-models", None);
    }
    if args.no_predictions {
        push("--no-predictions", None);
    }
    words.join(" ")
}

/// `backup.zip` -> `backup.rest.zip`: a new name beside the archive, which stays the base.
fn next_name(out: &str) -> String {
    let stem = out.strip_suffix(".zip").unwrap_or(out);
    format!("{stem}.rest.zip")
}

/// A command-line archive address or path (see [`Location::parse`]).
fn parse_location(text: &str) -> Result<Location, String> {
    Location::parse(std::ffi::OsStr::new(text)).map_err(|e| e.to_string())
}

/// For a remote `--out`: the local spool file the writer writes (in a folder of its own per
/// address, so the same command finds it again to resume) and the upload's target. Refuses an
/// archive that is there already (unless --force), a container that does not exist, and a
/// credential the store refuses, before anything is downloaded.
async fn remote_out(url: &RemoteUrl, args: &ExportArgs) -> anyhow::Result<(PathBuf, Option<Target>)> {
    let part_size = args.part_size << 20;
    if url.backend() == Backend::S3 && part_size < S3_MIN_PART {
        anyhow::bail!("--part-size must be at least 5 (MiB) for S3: S3 refuses smaller parts");
    }
    let root = match &args.spool_dir {
        Some(dir) => dir.clone(),
        None => default_spool_root().context("no spool folder: set --spool-dir (or HOME / XDG_CACHE_HOME)")?,
    };
    let key = url.to_string();
    let folder = root.join(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()))[..16]);
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create the spool folder {}", folder.display()))?;
    std::fs::write(folder.join("destination.txt"), format!("{key}\n"))
        .with_context(|| format!("cannot write in the spool folder {}", folder.display()))?;
    let name = url.key().rsplit('/').next().unwrap_or("archive.zip");
    let url2 = url.clone();
    let exists = tokio::task::spawn_blocking(move || crate::store::exists(&url2)).await??;
    if exists && !args.force {
        return Err(ExportError::Exists(PathBuf::from(key)).into());
    }
    Ok((folder.join(name), Some(Target { url: url.clone(), part_size })))
}

/// `$XDG_CACHE_HOME/cvarchive/uploads`, else `~/.cache/cvarchive/uploads`.
fn default_spool_root() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("cvarchive").join("uploads"))
}

/// `word` as one POSIX shell word: as is when it holds only safe characters, else single-quoted.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn print_summary(s: &ExportSummary, rerun: Option<&str>, mode: Mode) -> anyhow::Result<()> {
    if mode == Mode::Json {
        let mut value = serde_json::to_value(s)?;
        if let Some(rerun) = rerun {
            value["rerun"] = rerun.into();
        }
        return Ok(super::json::write("exportSummary", &value)?);
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
    if let Some(rerun) = rerun {
        println_escaped!(
            "to fetch what is missing, export again with this archive as the base (only what it lacks is downloaded):"
        );
        println_escaped!("  {rerun}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(argv: &[&str]) -> ExportArgs {
        match super::super::Cli::try_parse_from([&["cvarchive", "export"], argv].concat()).unwrap().command {
            super::super::Command::Export(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_fetch_the_rest_command_is_one_shell_line_without_secrets() {
        let key = crate::secret::TrainingKey::new("0123456789abcdef0123456789abcdef");
        let a = args(&[
            "--endpoint",
            "https://user:0123456789abcdef0123456789abcdef@h.example/",
            "--out",
            "my backup's.zip",
            "--project",
            "00000000-0000-0000-0000-000000000001",
            "--no-predictions",
            "--concurrency",
            "4",
        ]);
        let line = fetch_rest_command(&a, &Some(key));
        assert!(!line.contains("0123456789abcdef"), "{line}");
        assert!(!line.contains("--concurrency"), "only what makes the job: {line}");
        assert!(line.ends_with("--project 00000000-0000-0000-0000-000000000001 --no-predictions"), "{line}");
        assert!(line.contains(r"--out 'my backup'\''s.rest.zip' --base 'my backup'\''s.zip'"), "{line}");
    }
}
