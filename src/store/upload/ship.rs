//! The shipping thread: waits for each part of the spool file to be written, maps it, hashes
//! it, hands it to the store ([`super::IN_FLIGHT`] at once), records each accepted part in
//! order, punches accepted bytes out of the spool file, and commits the parts once the archive
//! is complete.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::PutPayload;

use super::{part_bounds, part_of, Line, Log, ResumableSha256, Shared, Shipped, UploadStats, IN_FLIGHT};
use crate::store::{runtime, Error, RemoteUrl, Store};

/// Bytes of parts in flight at most (at least one part): the parts are mapped from the spool
/// file, and their pages count in the process's memory while they are sent.
const IN_FLIGHT_BYTES: u64 = 64 << 20;

/// How many parts of `size` bytes go at once: [`IN_FLIGHT`] small ones, fewer large ones.
fn in_flight(size: u64) -> usize {
    usize::try_from(IN_FLIGHT_BYTES / size.max(1)).unwrap_or(usize::MAX).clamp(1, IN_FLIGHT)
}

/// How long the thread sleeps when no part is ready and none has come back.
const POLL: Duration = Duration::from_millis(20);

type Sending = tokio::task::JoinHandle<Result<PartId, object_store::Error>>;

/// The shipping thread's state. See the module docs.
pub(super) struct Shipper {
    pub store: Arc<dyn Store>,
    pub url: RemoteUrl,
    pub upload_id: String,
    pub shared: Arc<Shared>,
    pub file: File,
    pub log: Log,
    /// Accepted parts, in order.
    pub parts: Vec<PartId>,
    /// The archive's hash up to the next part to send.
    pub sha: ResumableSha256,
    pub stats: UploadStats,
    /// Bytes after the last journaled entry's part punched out up to here (finishing only).
    pub punched_tail: u64,
}

/// What the next step is.
enum Next {
    /// Send the part `[start, end)`.
    Send(u64, u64),
    /// Every part is sent; the archive is `len` bytes.
    Done(u64),
    /// Nothing is ready yet.
    Wait,
    /// The export stopped.
    Abandoned,
}

