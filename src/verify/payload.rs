//! The payload layer: every payload entry re-hashed (SHA-256 and CRC-32) on several threads, each
//! taking the next entry from a shared index and reading positionally, and every data script
//! proved a pure data call from the same bytes ([`DataCall`]); then each entry compared with the
//! manifest and its zip CRC, and the manifest compared with the entries.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::pagecode::{is_data_script, DataCall, ScriptVerdicts};
use super::tags::unreadable;
use super::{Bag, Finding, FindingKind, Findings, VerifyOptions};
use crate::archive::{EntryDigest, EntryProblem};
use crate::progress::{Event, Phase};

/// Read buffer per hashing thread: large, so stored entries are read in few system calls.
const READ_BUFFER: usize = 1 << 20;
/// Report progress at least this often (bytes) inside a large entry.
const PROGRESS_STEP: u64 = 16 << 20;

/// What the hashing pass learnt of the payload.
#[derive(Default)]
pub(super) struct Hashed {
    /// Digest (or problem) of each payload entry, by entry index.
    pub(super) digests: HashMap<usize, Result<EntryDigest, EntryProblem>>,
    /// Each readable data script that is not a pure data call, and why.
    pub(super) scripts: ScriptVerdicts,
}

pub(super) fn hash_all(bag: &Bag<'_>, opts: &VerifyOptions, bytes_hashed: &mut u64) -> Hashed {
    let mut jobs: Vec<_> = bag
        .payload
        .iter()
        .filter(|(_, e)| !bag.overlapping.contains(&e.index))
        .map(|(path, e)| (e, is_data_script(path)))
        .collect();
    jobs.sort_by_key(|(e, _)| e.header_offset);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .clamp(1, jobs.len().max(1));
    opts.progress.event(Event::Phase { phase: Phase::Verifying, project_id: None });
    let next = AtomicUsize::new(0);
    let total = AtomicU64::new(0);
    let results = Mutex::new(Hashed { digests: HashMap::with_capacity(jobs.len()), ..Hashed::default() });
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = vec![0u8; READ_BUFFER];
                let mut local = Vec::new();
                let mut scripts = Vec::new();
                let mut pending = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(entry, is_script)) = jobs.get(i) else { break };
                    let mut call = is_script.then(DataCall::default);
                    let result = bag.reader.hash_entry_with(entry, &mut buf, |chunk| {
                        if let Some(call) = &mut call {
                            call.feed(chunk);
                        }
                        pending += chunk.len() as u64;
                        if pending >= PROGRESS_STEP {
                            let sum = total.fetch_add(pending, Ordering::Relaxed) + pending;
                            pending = 0;
                            opts.progress.event(Event::Verified { bytes: sum });
                        }
                    });
                    // An unreadable script is the payload layer's finding, not the page's.
                    if let (Some(call), Ok(_)) = (call, &result) {
                        if let Err(why) = call.finish() {
                            scripts.push((entry.index, why));
                        }
                    }
                    local.push((entry.index, result));
                }
                if pending > 0 {
                    let sum = total.fetch_add(pending, Ordering::Relaxed) + pending;
                    opts.progress.event(Event::Verified { bytes: sum });
                }
                let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                results.digests.extend(local);
                results.scripts.extend(scripts);
            });
        }
    });
    *bytes_hashed = total.into_inner();
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Compares entries with the manifest's lines for them (and, when hashed, with their bytes). Returns the indices
/// of entries that could not be read, so later layers do not report them twice.
pub(super) fn compare(
    bag: &Bag<'_>,
    manifest: &HashMap<String, [u8; 32]>,
    hashed: Option<&Hashed>,
    findings: &mut Findings,
) -> HashSet<usize> {
    // Manifest lines naming no entry were reported as the manifest was read (it keeps no others).
    // Findings are gathered unordered and sorted by path at the end: sorting every payload path
    // (all of them, on an intact archive) cost more than the comparisons.
    let mut unreadable_entries = HashSet::new();
    let mut found: Vec<(&String, Finding)> = Vec::new();
    for (path, entry) in &bag.payload {
        let listed = manifest.get(path);
        if listed.is_none() {
            found.push((path, Finding::new(FindingKind::UnlistedPayloadFile, path.clone())));
        }
        let Some(result) = hashed.and_then(|h| h.digests.get(&entry.index)) else {
            continue;
        };
        match result {
            Err(p) => {
                unreadable_entries.insert(entry.index);
                found.push((path, unreadable(path, p)));
            }
            Ok(d) => {
                if d.crc32 != entry.crc32 {
                    found.push((
                        path,
                        Finding::new(FindingKind::CrcMismatch, path.clone())
                            .expected(format!("{:08x}", entry.crc32))
                            .actual(format!("{:08x}", d.crc32)),
                    ));
                }
                if let Some(sha) = listed.filter(|sha| **sha != d.sha256) {
                    found.push((
                        path,
                        Finding::new(FindingKind::HashMismatch, path.clone())
                            .expected(hex::encode(sha))
                            .actual(hex::encode(d.sha256)),
                    ));
                }
            }
        }
    }
    // Stable: one path's findings keep the order they were found in.
    found.sort_by(|a, b| a.0.cmp(b.0));
    for (_, finding) in found {
        findings.push(finding);
    }
    unreadable_entries
}
