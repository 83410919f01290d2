//! A child process's peak memory: the kernel's own account of its largest resident set
//! (`ru_maxrss` from `wait4`), read when it is reaped. Exact however short the child lives (a
//! sampler of `/proc/<pid>/status` misses a child that exits between two samples). Shared by the
//! benchmarks and the tests (`tests/support.rs` includes this file), so both measure memory the
//! same way.

use std::process::Child;

/// Waits for `child`; returns its exit code (-1 when killed by a signal) and its peak resident
/// memory in bytes. The child is reaped here: do not wait for it again.
pub fn wait_with_peak(child: &mut Child) -> (i32, u64) {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain FFI call with pointers to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4 for child {pid}: {err}");
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    // Linux reports ru_maxrss in kilobytes.
    (code, (usage.ru_maxrss as u64) * 1024)
}
