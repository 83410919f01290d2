//! The payload layer: every payload entry re-hashed (SHA-256 and CRC-32) on several threads, and
//! every data script proved a pure data call from the same bytes ([`DataCall`]); each entry is
//! compared with its zip CRC and the manifest's hash as soon as it is hashed, so no digest is
//! kept. Then each payload entry the manifest does not list is reported.
//!
//! Per entry this layer holds one bit (unreadable); the entries reach the threads through a
//! bounded channel from one pass over the zip directory (in directory order, which is offset
//! order in our archives, so the file is read front to back), and findings are kept per kind up
//! to the cap by lowest entry index ([`Ranked`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

use super::finding::Ranked;
use super::names::Bits;
use super::pagecode::{is_data_script, script_finding, DataCall};
use super::tags::{unreadable, Tags};
use super::{Bag, Finding, FindingKind, Findings, VerifyOptions, OVERLAPPING, PAYLOAD};
use crate::archive::{Entry, EntryDigest, EntryProblem};
use crate::progress::{Event, Phase};

/// Read buffer per hashing thread: large, so stored entries are read in few system calls.
const READ_BUFFER: usize = 1 << 20;
/// Report progress at least this often (bytes) inside a large entry.
const PROGRESS_STEP: u64 = 16 << 20;
/// Entries queued for the hashing threads per thread.
const QUEUE_PER_THREAD: usize = 256;

/// What the hashing pass learnt of the payload.
pub(super) struct Hashed {
    /// Uncompressed bytes hashed.
    pub(super) bytes_hashed: u64,
    /// Payload bytes: actual for every entry read, declared for the others.
    pub(super) payload_bytes: u64,
    /// Entries that could not be read (so later layers do not report them twice).
    pub(super) unreadable: Bits,
    /// CRC, hash, size and read findings.
    pub(super) found: Ranked,
    /// Each readable data script that is not a pure data call.
    pub(super) scripts: Ranked,
}

/// What the threads add to as they go.
struct Shared {
    unreadable: Bits,
    found: Ranked,
    scripts: Ranked,
    /// Payload bytes, wide so that untrusted declared sizes cannot overflow it.
    payload_bytes: u128,
}

pub(super) fn hash_all(bag: &Bag<'_>, tags: &Tags, opts: &VerifyOptions) -> Hashed {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .max(1);
    opts.progress.event(Event::Phase { phase: Phase::Verifying, project_id: None });
    let total = AtomicU64::new(0);
    let shared = Mutex::new(Shared {
        unreadable: Bits::new(bag.kinds.len()),
        found: Ranked::default(),
        scripts: Ranked::default(),
        payload_bytes: 0,
    });
    let (tx, rx) = sync_channel::<(Entry, bool)>(threads * QUEUE_PER_THREAD);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| hash_jobs(bag, tags, opts, &rx, &total, &shared));
        }
        let mut overlapping = 0u128;
        for e in bag.reader.entries().map_while(Result::ok) {
            if !bag.is(e.index, PAYLOAD) {
                continue;
            }
            if bag.is(e.index, OVERLAPPING) {
                overlapping += e.size as u128;
                continue;
            }
            let script = bag.rel(&e.name).is_some_and(is_data_script);
            if tx.send((e, script)).is_err() {
                break;
            }
        }
        drop(tx);
        shared.lock().unwrap_or_else(|p| p.into_inner()).payload_bytes += overlapping;
    });
    let s = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    Hashed {
        bytes_hashed: total.into_inner(),
        payload_bytes: s.payload_bytes.min(u64::MAX as u128) as u64,
        unreadable: s.unreadable,
        found: s.found,
        scripts: s.scripts,
    }
}

/// One hashing thread: takes entries off the queue until it closes.
fn hash_jobs(
    bag: &Bag<'_>,
    tags: &Tags,
    opts: &VerifyOptions,
    rx: &Mutex<Receiver<(Entry, bool)>>,
    total: &AtomicU64,
    shared: &Mutex<Shared>,
) {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut pending = 0u64;
    let mut bytes = 0u128;
    loop {
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((entry, is_script)) = job else { break };
        let mut call = is_script.then(DataCall::default);
        let result = bag.reader.hash_entry_with(&entry, &mut buf, |chunk| {
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
        bytes += result.as_ref().map_or(entry.size, |d| d.size) as u128;
        // An unreadable script is the payload layer's finding, not the page's.
        let verdict = match (call, &result) {
            (Some(call), Ok(_)) => call.finish().err(),
            _ => None,
        };
        let (result, expected) = match tags.expected(entry.index) {
            Ok(expected) => (result, expected),
            Err(p) => (Err(p), None),
        };
        if result.as_ref().is_ok_and(|d| d.crc32 == entry.crc32 && expected.is_none_or(|e| e == d.sha256))
            && verdict.is_none()
        {
            continue;
        }
        let path = bag.rel(&entry.name).unwrap_or(&entry.name);
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = verdict {
            s.scripts.push_with(FindingKind::PageCodeDiffers, entry.index, || script_finding(path, &why));
        }
        compared(&mut s, &entry, path, &result, expected);
    }
    if pending > 0 {
        let sum = total.fetch_add(pending, Ordering::Relaxed) + pending;
        opts.progress.event(Event::Verified { bytes: sum });
    }
    shared.lock().unwrap_or_else(|p| p.into_inner()).payload_bytes += bytes;
}

/// Records what hashing `entry` found wrong: unreadable, or its CRC or hash differs.
fn compared(
    s: &mut Shared,
    entry: &Entry,
    path: &str,
    result: &Result<EntryDigest, EntryProblem>,
    expected: Option<[u8; 32]>,
) {
    let d = match result {
        Err(p) => {
            s.unreadable.set(entry.index);
            let f = unreadable(path, p);
            s.found.push_with(f.kind, entry.index, || f);
            return;
        }
        Ok(d) => d,
    };
    if d.crc32 != entry.crc32 {
        s.found.push_with(FindingKind::CrcMismatch, entry.index, || {
            Finding::new(FindingKind::CrcMismatch, path)
                .expected(format!("{:08x}", entry.crc32))
                .actual(format!("{:08x}", d.crc32))
        });
    }
    if let Some(sha) = expected.filter(|sha| *sha != d.sha256) {
        s.found.push_with(FindingKind::HashMismatch, entry.index, || {
            Finding::new(FindingKind::HashMismatch, path).expected(hex::encode(sha)).actual(hex::encode(d.sha256))
        });
    }
}

/// Reports every payload entry the manifest does not list, in directory order (reading back the
/// names of those it keeps only).
pub(super) fn unlisted(bag: &Bag<'_>, tags: &Tags, findings: &mut Findings) {
    for i in (0..bag.kinds.len()).filter(|&i| bag.is(i, PAYLOAD) && !tags.listed.get(i)) {
        findings.push_with(FindingKind::UnlistedPayloadFile, || {
            Finding::new(FindingKind::UnlistedPayloadFile, bag.path_of(i))
        });
    }
}
