//! Everything that differs by operating system, in one place: positioned reads and writes,
//! fsyncing a directory, the write-back hint, the path an open file was opened at, opening
//! without following a link, a file's identity and link count, a file's permission bits, the
//! free space of a file system, and SIGTERM.
//!
//! cvarchive builds on Unix (Linux and macOS); the Linux-only calls (`sync_file_range`,
//! `/proc/self/fd`) have a stated fallback for other Unixes. Other systems are refused at
//! compile time rather than built with untested branches.

#[cfg(not(unix))]
compile_error!("cvarchive builds on Unix (Linux, macOS) only: src/platform.rs has no other implementation");

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Reads exactly `buf.len()` bytes at `offset`, leaving the file's cursor alone.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// Reads some bytes at `offset`, returning how many, leaving the file's cursor alone.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.read_at(buf, offset)
}

/// Frees the disk blocks of `len` bytes of `file` from `offset`, keeping the file's size (the
/// range then reads as zeros): `fallocate(PUNCH_HOLE | KEEP_SIZE)` on Linux. Returns whether
/// the blocks were freed; elsewhere, or on a file system without holes, nothing changes.
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return Ok(false);
        };
        // SAFETY: fallocate on an open descriptor with in-range values; it touches no memory.
        let rc = unsafe {
            libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, n)
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            return Ok(false);
        }
        Err(e)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
        Ok(false)
    }
}

/// Writes all of `bytes` at `at`, leaving the file's cursor alone.
pub fn write_all_at(file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    file.write_all_at(bytes, at)
}

/// Fsyncs the directory holding `path`, so a file created, renamed or removed there stays so.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

/// Asks the OS to start writing back `len` bytes of `file` from `from`, without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux). Only a hint: elsewhere, and where the
/// call fails, nothing happens.
pub fn start_writeback(file: &File, from: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (from, len) = (from as libc::off64_t, len as libc::off64_t);
        // SAFETY: a plain syscall on a file descriptor we own, with no pointers.
        let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), from, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, from, len);
    }
}

/// The path an open file was opened at, where the OS tells (Linux: `/proc/self/fd`), so
/// errors can name it; `None` elsewhere.
pub fn opened_path(file: &File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// Makes `o` refuse to open a symbolic link (`O_NOFOLLOW`).
pub fn no_follow(o: &mut OpenOptions) {
    o.custom_flags(libc::O_NOFOLLOW);
}

/// Whether an open failed because [`no_follow`] met a link (`ELOOP`).
pub fn is_link_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// How many names (hard links) the file has.
pub fn link_count(meta: &Metadata) -> u64 {
    meta.nlink()
}

/// The file's identity on its machine: device and inode.
pub fn file_identity(meta: &Metadata) -> Option<(u64, u64)> {
    Some((meta.dev(), meta.ino()))
}

/// The file's permission bits (`0o777` and the like).
pub fn mode(meta: &Metadata) -> u32 {
    meta.permissions().mode()
}

/// A stream of the SIGTERMs this process receives (a service manager's or `kill`'s polite stop).
pub fn sigterm() -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
}

/// Bytes free to an unprivileged user on the file system holding `dir` (`statvfs`).
pub fn free_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}
