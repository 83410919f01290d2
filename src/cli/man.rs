//! `cvarchive man`: manual pages in roff, generated from the same clap definitions as the
//! parser: the main page on stdout, or one page per command into a directory.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, CommandFactory};

use super::{Cli, Exit};

/// Arguments of `cvarchive man`.
#[derive(Debug, Args)]
#[command(after_help = "Read it with `cvarchive man | man -l -`; install with \
    `cvarchive man --dir /usr/local/share/man/man1`.")]
pub struct ManArgs {
    /// Write cvarchive.1 and a page per command (cvarchive-export.1, ...) into this directory
    /// instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the main page, or writes every page into `--dir`.
pub fn run(args: ManArgs) -> anyhow::Result<Exit> {
    let command = Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(Exit::Done)
}
