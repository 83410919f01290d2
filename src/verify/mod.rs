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
//!
//! Memory per entry, besides the reader's 16 bytes: the name table ([`names`]: a 96-bit hash
//! and a place in the hash order, 16 bytes, plus 2 to 4 for its buckets), a kind byte and the
//! declared size (8 bytes), one bit for whether the manifest lists it, and, in the full check,
//! the first line each listing lists it on (4 bytes, see [`listing`]): about 30 bytes an entry,
//! 46 with the reader's, so 460 MB at ten million entries. The manifest's SHA-256 of each entry
//! goes to a temporary file beside the archive (32 bytes an entry on disk,
//! [`ManifestTable`](crate::archive::manifest_table::ManifestTable)), read back once as the
//! entry is hashed; `--fast` keeps none. Nothing holds a name or a digest per entry; findings are
//! capped per kind.

mod finding;
pub mod inspect;
mod listing;
mod names;
mod pagecode;
mod payload;
mod tags;
mod zipcheck;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::archive::data::MAX_FINDINGS_PER_KIND;
use crate::archive::layout::account_json;
use crate::archive::missing::{read_completeness, MissingItem};
use crate::archive::{self, BagReader, Entry, EntryProblem, PayloadOxum};
use crate::progress::{NoProgress, Progress};
use crate::store::Location;

use finding::Findings;
pub use finding::{Finding, FindingKind, Omitted};
pub use inspect::{inspect, ProjectSummary, Summary};
use names::{Bits, Names};

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
    /// The image and prediction listings are not read: whether each file is listed once, with
    /// its size and hash, and each listed file exists.
    Listings,
}

impl NotChecked {
    /// Every check `--fast` leaves out.
    pub const FAST: [NotChecked; 5] = [
        NotChecked::PayloadSha256,
        NotChecked::EntryCrc32,
        NotChecked::MetadataJson,
        NotChecked::PageDataScripts,
        NotChecked::Listings,
    ];

    /// What it means, in words.
    pub fn describe(self) -> &'static str {
        match self {
            NotChecked::PayloadSha256 => "payload SHA-256 hashes against the manifest (damaged bytes go unnoticed)",
            NotChecked::EntryCrc32 => "zip CRC-32s and inflated sizes of the entries",
            NotChecked::MetadataJson => "that every JSON and JSONL metadata file parses",
            NotChecked::PageDataScripts => "that the browse page's data scripts are pure data calls",
            NotChecked::Listings => {
                "that images.jsonl and predictions.jsonl list every file once, with its size and hash"
            }
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

/// Per-entry kind bits in [`Bag::kinds`]: a file in the bag folder with a safe name, the first
/// entry of its name (what lookups by name find).
const FILE: u8 = 1;
/// A [`FILE`] under `data/`.
const PAYLOAD: u8 = 2;
/// Its data overlaps another entry's: reported once, never read (a quoted zip bomb makes each of
/// them inflate the same bytes again).
const OVERLAPPING: u8 = 4;

/// What the layers share: the reader and, per entry, its name's hash ([`Names`], 16 bytes), its
/// kind (1 byte) and declared size (8 bytes); nothing per entry besides. Names and everything
/// else are read back from the zip directory when a finding needs them.
pub(crate) struct Bag<'a> {
    reader: &'a BagReader,
    /// The bag folder name.
    name: String,
    /// Every entry's name, hashed.
    names: Names,
    /// [`FILE`], [`PAYLOAD`] and [`OVERLAPPING`] bits, by entry index.
    kinds: Vec<u8>,
    /// Declared (uncompressed) size, by entry index.
    sizes: Vec<u64>,
    /// Project folders (`data/projects/<p>/`): how many files their `images/` and
    /// `predictions/` folders hold.
    projects: BTreeMap<String, [usize; 2]>,
    /// Payload `.json` and `.jsonl` entries other than the image and prediction listings, in
    /// directory order (later duplicates are dropped by their kind).
    json_files: Vec<u32>,
}

impl<'a> Bag<'a> {
    fn rel<'n>(&self, entry_name: &'n str) -> Option<&'n str> {
        entry_name.strip_prefix(self.name.as_str())?.strip_prefix('/')
    }

    /// Whether entry `index` has every bit of `kind`.
    fn is(&self, index: usize, kind: u8) -> bool {
        self.kinds.get(index).is_some_and(|k| k & kind == kind)
    }

    /// The index of the file `<bag>/<rel>` (the first entry of that name), if there is one.
    fn find(&self, rel: &str) -> Option<usize> {
        self.names.find(&[&self.name, "/", rel], 0, |i| self.is(i, FILE))
    }

    /// The index of the payload file `rel` (`data/...`), if there is one.
    fn find_payload(&self, rel: &str) -> Option<usize> {
        self.find_payload_near(rel, 0)
    }

    /// [`Bag::find_payload`] trying the entries from `hint` on first (see [`Names::find`]).
    fn find_payload_near(&self, rel: &str, hint: usize) -> Option<usize> {
        self.names.find(&[&self.name, "/", rel], hint, |i| self.is(i, FILE | PAYLOAD))
    }

    /// Entry `index`, read back from the zip directory.
    fn entry(&self, index: usize) -> Result<Entry, EntryProblem> {
        self.reader.entry_at(index).map_err(|e| EntryProblem::Io(crate::text::error_chain(&e)))
    }

    /// Entry `index`'s path relative to the bag folder (its raw name if outside), for a finding.
    fn path_of(&self, index: usize) -> String {
        match self.entry(index) {
            Ok(e) => self.rel(&e.name).map_or_else(|| e.name.clone(), str::to_string),
            Err(p) => format!("(entry {index}: {p})"),
        }
    }

    /// Payload files and their declared bytes (saturating: declared sizes are untrusted).
    fn payload_totals(&self) -> (u64, u64) {
        let (mut files, mut bytes) = (0u64, 0u64);
        for (kind, size) in self.kinds.iter().zip(&self.sizes) {
            if kind & PAYLOAD != 0 {
                files += 1;
                bytes = bytes.saturating_add(*size);
            }
        }
        (files, bytes)
    }
}

