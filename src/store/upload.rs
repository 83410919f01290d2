//! Uploading an archive to a store while it is written: the archive writer writes a local spool
//! file strictly forward (see `archive::BagWriter::ship`), and this module ships it part by part
//! (Azure: blocks; S3: multipart parts) as it grows, then commits the parts as one object. A
//! half-written archive is never visible at the final name: uncommitted blocks and parts are
//! invisible until the commit.
//!
//! **Parts.** Part `i` is `base << min(i / 1000, 8)` bytes: 1,000 parts of the base size (8 MiB
//! by default), then 1,000 of twice that, and so on up to 256 times the base (2 GiB). S3 takes
//! at most 10,000 parts, which then hold 6 TiB (S3's largest object is 5 TiB); Azure takes
//! 50,000 blocks. The schedule depends on the part's number alone, so a resumed upload cuts the
//! file exactly as the first run did.
//!
//! **Local disk.** Once a part is accepted by the store its bytes are punched out of the spool
//! file (`fallocate(PUNCH_HOLE)` on Linux; elsewhere the file keeps them), except the part that
//! holds the last journaled entry, which a resume may need to re-send. The writer waits when it
//! is more than [`IN_FLIGHT`] + 1 parts ahead of what the store has accepted. The spool file
//! therefore holds at most about `IN_FLIGHT + 2` parts (48 MiB with 8 MiB parts), plus the entry
//! being written when the journal is behind it (a project's listing, at most a few MB).
//!
//! **Memory.** A part is mapped from the spool file, not copied: the mapping's pages are the
//! page cache's, which the kernel can reclaim. They count in the process's resident memory while
//! the part is sent, so parts go four at a time only while they are small: at most 64 MiB of
//! parts are in flight, or one part when a part is larger (up to 2 GiB for a multi-terabyte
//! archive).
//!
//! **Resuming.** Each accepted part is recorded in `<spool>.upload` (JSON lines: the upload's
//! id, each part's id and the SHA-256 state after it, and how far the file was punched). After
//! `kill -9` or a lost network, the same command resumes the archive from its journal and keeps
//! every accepted part below the point where the writer resumes; only parts that were in flight,
//! or that lie after that point, are sent again. The archive's SHA-256 is carried across runs in
//! the same records. Azure keeps uncommitted blocks for 7 days, S3 keeps an incomplete multipart
//! upload until it is aborted (a bucket lifecycle rule can abort old ones).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use object_store::multipart::PartId;
use serde::{Deserialize, Serialize};

use super::{runtime, Error, RemoteUrl, Store};

mod sha;

pub use sha::ResumableSha256;

/// Parts uploaded at once.
pub const IN_FLIGHT: usize = 4;
/// The first parts' size by default.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// The smallest part S3 takes (all but the last part).
pub const S3_MIN_PART: u64 = 5 << 20;
/// Parts of each size before the size doubles.
const PARTS_PER_STEP: u64 = 1000;
/// How many times the size doubles at most.
const MAX_STEPS: u64 = 8;

/// Where part `i` starts, and how long it is, for parts of `base` bytes first.
pub fn part_bounds(base: u64, i: u64) -> (u64, u64) {
    let step = (i / PARTS_PER_STEP).min(MAX_STEPS);
    let (base, i, step_wide) = (u128::from(base), u128::from(i), u128::from(step));
    let full_steps_bytes = u128::from(PARTS_PER_STEP) * base * ((1u128 << step_wide) - 1);
    let start = full_steps_bytes + (i - step_wide * u128::from(PARTS_PER_STEP)) * (base << step_wide);
    let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    (clamp(start), clamp(base << step_wide))
}

/// The part that holds byte `offset`.
pub fn part_of(base: u64, offset: u64) -> u64 {
    let (mut lo, mut hi) = (0u64, 1u64 << 48);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if part_bounds(base, mid).0 <= offset {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// `<partial>.upload`: the record of an upload's accepted parts.
pub fn record_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".upload");
    PathBuf::from(name)
}

