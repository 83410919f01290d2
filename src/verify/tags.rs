//! The BagIt layer: `bagit.txt`, `bag-info.txt` (and its `Payload-Oxum`), the payload manifest
//! (streamed, hashed while parsed) and the tag manifest against the tag files.

use std::collections::HashMap;
use std::io::{BufReader, Read};

use sha2::{Digest, Sha256};

use super::lines::{read_line, Line};
use super::{Bag, Finding, FindingKind};
use crate::archive::bagit::{
    parse_manifest_line, parse_tag_file, tag_value, PayloadOxum, BAGIT_TXT_NAME, BAG_INFO_NAME, MANIFEST_NAME,
    TAGMANIFEST_NAME,
};
use crate::archive::reader::problem;
use crate::archive::{Entry, EntryProblem};

/// Largest small tag file (`bagit.txt`, `bag-info.txt`, the tag manifest) read into memory.
const TAG_FILE_LIMIT: u64 = 1 << 20;
/// Longest manifest line kept.
const MANIFEST_LINE_CAP: usize = 64 << 10;

/// What the tag files say, for the later layers.
pub(super) struct Tags {
    /// Manifest hash by path relative to the bag (`data/...`).
    pub manifest: HashMap<String, [u8; 32]>,
    /// `Payload-Oxum`, if present and valid.
    pub oxum: Option<PayloadOxum>,
}

pub(super) fn check(bag: &Bag<'_>, findings: &mut Vec<Finding>) -> Tags {
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

    let mut manifest = HashMap::new();
    match bag.tag_entries.get(MANIFEST_NAME) {
        None => findings.push(Finding::new(FindingKind::MissingManifest, MANIFEST_NAME)),
        Some(entry) => match read_manifest(bag, entry, &mut manifest, findings) {
            Ok(sha) => {
                tag_hashes.insert(MANIFEST_NAME, sha);
            }
            Err(p) => findings.push(unreadable(MANIFEST_NAME, &p)),
        },
    }

    check_tagmanifest(bag, &tag_hashes, findings);
    Tags { manifest, oxum }
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

fn read_small(bag: &Bag<'_>, name: &str, missing: FindingKind, findings: &mut Vec<Finding>) -> Option<Vec<u8>> {
    let Some(entry) = bag.tag_entries.get(name) else {
        findings.push(Finding::new(missing, name));
        return None;
    };
    match bag.reader.read_entry(entry, TAG_FILE_LIMIT) {
        Ok(bytes) => Some(bytes),
        Err(p) => {
            findings.push(unreadable(name, &p));
            None
        }
    }
}

/// Tees everything read into SHA-256.
struct HashingRead<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Read for HashingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Streams the payload manifest into `manifest`, reporting bad lines; returns the file's hash.
fn read_manifest(
    bag: &Bag<'_>,
    entry: &Entry,
    manifest: &mut HashMap<String, [u8; 32]>,
    findings: &mut Vec<Finding>,
) -> Result<[u8; 32], EntryProblem> {
    let raw = bag.reader.open_entry(entry)?;
    let mut reader = BufReader::with_capacity(256 << 10, HashingRead { inner: raw, sha: Sha256::new() });
    let mut line = Vec::new();
    let mut number = 0usize;
    let bad = |number: usize, why: &str| {
        Finding::new(FindingKind::InvalidManifestLine, MANIFEST_NAME).detail(format!("line {number}: {why}"))
    };
    loop {
        number += 1;
        match read_line(&mut reader, &mut line, MANIFEST_LINE_CAP).map_err(problem)? {
            Line::End => break,
            Line::TooLong => findings.push(bad(number, "longer than 64 KiB")),
            Line::Text => {
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() {
                    continue;
                }
                match parse_manifest_line(&text) {
                    Err(why) => findings.push(bad(number, why)),
                    Ok((_, path)) if !path.starts_with("data/") => {
                        findings.push(bad(number, &format!("{path:?} is not under data/")))
                    }
                    Ok((sha, path)) => {
                        if manifest.insert(path.clone(), sha).is_some() {
                            findings.push(bad(number, &format!("{path:?} is listed again")));
                        }
                    }
                }
            }
        }
    }
    Ok(reader.into_inner().sha.finalize().into())
}

fn check_tagmanifest(bag: &Bag<'_>, computed: &HashMap<&str, [u8; 32]>, findings: &mut Vec<Finding>) {
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
            None => match bag.tag_entries.get(path.as_str()) {
                Some(entry) => match bag.reader.hash_entry(entry, &mut vec![0u8; 64 << 10]) {
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
