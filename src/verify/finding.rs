//! One finding: what kind of damage, where, and what was expected versus found; and
//! [`Findings`], which keeps the first [`MAX_FINDINGS_PER_KIND`] of each kind and counts the rest.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::archive::data::{MAX_FINDINGS_PER_KIND, MAX_FINDING_TEXT};

/// The kinds of damage verify reports (camelCase in JSON and in human output, like every name
/// in `--json` output). Ordered roughly from the outside of the archive inwards; human output
/// groups findings in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingKind {
    /// The zip's end was missing or unusable; entries were recovered from local headers.
    Truncated,
    /// Two entries share a name.
    DuplicateEntry,
    /// An entry name is absolute, climbs with `..`, or is otherwise not a plain relative path.
    UnsafeName,
    /// An entry lies outside the single top-level bag folder.
    OutsideBag,
    /// Two entries' data overlap in the file (a zip-bomb construction).
    OverlappingEntries,
    /// An entry cannot be read: bad header, unsupported method, corrupt or cut-off data.
    UnreadableEntry,
    /// An entry inflates to a different size than it declares.
    SizeMismatch,
    /// An entry's CRC-32 does not match its bytes.
    CrcMismatch,
    /// `bagit.txt` is missing.
    MissingBagit,
    /// `bagit.txt` does not declare BagIt 1.0 in UTF-8.
    InvalidBagit,
    /// `bag-info.txt` is missing.
    MissingBagInfo,
    /// `bag-info.txt` is malformed or lacks a valid `Payload-Oxum`.
    InvalidBagInfo,
    /// `Payload-Oxum` disagrees with the payload.
    PayloadOxumMismatch,
    /// `manifest-sha256.txt` is missing.
    MissingManifest,
    /// A manifest line is malformed, duplicated, or names a path outside `data/`.
    InvalidManifestLine,
    /// `tagmanifest-sha256.txt` is missing.
    MissingTagManifest,
    /// A tag file's hash disagrees with the tag manifest, or it is missing or unlisted there.
    TagManifestMismatch,
    /// A manifest line names a file that is not in the archive.
    MissingPayloadFile,
    /// A payload file has no manifest line.
    UnlistedPayloadFile,
    /// A payload file's SHA-256 disagrees with the manifest.
    HashMismatch,
    /// A JSON or JSONL file does not parse.
    InvalidJson,
    /// `data/account.json` is absent.
    MissingMetadata,
    /// A line of `images.jsonl`/`predictions.jsonl` lacks `file`, `size` or `sha256`, or names an unsafe path.
    InvalidListing,
    /// A listed image or prediction file is not in the archive.
    ListedFileMissing,
    /// A listed file's size or hash disagrees with the archive.
    ListedFileMismatch,
    /// An image or prediction file that its project's listing does not mention.
    UnlistedImage,
    /// The browse page's code (`index.html`, `browse/app.js`, `browse/style.css`) differs from
    /// what this version of cvarchive writes, or another `.js` file is not a pure data call: not
    /// damage to the data, but opening `index.html` could run code from the archive.
    PageCodeDiffers,
    /// Something too large to check within our memory bounds.
    TooLarge,
}

impl FindingKind {
    /// The camelCase name, as in JSON.
    pub fn as_str(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// One problem: its kind, the path (relative to the bag folder when inside it, else the raw
/// entry name), and what was expected versus found when that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of damage.
    pub kind: FindingKind,
    /// Where.
    pub path: String,
    /// What should have been there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What was there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// More words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Finding {
    /// A finding with no values yet.
    pub fn new(kind: FindingKind, path: impl Into<String>) -> Finding {
        Finding { kind, path: clip(path.into()), expected: None, actual: None, detail: None }
    }

    /// Sets the expected value.
    pub fn expected(mut self, v: impl Into<String>) -> Finding {
        self.expected = Some(clip(v.into()));
        self
    }

    /// Sets the actual value.
    pub fn actual(mut self, v: impl Into<String>) -> Finding {
        self.actual = Some(clip(v.into()));
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, v: impl Into<String>) -> Finding {
        self.detail = Some(clip(v.into()));
        self
    }
}

/// Cuts text longer than [`MAX_FINDING_TEXT`] bytes (at a character boundary) and says so, so a
/// hostile name cannot make a report large.
pub(super) fn clip(mut s: String) -> String {
    if s.len() > MAX_FINDING_TEXT {
        let mut end = MAX_FINDING_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let total = s.len();
        s.truncate(end);
        s.push_str(&format!("... ({total} bytes)"));
    }
    s
}

/// How many findings of one kind were counted but not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Omitted {
    /// The kind.
    pub kind: FindingKind,
    /// Findings of that kind beyond the first [`MAX_FINDINGS_PER_KIND`].
    pub count: u64,
}

