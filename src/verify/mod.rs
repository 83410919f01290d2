//! Verification: an archive -> a [`Report`] of every finding, never stopping at the first.
//!
//! The checks run in layers, each on what the previous one could read: the zip itself
//! ([`zipcheck`]), the BagIt tag files and manifests ([`tags`]), every payload entry re-hashed on
//! several threads ([`payload`], skipped by `--fast`), and our own metadata: JSON that parses
//! and image listings that agree with the entries ([`listing`]); last, whether the browse page
//! is the code this version writes (`pagecode`). Besides damage, the report says whether the
//! archive is complete: what `account.json` records the export could not archive (an intact
//! archive can still lack images the service would not hand over). [`inspect`] summarises an
//! archive from metadata alone.

mod finding;
pub mod inspect;
mod listing;
mod pagecode;
mod payload;
mod tags;
mod zipcheck;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::archive::data::MAX_FINDINGS_PER_KIND;
use crate::archive::layout::account_json;
use crate::archive::missing::{read_completeness, MissingItem};
use crate::archive::{self, BagReader, Entry, PayloadOxum};
use crate::progress::{NoProgress, Progress};

use finding::Findings;
pub use finding::{Finding, FindingKind, Omitted};
pub use inspect::{inspect, ProjectSummary, Summary};

/// Why an archive could not be verified at all (it is not readable as a zip).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is missing, unreadable, or not a zip archive.
    #[error(transparent)]
    NotArchive(#[from] archive::Error),
}

/// How to verify.
#[derive(Clone)]
pub struct VerifyOptions {
    /// Check structure, names, counts and sizes only; do not re-hash entries.
    pub fast: bool,
    /// Threads that hash entries; 0 means one per available core.
    pub threads: usize,
    /// Where `Event::Verified` goes.
    pub progress: Arc<dyn Progress>,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions { fast: false, threads: 0, progress: Arc::new(NoProgress) }
    }
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions").field("fast", &self.fast).field("threads", &self.threads).finish()
    }
}

/// Every finding about one archive, plus what was looked at (camelCase in JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The archive file.
    pub archive: PathBuf,
    /// `"full"` or `"fast"`.
    pub mode: &'static str,
    /// The bag (top-level folder) name, if one was found.
    pub bag_name: Option<String>,
    /// Entries in the zip directory.
    pub entries: u64,
    /// Payload files (entries under `data/`).
    pub payload_files: u64,
    /// Payload bytes (actual in full mode, declared in fast mode).
    pub payload_bytes: u64,
    /// Uncompressed bytes re-hashed (0 in fast mode).
    pub bytes_hashed: u64,
    /// The problems found, in the order checks ran: the first
    /// [`MAX_FINDINGS_PER_KIND`](crate::archive::data::MAX_FINDINGS_PER_KIND) of each kind.
    pub findings: Vec<Finding>,
    /// Per kind, how many more findings there were than `findings` keeps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<Omitted>,
    /// `account.json`'s `complete`: whether the export that wrote the archive archived all it
    /// listed; `None` when `account.json` is absent, unreadable, or does not say.
    pub complete: Option<bool>,
    /// What `account.json` records as not archived: the first
    /// [`MAX_FINDINGS_PER_KIND`](crate::archive::data::MAX_FINDINGS_PER_KIND) items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingItem>,
    /// How many items `account.json` records as not archived, in all.
    #[serde(rename = "missingTotal")]
    pub missing_total: u64,
    /// What this mode did not check (`--fast`); empty for the full check.
    #[serde(rename = "notChecked", skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<NotChecked>,
}

/// A check `--fast` leaves out (JSON: its camelCase name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NotChecked {
    /// No payload entry is re-hashed: its SHA-256 is not compared with the manifest.
    PayloadSha256,
    /// No entry is inflated: its zip CRC-32 and real size are not checked.
    EntryCrc32,
    /// JSON and JSONL files other than the image and prediction listings are not parsed.
    MetadataJson,
    /// Data scripts of the browse page are not proved pure data calls (its code files are
    /// compared).
    PageDataScripts,
}

impl NotChecked {
    /// Every check `--fast` leaves out.
    pub const FAST: [NotChecked; 4] =
        [NotChecked::PayloadSha256, NotChecked::EntryCrc32, NotChecked::MetadataJson, NotChecked::PageDataScripts];

    /// What it means, in words.
    pub fn describe(self) -> &'static str {
        match self {
            NotChecked::PayloadSha256 => "payload SHA-256 hashes against the manifest (damaged bytes go unnoticed)",
            NotChecked::EntryCrc32 => "zip CRC-32s and inflated sizes of the entries",
            NotChecked::MetadataJson => "that every JSON and JSONL metadata file parses (the listings are read)",
            NotChecked::PageDataScripts => "that the browse page's data scripts are pure data calls",
        }
    }
}

