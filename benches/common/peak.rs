//! A child process's peak memory: its own high-water mark (`VmHWM`, which starts afresh at
//! exec), sampled from `/proc/<pid>/status` every millisecond until it exits. Shared by the
//! benchmarks and the tests (`tests/support.rs` includes this file), so both measure memory the
//! same way.
//!
//! Not `ru_maxrss` from `wait4`: exec folds the pre-exec address space's high-water mark into it,
//! and before exec a spawned child shares (or copies) the parent's, so a big test process would
//! be charged to a small child. For the same reason samples taken before the exec (the child
//! still carries the parent's name) are skipped. A child that exits within a millisecond may
//! leave no sample: 0 then means "too short to measure", which callers accept as small.

use std::process::Child;
use std::time::Duration;

/// Waits for `child`, sampling its `VmHWM` every millisecond; returns its exit code (-1 when
/// killed by a signal) and its peak resident memory in bytes (0 when it exited before a sample).
pub fn wait_with_peak(child: &mut Child) -> (i32, u64) {
    let status_path = format!("/proc/{}/status", child.id());
    let parent_name = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
    let parent_name = parent_name.trim_end();
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
            let execed = field("Name:").is_some_and(|name| name != parent_name);
            let hwm = field("VmHWM:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
            if let (true, Some(kb)) = (execed, hwm) {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
