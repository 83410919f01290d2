//! The zip layer: recovery from a missing end, duplicate and hostile names, entries outside the
//! bag folder, overlapping data. Sorts the safe entries into tag files and payload.

use std::collections::{HashMap, HashSet};

use super::{Bag, Finding, FindingKind, Findings};
use crate::archive::layout::unsafe_path_reason;
use crate::archive::zipconst::LOCAL_HEADER_LEN;
use crate::archive::BagReader;
use crate::text::error_chain;

/// Runs the zip-level checks; `None` when there is no bag folder to go on (a finding says why).
pub(super) fn check<'a>(reader: &'a BagReader, findings: &mut Findings) -> Option<Bag<'a>> {
    let name_of = |entry_name: &str| -> String {
        match reader.bag_name() {
            Some(bag) => {
                entry_name.strip_prefix(bag).and_then(|r| r.strip_prefix('/')).unwrap_or(entry_name).to_string()
            }
            None => entry_name.to_string(),
        }
    };
    if let Some(why) = reader.recovered() {
        findings.push(
            Finding::new(FindingKind::Truncated, reader.path().display().to_string())
                .detail(format!("{why}; {} entries recovered from local headers", reader.entry_count())),
        );
    }
    // Reading the directory back fails only when the file changed since it was opened.
    let changed = |findings: &mut Findings, e: crate::archive::Error| {
        findings
            .push(Finding::new(FindingKind::Truncated, reader.path().display().to_string()).detail(error_chain(&e)));
    };

    let duplicates = reader.for_each_duplicate(|e, n| {
        findings.push(
            Finding::new(FindingKind::DuplicateEntry, name_of(&e.name))
                .expected("1 entry")
                .actual(format!("{n} entries")),
        );
    });
    if let Err(e) = duplicates {
        changed(findings, e);
        return None;
    }

    // Where each entry's data starts and ends at least, and its position: 24 bytes an entry.
    let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(reader.entry_count());
    for e in reader.entries() {
        match e {
            Ok(e) => {
                let min_end = e
                    .header_offset
                    .saturating_add(LOCAL_HEADER_LEN + e.raw_name.len() as u64)
                    .saturating_add(e.compressed_size);
                spans.push((e.header_offset, min_end, e.index));
            }
            Err(e) => {
                changed(findings, e);
                return None;
            }
        }
    }
    let overlapping = match overlaps(reader, spans, findings, &name_of) {
        Ok(o) => o,
        Err(e) => {
            changed(findings, e);
            return None;
        }
    };

    let Some(bag_name) = reader.bag_name() else {
        findings.push(
            Finding::new(FindingKind::MissingBagit, "bagit.txt").detail("the archive has no top-level bag folder"),
        );
        return None;
    };
    let mut bag =
        Bag { reader, name: bag_name.to_string(), payload: HashMap::new(), tag_entries: HashMap::new(), overlapping };
    for e in reader.entries() {
        let e = match e {
            Ok(e) => e,
            Err(e) => {
                changed(findings, e);
                return None;
            }
        };
        if let Some(reason) = unsafe_path_reason(e.name.trim_end_matches('/')) {
            findings.push(Finding::new(FindingKind::UnsafeName, e.name.clone()).detail(reason));
            continue;
        }
        let Some(rel) = bag.rel(&e.name) else {
            findings.push(Finding::new(FindingKind::OutsideBag, e.name.clone()).expected(format!("under {bag_name}/")));
            continue;
        };
        if e.is_dir() || rel.is_empty() {
            continue;
        }
        let rel = rel.to_string();
        let map = if rel.starts_with("data/") { &mut bag.payload } else { &mut bag.tag_entries };
        map.entry(rel).or_insert(e);
    }
    Some(bag)
}

/// Sorted by offset, an entry overlaps when it starts before the furthest end seen so far; both
/// it and the entry reaching furthest are marked, so neither is ever inflated. Names are read
/// back only for the findings.
fn overlaps(
    reader: &BagReader,
    mut spans: Vec<(u64, u64, usize)>,
    findings: &mut Findings,
    name_of: &dyn Fn(&str) -> String,
) -> Result<HashSet<usize>, crate::archive::Error> {
    spans.sort_unstable_by_key(|(start, _, index)| (*start, *index));
    let mut overlapping = HashSet::new();
    let mut furthest: Option<(u64, usize)> = None;
    for (start, min_end, index) in spans {
        if let Some((_, a)) = furthest.filter(|(end, _)| start < *end) {
            overlapping.insert(a);
            overlapping.insert(index);
            let (a, b) = (reader.entry_at(a)?, reader.entry_at(index)?);
            findings.push(
                Finding::new(FindingKind::OverlappingEntries, name_of(&b.name))
                    .detail(format!("its data overlaps entry {:?}; neither is read", a.name)),
            );
        }
        if furthest.is_none_or(|(end, _)| min_end > end) {
            furthest = Some((min_end, index));
        }
    }
    Ok(overlapping)
}
