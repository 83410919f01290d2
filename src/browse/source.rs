//! Existing archives: [`ArchiveSource`] reads a bag's data files through a
//! [`BagReader`](crate::archive::BagReader) (bounded by [`crate::archive::data`]'s limits: JSON
//! files up to a size, JSONL line by line with each line capped), and [`materialize`] lays an archive out in a folder as unzipping would, writing only
//! entries with plain names inside the bag's `data/`, and renders the page when the archive has
//! none (archives written before the page existed).

use std::cell::RefCell;
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::{render, DataSource, Error, RenderSummary, INDEX_HTML};
use crate::archive::data::{read_line, LineRead, MAX_JSON_BYTES, MAX_LINE_BYTES};
use crate::archive::{reader, BagReader};
use crate::store::Location;

/// A [`DataSource`] over an archive's bag. Problems met while reading are kept, not fatal.
#[derive(Debug)]
pub struct ArchiveSource<'a> {
    reader: &'a BagReader,
    problems: RefCell<Vec<String>>,
}

impl<'a> ArchiveSource<'a> {
    /// Reads the bag of `reader`.
    pub fn new(reader: &'a BagReader) -> ArchiveSource<'a> {
        ArchiveSource { reader, problems: RefCell::new(Vec::new()) }
    }

    /// Entries that could not be read, with why.
    pub fn problems(&self) -> Vec<String> {
        self.problems.borrow().clone()
    }

    /// The entry `data/<path>`; a directory that cannot be read back is noted like a bad entry.
    fn entry(&self, path: &str) -> Option<crate::archive::Entry> {
        self.reader
            .bag_entry(&format!("data/{path}"))
            .map_err(|e| self.note(path, crate::text::error_chain(&e)))
            .ok()?
    }

    fn note(&self, path: &str, problem: impl std::fmt::Display) {
        self.problems.borrow_mut().push(format!("data/{path}: {problem}"));
    }
}

impl DataSource for ArchiveSource<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let entry = self.entry(path)?;
        self.reader.read_entry(&entry, MAX_JSON_BYTES).map_err(|e| self.note(path, e)).ok()
    }

    fn lines(&self, path: &str) -> Option<Box<dyn Iterator<Item = Vec<u8>> + '_>> {
        let entry = self.entry(path)?;
        let read = self.reader.open_entry(&entry).map_err(|e| self.note(path, e)).ok()?;
        let mut input = BufReader::with_capacity(64 << 10, read);
        let mut failed = false;
        let path = path.to_owned();
        Some(Box::new(std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let mut line = Vec::new();
            // A line over the cap is handed on empty, and so counted unreadable.
            match read_line(&mut input, &mut line, MAX_LINE_BYTES) {
                Ok(LineRead::End) => None,
                Ok(_) => Some(line),
                Err(e) => {
                    failed = true;
                    self.note(&path, reader::entry_problem(e));
                    None
                }
            }
        })))
    }
}

/// Lays out the archive at `archive` (local, or a [`Location`] in a store) under `dir` as
/// unzipping it would (`dir/<bag>/data/...`): every payload entry whose name is plain
/// (`[A-Za-z0-9._-]` parts, none starting with `.`) is written, streamed and held to its declared
/// size; tag files and anything else are not. When the archive holds no `data/index.html`, the
/// page is rendered from the archive into the same folder. Returns the page's path and, when it
/// was rendered here, what the render produced.
pub fn materialize(archive: impl Into<Location>, dir: &Path) -> Result<(PathBuf, Option<RenderSummary>), Error> {
    let reader = BagReader::open_location(&archive.into())?;
    let archive = reader.path();
    let bag = reader.bag_name().ok_or_else(|| Error::NoBag(archive.to_path_buf()))?.to_owned();
    let data_dir = dir.join(&bag).join("data");
    let prefix = format!("{bag}/data/");
    let mut buf = vec![0u8; 256 << 10];
    for entry in reader.entries() {
        let entry = entry?;
        let Some(rel) = entry.name.strip_prefix(&prefix) else { continue };
        if entry.is_dir() || !plain_relative(rel) {
            continue;
        }
        let target = data_dir.join(rel);
        let entry_error = |problem| Error::Entry { archive: archive.to_path_buf(), entry: entry.name.clone(), problem };
        let mut input = reader.open_entry(&entry).map_err(entry_error)?;
        let write_error = |source| Error::Write { path: target.clone(), source };
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        // create_new: a duplicate entry name never overwrites what an earlier one wrote.
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&target).map_err(write_error)?;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(entry_error(reader::entry_problem(e))),
            };
            file.write_all(&buf[..n]).map_err(write_error)?;
        }
    }
    let index = data_dir.join(INDEX_HTML);
    if reader.bag_entry(&format!("data/{INDEX_HTML}"))?.is_some() {
        return Ok((index, None));
    }
    let source = ArchiveSource::new(&reader);
    let summary = render(&source, &mut |path: &str, bytes: Vec<u8>| write_rendered(&data_dir, path, &bytes))?;
    Ok((index, Some(summary)))
}

fn write_rendered(data_dir: &Path, path: &str, bytes: &[u8]) -> Result<(), Error> {
    let target = data_dir.join(path);
    let write_error = |source| Error::Write { path: target.clone(), source };
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(write_error)?;
    }
    fs::write(&target, bytes).map_err(write_error)
}

/// Whether `rel` is a plain relative path: parts of `[A-Za-z0-9._-]`, none empty or starting
/// with `.`, at most 16 deep.
fn plain_relative(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    parts.len() <= 16
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.len() <= 255
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::EntryProblem;

    #[test]
    fn only_plain_paths_are_written() {
        assert!(plain_relative("projects/a-b/images/x.jpg"));
        for bad in ["../x", "a/../b", "/abs", "a//b", ".hidden", "a/.b", "a\\b", "c:x", "é"] {
            assert!(!plain_relative(bad), "{bad}");
        }
    }

    #[test]
    fn entry_problems_name_the_cause() {
        let e = Error::Entry { archive: "a.zip".into(), entry: "bag/data/x".into(), problem: EntryProblem::Encrypted };
        assert_eq!(e.to_string(), "a.zip: entry bag/data/x: encrypted entry");
    }
}
