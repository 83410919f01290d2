//! Our own metadata layer: every JSON and JSONL file parses (streamed, never held whole), and
//! each project's `images.jsonl` / `predictions.jsonl` agree with the manifest and the entries.

use std::collections::HashSet;

use serde::de::IgnoredAny;

use super::tags::{unreadable, Tags};
use super::{Bag, Finding, FindingKind, Findings, PAYLOAD};
use crate::archive::data::{self, bound_file_problem, JsonError, ListedFile, ListingKind, MAX_PATH_BYTES};
use crate::archive::layout::{account_json, unsafe_path_reason};
use crate::archive::Entry;

const KINDS: [ListingKind; 2] = [ListingKind::Images, ListingKind::Predictions];

pub(super) fn check(
    bag: &Bag<'_>,
    tags: &Tags,
    parse_all: bool,
    readable: &dyn Fn(usize) -> bool,
    findings: &mut Findings,
) {
    let account = format!("data/{}", account_json());
    if bag.find_payload(&account).is_none() && !tags.account_listed {
        findings.push(Finding::new(FindingKind::MissingMetadata, account));
    }

    // --fast reads no metadata: the listings are a million JSON lines at a million images.
    if !parse_all {
        return;
    }
    for index in bag.json_files.iter().map(|&i| i as usize) {
        if !bag.is(index, PAYLOAD) || !readable(index) {
            continue;
        }
        let entry = match bag.entry(index) {
            Ok(e) => e,
            Err(p) => {
                findings.push(unreadable(&bag.path_of(index), &p));
                continue;
            }
        };
        let path = bag.rel(&entry.name).unwrap_or(&entry.name);
        if path.ends_with(".json") {
            check_json(bag, path, &entry, findings);
        } else {
            for_each_line(bag, path, &entry, findings, |findings, number, line| {
                if let Err(e) = serde_json::from_slice::<IgnoredAny>(line) {
                    findings.push_with(FindingKind::InvalidJson, || invalid_json(path, number, e));
                }
            });
        }
    }

    // The line each listed file is first listed on, by entry index (0: not listed).
    let mut first_line = vec![0u32; bag.kinds.len()];
    let mut shortfall = false;
    let mut absent = HashSet::new();
    for (project, in_folders) in &bag.projects {
        for (kind, &in_folder) in KINDS.into_iter().zip(in_folders) {
            let listing = (project.as_str(), kind);
            let path = listing_path(project, kind);
            let present = bag.find_payload(&path).filter(|&i| readable(i));
            let listed = match present.map(|i| bag.entry(i)) {
                Some(Ok(entry)) => check_listing(bag, tags, listing, &entry, &mut first_line, findings),
                Some(Err(p)) => {
                    findings.push(unreadable(&path, &p));
                    0
                }
                None => 0,
            };
            if present.is_none() {
                absent.insert(listing);
            }
            shortfall |= listed < in_folder;
        }
    }
    // Every listed file is a real entry in its folder, listed once: only fewer than the folder
    // holds leaves some unlisted, and only then are the entries looked through (once).
    if shortfall {
        unlisted(bag, &first_line, &absent, findings);
    }
}

/// Reports every payload file in a listing's folder that no line lists, in directory order.
fn unlisted(bag: &Bag<'_>, first_line: &[u32], absent: &HashSet<(&str, ListingKind)>, findings: &mut Findings) {
    for e in bag.reader.entries().map_while(Result::ok) {
        if !bag.is(e.index, PAYLOAD) || first_line[e.index] != 0 {
            continue;
        }
        let Some(path) = bag.rel(&e.name) else { continue };
        let Some((project, rest)) = path.strip_prefix("data/projects/").and_then(|r| r.split_once('/')) else {
            continue;
        };
        let Some(kind) = KINDS.into_iter().find(|k| rest.strip_prefix(k.folder()).is_some_and(|r| r.starts_with('/')))
        else {
            continue;
        };
        findings.push_with(FindingKind::UnlistedImage, || {
            let listing_path = listing_path(project, kind);
            let why = if absent.contains(&(project, kind)) {
                format!("{listing_path} is missing or unreadable")
            } else {
                format!("not in {listing_path}")
            };
            Finding::new(FindingKind::UnlistedImage, path).detail(why)
        });
    }
}

fn listing_path(project: &str, kind: ListingKind) -> String {
    format!("data/projects/{project}/{}", kind.listing_name())
}

