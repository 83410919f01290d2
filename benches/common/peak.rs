//! A child process's peak memory: its own high-water mark (`VmHWM`, which starts afresh at
//! exec), sampled from `/proc/<pid>/status` until it exits. Shared by the benchmarks and the
//! tests (`tests/support.rs` includes this file), so both measure memory the same way.

use std::process::Child;
use std::time::Duration;

/// Waits for `child`, sampling its `VmHWM` every 5 ms; returns its exit code (-1 when killed by
/// a signal) and its peak resident memory in bytes.
pub fn wait_sampling_peak(child: &mut Child) -> (i32, u64) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
            if let Some(kb) = hwm {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
