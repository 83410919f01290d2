//! The command line: clap commands (one file each), progress drawing, and the one place that
//! turns results into exit codes.
//!
//! Exit codes, for every command: 0 done; 1 done with findings or missing items (listed);
//! 2 error or refusal, with nothing written at the final path.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[macro_use]
mod human;
mod common;
mod convert;
mod delete;
mod emulator;
mod export;
mod inspect;
mod json;
mod progress;
mod restore;
mod verify;

/// The outcome of a command, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything done (exit 0).
    Done,
    /// Done, but with findings or missing items (exit 1).
    Findings,
    /// Error or refusal (exit 2).
    Error,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Findings => 1,
            Exit::Error => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// cvarchive: complete, verifiable backups of Azure Custom Vision accounts.
#[derive(Debug, Parser)]
#[command(name = "cvarchive", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export a whole Custom Vision account (or some projects) into one BagIt zip.
    Export(export::ExportArgs),
    /// Prove an archive is complete and untouched, naming every problem.
    Verify(verify::VerifyArgs),
    /// Delete projects (or one category of them) after checking a verified backup holds them;
    /// a dry run unless --yes.
    Delete(delete::DeleteArgs),
    /// Summarise an archive from its metadata.
    Inspect(inspect::InspectArgs),
    /// Run a local Custom Vision Training service for tests and demos.
    Emulator(emulator::EmulatorArgs),
    /// Turn an archive into COCO datasets or tag folders that other tools load.
    Convert(convert::ConvertArgs),
    /// Recreate an archive's projects in a Custom Vision resource (resumable).
    Restore(restore::RestoreArgs),
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = parse();
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
    match result {
        Ok(Exit::Error) if !json::error_written() => {
            // A command that said why on stderr only: the JSON reader learns at least that.
            json::write_error(&json::ErrorLine::new("failed (see stderr)", "other", Exit::Error.code()));
            Exit::Error.into()
        }
        Ok(exit) => exit.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return Exit::Done.into();
            }
            let message = describe(&err);
            json::fail(&err, &message, Exit::Error.code());
            eprintln_escaped!("cvarchive: {message}");
            Exit::Error.into()
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
        Command::Verify(args) => verify::run(args).await,
        Command::Delete(args) => delete::run(args).await,
        Command::Inspect(args) => inspect::run(args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Convert(args) => convert::run(args).await,
        Command::Restore(args) => restore::run(args).await,
    }
}

/// The error and its causes, each said once (many errors already quote their cause).
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let more = cause.to_string();
        if !text.contains(&more) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&more);
        }
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
