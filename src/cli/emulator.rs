//! `cvarchive emulator`.

use clap::Args;

use super::Exit;

/// Arguments of `cvarchive emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {}

/// Runs `cvarchive emulator`.
pub async fn run(_args: EmulatorArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`emulator` is not built yet")
}