/// One line of the upload record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "op")]
enum Line {
    /// The upload: where to, its id at the store, the first parts' size.
    Begin { url: String, upload_id: String, part_size: u64 },
    /// Part `index` was accepted with `id`; `sha` is the archive's SHA-256 state after it.
    Part { index: u64, id: String, sha: String },
    /// The spool file's bytes before `to` were punched out.
    Punched { to: u64 },
}

/// What an earlier run left: read before the writer resumes, since the writer must not read
/// the bytes that are no longer on disk.
#[derive(Debug, Default)]
pub struct Record {
    upload_id: String,
    part_size: u64,
    parts: Vec<(u64, String, String)>,
    punched: u64,
}

impl Record {
    /// Reads `<partial>.upload` for an upload to `url`: `None` when there is none, or it is for
    /// another address (then a fresh upload starts). A torn last line is ignored.
    pub fn load(partial: &Path, url: &RemoteUrl) -> std::io::Result<Option<Record>> {
        let text = match std::fs::read_to_string(record_path(partial)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut record: Option<Record> = None;
        for line in text.lines() {
            let Ok(line) = serde_json::from_str::<Line>(line) else { break };
            match (line, &mut record) {
                (Line::Begin { url: u, upload_id, part_size }, None) if u == url.to_string() => {
                    record = Some(Record { upload_id, part_size, ..Record::default() });
                }
                (Line::Part { index, id, sha }, Some(r)) => r.parts.push((index, id, sha)),
                (Line::Punched { to }, Some(r)) => r.punched = r.punched.max(to),
                _ => return Ok(None),
            }
        }
        Ok(record)
    }

    /// Where the spool file's bytes are gone up to: the writer must take the entries before this
    /// from its journal, unread.
    pub fn trusted(&self) -> u64 {
        self.punched
    }
}

/// How an upload went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadStats {
    /// Parts the committed object is made of.
    pub parts: u64,
    /// Parts this run sent (retries by the HTTP client not counted).
    pub sent: u64,
    /// Parts kept from an interrupted run, not sent again.
    pub kept: u64,
    /// Parts an interrupted run had sent that were sent again (they lay after the point the
    /// archive resumed from).
    pub resent: u64,
}

/// What a finished upload gives.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// The archive's SHA-256.
    pub sha256: [u8; 32],
    /// Its size.
    pub bytes: u64,
    /// How the upload went.
    pub stats: UploadStats,
}

/// Watches an archive file that is shipped (to a store) as it is written: told what reached the
/// file, and what the journal describes, so it knows what it may ship and what a resume needs
/// kept. See the module docs.
pub trait Watcher: Send + Sync {
    /// The file now holds `flushed` bytes. May block (the shipping is behind); an error stops
    /// the writer (the shipping failed).
    fn written(&self, flushed: u64) -> std::io::Result<()>;
    /// The journal's lines now describe every entry up to `end`: a resume starts there or later.
    fn journaled(&self, end: u64);
    /// No journal line follows: the rest (tag files, the directory) is rewritten by a resume.
    fn finishing(&self);
}

/// Shared between the writer (through [`Watcher`]) and the shipping thread.
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    base: u64,
}

