//! Our own metadata layer: every JSON and JSONL file parses (streamed, never held whole), and
//! each project's `images.jsonl` / `predictions.jsonl` agree with the manifest and the entries.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufReader;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::lines::{read_line, Line};
use super::tags::unreadable;
use super::{Bag, Finding, FindingKind};
use crate::archive::layout::{account_json, unsafe_path_reason};
use crate::archive::reader::problem;
use crate::archive::Entry;

/// Longest JSONL line parsed; longer lines are reported, not held.
const JSONL_LINE_CAP: usize = 16 << 20;
/// Read buffer for JSON streams.
const JSON_BUFFER: usize = 256 << 10;

/// A line of `images.jsonl` or `predictions.jsonl`, as far as verify cares.
#[derive(Deserialize)]
struct Listed {
    file: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
}

pub(super) fn check(
    bag: &Bag<'_>,
    manifest: &HashMap<String, [u8; 32]>,
    parse_all: bool,
    unreadable_entries: &HashSet<usize>,
    findings: &mut Vec<Finding>,
) {
    let account = format!("data/{}", account_json());
    if !bag.payload.contains_key(&account) && !manifest.contains_key(&account) {
        findings.push(Finding::new(FindingKind::MissingMetadata, account));
    }

    let mut paths: Vec<_> = bag.payload.keys().collect();
    paths.sort();
    let mut projects = BTreeSet::new();
    for path in &paths {
        if let Some(rest) = path.strip_prefix("data/projects/") {
            if let Some((project, _)) = rest.split_once('/') {
                projects.insert(format!("data/projects/{project}/"));
            }
        }
    }
    let listings: HashSet<String> =
        projects.iter().flat_map(|p| [format!("{p}images.jsonl"), format!("{p}predictions.jsonl")]).collect();

    if parse_all {
        for path in &paths {
            let entry = bag.payload[*path];
            if unreadable_entries.contains(&entry.index) || listings.contains(*path) {
                continue;
            }
            if path.ends_with(".json") {
                check_json(bag, path, entry, findings);
            } else if path.ends_with(".jsonl") {
                for_each_line(bag, path, entry, findings, |_, line| {
                    serde_json::from_slice::<IgnoredAny>(line).map(|_| ()).map_err(|e| e.to_string())
                });
            }
        }
    }

    for project in &projects {
        for (listing, folder) in [("images.jsonl", "images/"), ("predictions.jsonl", "predictions/")] {
            check_listing(bag, manifest, project, listing, folder, unreadable_entries, findings);
        }
    }
}

fn check_json(bag: &Bag<'_>, path: &str, entry: &Entry, findings: &mut Vec<Finding>) {
    let reader = match bag.reader.open_entry(entry) {
        Ok(r) => r,
        Err(p) => return findings.push(unreadable(path, &p)),
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(JSON_BUFFER, reader));
    let result = IgnoredAny::deserialize(&mut de).and_then(|_| de.end());
    if let Err(e) = result {
        if e.is_io() {
            let p = problem(std::io::Error::from(e));
            findings.push(unreadable(path, &p));
        } else {
            findings.push(Finding::new(FindingKind::InvalidJson, path).detail(e.to_string()));
        }
    }
}

/// Calls `each(line_number, bytes)` for every non-empty line, reporting parse failures (`Err`
/// from `each`), over-long lines and read problems as findings.
fn for_each_line(
    bag: &Bag<'_>,
    path: &str,
    entry: &Entry,
    findings: &mut Vec<Finding>,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), String>,
) {
    let reader = match bag.reader.open_entry(entry) {
        Ok(r) => r,
        Err(p) => return findings.push(unreadable(path, &p)),
    };
    let mut reader = BufReader::with_capacity(JSON_BUFFER, reader);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        match read_line(&mut reader, &mut line, JSONL_LINE_CAP) {
            Err(e) => return findings.push(unreadable(path, &problem(e))),
            Ok(Line::End) => return,
            Ok(Line::TooLong) => findings.push(
                Finding::new(FindingKind::TooLarge, path)
                    .detail(format!("line {number} is longer than {JSONL_LINE_CAP} bytes")),
            ),
            Ok(Line::Text) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(why) = each(number, &line) {
                    findings.push(Finding::new(FindingKind::InvalidJson, path).detail(format!("line {number}: {why}")));
                }
            }
        }
    }
}

fn check_listing(
    bag: &Bag<'_>,
    manifest: &HashMap<String, [u8; 32]>,
    project: &str,
    listing: &str,
    folder: &str,
    unreadable_entries: &HashSet<usize>,
    findings: &mut Vec<Finding>,
) {
    let listing_path = format!("{project}{listing}");
    let mut listed_files = HashSet::new();
    let present = bag.payload.get(&listing_path).filter(|e| !unreadable_entries.contains(&e.index));
    if let Some(entry) = present {
        let mut problems = Vec::new();
        for_each_line(bag, &listing_path, entry, findings, |number, line| {
            let item: Listed = serde_json::from_slice(line).map_err(|e| e.to_string())?;
            let bad = |why: String| {
                Finding::new(FindingKind::InvalidListing, listing_path.clone()).detail(format!("line {number}: {why}"))
            };
            let (Some(file), Some(size), Some(sha)) = (item.file, item.size, item.sha256) else {
                problems.push(bad("lacks file, size or sha256".into()));
                return Ok(());
            };
            if let Some(reason) = unsafe_path_reason(&file) {
                problems.push(bad(format!("file {file:?}: {reason}")));
                return Ok(());
            }
            let data_path = format!("data/{file}");
            listed_files.insert(data_path.clone());
            let Some(target) = bag.payload.get(&data_path) else {
                problems.push(
                    Finding::new(FindingKind::ListedFileMissing, data_path)
                        .detail(format!("listed in {listing_path} line {number}")),
                );
                return Ok(());
            };
            if target.size != size {
                problems.push(
                    Finding::new(FindingKind::ListedFileMismatch, data_path.clone())
                        .expected(format!("{size} bytes (per {listing})"))
                        .actual(format!("{} bytes", target.size)),
                );
            }
            if let Some(in_manifest) = manifest.get(&data_path) {
                if !hex::encode(in_manifest).eq_ignore_ascii_case(&sha) {
                    problems.push(
                        Finding::new(FindingKind::ListedFileMismatch, data_path)
                            .expected(format!("sha256 {sha} (per {listing})"))
                            .actual(format!("sha256 {} (per manifest)", hex::encode(in_manifest))),
                    );
                }
            }
            Ok(())
        });
        findings.extend(problems);
    }
    let prefix = format!("{project}{folder}");
    let mut unlisted: Vec<_> =
        bag.payload.keys().filter(|p| p.starts_with(&prefix) && !listed_files.contains(*p)).collect();
    unlisted.sort();
    for path in unlisted {
        let why = if present.is_some() {
            format!("not in {listing_path}")
        } else {
            format!("{listing_path} is missing or unreadable")
        };
        findings.push(Finding::new(FindingKind::UnlistedImage, path.clone()).detail(why));
    }
}
