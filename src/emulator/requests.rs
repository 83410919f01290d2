//! The request log: what the emulator served, in order, for tests to assert on.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// How many requests the log keeps; older ones are forgotten, so a long-running emulator
/// does not grow without bound.
pub const MAX_RECORDED: usize = 200_000;

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `DELETE`, ...
    pub method: String,
    /// Path and query, with signatures and keys redacted.
    pub path: String,
    /// The operation, named like the spec's operationId (`GetTaggedImages`), or `Blob`,
    /// `NotFound`.
    pub operation: String,
    /// The status answered.
    pub status: u16,
    /// Whether it changed account data.
    pub mutating: bool,
    /// Whether the request carried a `Training-Key` header (right or wrong).
    pub had_training_key: bool,
    /// When the request arrived (benchmarks time phases of an export from these).
    pub received: Instant,
    /// The `Content-Length` of the answer (0 when it had none): what the client downloaded.
    pub response_bytes: u64,
}

/// The bounded, ordered log shared by the server and the handle.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    /// Appends one request, dropping the oldest beyond [`MAX_RECORDED`].
    pub fn push(&self, entry: RecordedRequest) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == MAX_RECORDED {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Every entry, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