#[derive(Default)]
struct State {
    /// Bytes in the spool file.
    written: u64,
    /// Entries up to here are journaled.
    journaled: u64,
    /// The writer writes no more journal lines.
    finishing: bool,
    /// The archive's final length, once written.
    done: Option<u64>,
    /// Contiguous accepted parts end here.
    accepted: u64,
    /// Why shipping stopped, if it did.
    failed: Option<String>,
    /// Stop shipping (the export stopped).
    abandoned: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Watcher for Shared {
    fn written(&self, flushed: u64) -> std::io::Result<()> {
        let mut st = self.lock();
        st.written = st.written.max(flushed);
        self.changed.notify_all();
        loop {
            if let Some(why) = &st.failed {
                return Err(std::io::Error::other(format!("uploading it failed: {why}")));
            }
            let (_, size) = part_bounds(self.base, part_of(self.base, st.accepted));
            if flushed <= st.accepted + size * (IN_FLIGHT as u64 + 1) || st.abandoned {
                return Ok(());
            }
            st = self.changed.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn journaled(&self, end: u64) {
        let mut st = self.lock();
        st.journaled = st.journaled.max(end);
        self.changed.notify_all();
    }

    fn finishing(&self) {
        self.lock().finishing = true;
        self.changed.notify_all();
    }
}

/// An upload in progress: a thread ships the spool file's parts as the writer fills it.
pub struct Upload {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<Result<Shipped, Error>>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("base", &self.shared.base).finish_non_exhaustive()
    }
}

/// Where the upload goes and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// The archive's address.
    pub url: RemoteUrl,
    /// The first parts' size.
    pub part_size: u64,
}

impl Upload {
    /// Starts shipping the spool file `partial`, whose writer resumed (or started) at byte
    /// `resumed_at`, continuing `record` when an earlier run left one (see [`Record::load`]).
    /// Returns the upload; hand [`Upload::watcher`] to the writer.
    pub fn start(
        store: Arc<dyn Store>,
        target: &Target,
        partial: &Path,
        record: Option<Record>,
        resumed_at: u64,
    ) -> Result<Upload, Error> {
        let url = &target.url;
        let io =
            |e: std::io::Error| Error::Store { url: url.to_string(), detail: format!("{}: {e}", partial.display()) };
        let (upload_id, base, kept, resent, sha, log) = match record {
            Some(r) => {
                let base = r.part_size;
                let keep_below = part_of(base, resumed_at);
                let mut parts: Vec<(u64, String, String)> = r.parts;
                parts.sort_by_key(|p| p.0);
                parts.dedup_by_key(|p| p.0);
                let total = parts.len() as u64;
                let mut kept = Vec::new();
                for (index, id, sha) in parts {
                    if index != kept.len() as u64 || index >= keep_below {
                        break;
                    }
                    kept.push((PartId { content_id: id }, sha));
                }
                let sha = match kept.last() {
                    Some((_, s)) => ResumableSha256::from_hex(s).ok_or_else(|| io(bad_record("a part's hash")))?,
                    None => ResumableSha256::new(),
                };
                let resent = total - kept.len() as u64;
                if part_bounds(base, kept.len() as u64).0 < r.punched {
                    // Only a record torn by a power loss can say so: the parts to send again
                    // are gone from the spool file.
                    return Err(Error::Store {
                        url: url.to_string(),
                        detail: format!(
                            "the upload record of {} and its spool file disagree; run again with --fresh to start over",
                            partial.display()
                        ),
                    });
                }
                // Rewrite the record with what is kept (a new file renamed over the old one), so a
                // later resume reads only that.
                let mut lines = vec![
                    Line::Begin { url: url.to_string(), upload_id: r.upload_id.clone(), part_size: base },
                    Line::Punched { to: r.punched },
                ];
                for (i, (id, sha)) in kept.iter().enumerate() {
                    lines.push(Line::Part { index: i as u64, id: id.content_id.clone(), sha: sha.clone() });
                }
                let mut log = Log::replace(partial, &lines).map_err(io)?;
                log.punched = r.punched;
                (r.upload_id, base, kept.into_iter().map(|k| k.0).collect::<Vec<_>>(), resent, sha, log)
            }
            None => {
                let (s, path) = (Arc::clone(&store), url.object_path());
                let id = runtime::wait(async move { s.create_multipart(&path).await })
                    .map_err(|e| Error::from_store(url, &e))?;
                let base = target.part_size;
                let begin = Line::Begin { url: url.to_string(), upload_id: id.clone(), part_size: base };
                let log = Log::replace(partial, &[begin]).map_err(io)?;
                (id, base, Vec::new(), 0, ResumableSha256::new(), log)
            }
        };
        let first = kept.len() as u64;
        let accepted = part_bounds(base, first).0;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { written: resumed_at, journaled: resumed_at, accepted, ..State::default() }),
            changed: Condvar::new(),
            base,
        });
        // Written to only by punching holes into what the store already holds.
        let file = std::fs::OpenOptions::new().read(true).write(true).open(partial).map_err(io)?;
        let shipper = Shipper {
            store,
            url: url.clone(),
            upload_id,
            shared: Arc::clone(&shared),
            file,
            log,
            parts: kept,
            sha,
            stats: UploadStats { kept: first, resent, ..UploadStats::default() },
            punched_tail: 0,
        };
        let thread =
            std::thread::Builder::new().name("archive-upload".into()).spawn(move || shipper.run()).map_err(io)?;
        Ok(Upload { shared, thread: Some(thread) })
    }

    /// What the writer tells of its progress.
    pub fn watcher(&self) -> Arc<dyn Watcher> {
        Arc::clone(&self.shared) as Arc<dyn Watcher>
    }

    /// The archive is complete at `len` bytes: ships the rest, commits the parts as one object,
    /// and returns its hash and how the upload went. Blocking.
    pub fn finish(mut self, len: u64) -> Result<Shipped, Error> {
        {
            let mut st = self.shared.lock();
            st.written = st.written.max(len);
            st.done = Some(len);
        }
        self.shared.changed.notify_all();
        self.join()
    }

    /// Stops shipping (the export stopped): parts in flight are awaited and recorded, so a
    /// resume keeps them. Blocking.
    pub fn abandon(mut self) {
        self.shared.lock().abandoned = true;
        self.shared.changed.notify_all();
        let _ = self.join();
    }

    fn join(&mut self) -> Result<Shipped, Error> {
        let thread = self.thread.take().expect("joined once");
        thread
            .join()
            .unwrap_or_else(|_| Err(Error::Store { url: String::new(), detail: "the upload thread panicked".into() }))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.lock().abandoned = true;
            self.shared.changed.notify_all();
            let _ = self.join();
        }
    }
}

