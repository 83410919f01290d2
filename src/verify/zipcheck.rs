//! The zip layer: recovery from a missing end, duplicate and hostile names, entries outside the
//! bag folder, overlapping data. Sorts the safe entries into tag files and payload.
//!
//! One pass over the zip directory builds the [`Bag`]: per entry a 16-byte name hash, a kind
//! byte and the declared size (25 bytes), plus a count of files per project folder. Duplicates
//! are neighbours in the sorted hash table. Overlaps are found by a sweep in directory order,
//! which is offset order in every archive we write; only a directory out of offset order is
//! read a second time into (offset, end, index) triples, 24 bytes an entry, sorted and swept.

use std::collections::BTreeMap;

use super::names::Names;
use super::{Bag, Finding, FindingKind, Findings, FILE, OVERLAPPING, PAYLOAD};
use crate::archive::data::ListingKind;
use crate::archive::layout::unsafe_path_reason;
use crate::archive::zipconst::LOCAL_HEADER_LEN;
use crate::archive::{BagReader, Entry};

/// Runs the zip-level checks; `None` when there is no bag folder to go on (a finding says why).
pub(super) fn check<'a>(reader: &'a BagReader, findings: &mut Findings) -> Option<Bag<'a>> {
    let count = reader.entry_count();
    if let Some(why) = reader.recovered() {
        findings.push(
            Finding::new(FindingKind::Truncated, reader.path().display().to_string())
                .detail(format!("{why}; {count} entries recovered from local headers")),
        );
    }
    let bag_name = reader.bag_name().map(str::to_string);
    let mut bag = Bag {
        reader,
        name: bag_name.clone().unwrap_or_default(),
        names: Names::with_capacity(count),
        kinds: vec![0; count],
        sizes: vec![0; count],
        projects: BTreeMap::new(),
        json_files: Vec::new(),
    };
    let mut sweep = Sweep::new();
    for e in reader.entries() {
        let e = match e {
            Ok(e) if e.index < count => e,
            Ok(_) => continue,
            Err(err) => {
                // Reading the directory back fails only when the file changed since it was opened.
                findings.push(
                    Finding::new(FindingKind::Truncated, reader.path().display().to_string())
                        .detail(crate::text::error_chain(&err)),
                );
                break;
            }
        };
        bag.names.push(&e.name);
        bag.sizes[e.index] = e.size;
        sweep.feed(e.header_offset, min_end(&e), e.index);
        if bag_name.is_some() {
            classify(&mut bag, &e, findings);
        }
    }
    bag.names.sort();
    duplicates(&mut bag, findings);
    overlaps(&mut bag, sweep, findings);
    if bag_name.is_none() {
        findings.push(
            Finding::new(FindingKind::MissingBagit, "bagit.txt").detail("the archive has no top-level bag folder"),
        );
        return None;
    }
    Some(bag)
}

/// Where an entry's data ends at the least: its local header, name and compressed bytes.
fn min_end(e: &Entry) -> u64 {
    e.header_offset.saturating_add(LOCAL_HEADER_LEN + e.raw_name.len() as u64).saturating_add(e.compressed_size)
}

/// Reports an unsafe name or an entry outside the bag; marks a file ([`FILE`], [`PAYLOAD`]) and
/// counts it in its project folder.
fn classify(bag: &mut Bag<'_>, e: &Entry, findings: &mut Findings) {
    if let Some(reason) = unsafe_path_reason(e.name.trim_end_matches('/')) {
        findings.push(Finding::new(FindingKind::UnsafeName, e.name.clone()).detail(reason));
        return;
    }
    let Some(rel) = bag.rel(&e.name) else {
        findings.push(Finding::new(FindingKind::OutsideBag, e.name.clone()).expected(format!("under {}/", bag.name)));
        return;
    };
    if e.is_dir() || rel.is_empty() {
        return;
    }
    bag.kinds[e.index] |= FILE;
    if !rel.starts_with("data/") {
        return;
    }
    bag.kinds[e.index] |= PAYLOAD;
    if tally(&mut bag.projects, rel, 1) && (rel.ends_with(".json") || rel.ends_with(".jsonl")) {
        bag.json_files.push(e.index as u32);
    }
}

