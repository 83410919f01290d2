//! `cvarchive export`.

use clap::Args;

use super::Exit;

/// Arguments of `cvarchive export`.
#[derive(Debug, Args)]
pub struct ExportArgs {}

/// Runs `cvarchive export`.
pub async fn run(_args: ExportArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`export` is not built yet")
}