/// Findings as verify collects them: the first [`MAX_FINDINGS_PER_KIND`] of each kind kept in
/// order, the rest counted, so a file of a million bad lines costs no more than a thousand.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    kept: Vec<Finding>,
    /// Findings seen, by `kind as usize`.
    per_kind: Vec<u64>,
}

impl Findings {
    /// Adds a finding (or only counts it, past the cap for its kind).
    pub(crate) fn push(&mut self, f: Finding) {
        let kind = f.kind;
        self.push_with(kind, || f);
    }

    /// Counts a finding of `kind`, building it only while the kind is under its cap: a million
    /// bad lines cost a million counts, not a million formatted messages.
    pub(crate) fn push_with(&mut self, kind: FindingKind, make: impl FnOnce() -> Finding) {
        let i = kind as usize;
        if self.per_kind.len() <= i {
            self.per_kind.resize(i + 1, 0);
        }
        self.per_kind[i] += 1;
        if self.per_kind[i] <= MAX_FINDINGS_PER_KIND as u64 {
            self.kept.push(make());
        }
    }

    /// Counts `n` more findings of `kind` without keeping them.
    pub(crate) fn count(&mut self, kind: FindingKind, n: u64) {
        let i = kind as usize;
        if self.per_kind.len() <= i {
            self.per_kind.resize(i + 1, 0);
        }
        self.per_kind[i] += n;
    }

    /// The kept findings, and the count of those left out by kind.
    pub(crate) fn into_parts(self) -> (Vec<Finding>, Vec<Omitted>) {
        let kinds: HashMap<usize, FindingKind> = self.kept.iter().map(|f| (f.kind as usize, f.kind)).collect();
        let mut omitted: Vec<Omitted> = (self.per_kind.iter().enumerate())
            .filter(|(_, n)| **n > MAX_FINDINGS_PER_KIND as u64)
            .map(|(i, n)| Omitted { kind: kinds[&i], count: n - MAX_FINDINGS_PER_KIND as u64 })
            .collect();
        omitted.sort_by_key(|o| o.kind);
        (self.kept, omitted)
    }
}

/// Kept findings of one kind by (entry index, order of arrival).
type KeptByEntry = BTreeMap<(usize, u64), Finding>;

/// Findings made out of order (by the hashing threads), kept as [`Findings`] would keep them had
/// they come in entry order: per kind those of the [`MAX_FINDINGS_PER_KIND`] lowest entry
/// indices, the rest counted. Memory is bounded by the cap, however many entries are damaged.
#[derive(Debug, Default)]
pub(crate) struct Ranked {
    /// Per kind: how many in all, and the kept ones by (entry index, arrival).
    kinds: BTreeMap<FindingKind, (u64, KeptByEntry)>,
    arrivals: u64,
}

impl Ranked {
    /// Counts a finding of `kind` about entry `index`, building it only if it is kept.
    pub(crate) fn push_with(&mut self, kind: FindingKind, index: usize, make: impl FnOnce() -> Finding) {
        let (total, kept) = self.kinds.entry(kind).or_default();
        *total += 1;
        if kept.len() >= MAX_FINDINGS_PER_KIND && kept.last_key_value().is_some_and(|((last, _), _)| index >= *last) {
            return;
        }
        self.arrivals += 1;
        kept.insert((index, self.arrivals), make());
        if kept.len() > MAX_FINDINGS_PER_KIND {
            kept.pop_last();
        }
    }

    /// Moves everything into `findings`, in entry order.
    pub(crate) fn drain_into(&mut self, findings: &mut Findings) {
        let mut all = Vec::new();
        let mut beyond = Vec::new();
        for (kind, (total, kept)) in std::mem::take(&mut self.kinds) {
            beyond.push((kind, total - kept.len() as u64));
            all.extend(kept);
        }
        all.sort_by_key(|(key, _)| *key);
        for (_, f) in all {
            findings.push(f);
        }
        for (kind, n) in beyond {
            findings.count(kind, n);
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(e) = &self.expected {
            write!(f, ": expected {e}")?;
        }
        if let Some(a) = &self.actual {
            write!(f, "{} found {a}", if self.expected.is_some() { "," } else { ":" })?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}