/// Adds `delta` to the count of the project folder `rel` lies in, if any; returns whether `rel`
/// is not a listing (`images.jsonl`, `predictions.jsonl`), whose checks are their own.
fn tally(projects: &mut BTreeMap<String, [usize; 2]>, rel: &str, delta: isize) -> bool {
    let Some((project, rest)) = rel.strip_prefix("data/projects/").and_then(|r| r.split_once('/')) else {
        return true;
    };
    let counts = match projects.get_mut(project) {
        Some(c) => c,
        None => projects.entry(project.to_owned()).or_default(),
    };
    for (i, kind) in [ListingKind::Images, ListingKind::Predictions].into_iter().enumerate() {
        if rest.strip_prefix(kind.folder()).is_some_and(|r| r.starts_with('/')) {
            counts[i] = counts[i].saturating_add_signed(delta);
        }
    }
    ![ListingKind::Images, ListingKind::Predictions].iter().any(|k| rest == k.listing_name())
}

/// Reports each name more than one entry has; only the first of them stays a file.
fn duplicates(bag: &mut Bag<'_>, findings: &mut Findings) {
    for (first, later) in bag.names.duplicates() {
        let n = later.len() + 1;
        findings.push_with(FindingKind::DuplicateEntry, || {
            Finding::new(FindingKind::DuplicateEntry, bag.path_of(first))
                .expected("1 entry")
                .actual(format!("{n} entries"))
        });
        for i in later {
            if bag.kinds[i] & PAYLOAD != 0 {
                // Counted in its project folder as it was read: the first of the name stays.
                if let Ok(e) = bag.entry(i) {
                    if let Some(rel) = bag.rel(&e.name) {
                        tally(&mut bag.projects, rel, -1);
                    }
                }
            }
            bag.kinds[i] &= !(FILE | PAYLOAD);
        }
    }
}

/// Sorted by offset, an entry overlaps when it starts before the furthest end seen so far; both
/// it and the entry reaching furthest are marked, so neither is ever inflated.
struct Sweep {
    /// Whether the entries came in offset order so far.
    in_order: bool,
    last_offset: u64,
    /// The furthest end seen, and whose.
    furthest: Option<(u64, usize)>,
    /// (entry, entry it overlaps), in offset order.
    pairs: Vec<(usize, usize)>,
}

impl Sweep {
    fn new() -> Sweep {
        Sweep { in_order: true, last_offset: 0, furthest: None, pairs: Vec::new() }
    }

    /// Feeds the next entry in directory order; gives up (leaving a sort to [`overlaps`]) at the
    /// first entry out of offset order.
    fn feed(&mut self, offset: u64, end: u64, index: usize) {
        if !self.in_order {
            return;
        }
        if offset < self.last_offset {
            self.in_order = false;
            self.pairs = Vec::new();
            return;
        }
        self.last_offset = offset;
        self.step(offset, end, index);
    }

    fn step(&mut self, offset: u64, end: u64, index: usize) {
        if let Some((_, a)) = self.furthest.filter(|(f, _)| offset < *f) {
            self.pairs.push((index, a));
        }
        if self.furthest.is_none_or(|(f, _)| end > f) {
            self.furthest = Some((end, index));
        }
    }
}

fn overlaps(bag: &mut Bag<'_>, mut sweep: Sweep, findings: &mut Findings) {
    if !sweep.in_order {
        let mut triples: Vec<(u64, u64, u32)> = Vec::with_capacity(bag.kinds.len());
        for e in bag.reader.entries().map_while(Result::ok) {
            triples.push((e.header_offset, min_end(&e), e.index as u32));
        }
        triples.sort_unstable_by_key(|&(offset, _, index)| (offset, index));
        sweep = Sweep::new();
        for (offset, end, index) in triples {
            sweep.step(offset, end, index as usize);
        }
    }
    for &(b, a) in &sweep.pairs {
        for i in [a, b] {
            if let Some(k) = bag.kinds.get_mut(i) {
                *k |= OVERLAPPING;
            }
        }
        findings.push_with(FindingKind::OverlappingEntries, || {
            let other = bag.entry(a).map_or_else(|p| format!("(entry {a}: {p})"), |e| e.name);
            Finding::new(FindingKind::OverlappingEntries, bag.path_of(b))
                .detail(format!("its data overlaps entry {other:?}; neither is read"))
        });
    }
}
