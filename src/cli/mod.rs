//! The command line: clap commands (one file each), progress drawing, and the one place that
//! turns results into exit codes.
//!
//! Exit codes are the contract with scripts and schedulers, the same for every command (each
//! command's `--help` lists the ones it can return; README has the table): 0 done and complete;
//! 1 findings (verify found damage, or the browse page's code differs); 2 error or refusal,
//! with nothing written at the final path; 3 done but incomplete (what was not done is listed);
//! 130 interrupted by Ctrl-C or SIGTERM (what is kept for a rerun is said).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[macro_use]
mod human;
mod archive_arg;
mod common;
mod completions;
mod convert;
mod delete;
mod emulator;
mod export;
mod inspect;
mod json;
mod man;
mod progress;
mod projects;
mod restore;
mod status;
mod verify;

/// The outcome of a command, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything done, nothing missing (exit 0).
    Done,
    /// Findings: damage, or a browse page whose code differs (exit 1).
    Findings,
    /// Error or refusal, nothing written at the final path (exit 2).
    Error,
    /// Done, but not everything: what is missing is listed (exit 3).
    Incomplete,
    /// Interrupted by Ctrl-C or SIGTERM (exit 130, as shells report a SIGINT).
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Findings => 1,
            Exit::Error => 2,
            Exit::Incomplete => 3,
            Exit::Interrupted => INTERRUPTED,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The version `--version` prints: the package's, with the commit it was built from (see
/// build.rs), e.g. `0.1.0 (commit 3130cb0)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CVARCHIVE_COMMIT"), ")");

/// The exit code of an interrupted command (128 + SIGINT, what shells report).
pub const INTERRUPTED: u8 = 130;

/// `--help`'s exit codes, one text per command: the codes it can return and what each means.
mod exit_help {
    pub const EXPORT: &str = "\
Exit codes:
  0    the archive is written and complete
  2    error or refusal: nothing at --out (a partial archive is kept beside it for a rerun)
  3    the archive is written but incomplete: the missing items are listed in the summary and
       in account.json, with the command that fetches them
  130  interrupted (Ctrl-C, SIGTERM): nothing at --out; run the same command again to resume";
    pub const VERIFY: &str = "\
Exit codes:
  0    intact and complete
  1    findings: damage, or the browse page's code differs (the data may still be intact)
  2    cannot be read as an archive at all
  3    intact but incomplete: the export that wrote it recorded missing items (listed)
  130  interrupted (Ctrl-C)";
    pub const DELETE: &str = "\
Exit codes:
  0    done, everything planned is gone and confirmed gone (or the dry run's plan was shown)
  2    refused (no, damaged or incomplete backup, bad arguments) or error; nothing deleted
  3    done in part: some deletions failed or are unconfirmed (listed in the receipt)
  130  interrupted (Ctrl-C, SIGTERM): the receipt says what was deleted; run again to go on";
    pub const INSPECT: &str = "\
Exit codes:
  0    summarised
  2    cannot be read as an archive
  130  interrupted (Ctrl-C)";
    pub const CONVERT: &str = "\
Exit codes:
  0    every image of every project converted
  2    error or refusal (an output folder exists and is not convert's, or --force was not given)
  3    converted, but some images were left out (listed, with why)
  130  interrupted (Ctrl-C): finished projects stay, the one in progress is left in a hidden
       .partial folder that the next run removes";
    pub const RESTORE: &str = "\
Exit codes:
  0    every project restored and its counts match
  2    error or refusal
  3    restored, but some images were refused or counts differ (listed in the report)
  130  interrupted (Ctrl-C, SIGTERM): the report keeps what was done; run again to resume";
    pub const EMULATOR: &str = "\
Exit codes:
  0    stopped by Ctrl-C
  2    error (e.g. the address is in use)";
}

/// cvarchive: complete, verifiable backups of Azure Custom Vision accounts.
#[derive(Debug, Parser)]
#[command(name = "cvarchive", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Print nothing but errors: no progress, warnings or summaries (--json output still goes
    /// to stdout; the exit code says how it went).
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = "Global options")]
    quiet: bool,
    /// Say more: every retry as it happens, and debug logs (-vv: trace logs). RUST_LOG, when
    /// set, chooses the logs instead (e.g. RUST_LOG=cvarchive=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export a whole Custom Vision account (or some projects) into one BagIt zip.
    #[command(after_help = exit_help::EXPORT)]
    Export(export::ExportArgs),
    /// List the account's projects with their counts and estimated bytes (no image is
    /// downloaded).
    Projects(projects::ProjectsArgs),
    /// Prove an archive is complete and untouched, naming every problem.
    #[command(after_help = exit_help::VERIFY)]
    Verify(verify::VerifyArgs),
    /// Delete projects (or one category of them) after checking a verified backup holds them;
    /// a dry run unless --yes.
    #[command(after_help = exit_help::DELETE)]
    Delete(delete::DeleteArgs),
    /// Summarise an archive from its metadata.
    #[command(after_help = exit_help::INSPECT)]
    Inspect(inspect::InspectArgs),
    /// Run a local Custom Vision Training service for tests and demos.
    #[command(after_help = exit_help::EMULATOR)]
    Emulator(emulator::EmulatorArgs),
    /// Turn an archive into COCO datasets or tag folders that other tools load.
    #[command(after_help = exit_help::CONVERT)]
    Convert(convert::ConvertArgs),
    /// Recreate an archive's projects in a Custom Vision resource (resumable).
    #[command(after_help = exit_help::RESTORE)]
    Restore(restore::RestoreArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), or write one per command into a directory.
    Man(man::ManArgs),
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = parse();
    progress::set_verbosity(if cli.quiet { 0 } else { cli.verbose.saturating_add(1) });
    init_logs(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            json::write_error(&json::ErrorLine::new(message.as_str(), "internal", Exit::Error.code()));
            eprintln_escaped!("cvarchive: {message}");
            return Exit::Error.into();
        }
    };
    let result = runtime.block_on(run(cli));
    progress::finish_all();
    match result {
        Ok(Exit::Error) if !json::error_written() => {
            // A command that said why on stderr only: the JSON reader learns at least that.
            json::write_error(&json::ErrorLine::new("failed (see stderr)", "other", Exit::Error.code()));
            Exit::Error.into()
        }
        Ok(Exit::Interrupted) if !json::error_written() => {
            let message = "interrupted; run the same command again to continue";
            json::write_error(&json::ErrorLine::new(message, "interrupted", Exit::Interrupted.code()));
            Exit::Interrupted.into()
        }
        Ok(exit) => exit.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return Exit::Done.into();
            }
            let message = crate::text::error_chain(err.as_ref());
            // However it surfaced, a stop the user asked for is exit 130, as the contract says.
            let exit = if json::error_kind(&err) == "interrupted" { Exit::Interrupted } else { Exit::Error };
            json::fail(&err, &message, exit.code());
            eprintln_escaped!("cvarchive: {message}");
            exit.into()
        }
    }
}