/// Verifies the archive at `archive` (a local path, or a [`Location`] in a store, read by
/// ranged reads); `Err` only when it cannot be read as an archive at all.
pub fn verify(archive: impl Into<Location>, opts: &VerifyOptions) -> Result<Report, Error> {
    Ok(verify_reader(&BagReader::open_location(&archive.into())?, opts))
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
    let tags = tags::check(&bag, !opts.fast, &mut findings);

    // The full check proves every data script a pure data call in the same pass as it hashes it.
    let (files, declared) = bag.payload_totals();
    let mut hashed = (!opts.fast).then(|| payload::hash_all(&bag, &tags, opts));
    if let Some(h) = &mut hashed {
        report.bytes_hashed = h.bytes_hashed;
        h.found.drain_into(&mut findings);
    }
    payload::unlisted(&bag, &tags, &mut findings);
    let unreadable = hashed.as_ref().map_or_else(|| Bits::new(0), |h| h.unreadable.clone());

    report.payload_files = files;
    report.payload_bytes = hashed.as_ref().map_or(declared, |h| h.payload_bytes);
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
    let readable = |i: usize| !unreadable.get(i) && !bag.is(i, OVERLAPPING);
    listing::check(&bag, &tags, !opts.fast, &readable, &mut findings);
    pagecode::check(&bag, hashed.map(|h| h.scripts), &mut findings);
    completeness(&bag, &readable, &mut report);
    (report.findings, report.omitted) = findings.into_parts();
    report
}

/// Reads what `account.json` says is missing into the report, each text clipped as a finding's
/// is. An `account.json` that is absent or does not parse is a finding of its own already.
fn completeness(bag: &Bag<'_>, readable: &dyn Fn(usize) -> bool, report: &mut Report) {
    let Some(index) = bag.find_payload(&format!("data/{}", account_json())).filter(|&i| readable(i)) else {
        return;
    };
    let Ok(entry) = bag.entry(index) else { return };
    let Ok(found) = read_completeness(bag.reader, &entry, MAX_FINDINGS_PER_KIND) else {
        return;
    };
    let clip = |v: Option<String>| v.map(finding::clip);
    report.complete = found.complete;
    report.missing_total = found.total;
    report.missing = (found.items.into_iter())
        .map(|m| MissingItem { kind: clip(m.kind), project: clip(m.project), id: clip(m.id), reason: clip(m.reason) })
        .collect();
}
