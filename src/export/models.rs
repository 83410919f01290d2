//! One iteration's model exports: the GetExports list (`exports.json`, links stripped) and, with
//! `--include-models`, the finished packages themselves.

use uuid::Uuid;

use super::project::{annotate, is_project_gone, send_json, Ctx};
use super::record::{Missing, ProjectRecord};
use super::sink::{Item, Sink};
use super::Error;
use crate::archive::layout;
use crate::progress::Event;

/// Lists the iteration's model exports, downloads the finished ones when asked, and writes
/// `exports.json`. A failure is recorded as missing, not fatal, unless the project is gone.
pub(super) async fn export_models(
    ctx: &Ctx<'_>,
    sink: &Sink,
    pid: Uuid,
    it: Uuid,
    record: &mut ProjectRecord,
) -> Result<(), Error> {
    let client = ctx.client;
    let exports = match client.get_exports(pid, it).await {
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
            let uri = export.download_uri.as_deref().unwrap_or_default();
            match client.download(pid, uri, ctx.opts.max_model_bytes).await {
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
                    ctx.progress.event(Event::BlobArchived { bytes: blob.bytes.len() as u64 });
                    sink.send(Item::Stored { path, bytes: blob.bytes, crc32: blob.crc32, sha256: blob.sha256 }).await?;
                }
                Err(e) => {
                    record.missing.push(Missing { kind: "model".into(), project: pid, id: it, reason: e.to_string() })
                }
            }
        }
        lines.push(value);
    }
    send_json(sink, layout::exports_json(pid, it), &lines).await
}
