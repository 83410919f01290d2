//! `inspect`: what an archive holds, from metadata alone: `bag-info.txt` (its `Payload-Oxum`
//! gives the payload files and bytes), `account.json` (the export's record of each project's
//! archived counts and bytes) and the zip directory's entry count. Nothing is held per entry,
//! and no entry is looked at beyond those two files, so it takes the same time at any size.
//! Only an archive whose `account.json` is absent, unreadable or lacks a project's counts or
//! bytes (or whose `bag-info.txt` lacks the Oxum) has its entries counted instead, streamed:
//! memory then holds one entry and the project folders, still nothing per image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::Error;
use crate::archive::bagit::{parse_tag_file, tag_value, PayloadOxum, BAG_INFO_NAME};
use crate::archive::data::{self, AccountView, ArchivedView, MAX_TAG_FILE_BYTES};
use crate::archive::layout::account_json;
use crate::archive::BagReader;
use crate::store::Location;

/// What an archive holds.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The archive file.
    pub archive: PathBuf,
    /// Its size in bytes.
    pub archive_bytes: u64,
    /// The bag folder name.
    pub bag_name: Option<String>,
    /// `Bagging-Date` from bag-info.
    pub bagging_date: Option<String>,
    /// `Bagging-Software` from bag-info.
    pub bagging_software: Option<String>,
    /// The Custom Vision endpoint host it was taken from.
    pub source_host: Option<String>,
    /// The Training API version used.
    pub api_version: Option<String>,
    /// The exporting tool's version.
    pub tool_version: Option<String>,
    /// When the export started (from account.json).
    pub started: Option<String>,
    /// When it finished.
    pub finished: Option<String>,
    /// Whether the export says it is complete.
    pub complete: Option<bool>,
    /// Entries in the zip.
    pub entries: u64,
    /// Payload files and their declared bytes.
    pub payload_files: u64,
    /// Declared payload bytes.
    pub payload_bytes: u64,
    /// Account-level items the export could not archive.
    pub missing: u64,
    /// One per project, sorted by name (case aside; nameless ones last, ties by id).
    pub projects: Vec<ProjectSummary>,
    /// What could not be read, in words.
    pub notes: Vec<String>,
}

/// One project in an archive. Counts come from account.json's `archived` block when present,
/// else from the entry listing (which cannot tell tagged from untagged).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSummary {
    /// Project id.
    pub id: String,
    /// Project name.
    pub name: Option<String>,
    /// Classification or ObjectDetection.
    pub domain_type: Option<String>,
    /// Tagged images archived.
    pub tagged: Option<u64>,
    /// Untagged images archived.
    pub untagged: Option<u64>,
    /// Images archived that the workspace no longer held, only trained iterations did (not in
    /// `tagged` or `untagged`); absent for archives written before they were archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_in_iterations: Option<u64>,
    /// Image files in the archive.
    pub image_files: u64,
    /// Tags.
    pub tags: Option<u64>,
    /// Iterations.
    pub iterations: u64,
    /// Stored predictions.
    pub predictions: u64,
    /// Exported model files.
    pub model_exports: u64,
    /// Bytes of images.
    pub image_bytes: u64,
    /// Bytes of prediction images.
    pub prediction_bytes: u64,
    /// Bytes of model files.
    pub model_bytes: u64,
    /// Items the export could not archive.
    pub missing: u64,
}

