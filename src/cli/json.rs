//! The one writer of `--json` output, for every command: each line on stdout is one JSON object
//! that opens with the same envelope, `{"schema":"cvarchive/1","time":"<RFC 3339 UTC>","type":
//! "<what>", ...}`, and goes on with the object's own camelCase fields. `schema/cvarchive-output.
//! schema.json` describes every type; README's "JSON output" section says how to read it.
//!
//! A run with `--json` ends with its result object (`exportSummary`, `verifyReport`...) or, when
//! it fails or is refused, with an [`error`](write_error) line naming the message, the exit code
//! and a [`kind`](error_kind) of failure.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::progress::Event;

/// The `schema` field of every line: the name of this output format and its major version,
/// raised only when a field is removed or changes meaning (new types and fields keep it).
pub const SCHEMA: &str = "cvarchive/1";

/// Whether the running command was given `--json` (set once, by [`super::main`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether an `error` line was written.
static ERROR_WRITTEN: AtomicBool = AtomicBool::new(false);

/// Says the running command writes JSON lines: failures are then reported on stdout too.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether the running command writes JSON lines.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The time now, RFC 3339 in UTC with milliseconds: `2026-12-04T20:55:00.123Z`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One line: the envelope with `type` = `kind`, then `payload`'s fields (it must serialize to
/// an object, without `schema`, `time` or `type` fields of its own).
pub fn write<T: Serialize + ?Sized>(kind: &str, payload: &T) -> std::io::Result<()> {
    let body = serde_json::to_string(payload)?;
    let head = format!("{{\"schema\":\"{SCHEMA}\",\"time\":\"{}\",\"type\":{}", now(), serde_json::to_string(kind)?);
    line(head, &body)
}

/// A progress event as one line; the event's own tag is its `type`.
pub fn write_event(event: &Event) -> std::io::Result<()> {
    let body = serde_json::to_string(event)?;
    line(format!("{{\"schema\":\"{SCHEMA}\",\"time\":\"{}\"", now()), &body)
}

/// Writes the envelope `head` joined to the object `body` as one line on stdout.
fn line(head: String, body: &str) -> std::io::Result<()> {
    let text = join(head, body)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The envelope `head` (an object's opening, without its `}`) followed by the fields of the
/// object `body`, and a newline.
fn join(mut head: String, body: &str) -> std::io::Result<String> {
    let fields = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "a --json payload is not an object (a bug)")
    })?;
    if !fields.is_empty() {
        head.push(',');
        head.push_str(fields);
    }
    head.push_str("}\n");
    Ok(head)
}

/// The `error` line: what failed, the exit code the process is about to return, and its kind.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorLine {
    /// The message, as stderr says it (one line per cause, joined).
    pub message: String,
    /// The process's exit code.
    pub exit_code: u8,
    /// What kind of failure (see [`error_kind`]).
    pub kind: &'static str,
    /// `delete`: what the backup lacks (a refusal of kind `refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lacking: Option<serde_json::Value>,
    /// `delete`: what changed at the service since the backup (a refusal of kind `refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<serde_json::Value>,
}

impl ErrorLine {
    /// An error line without refusal details.
    pub fn new(message: impl Into<String>, kind: &'static str, exit_code: u8) -> ErrorLine {
        ErrorLine { message: message.into(), exit_code, kind, lacking: None, differences: None }
    }
}

/// Writes `error` when the command writes JSON lines; a failure to write is ignored (the same
/// message goes to stderr, and the exit code says it).
pub fn write_error(error: &ErrorLine) {
    if enabled() && !ERROR_WRITTEN.swap(true, Ordering::Relaxed) {
        let _ = write("error", error);
    }
}

/// Whether the `error` line was written (there is at most one).
pub fn error_written() -> bool {
    ERROR_WRITTEN.load(Ordering::Relaxed)
}

