//! Our own metadata layer: every JSON and JSONL file parses (streamed, never held whole), and
//! each project's `images.jsonl` / `predictions.jsonl` agree with the manifest and the entries.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::de::IgnoredAny;

use super::tags::{unreadable, Tags};
use super::{Bag, Finding, FindingKind, Findings};
use crate::archive::data::{self, bound_file_problem, JsonError, ListedFile, ListingKind, MAX_PATH_BYTES};
use crate::archive::layout::{account_json, unsafe_path_reason};
use crate::archive::Entry;

pub(super) fn check(
    bag: &Bag<'_>,
    tags: &Tags,
    parse_all: bool,
    unreadable_entries: &HashSet<usize>,
    findings: &mut Findings,
) {
    let account = format!("data/{}", account_json());
    if !bag.payload.contains_key(&account) && !tags.account_listed {
        findings.push(Finding::new(FindingKind::MissingMetadata, account));
    }

    // One pass over the payload: the projects, and how many files each listed folder holds (so
    // that a listing that lists them all needs no second look at the entries).
    let mut projects = BTreeSet::new();
    let mut in_folders: HashMap<(&str, ListingKind), usize> = HashMap::new();
    for path in bag.payload.keys() {
        let Some((project, rest)) = path.strip_prefix("data/projects/").and_then(|r| r.split_once('/')) else {
            continue;
        };
        if !projects.contains(project) {
            projects.insert(project.to_owned());
        }
        for kind in [ListingKind::Images, ListingKind::Predictions] {
            if rest.strip_prefix(kind.folder()).is_some_and(|r| r.starts_with('/')) {
                *in_folders.entry((project, kind)).or_default() += 1;
            }
        }
    }
    let listings: HashSet<String> = projects
        .iter()
        .flat_map(|p| [ListingKind::Images, ListingKind::Predictions].map(|k| listing_path(p, k)))
        .collect();

    if parse_all {
        let mut paths: Vec<_> = bag.payload.keys().filter(|p| p.ends_with(".json") || p.ends_with(".jsonl")).collect();
        paths.sort();
        for path in &paths {
            let entry = &bag.payload[*path];
            if unreadable_entries.contains(&entry.index) || listings.contains(*path) {
                continue;
            }
            if path.ends_with(".json") {
                check_json(bag, path, entry, findings);
            } else if path.ends_with(".jsonl") {
                for_each_line(bag, path, entry, findings, |findings, number, line| {
                    if let Err(e) = serde_json::from_slice::<IgnoredAny>(line) {
                        findings.push_with(FindingKind::InvalidJson, || invalid_json(path, number, e));
                    }
                });
            }
        }
    }

    for project in &projects {
        for kind in [ListingKind::Images, ListingKind::Predictions] {
            let in_folder = in_folders.get(&(project.as_str(), kind)).copied().unwrap_or(0);
            check_listing(bag, &tags.manifest, (project, kind, in_folder), unreadable_entries, findings);
        }
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
    let result = data::for_each_line(bag.reader, entry, |number, line| match line {
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
/// is in the archive with the size and hash the line gives, no file is listed twice, and every
/// file in the folder (`in_folder` files) is listed. Keeps only paths of real entries, so memory
/// follows the archive.
fn check_listing(
    bag: &Bag<'_>,
    manifest: &HashMap<String, [u8; 32]>,
    (project, kind, in_folder): (&str, ListingKind, usize),
    unreadable_entries: &HashSet<usize>,
    findings: &mut Findings,
) {
    let listing_path = listing_path(project, kind);
    let listing = kind.listing_name();
    let mut listed_files: HashMap<String, usize> = HashMap::new();
    let present = bag.payload.get(&listing_path).filter(|e| !unreadable_entries.contains(&e.index));
    if let Some(entry) = present {
        for_each_line(bag, &listing_path, entry, findings, |findings, number, line| {
            let item: ListedFile = match serde_json::from_slice(line) {
                Ok(item) => item,
                Err(e) => {
                    return findings.push_with(FindingKind::InvalidJson, || invalid_json(&listing_path, number, e))
                }
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
            let Some(target) = bag.payload.get(&data_path) else {
                return findings.push(
                    Finding::new(FindingKind::ListedFileMissing, data_path)
                        .detail(format!("listed in {listing_path} line {number}")),
                );
            };
            if let Some(first) = listed_files.get(&data_path) {
                return findings.push(bad(format!("file {file:?} is listed again (first on line {first})")));
            }
            listed_files.insert(data_path.clone(), number);
            if target.size != size {
                findings.push(
                    Finding::new(FindingKind::ListedFileMismatch, data_path.clone())
                        .expected(format!("{size} bytes (per {listing})"))
                        .actual(format!("{} bytes", target.size)),
                );
            }
            if let Some(in_manifest) = manifest.get(&data_path) {
                let mut listed = [0u8; 32];
                if hex::decode_to_slice(&sha, &mut listed).is_err() || listed != *in_manifest {
                    findings.push(
                        Finding::new(FindingKind::ListedFileMismatch, data_path)
                            .expected(format!("sha256 {sha} (per {listing})"))
                            .actual(format!("sha256 {} (per manifest)", hex::encode(in_manifest))),
                    );
                }
            }
        });
    }
    // Every listed file is a real entry in the folder, listed once: only fewer than the folder
    // holds leaves some unlisted, and only then are the entries looked through.
    if listed_files.len() >= in_folder {
        return;
    }
    let prefix = format!("data/projects/{project}/{}/", kind.folder());
    let mut unlisted: Vec<_> =
        bag.payload.keys().filter(|p| p.starts_with(&prefix) && !listed_files.contains_key(*p)).collect();
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