fn invalid_json(path: &str, number: usize, e: serde_json::Error) -> Finding {
    Finding::new(FindingKind::InvalidJson, path).detail(format!("line {number}: {e}"))
}

fn check_json(bag: &Bag<'_>, path: &str, entry: &Entry, findings: &mut Findings) {
    match data::json_parses(bag.reader, entry) {
        Ok(()) => {}
        Err(JsonError::Entry(p)) => findings.push(unreadable(path, &p)),
        Err(JsonError::Json(e)) => findings.push(Finding::new(FindingKind::InvalidJson, path).detail(e.to_string())),
    }
}

/// Calls `each(findings, line_number, bytes)` for every non-empty line, reporting over-long
/// lines and read problems as findings.
fn for_each_line(
    bag: &Bag<'_>,
    path: &str,
    entry: &Entry,
    findings: &mut Findings,
    mut each: impl FnMut(&mut Findings, usize, &[u8]),
) {
    let result = data::for_each_line_unhashed(bag.reader, entry, |number, line| match line {
        Ok(line) => each(findings, number, line),
        Err(why) => findings.push_with(FindingKind::TooLarge, || {
            Finding::new(FindingKind::TooLarge, path).detail(format!("line {number}: {why}"))
        }),
    });
    if let Err(p) = result {
        findings.push(unreadable(path, &p));
    }
}

/// Checks one listing: every line names its own file (the path follows from its id), that file
/// is in the archive with the size and hash the line gives, and no file is listed twice. Marks
/// each listed file's first line in `first_line`; returns how many files it lists.
fn check_listing(
    bag: &Bag<'_>,
    tags: &Tags,
    (project, kind): (&str, ListingKind),
    entry: &Entry,
    first_line: &mut [u32],
    findings: &mut Findings,
) -> usize {
    let listing_path = listing_path(project, kind);
    let listing = kind.listing_name();
    let mut listed = 0usize;
    let mut hint = 0;
    for_each_line(bag, &listing_path, entry, findings, |findings, number, line| {
        let item: ListedFile = match serde_json::from_slice(line) {
            Ok(item) => item,
            Err(e) => return findings.push_with(FindingKind::InvalidJson, || invalid_json(&listing_path, number, e)),
        };
        let bad = |why: String| {
            Finding::new(FindingKind::InvalidListing, listing_path.clone()).detail(format!("line {number}: {why}"))
        };
        let (Some(id), Some(file), Some(size), Some(sha)) = (item.id, item.file, item.size, item.sha256) else {
            return findings.push(bad("lacks id, file, size or sha256".into()));
        };
        if file.len() > MAX_PATH_BYTES {
            return findings.push(bad(format!("file is longer than {MAX_PATH_BYTES} bytes")));
        }
        if let Some(reason) = unsafe_path_reason(&file) {
            return findings.push(bad(format!("file {file:?}: {reason}")));
        }
        if let Some(why) = bound_file_problem(kind, project, id, &file) {
            return findings.push(bad(why));
        }
        let data_path = format!("data/{file}");
        let found = bag.find_payload_near(&data_path, hint);
        hint = found.map_or(hint, |i| i + 1);
        let Some(target) = found else {
            return findings.push_with(FindingKind::ListedFileMissing, || {
                Finding::new(FindingKind::ListedFileMissing, data_path.clone())
                    .detail(format!("listed in {listing_path} line {number}"))
            });
        };
        if first_line[target] != 0 {
            let first = first_line[target];
            return findings.push(bad(format!("file {file:?} is listed again (first on line {first})")));
        }
        first_line[target] = u32::try_from(number).unwrap_or(u32::MAX);
        listed += 1;
        if bag.sizes[target] != size {
            findings.push(
                Finding::new(FindingKind::ListedFileMismatch, data_path.clone())
                    .expected(format!("{size} bytes (per {listing})"))
                    .actual(format!("{} bytes", bag.sizes[target])),
            );
        }
        let in_manifest = match tags.expected(target) {
            Ok(found) => found,
            Err(p) => return findings.push(unreadable(&data_path, &p)),
        };
        if let Some(in_manifest) = in_manifest {
            let mut listed = [0u8; 32];
            if hex::decode_to_slice(&sha, &mut listed).is_err() || listed != in_manifest {
                findings.push(
                    Finding::new(FindingKind::ListedFileMismatch, data_path)
                        .expected(format!("sha256 {sha} (per {listing})"))
                        .actual(format!("sha256 {} (per manifest)", hex::encode(in_manifest))),
                );
            }
        }
    });
    listed
}