/// Summarises the archive at `archive` (a local path, or a [`Location`] in a store, read by
/// ranged reads) from its metadata.
pub fn inspect(archive: impl Into<Location>) -> Result<Summary, Error> {
    let reader = BagReader::open_location(&archive.into())?;
    let mut s = Summary {
        archive: reader.path().to_path_buf(),
        archive_bytes: reader.archive_len(),
        bag_name: reader.bag_name().map(str::to_string),
        entries: reader.entry_count() as u64,
        ..Summary::default()
    };
    if let Some(why) = reader.recovered() {
        s.notes.push(format!("zip directory unusable ({why}); entries recovered from local headers"));
    }
    let oxum = read_bag_info(&reader, &mut s)?;
    if let Some(oxum) = oxum {
        (s.payload_files, s.payload_bytes) = (oxum.files, oxum.bytes);
    }

    let account = match reader.bag_entry(&format!("data/{}", account_json()))? {
        Some(e) => match data::read_json::<AccountView>(&reader, &e) {
            Ok(v) => Some(v),
            Err(data::JsonError::Json(e)) => {
                s.notes.push(format!("account.json does not parse: {e}"));
                None
            }
            Err(data::JsonError::Entry(p)) => {
                s.notes.push(format!("account.json unreadable: {p}"));
                None
            }
        },
        None => {
            s.notes.push("no account.json; counts come from the entry listing".into());
            None
        }
    };
    // Every project's counts and bytes as the export recorded them, or none.
    let summarised = account.as_ref().is_some_and(|v| {
        v.projects.as_ref().is_some_and(|list| {
            list.total == list.kept.len() as u64 && list.kept.iter().all(|p| p.archived.as_ref().is_some_and(counted))
        })
    });
    let mut projects: BTreeMap<String, ProjectSummary> = BTreeMap::new();
    if !summarised || oxum.is_none() {
        count_entries(&reader, &mut s, &mut projects, !summarised, oxum.is_none())?;
    }
    if let Some(v) = account {
        apply_account(v, &mut s, &mut projects, summarised);
    }
    s.projects = projects.into_values().collect();
    // By name, as people look for them (case aside); nameless ones last; the id breaks ties.
    s.projects.sort_by_cached_key(|p| (p.name.is_none(), p.name.as_deref().map(str::to_lowercase), p.id.clone()));
    Ok(s)
}

/// Whether a project's `archived` block says all inspect shows of it.
fn counted(a: &ArchivedView) -> bool {
    a.tagged.is_some()
        && a.untagged.is_some()
        && a.iterations.is_some()
        && a.predictions.is_some()
        && a.model_exports.is_some()
        && a.image_bytes.is_some()
        && a.prediction_bytes.is_some()
        && a.model_bytes.is_some()
}

/// Reads `bag-info.txt` into the summary; returns its `Payload-Oxum`, if valid.
fn read_bag_info(reader: &BagReader, s: &mut Summary) -> Result<Option<PayloadOxum>, Error> {
    match reader.bag_entry(BAG_INFO_NAME)?.map(|e| reader.read_entry(&e, MAX_TAG_FILE_BYTES)) {
        Some(Ok(bytes)) => {
            let (pairs, _) = parse_tag_file(&String::from_utf8_lossy(&bytes));
            let get = |l: &str| tag_value(&pairs, l).map(str::to_string);
            s.bagging_date = get("Bagging-Date");
            s.bagging_software = get("Bagging-Software");
            s.source_host = get("Source-Endpoint-Host");
            s.api_version = get("Custom-Vision-API-Version");
            s.tool_version =
                s.bagging_software.as_deref().and_then(|v| v.strip_prefix("cvarchive ")).map(str::to_string);
            return Ok(tag_value(&pairs, "Payload-Oxum").and_then(PayloadOxum::parse));
        }
        Some(Err(p)) => s.notes.push(format!("bag-info.txt unreadable: {p}")),
        None => s.notes.push("no bag-info.txt".into()),
    }
    Ok(None)
}