fn bad_record(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("the upload record has a malformed {what}"))
}

/// The upload record, appended to and fsynced per part.
struct Log {
    file: File,
    /// Bytes before this are punched out of the spool file (and recorded so).
    punched: u64,
}

impl Log {
    /// A record holding `lines`, written to a new file and renamed over the old one, so a
    /// crash leaves either record whole.
    fn replace(partial: &Path, lines: &[Line]) -> std::io::Result<Log> {
        let path = record_path(partial);
        let mut fresh = path.clone().into_os_string();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let file = crate::sidefile::open(&fresh, true)?;
        file.set_len(0)?;
        let mut log = Log { file, punched: 0 };
        for line in lines {
            log.append(line)?;
        }
        log.sync()?;
        std::fs::rename(&fresh, &path)?;
        crate::platform::sync_parent(&path)?;
        Ok(log)
    }

    fn append(&mut self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        text.push(b'\n');
        self.file.write_all(&text)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

mod ship;
use ship::Shipper;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_double_every_thousand_and_hold_the_largest_archive() {
        let base = DEFAULT_PART_SIZE;
        assert_eq!(part_bounds(base, 0), (0, base));
        assert_eq!(part_bounds(base, 999), (999 * base, base));
        assert_eq!(part_bounds(base, 1000), (1000 * base, 2 * base));
        assert_eq!(part_bounds(base, 2000).0, 1000 * base + 2000 * base);
        // S3's 10,000 parts hold more than its largest object (5 TiB).
        let (start, size) = part_bounds(base, 9_999);
        assert!(start + size > 5 << 40, "{}", start + size);
        assert!(size <= 2 << 30);
        for offset in [0, 1, base - 1, base, 999 * base + 5, 1000 * base, 5 << 40] {
            let i = part_of(base, offset);
            let (s, n) = part_bounds(base, i);
            assert!(s <= offset && offset < s + n, "offset {offset}: part {i} is {s}+{n}");
        }
    }
}
