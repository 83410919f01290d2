//! Verification: an archive -> a [`Report`] of every finding, never stopping at the first.
//!
//! The checks run in layers, each on what the previous one could read: the zip itself
//! ([`zipcheck`]), the BagIt tag files and manifests ([`tags`]), every payload entry re-hashed on
//! several threads ([`payload`], skipped by `--fast`), and our own metadata: JSON that parses
//! and image listings that agree with the entries ([`listing`]); last, whether the browse page
//! is the code this version writes (`pagecode`). [`inspect`] summarises an archive from
//! metadata alone.

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
    payload: HashMap<String, &'a Entry>,
    /// Tag-level entries (in the bag folder, outside `data/`), by relative path.
    tag_entries: HashMap<String, &'a Entry>,
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
        entries: reader.entries().len() as u64,
        payload_files: 0,
        payload_bytes: 0,
        bytes_hashed: 0,
        findings: Vec::new(),
        omitted: Vec::new(),
    };
    let Some(bag) = zipcheck::check(reader, &mut findings) else {
        (report.findings, report.omitted) = findings.into_parts();
        return report;
    };
    let tags = tags::check(&bag, &mut findings);

    // The full check proves every data script a pure data call while the payload is hashed, on
    // a thread of its own, so that it adds no serial tail to the hashing.
    let (hashed, page) = std::thread::scope(|scope| {
        let page = (!opts.fast).then(|| {
            scope.spawn(|| {
                let mut page = Findings::default();
                pagecode::check(&bag, true, &mut page);
                page
            })
        });
        let hashed = (!opts.fast).then(|| payload::hash_all(&bag, opts, &mut report.bytes_hashed));
        (hashed, page.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))))
    });
    let mut unreadable = payload::compare(&bag, &tags.manifest, hashed.as_ref(), &mut findings);
    unreadable.extend(bag.overlapping.iter().copied());

    report.payload_files = bag.payload.len() as u64;
    report.payload_bytes = bag
        .payload
        .values()
        .map(|e| hashed.as_ref().and_then(|h| h.get(&e.index)).and_then(|r| r.as_ref().ok()).map_or(e.size, |d| d.size))
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
    match page {
        Some(page) => findings.absorb(page),
        None => pagecode::check(&bag, false, &mut findings),
    }
    (report.findings, report.omitted) = findings.into_parts();
    report
}