/// Counts the payload from the entries, streamed: the totals (`totals`) and each project's
/// files, bytes and iterations (`per_project`).
fn count_entries(
    reader: &BagReader,
    s: &mut Summary,
    projects: &mut BTreeMap<String, ProjectSummary>,
    per_project: bool,
    totals: bool,
) -> Result<(), Error> {
    let prefix = format!("{}/data/", s.bag_name.as_deref().unwrap_or(""));
    let mut iterations: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for e in reader.entries() {
        let e = e?;
        if e.is_dir() {
            continue;
        }
        let Some(rel) = e.name.strip_prefix(&prefix) else {
            continue;
        };
        if totals {
            s.payload_files += 1;
            // Declared sizes are untrusted: saturate rather than overflow.
            s.payload_bytes = s.payload_bytes.saturating_add(e.size);
        }
        let parts: Vec<&str> = rel.split('/').collect();
        if !per_project || parts.len() < 3 || parts[0] != "projects" {
            continue;
        }
        let p = projects
            .entry(parts[1].to_string())
            .or_insert_with(|| ProjectSummary { id: parts[1].to_string(), ..Default::default() });
        match (parts[2], parts.len()) {
            ("images", 4) => {
                p.image_files += 1;
                p.image_bytes = p.image_bytes.saturating_add(e.size);
            }
            ("predictions", 4) => {
                p.predictions += 1;
                p.prediction_bytes = p.prediction_bytes.saturating_add(e.size);
            }
            ("iterations", n) if n >= 5 => {
                iterations.entry(parts[1].to_string()).or_default().insert(parts[3].to_string());
                if parts[4] == "models" && n == 6 {
                    p.model_exports += 1;
                    p.model_bytes = p.model_bytes.saturating_add(e.size);
                }
            }
            _ => {}
        }
    }
    for (id, its) in iterations {
        if let Some(p) = projects.get_mut(&id) {
            p.iterations = its.len() as u64;
        }
    }
    Ok(())
}

/// Fills the summary from `account.json`; with `summarised`, each project's files and bytes too
/// (else they came from the entries).
fn apply_account(v: AccountView, s: &mut Summary, projects: &mut BTreeMap<String, ProjectSummary>, summarised: bool) {
    let source = v.source.unwrap_or_default();
    s.source_host = source.endpoint_host.or(s.source_host.take());
    s.api_version = source.api_version.or(s.api_version.take());
    s.tool_version = v.tool.and_then(|t| t.version).or(s.tool_version.take());
    s.started = v.started;
    s.finished = v.finished;
    s.complete = v.complete;
    s.missing = v.missing.map_or(0, |m| m.total);
    let Some(list) = v.projects else {
        s.notes.push("account.json lists no projects".into());
        return;
    };
    if list.total > list.kept.len() as u64 {
        s.notes.push(format!("account.json lists {} projects; the first {} are shown", list.total, list.kept.len()));
    }
    for pj in list.kept {
        let Some(id) = pj.id else {
            continue;
        };
        // Only projects the zip holds or a bounded number besides: ids come from the file.
        let p = projects.entry(id.clone()).or_insert_with(|| ProjectSummary { id, ..Default::default() });
        let archived = pj.archived.unwrap_or_default();
        p.name = pj.name;
        p.domain_type = pj.domain_type;
        p.tagged = archived.tagged;
        p.untagged = archived.untagged;
        p.only_in_iterations = archived.only_in_iterations;
        p.tags = archived.tags;
        p.missing = pj.missing.map_or(0, |m| m.total);
        if summarised {
            p.image_files = (archived.tagged.unwrap_or(0))
                .saturating_add(archived.untagged.unwrap_or(0))
                .saturating_add(archived.only_in_iterations.unwrap_or(0));
            p.image_bytes = archived.image_bytes.unwrap_or(0);
            p.predictions = archived.predictions.unwrap_or(0);
            p.prediction_bytes = archived.prediction_bytes.unwrap_or(0);
            p.model_exports = archived.model_exports.unwrap_or(0);
            p.model_bytes = archived.model_bytes.unwrap_or(0);
        }
        // The listing is the truth about what is in the zip; account.json fills what it cannot say.
        if p.iterations == 0 {
            p.iterations = archived.iterations.unwrap_or(0);
        }
    }
}