impl Shipper {
    pub fn run(mut self) -> Result<Shipped, Error> {
        // Should shipping panic, the writer waiting on it is told instead of waiting forever.
        struct Told(Arc<Shared>);
        impl Drop for Told {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().failed.get_or_insert_with(|| "the upload thread panicked".into());
                    self.0.changed.notify_all();
                }
            }
        }
        let _told = Told(Arc::clone(&self.shared));
        let result = self.ship();
        if let Err(e) = &result {
            let mut st = self.shared.lock();
            st.failed.get_or_insert_with(|| e.to_string());
            self.shared.changed.notify_all();
        }
        result
    }

    fn ship(&mut self) -> Result<Shipped, Error> {
        let mut sending: VecDeque<(u64, String, Sending)> = VecDeque::new();
        let mut next = self.parts.len() as u64;
        loop {
            let limit = in_flight(part_bounds(self.shared.base, next).1);
            while sending.front().is_some_and(|(_, _, h)| h.is_finished()) || sending.len() >= limit {
                let (index, sha, handle) = sending.pop_front().expect("one is there");
                self.accept(index, sha, handle)?;
            }
            match self.next(next) {
                Next::Send(start, end) => {
                    let (sha, handle) = self.send(next, start, end)?;
                    sending.push_back((next, sha, handle));
                    next += 1;
                }
                Next::Wait => std::thread::sleep(if sending.is_empty() { POLL } else { POLL / 4 }),
                Next::Done(len) => {
                    while let Some((index, sha, handle)) = sending.pop_front() {
                        self.accept(index, sha, handle)?;
                    }
                    return self.commit(len);
                }
                Next::Abandoned => {
                    while let Some((index, sha, handle)) = sending.pop_front() {
                        self.accept(index, sha, handle)?;
                    }
                    return Err(Error::Store { url: self.url.to_string(), detail: "the upload was stopped".into() });
                }
            }
        }
    }

    fn next(&self, next: u64) -> Next {
        let base = self.shared.base;
        let (start, size) = part_bounds(base, next);
        let mut st = self.shared.lock();
        loop {
            if st.abandoned {
                return Next::Abandoned;
            }
            match st.done {
                Some(len) if start >= len => return Next::Done(len),
                Some(len) if st.written >= len => return Next::Send(start, (start + size).min(len)),
                _ if st.written >= start + size => return Next::Send(start, start + size),
                _ => {}
            }
            let (guard, timeout) =
                self.shared.changed.wait_timeout(st, POLL).unwrap_or_else(std::sync::PoisonError::into_inner);
            st = guard;
            if timeout.timed_out() {
                return Next::Wait;
            }
        }
    }

    /// Maps, hashes and starts sending part `index`; returns the hash state after it.
    fn send(&mut self, index: u64, start: u64, end: u64) -> Result<(String, Sending), Error> {
        let io = |e: std::io::Error| Error::Store { url: self.url.to_string(), detail: format!("the spool file: {e}") };
        // SAFETY: the mapped range is written and never changed again: the writer writes the
        // spool file strictly forward, and a resume cuts it only before any part in flight.
        let map = unsafe { memmap2::MmapOptions::new().offset(start).len((end - start) as usize).map(&self.file) }
            .map_err(io)?;
        self.sha.update(&map);
        let sha = self.sha.to_hex().unwrap_or_default();
        let payload = PutPayload::from(Bytes::from_owner(map));
        let (store, path, id) = (Arc::clone(&self.store), self.url.object_path(), self.upload_id.clone());
        let index_usize = usize::try_from(index).expect("part numbers fit");
        let handle = runtime::handle().spawn(async move { store.put_part(&path, &id, index_usize, payload).await });
        Ok((sha, handle))
    }

    /// Waits for part `index` to come back; records it, or fails the upload.
    fn accept(&mut self, index: u64, sha: String, handle: Sending) -> Result<(), Error> {
        let part = match runtime::wait(handle) {
            Ok(Ok(part)) => part,
            Ok(Err(e)) => return Err(Error::from_store(&self.url, &e)),
            Err(e) => return Err(Error::Store { url: self.url.to_string(), detail: format!("sending a part: {e}") }),
        };
        let url = self.url.to_string();
        let io = |e: std::io::Error| Error::Store { url: url.clone(), detail: format!("the upload record: {e}") };
        self.log.append(&Line::Part { index, id: part.content_id.clone(), sha }).map_err(io)?;
        self.parts.push(part);
        self.stats.sent += 1;
        let (start, size) = part_bounds(self.shared.base, index);
        let (journaled, finishing) = {
            let mut st = self.shared.lock();
            st.accepted = start + size;
            self.shared.changed.notify_all();
            (st.journaled, st.finishing)
        };
        self.punch(start + size, journaled, finishing).map_err(io)
    }

    /// Frees what the store holds and no resume can need: bytes before the part of the last
    /// journaled entry; while finishing, also the bytes after that part (a resume rewrites
    /// them). The record says how far the first kind went before the bytes go.
    fn punch(&mut self, accepted: u64, journaled: u64, finishing: bool) -> std::io::Result<()> {
        let base = self.shared.base;
        let (keep_start, keep_size) = part_bounds(base, part_of(base, journaled));
        let to = accepted.min(keep_start);
        if to > self.log.punched {
            self.log.append(&Line::Punched { to })?;
            self.log.sync()?;
            crate::platform::punch_hole(&self.file, self.log.punched, to - self.log.punched)?;
            self.log.punched = to;
        } else {
            self.log.sync()?;
        }
        if finishing {
            let from = (keep_start + keep_size).max(self.punched_tail);
            if accepted > from {
                crate::platform::punch_hole(&self.file, from, accepted - from)?;
                self.punched_tail = accepted;
            }
        }
        Ok(())
    }

    fn commit(&mut self, len: u64) -> Result<Shipped, Error> {
        let (store, path, id, parts) =
            (Arc::clone(&self.store), self.url.object_path(), self.upload_id.clone(), self.parts.clone());
        runtime::wait(async move { store.complete_multipart(&path, &id, parts).await })
            .map_err(|e| Error::from_store(&self.url, &e))?;
        self.stats.parts = self.parts.len() as u64;
        let sha = std::mem::take(&mut self.sha);
        Ok(Shipped { sha256: sha.finish(), bytes: len, stats: self.stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_parts_go_fewer_at_once() {
        assert_eq!(in_flight(8 << 20), IN_FLIGHT);
        assert_eq!(in_flight(32 << 20), 2);
        assert_eq!(in_flight(2 << 30), 1);
    }
}
