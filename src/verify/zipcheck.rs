//! The zip layer: recovery from a missing end, duplicate and hostile names, entries outside the
//! bag folder, overlapping data. Sorts the safe entries into tag files and payload.

use std::collections::HashMap;

use super::{Bag, Finding, FindingKind, Findings};
use crate::archive::layout::unsafe_path_reason;
use crate::archive::zipconst::LOCAL_HEADER_LEN;
use crate::archive::BagReader;

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
                .detail(format!("{why}; {} entries recovered from local headers", reader.entries().len())),
        );
    }

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in reader.entries() {
        *counts.entry(e.name.as_str()).or_default() += 1;
    }
    let mut reported = std::collections::HashSet::new();
    for e in reader.entries() {
        let n = counts[e.name.as_str()];
        if n > 1 && reported.insert(e.name.as_str()) {
            findings.push(
                Finding::new(FindingKind::DuplicateEntry, name_of(&e.name))
                    .expected("1 entry")
                    .actual(format!("{n} entries")),
            );
        }
    }

    // Sorted by offset, an entry overlaps when it starts before the furthest end seen so far;
    // both it and the entry reaching furthest are marked, so neither is ever inflated.
    let mut by_offset: Vec<_> = reader.entries().iter().collect();
    by_offset.sort_by_key(|e| (e.header_offset, e.index));
    let mut overlapping = std::collections::HashSet::new();
    let mut furthest: Option<(u64, &crate::archive::Entry)> = None;
    for b in by_offset {
        if let Some((_, a)) = furthest.filter(|(end, _)| b.header_offset < *end) {
            overlapping.insert(a.index);
            overlapping.insert(b.index);
            findings.push(
                Finding::new(FindingKind::OverlappingEntries, name_of(&b.name))
                    .detail(format!("its data overlaps entry {:?}; neither is read", a.name)),
            );
        }
        let b_min_end = b
            .header_offset
            .saturating_add(LOCAL_HEADER_LEN + b.raw_name.len() as u64)
            .saturating_add(b.compressed_size);
        if furthest.is_none_or(|(end, _)| b_min_end > end) {
            furthest = Some((b_min_end, b));
        }
    }

    let Some(bag_name) = reader.bag_name() else {
        findings.push(
            Finding::new(FindingKind::MissingBagit, "bagit.txt").detail("the archive has no top-level bag folder"),
        );
        return None;
    };
    let mut bag =
        Bag { reader, name: bag_name.to_string(), payload: HashMap::new(), tag_entries: HashMap::new(), overlapping };
    for e in reader.entries() {
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
        let map = if rel.starts_with("data/") { &mut bag.payload } else { &mut bag.tag_entries };
        map.entry(rel.to_string()).or_insert(e);
    }
    Some(bag)
}
