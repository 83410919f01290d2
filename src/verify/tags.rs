//! The BagIt layer: `bagit.txt`, `bag-info.txt` (and its `Payload-Oxum`), the payload manifest
//! (streamed, hashed while parsed) and the tag manifest against the tag files.
//!
//! The manifest is streamed against the zip directory: each line's path is looked up in the
//! bag's name table ([`super::names`]) and its hash kept by entry index, 32 bytes an entry plus
//! a bit for "listed". That is 32 MB at a million entries and 320 MB at ten million; spilling it
//! to a file by entry index would cost a read per listing line in `--fast` (see the report of
//! issue 16), so it stays in memory.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::names::Bits;
use super::{Bag, Finding, FindingKind, Findings, PAYLOAD};
use crate::archive::bagit::{
    parse_manifest_line, parse_tag_file, tag_value, PayloadOxum, BAGIT_TXT_NAME, BAG_INFO_NAME, MANIFEST_NAME,
    TAGMANIFEST_NAME,
};
use crate::archive::data::{self, MAX_TAG_FILE_BYTES};
use crate::archive::layout::account_json;
use crate::archive::manifest_table::ManifestTable;
use crate::archive::{Entry, EntryProblem};

/// What the tag files say, for the later layers.
pub(super) struct Tags {
    /// The manifest's hash for each payload entry it lists, by entry index, in a temporary file
    /// (32 bytes an entry on disk, none in memory); `None` for `--fast`, which compares no hash.
    expected: Option<ManifestTable>,
    /// Which entries the manifest lists.
    pub listed: Bits,
    /// Whether the manifest lists `data/account.json` (present or not).
    pub account_listed: bool,
    /// `Payload-Oxum`, if present and valid.
    pub oxum: Option<PayloadOxum>,
}

impl Tags {
    /// The manifest's hash for entry `index`, if the manifest lists it. `Err` when the temporary
    /// file holding the hashes cannot be read back (the entry is then reported unreadable, never
    /// taken as matching).
    pub fn expected(&self, index: usize) -> Result<Option<[u8; 32]>, EntryProblem> {
        match (&self.expected, self.listed.get(index)) {
            (Some(table), true) => table.get(index).map_err(|e| {
                EntryProblem::Io(format!("reading the manifest's hash back from its temporary file: {e}"))
            }),
            _ => Ok(None),
        }
    }
}

