//! `cvarchive inspect`.

use clap::Args;

use super::Exit;

/// Arguments of `cvarchive inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {}

/// Runs `cvarchive inspect`.
pub async fn run(_args: InspectArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`inspect` is not built yet")
}
