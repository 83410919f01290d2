//! Side files: the files cvarchive creates beside a path the user chose (`OUT.partial`, its
//! `.journal`, a restore report's `.tmp`, a receipt's `.pending` log, convert's output). Whoever
//! can write in that folder could plant a symbolic link there and have us overwrite the file it
//! points to, so every side file is opened without following a link (`O_NOFOLLOW` on Unix, with
//! `O_EXCL` when it must be new), and what was opened is checked to be a plain file with one
//! name before a byte of it is changed. Errors say only what is wrong; callers name the path.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::platform;

/// Creates `path`, which must not exist (not even as a dangling link), for reading and writing.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true);
    open_checked(path, &mut o)
}

/// Opens the existing side file `path` for reading and writing; with `create`, creates it when
/// it is missing. Nothing is truncated: the caller decides (after taking its lock, say).
pub fn open(path: &Path, create: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(create);
    open_checked(path, &mut o)
}

/// Opens `path` for appending, creating it when it is missing.
pub fn append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.append(true).create(true);
    open_checked(path, &mut o)
}

/// Writes `bytes` to a new file at `path` (which must not exist).
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use io::Write as _;
    create_new(path)?.write_all(bytes)
}

/// Removes a stale side file left by an interrupted run, refusing a link or anything else
/// that is not a plain file (a missing file is fine).
pub fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            plain(&meta)?;
            std::fs::remove_file(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether something (a file, a directory or a link, dangling or not) is at `path`.
pub fn occupied(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn open_checked(path: &Path, o: &mut OpenOptions) -> io::Result<File> {
    // The check before opening names the problem; O_NOFOLLOW closes the race after it.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        plain(&meta)?;
    }
    platform::no_follow(o);
    let file = o.open(path).map_err(|e| if platform::is_link_refusal(&e) { link_error() } else { e })?;
    plain(&file.metadata()?)?;
    Ok(file)
}

/// A plain file with one name: not a link, a folder, a device or a FIFO, and not a hard link
/// to a file elsewhere (whose other name we would be writing through).
fn plain(meta: &std::fs::Metadata) -> io::Result<()> {
    if meta.file_type().is_symlink() {
        return Err(link_error());
    }
    if !meta.is_file() {
        return Err(io::Error::other("refusing to write through something that is not a plain file"));
    }
    let links = platform::link_count(meta);
    if links > 1 {
        return Err(io::Error::other(format!(
            "refusing to write through a file with {links} hard links (it has other names)"
        )));
    }
    Ok(())
}

fn link_error() -> io::Error {
    io::Error::other("refusing to write through a symbolic link (someone may have planted it there)")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_and_their_targets_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("side");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for result in [open(&link, true).map(drop), create_new(&link).map(drop), append(&link).map(drop)] {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        assert!(remove_stale(&link).unwrap_err().to_string().contains("symbolic link"));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(open(&dangling, true).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn hard_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let side = dir.path().join("side");
        std::fs::hard_link(&victim, &side).unwrap();
        assert!(open(&side, false).unwrap_err().to_string().contains("hard links"));
        let fresh = dir.path().join("fresh");
        open(&fresh, true).unwrap();
        open(&fresh, false).unwrap();
    }
}