/// Checks the tag files; with `hashes`, keeps the manifest's hash of every entry for the full
/// check to compare with (in a temporary file).
pub(super) fn check(bag: &Bag<'_>, hashes: bool, findings: &mut Findings) -> Tags {
    let mut tag_hashes: HashMap<&str, [u8; 32]> = HashMap::new();

    if let Some(bytes) = read_small(bag, BAGIT_TXT_NAME, FindingKind::MissingBagit, findings) {
        {
            tag_hashes.insert(BAGIT_TXT_NAME, Sha256::digest(&bytes).into());
            let text = String::from_utf8_lossy(&bytes);
            let (pairs, _) = parse_tag_file(text.trim_start_matches('\u{feff}'));
            let version = tag_value(&pairs, "BagIt-Version");
            let encoding = tag_value(&pairs, "Tag-File-Character-Encoding");
            if version != Some("1.0") || !encoding.is_some_and(|e| e.eq_ignore_ascii_case("UTF-8")) {
                findings.push(
                    Finding::new(FindingKind::InvalidBagit, BAGIT_TXT_NAME)
                        .expected("BagIt-Version: 1.0, Tag-File-Character-Encoding: UTF-8")
                        .actual(format!(
                            "BagIt-Version: {}, Tag-File-Character-Encoding: {}",
                            version.unwrap_or("(none)"),
                            encoding.unwrap_or("(none)")
                        )),
                );
            }
        }
    }

    let mut oxum = None;
    if let Some(bytes) = read_small(bag, BAG_INFO_NAME, FindingKind::MissingBagInfo, findings) {
        tag_hashes.insert(BAG_INFO_NAME, Sha256::digest(&bytes).into());
        let text = String::from_utf8_lossy(&bytes);
        let (pairs, bad) = parse_tag_file(&text);
        for line in bad {
            findings.push(
                Finding::new(FindingKind::InvalidBagInfo, BAG_INFO_NAME)
                    .detail(format!("line {line} is not `Label: value`")),
            );
        }
        match tag_value(&pairs, "Payload-Oxum") {
            None => findings.push(Finding::new(FindingKind::InvalidBagInfo, BAG_INFO_NAME).detail("no Payload-Oxum")),
            Some(v) => match PayloadOxum::parse(v) {
                Some(o) => oxum = Some(o),
                None => findings.push(
                    Finding::new(FindingKind::InvalidBagInfo, BAG_INFO_NAME)
                        .expected("Payload-Oxum: <bytes>.<files>")
                        .actual(format!("Payload-Oxum: {v}")),
                ),
            },
        }
    }

    let mut tags = Tags { expected: None, listed: Bits::new(bag.kinds.len()), account_listed: false, oxum };
    match tag_entry(bag, MANIFEST_NAME).map(|i| bag.entry(i)) {
        None => findings.push(Finding::new(FindingKind::MissingManifest, MANIFEST_NAME)),
        Some(Err(p)) => findings.push(unreadable(MANIFEST_NAME, &p)),
        Some(Ok(entry)) => {
            let table = hashes.then(|| ManifestTable::new(bag.reader.local_path(), bag.kinds.len()));
            let spilled = match table.transpose() {
                Ok(table) => {
                    tags.expected = table;
                    Ok(())
                }
                Err(e) => Err(EntryProblem::Io(format!("no temporary file for its hashes: {e}"))),
            };
            let read = spilled.and_then(|()| read_manifest(bag, &entry, &mut tags, findings));
            let read = read.and_then(|sha| match &mut tags.expected {
                Some(table) => table
                    .finish()
                    .map(|()| sha)
                    .map_err(|e| EntryProblem::Io(format!("writing its hashes to a temporary file: {e}"))),
                None => Ok(sha),
            });
            match read {
                Ok(sha) => {
                    tag_hashes.insert(MANIFEST_NAME, sha);
                }
                Err(p) => findings.push(unreadable(MANIFEST_NAME, &p)),
            }
        }
    }

    check_tagmanifest(bag, &tag_hashes, findings);
    tags
}

/// A finding for an entry that cannot be read, by kind of problem.
pub(super) fn unreadable(path: &str, p: &EntryProblem) -> Finding {
    match p {
        EntryProblem::LongerThanDeclared { declared } => {
            Finding::new(FindingKind::SizeMismatch, path).expected(format!("{declared} bytes")).actual("more")
        }
        EntryProblem::ShorterThanDeclared { declared, actual } => Finding::new(FindingKind::SizeMismatch, path)
            .expected(format!("{declared} bytes"))
            .actual(format!("{actual} bytes")),
        EntryProblem::TooLarge { .. } => Finding::new(FindingKind::TooLarge, path).detail(p.to_string()),
        _ => Finding::new(FindingKind::UnreadableEntry, path).detail(p.to_string()),
    }
}

/// The tag file (in the bag folder, outside `data/`) named `rel`, if there is one.
fn tag_entry(bag: &Bag<'_>, rel: &str) -> Option<usize> {
    bag.find(rel).filter(|&i| !bag.is(i, PAYLOAD))
}

fn read_small(bag: &Bag<'_>, name: &str, missing: FindingKind, findings: &mut Findings) -> Option<Vec<u8>> {
    let Some(index) = tag_entry(bag, name) else {
        findings.push(Finding::new(missing, name));
        return None;
    };
    match bag.entry(index).and_then(|entry| bag.reader.read_entry(&entry, MAX_TAG_FILE_BYTES)) {
        Ok(bytes) => Some(bytes),
        Err(p) => {
            findings.push(unreadable(name, &p));
            None
        }
    }
}

