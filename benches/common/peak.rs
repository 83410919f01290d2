//! A child process's peak memory. Shared by the benchmarks and the tests (`tests/support.rs`
//! includes this file), so both measure memory the same way.
//!
//! Two readings, because neither alone is right: the kernel's `ru_maxrss` from `wait4` is exact
//! however short the child lives, but Linux carries the high-water mark of the memory the child
//! replaced at exec into it, and a spawned child (vfork, or fork) replaces its parent's: so
//! `ru_maxrss` is at least this process's own peak (an emulator of 100,000 images here reads as
//! 100 MiB for every command). The child's own `VmHWM`, sampled from `/proc/<pid>/status` every
//! 5 ms, starts afresh at exec but may miss the last moments. So: when `ru_maxrss` is above this
//! process's own peak, it is the child's; otherwise the sampled `VmHWM` is.

use std::process::Child;
use std::time::Duration;

/// `VmHWM` of `/proc/<pid>/status` (or `self`), in bytes, if it can be read.
fn vm_hwm(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Waits for `child`; returns its exit code (-1 when killed by a signal) and its peak resident
/// memory in bytes. The child is reaped here: do not wait for it again.
pub fn wait_with_peak(child: &mut Child) -> (i32, u64) {
    let pid = child.id() as libc::pid_t;
    let pid_text = pid.to_string();
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut sampled = 0u64;
    loop {
        // Sampled before each check, so the child (not yet reaped) is still there to read.
        sampled = sampled.max(vm_hwm(&pid_text).unwrap_or(0));
        // SAFETY: plain FFI call with pointers to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r == 0 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4 for child {pid}: {err}");
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    // Linux reports ru_maxrss in kilobytes.
    let maxrss = (usage.ru_maxrss as u64) * 1024;
    let inherited = vm_hwm("self").unwrap_or(u64::MAX);
    let peak = if maxrss > inherited || sampled == 0 { maxrss } else { sampled };
    (code, peak)
}
