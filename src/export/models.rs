//! One iteration's model exports: the GetExports list (`exports.json`, links stripped) and, with
//! `--include-models`, the finished packages themselves, following links that expire (at the
//! next UTC midnight, API-NOTES §5) by asking GetExports again.
//!
//! Memory per image: none (per iteration: its exports list).

use std::time::Duration;

use uuid::Uuid;

use super::account::{AccountProject, Missing};
use super::download::{expires_within, MAX_REFRESHES};
use super::project::{annotate, is_project_gone, send_json, Ctx};
use super::sink::{Item, Sink};
use super::Error;
use crate::api::model::Export;
use crate::api::{self, Blob};
use crate::archive::layout;
use crate::progress::Event;

/// Lists the iteration's model exports, downloads the finished ones when asked, and writes
/// `exports.json`. A failure is recorded as missing, not fatal, unless the project is gone.
pub(super) async fn export_models(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    it: Uuid,
    record: &mut AccountProject,
) -> Result<(), Error> {
    let exports = match ctx.client.get_exports(pid, it).await {
        Ok(exports) => exports,
        Err(e) if is_project_gone(&e) => return Err(e.into()),
        Err(e) => {
            record.missing.push(Missing { kind: "exports".into(), project: pid, id: it, reason: e.to_string() });
            return Ok(());
        }
    };
    let mut lines = Vec::with_capacity(exports.len());
    for export in &exports {
        let mut value = serde_json::to_value(crate::api::model::Export { download_uri: None, ..export.clone() })
            .expect("serialise");
        let platform = export.platform.as_deref().unwrap_or("model");
        let prefix = layout::model_file(pid, it, platform, export.flavor.as_deref(), "");
        let kept = (ctx.opts.include_models && export.is_done()).then(|| ctx.kept.take_model(&prefix)).flatten();
        if let Some(entry) = kept {
            annotate(&mut value, &entry.data_path, &entry.sha256, entry.size);
            record.archived.model_exports += 1;
            record.archived.model_bytes += entry.size;
        } else if ctx.opts.include_models && export.is_done() {
            match download_model(ctx, pid, it, export).await {
                Ok(blob) => {
                    let platform = export.platform.as_deref().unwrap_or("model");
                    let path = layout::model_file(
                        pid,
                        it,
                        platform,
                        export.flavor.as_deref(),
                        layout::sniff_extension(&blob.bytes),
                    );
                    annotate(&mut value, &path, &blob.sha256, blob.bytes.len() as u64);
                    record.archived.model_exports += 1;
                    record.archived.model_bytes += blob.bytes.len() as u64;
                    ctx.progress
                        .event(Event::Transferred { project_id: pid.to_string(), bytes: blob.bytes.len() as u64 });
                    sink.send(Item::Stored { path, bytes: blob.bytes, crc32: blob.crc32, sha256: blob.sha256 }).await?;
                }
                Err(reason) => record.missing.push(Missing { kind: "model".into(), project: pid, id: it, reason }),
            }
        }
        lines.push(value);
    }
    send_json(sink, layout::exports_json(pid, it), &lines).await
}

/// A model link expiring sooner than this is renewed before its download starts: blob storage
/// checks the signature when a request arrives, so the link must outlast only the wait for an
/// answer, not the download.
const MODEL_LINK_MARGIN: Duration = Duration::from_secs(30);

/// Downloads a finished export's package, asking GetExports for a fresh link when the one listed
/// has expired or is about to, or when blob storage refuses it (403, [`api::Error::LinkExpired`]).
/// The reason of a failure is free of secrets.
async fn download_model(ctx: &Ctx<'_>, pid: Uuid, it: Uuid, export: &Export) -> Result<Blob, String> {
    // The link is checked once the download may start: the wait for a turn can be long.
    let _permit = ctx.downloads.acquire().await.expect("the download semaphore is never closed");
    let mut uri = export.download_uri.clone().unwrap_or_default();
    let mut refreshes = 0;
    if expires_within(Some(&uri), MODEL_LINK_MARGIN) {
        refreshes += 1;
        uri = fresh_link(ctx, pid, it, export).await?;
    }
    loop {
        match ctx.client.download(pid, &uri, ctx.opts.max_model_bytes).await {
            Ok(blob) => return Ok(blob),
            Err(api::Error::LinkExpired { .. }) if refreshes < MAX_REFRESHES => {
                refreshes += 1;
                uri = fresh_link(ctx, pid, it, export).await?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The link GetExports gives now for the export of the same platform and flavor.
async fn fresh_link(ctx: &Ctx<'_>, pid: Uuid, it: Uuid, export: &Export) -> Result<String, String> {
    ctx.client.link_refreshed();
    let exports =
        ctx.client.get_exports(pid, it).await.map_err(|e| format!("cannot refresh the download link: {e}"))?;
    exports
        .into_iter()
        .find(|e| e.platform == export.platform && e.flavor == export.flavor && e.is_done())
        .and_then(|e| e.download_uri)
        .ok_or_else(|| "the export is no longer listed as done".to_owned())
}