/// The parsed command line, noting whether the command was given `--json`. A mistake exits as
/// clap does (usage on stderr, code 2), after an `error` line on stdout if `--json` was among
/// the arguments.
fn parse() -> Cli {
    let parsed = Cli::command().try_get_matches().and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    match parsed {
        Ok((cli, matches)) => {
            let sub = matches.subcommand().map(|(_, m)| m);
            if sub.is_some_and(|m| matches!(m.try_get_one::<bool>("json"), Ok(Some(true)))) {
                json::enable();
            }
            cli
        }
        Err(err) => {
            // Help and --version are not failures; a failure's first line is its message.
            if err.use_stderr() && std::env::args_os().skip(1).any(|a| a == "--json") {
                json::enable();
                let text = err.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                json::write_error(&json::ErrorLine::new(message, "usage", err.exit_code() as u8));
            }
            err.exit()
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Export(args) => export::run(args).await,
        Command::Projects(args) => projects::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Delete(args) => delete::run(args).await,
        Command::Inspect(args) => inspect::run(args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Convert(args) => convert::run(args).await,
        Command::Restore(args) => restore::run(args).await,
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

/// Logs (tracing) on stderr, above any progress bars: what RUST_LOG asks for, or by default
/// warnings (errors only with -q, debug with -v, trace with -vv; the emulator logs its requests
/// at info).
fn init_logs(cli: &Cli) {
    use std::io::IsTerminal;
    let default = match (cli.quiet, cli.verbose, matches!(cli.command, Command::Emulator(_))) {
        (true, _, _) => "error",
        (false, 0, false) => "warn",
        (false, 0, true) => "info",
        (false, 1, _) => "cvarchive=debug,warn",
        (false, _, _) => "cvarchive=trace,debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| progress::LogWriter)
        .try_init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