/// Writes the `error` line for a command's failure `err`; `message` is the same full line stderr
/// gets, [`crate::text::error_chain`] of `err`.
pub fn fail(err: &anyhow::Error, message: &str, exit_code: u8) {
    write_error(&ErrorLine::new(message, error_kind(err), exit_code));
}

/// What kind of failure `err` is, from the first cause cvarchive knows: `usage` (arguments,
/// missing key or endpoint), `endpoint` (the URL does not lead to the Training API), `auth` (the
/// key was refused), `network` (no answer), `service` (the service failed), `refused` (a
/// safety check said no: an existing output, a backup that does not hold what would be
/// deleted...), `archive` (an archive cannot be read), `io` (a local file), `interrupted`
/// (Ctrl-C or SIGTERM), `internal` (a bug), else `other`.
pub fn error_kind(err: &anyhow::Error) -> &'static str {
    err.chain().find_map(known_kind).unwrap_or("other")
}

/// [`error_kind`] of one error (and its sources).
pub fn cause_kind(err: &(dyn std::error::Error + 'static)) -> &'static str {
    std::iter::successors(Some(err), |e| e.source()).find_map(known_kind).unwrap_or("other")
}

fn known_kind(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use crate::{convert, delete, export, restore, verify};
    if cause.is::<super::common::UsageError>() || cause.is::<clap::Error>() {
        return Some("usage");
    }
    if let Some(e) = cause.downcast_ref::<crate::api::Error>() {
        return Some(api_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<export::Error>() {
        return Some(export_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<delete::Error>() {
        return Some(match e {
            delete::Error::Api(e) => api_kind(e),
            delete::Error::Interrupted => "interrupted",
            delete::Error::BackupUnreadable { .. } => "archive",
            delete::Error::Receipt { .. } => "io",
            _ => "refused",
        });
    }
    if let Some(e) = cause.downcast_ref::<restore::Error>() {
        return Some(match e {
            restore::Error::Archive(_) => "archive",
            restore::Error::Api(e) => api_kind(e),
            restore::Error::Interrupted(_) => "interrupted",
            restore::Error::Report { .. } => "io",
            restore::Error::Mismatch { .. } => "refused",
            _ => "service",
        });
    }
    if let Some(e) = cause.downcast_ref::<convert::Error>() {
        return Some(match e {
            convert::Error::Source(_) => "archive",
            convert::Error::Exists(_) | convert::Error::NotOurs(_) => "refused",
            _ => "io",
        });
    }
    if cause.is::<verify::Error>() || cause.is::<crate::archive::Error>() {
        return Some("archive");
    }
    cause.is::<std::io::Error>().then_some("io")
}

fn export_kind(e: &crate::export::Error) -> &'static str {
    use crate::export::Error;
    match e {
        Error::Api(e) => api_kind(e),
        Error::Resumable { cause, .. } => export_kind(cause),
        Error::Interrupted => "interrupted",
        Error::Exists(_) | Error::Busy(_) | Error::CannotResume { .. } | Error::NoRoom { .. } => "refused",
        Error::ProjectNotFound { .. } | Error::OutIsFolder(_) | Error::NoFolder { .. } => "usage",
        Error::Base(_) => "archive",
        Error::Internal(_) => "internal",
        _ => "io",
    }
}

fn api_kind(e: &crate::api::Error) -> &'static str {
    use crate::api::Error;
    match e {
        Error::KeyRefused { .. } => "auth",
        Error::Argument { .. } => "usage",
        Error::NotCustomVision { .. } | Error::NoSuchPath { .. } | Error::Request { .. } => "endpoint",
        Error::Transport { .. } | Error::Deadline { .. } | Error::Untrusted { .. } => "network",
        Error::Interrupted { .. } => "interrupted",
        _ => "service",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_mistake_is_usage_and_a_bad_endpoint_is_endpoint() {
        let argument = crate::api::Error::Argument { op: "GetImagesByIds", detail: "257 ids".into() };
        assert_eq!(api_kind(&argument), "usage");
        let request = crate::api::Error::Request { op: "Connect", detail: "no scheme".into() };
        assert_eq!(api_kind(&request), "endpoint");
    }

    #[test]
    fn the_envelope_opens_every_line_and_the_payload_follows() {
        let head = String::from("{\"schema\":\"cvarchive/1\",\"type\":\"x\"");
        assert_eq!(join(head.clone(), "{\"a\":1}").unwrap(), "{\"schema\":\"cvarchive/1\",\"type\":\"x\",\"a\":1}\n");
        assert_eq!(join(head.clone(), "{}").unwrap(), "{\"schema\":\"cvarchive/1\",\"type\":\"x\"}\n");
        assert!(join(head, "[1]").is_err(), "only objects");
        let event = serde_json::to_value(Event::ProjectStarted { project_id: "p".into(), name: "n".into() }).unwrap();
        assert_eq!(event, serde_json::json!({"type": "projectStarted", "projectId": "p", "name": "n"}));
        for kind in crate::api::RetryKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.key(), "events and the summary spell kinds alike");
        }
        let t = now();
        assert!(t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(&t).is_ok(), "{t}");
    }

    /// One of each [`Event`] variant. The match has no wildcard: a new variant does not compile
    /// here until it has a sample, which the test below then checks against the schema.
    fn samples() -> Vec<Event> {
        let id = "e532f7f9-9827-476d-9159-4b592bf2ea6f".to_owned();
        let all = vec![
            Event::Started { projects: 2 },
            Event::Phase { phase: crate::progress::Phase::Listing, project_id: Some(id.clone()) },
            Event::ProjectStarted { project_id: id.clone(), name: "n".into() },
            Event::ImagesFound { project_id: id.clone(), total: 3 },
            Event::Transferred { project_id: id.clone(), bytes: 4 },
            Event::Retry { kind: crate::api::RetryKind::ServerError.key().into(), throttled: false, wait_ms: 5 },
            Event::LinkRefreshed,
            Event::Warning { message: "w".into() },
            Event::ProjectFinished { project_id: id.clone(), images: 6 },
            Event::Verified { bytes: 7 },
            Event::BackupVerified { bytes: 8 },
            Event::Deleted { project_id: id, what: "images".into(), count: 9 },
        ];
        let index = |e: &Event| match e {
            Event::Started { .. } => 0,
            Event::Phase { .. } => 1,
            Event::ProjectStarted { .. } => 2,
            Event::ImagesFound { .. } => 3,
            Event::Transferred { .. } => 4,
            Event::Retry { .. } => 5,
            Event::LinkRefreshed => 6,
            Event::Warning { .. } => 7,
            Event::ProjectFinished { .. } => 8,
            Event::Verified { .. } => 9,
            Event::BackupVerified { .. } => 10,
            Event::Deleted { .. } => 11,
        };
        assert!(all.iter().enumerate().all(|(i, e)| index(e) == i), "one sample per variant, in order");
        all
    }

    #[test]
    fn every_event_variant_and_field_is_in_the_shipped_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schema/cvarchive-output.schema.json")).unwrap();
        let types = schema["properties"]["type"]["enum"].as_array().unwrap();
        for event in samples() {
            let value = serde_json::to_value(&event).unwrap();
            let kind = value["type"].as_str().unwrap();
            assert!(types.iter().any(|t| t == kind), "{kind} is not a type of the schema");
            let def = &schema["$defs"][kind];
            assert_eq!(def["additionalProperties"], false, "{kind} is strict");
            for key in value.as_object().unwrap().keys() {
                assert!(def["properties"].get(key).is_some(), "{kind}.{key} is not in the schema");
            }
            for key in def["required"].as_array().unwrap() {
                let key = key.as_str().unwrap();
                let envelope = ["schema", "time"].contains(&key);
                assert!(envelope || value.get(key).is_some(), "{kind} lacks the required {key}");
            }
        }
    }
}