impl Report {
    /// No findings.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.omitted.is_empty()
    }

    /// No finding about the data: any there are say only that the browse page's code differs
    /// from this version's ([`FindingKind::PageCodeDiffers`]), which reading the data (or
    /// deleting what it holds) does not depend on.
    pub fn data_intact(&self) -> bool {
        self.findings.iter().all(|f| f.kind == FindingKind::PageCodeDiffers)
            && self.omitted.iter().all(|o| o.kind == FindingKind::PageCodeDiffers)
    }

    /// Whether `account.json` records nothing missing (an archive without a readable
    /// `account.json` is not called incomplete here: that is a finding of its own).
    pub fn is_complete(&self) -> bool {
        self.complete != Some(false) && self.missing_total == 0
    }

    /// How many findings of `kind` were left out of `findings`.
    pub fn omitted(&self, kind: FindingKind) -> u64 {
        self.omitted.iter().find(|o| o.kind == kind).map_or(0, |o| o.count)
    }

    /// Findings grouped by kind, kinds in a stable order.
    pub fn by_kind(&self) -> Vec<(FindingKind, Vec<&Finding>)> {
        let mut groups: Vec<(FindingKind, Vec<&Finding>)> = Vec::new();
        for f in &self.findings {
            match groups.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, v)) => v.push(f),
                None => groups.push((f.kind, vec![f])),
            }
        }
        groups.sort_by_key(|(k, _)| *k);
        groups
    }
}

/// What the layers share: the reader and the payload entries found so far.
pub(crate) struct Bag<'a> {
    reader: &'a BagReader,
    /// The bag folder name.
    name: String,
    /// Payload entries by path relative to the bag (`data/...`), first occurrence only.
    payload: HashMap<String, Entry>,
    /// Tag-level entries (in the bag folder, outside `data/`), by relative path.
    tag_entries: HashMap<String, Entry>,
    /// Indices of entries whose data overlaps another's: reported once, never read (a quoted
    /// zip bomb makes each of them inflate the same bytes again).
    overlapping: HashSet<usize>,
}

impl<'a> Bag<'a> {
    fn rel<'n>(&self, entry_name: &'n str) -> Option<&'n str> {
        entry_name.strip_prefix(self.name.as_str())?.strip_prefix('/')
    }
}

/// Verifies the archive at `path`; `Err` only when it cannot be read as an archive at all.
pub fn verify(path: &Path, opts: &VerifyOptions) -> Result<Report, Error> {
    Ok(verify_reader(&BagReader::open(path)?, opts))
}

/// Verifies an archive already open: what a caller that goes on reading the same file (the
/// delete gate) checks, so that the bytes verified are the bytes it reads.
pub fn verify_reader(reader: &BagReader, opts: &VerifyOptions) -> Report {
    let path = reader.path();
    let mut findings = Findings::default();
    let mut report = Report {
        archive: path.to_path_buf(),
        mode: if opts.fast { "fast" } else { "full" },
        bag_name: reader.bag_name().map(str::to_string),
        entries: reader.entry_count() as u64,
        payload_files: 0,
        payload_bytes: 0,
        bytes_hashed: 0,
        findings: Vec::new(),
        omitted: Vec::new(),
        complete: None,
        missing: Vec::new(),
        missing_total: 0,
        not_checked: if opts.fast { NotChecked::FAST.to_vec() } else { Vec::new() },
    };
    let Some(bag) = zipcheck::check(reader, &mut findings) else {
        (report.findings, report.omitted) = findings.into_parts();
        return report;
    };
    let tags = tags::check(&bag, &mut findings);

    // The full check proves every data script a pure data call in the same pass as it hashes it.
    let hashed = (!opts.fast).then(|| payload::hash_all(&bag, opts, &mut report.bytes_hashed));
    let mut unreadable = payload::compare(&bag, &tags.manifest, hashed.as_ref(), &mut findings);
    unreadable.extend(bag.overlapping.iter().copied());

    report.payload_files = bag.payload.len() as u64;
    report.payload_bytes = bag
        .payload
        .values()
        .map(|e| {
            hashed
                .as_ref()
                .and_then(|h| h.digests.get(&e.index))
                .and_then(|r| r.as_ref().ok())
                .map_or(e.size, |d| d.size)
        })
        // Declared sizes are untrusted: saturate rather than overflow (the Oxum check then fails).
        .fold(0u64, u64::saturating_add);
    if let Some(expected) = tags.oxum {
        let actual = PayloadOxum { bytes: report.payload_bytes, files: report.payload_files };
        if expected != actual {
            findings.push(
                Finding::new(FindingKind::PayloadOxumMismatch, "bag-info.txt")
                    .expected(expected.to_string())
                    .actual(actual.to_string()),
            );
        }
    }
    listing::check(&bag, &tags, !opts.fast, &unreadable, &mut findings);
    pagecode::check(&bag, hashed.as_ref().map(|h| &h.scripts), &mut findings);
    completeness(&bag, &unreadable, &mut report);
    (report.findings, report.omitted) = findings.into_parts();
    report
}

/// Reads what `account.json` says is missing into the report, each text clipped as a finding's
/// is. An `account.json` that is absent or does not parse is a finding of its own already.
fn completeness(bag: &Bag<'_>, unreadable: &HashSet<usize>, report: &mut Report) {
    let path = format!("data/{}", account_json());
    let Some(entry) = bag.payload.get(&path).filter(|e| !unreadable.contains(&e.index)) else {
        return;
    };
    let Ok(found) = read_completeness(bag.reader, entry, MAX_FINDINGS_PER_KIND) else {
        return;
    };
    let clip = |v: Option<String>| v.map(finding::clip);
    report.complete = found.complete;
    report.missing_total = found.total;
    report.missing = (found.items.into_iter())
        .map(|m| MissingItem { kind: clip(m.kind), project: clip(m.project), id: clip(m.id), reason: clip(m.reason) })
        .collect();
}