/// Streams the payload manifest, keeping the hash of each line that names a payload entry by
/// its index in `tags` and reporting the others (and bad lines) as findings, so memory follows
/// the entries, not the manifest. Returns the file's hash.
fn read_manifest(
    bag: &Bag<'_>,
    entry: &Entry,
    tags: &mut Tags,
    findings: &mut Findings,
) -> Result<[u8; 32], EntryProblem> {
    let account = format!("data/{}", account_json());
    let mut hint = 0;
    let mut failed = None;
    let sha = data::read_manifest(bag.reader, entry, |number, line| {
        let bad = |findings: &mut Findings, why: &dyn Fn() -> String| {
            findings.push_with(FindingKind::InvalidManifestLine, || {
                Finding::new(FindingKind::InvalidManifestLine, MANIFEST_NAME)
                    .detail(format!("line {number}: {}", why()))
            })
        };
        match line {
            Err(why) => bad(findings, &|| why.clone()),
            Ok((_, path)) if !path.starts_with("data/") => bad(findings, &|| format!("{path:?} is not under data/")),
            Ok((sha, path)) => {
                tags.account_listed |= path == account;
                let found = bag.find_payload_near(&path, hint);
                hint = found.map_or(hint, |i| i + 1);
                match found {
                    None => findings.push_with(FindingKind::MissingPayloadFile, || {
                        Finding::new(FindingKind::MissingPayloadFile, path).expected(hex::encode(sha))
                    }),
                    Some(i) if tags.listed.get(i) => bad(findings, &|| format!("{path:?} is listed again")),
                    Some(i) => {
                        tags.listed.set(i);
                        if let Some(table) = &mut tags.expected {
                            if let Err(e) = table.insert(i, &sha) {
                                failed.get_or_insert(e);
                            }
                        }
                    }
                }
            }
        }
    })?;
    match failed {
        Some(e) => Err(EntryProblem::Io(format!("writing its hashes to a temporary file: {e}"))),
        None => Ok(sha),
    }
}

fn check_tagmanifest(bag: &Bag<'_>, computed: &HashMap<&str, [u8; 32]>, findings: &mut Findings) {
    let Some(bytes) = read_small(bag, TAGMANIFEST_NAME, FindingKind::MissingTagManifest, findings) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut listed = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_manifest_line(line) {
            Ok((sha, path)) => {
                listed.insert(path, sha);
            }
            Err(why) => findings.push(
                Finding::new(FindingKind::TagManifestMismatch, TAGMANIFEST_NAME)
                    .detail(format!("line {}: {why}", i + 1)),
            ),
        }
    }
    for (path, expected) in &listed {
        let actual = match computed.get(path.as_str()) {
            Some(sha) => Some(*sha),
            None => match tag_entry(bag, path) {
                Some(index) => match bag.entry(index).and_then(|e| bag.reader.hash_entry(&e, &mut vec![0u8; 64 << 10]))
                {
                    Ok(d) => Some(d.sha256),
                    Err(p) => {
                        findings.push(unreadable(path, &p));
                        continue;
                    }
                },
                None => None,
            },
        };
        match actual {
            Some(actual) if actual == *expected => {}
            Some(actual) => findings.push(
                Finding::new(FindingKind::TagManifestMismatch, path.clone())
                    .expected(hex::encode(expected))
                    .actual(hex::encode(actual)),
            ),
            None => findings.push(
                Finding::new(FindingKind::TagManifestMismatch, path.clone())
                    .expected(hex::encode(expected))
                    .actual("missing"),
            ),
        }
    }
    for name in [BAGIT_TXT_NAME, BAG_INFO_NAME, MANIFEST_NAME] {
        if computed.contains_key(name) && !listed.contains_key(name) {
            findings.push(
                Finding::new(FindingKind::TagManifestMismatch, name).detail("not listed in tagmanifest-sha256.txt"),
            );
        }
    }
}
