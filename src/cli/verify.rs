//! `cvarchive verify`.

use clap::Args;

use super::Exit;

/// Arguments of `cvarchive verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Runs `cvarchive verify`.
pub async fn run(_args: VerifyArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`verify` is not built yet")
}
