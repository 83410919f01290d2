//! `cvarchive completions SHELL`: the shell's completion script, generated from the same clap
//! definitions as the parser (so it can never offer a flag the parser refuses).

use std::io::Write as _;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Exit};

/// Arguments of `cvarchive completions`.
#[derive(Debug, Args)]
#[command(after_help = "Install, e.g.:\n  \
    bash:       cvarchive completions bash > ~/.local/share/bash-completion/completions/cvarchive\n  \
    zsh:        cvarchive completions zsh > ~/.zfunc/_cvarchive   (with fpath+=~/.zfunc)\n  \
    fish:       cvarchive completions fish > ~/.config/fish/completions/cvarchive.fish\n  \
    powershell: cvarchive completions powershell >> $PROFILE")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the completion script to stdout.
pub fn run(args: CompletionsArgs) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "cvarchive", &mut out);
    out.flush()?;
    Ok(Exit::Done)
}
