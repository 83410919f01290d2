//! Resuming a partial archive from its journal: replay the journal's whole lines, check each
//! journaled entry's local header against it (and, past the last checkpoint, its data's CRC-32
//! and SHA-256 too, since only checkpointed data is known to be on disk), stop at the first that
//! disagrees, cut the file and the journal there, and continue appending.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::DeflateDecoder;

use super::bagit::BAGIT_TXT_NAME;
use super::digest;
use super::index::EntryIndex;
use super::input::ReadAt;
use super::journal::{JournalLine, JournalReader, JournalWriter, WrittenEntry, JOURNAL_FORMAT};
use super::reader::RangeRead;
use super::writer::{check_bag_name, index_dir, journal_path, lock, BagWriter};
use super::zipconst::Compression;
use super::zipdir::parse_descriptor;
use super::zipdir::read_local_header;
use super::zipwrite::{local_header_len, DESCRIPTOR_LEN};
use super::Error;

impl BagWriter {
    /// Reopens the partial archive `partial` and its journal, written by [`BagWriter::create`]
    /// for the same `bag_name` and `fingerprint` (else [`Error::Resume`]), and continues it.
    /// Returns the writer and every payload entry the partial file holds intact (not forgotten),
    /// in file order. A torn last journal line is dropped; entries from the first one that
    /// disagrees with the file on are dropped too, and the file is cut after the last good one.
    pub fn resume(partial: &Path, bag_name: &str, fingerprint: &str) -> Result<(BagWriter, Vec<WrittenEntry>), Error> {
        let mut found = Vec::new();
        let writer = BagWriter::resume_each(partial, bag_name, fingerprint, |e| {
            found.push(e);
            Ok(())
        })?;
        Ok((writer, found))
    }

    /// Like [`BagWriter::resume`], but hands each entry kept to `each` as it is read back from
    /// the writer's index, in file order, instead of holding them all (a few hundred bytes an
    /// entry). An error from `each` stops the resume.
    pub fn resume_each(
        partial: &Path,
        bag_name: &str,
        fingerprint: &str,
        each: impl FnMut(WrittenEntry) -> std::io::Result<()>,
    ) -> Result<BagWriter, Error> {
        BagWriter::resume_shipped(partial, bag_name, fingerprint, 0, each)
    }

    /// Like [`BagWriter::resume_each`] for a partial archive shipped as it grew (see
    /// [`BagWriter::ship`]): its bytes before `trusted` were handed to the store and are no
    /// longer on disk (the file has holes there), so the entries there are taken from the
    /// journal as it says, unread. The file is never cut before `trusted`: if the journal ends
    /// before it, the resume is refused.
    pub fn resume_shipped(
        partial: &Path,
        bag_name: &str,
        fingerprint: &str,
        trusted: u64,
        mut each: impl FnMut(WrittenEntry) -> std::io::Result<()>,
    ) -> Result<BagWriter, Error> {
        check_bag_name(bag_name)?;
        let io = |source| Error::Io { path: partial.to_path_buf(), source };
        let file = crate::sidefile::open(partial, false).map_err(io)?;
        lock(&file, partial)?;
        let len = file.metadata().map_err(io)?.len();
        let jpath = journal_path(partial);
        let refuse = |reason: String| Error::Resume { path: partial.to_path_buf(), reason };
        let jio = |source| Error::Io { path: jpath.clone(), source };
        let mut jfile = match crate::sidefile::open(&jpath, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!("its journal {} is missing", jpath.display())));
            }
            Err(e) => return Err(jio(e)),
        };

        // Pass 1: the header, and where the last checkpoint is.
        let mut reader = JournalReader::new(jfile.try_clone().map_err(jio)?);
        let begin_len = match reader.next_line().map_err(jio)? {
            Some((JournalLine::Begin { format, bag, fingerprint: found }, _)) => {
                if format != JOURNAL_FORMAT {
                    return Err(refuse(format!("its journal is in format {format:?}, not {JOURNAL_FORMAT:?}")));
                }
                if bag != bag_name {
                    return Err(refuse(format!("it holds bag {bag:?}, not {bag_name:?}")));
                }
                if found != fingerprint {
                    return Err(refuse(format!(
                        "it was started for a different job (fingerprint {found:?}, this one is {fingerprint:?})"
                    )));
                }
                reader.valid_len()
            }
            _ => return Err(refuse(format!("its journal {} has no valid first line", jpath.display()))),
        };
        let mut last_checkpoint = begin_len;
        while let Some((line, start)) = reader.next_line().map_err(jio)? {
            if line == JournalLine::Checkpoint {
                last_checkpoint = start;
            }
        }

        // Pass 2: replay, checking every entry against the file.
        jfile.seek(SeekFrom::Start(0)).map_err(jio)?;
        let mut reader = JournalReader::new(jfile.try_clone().map_err(jio)?);
        reader.next_line().map_err(jio)?;
        let entries = EntryIndex::new(index_dir(partial));
        let mut replay = Replay { file: &file, len, bag_name, end: 0, trusted, entries, tags: Vec::new() };
        let cut = loop {
            let Some((line, start)) = reader.next_line().map_err(jio)? else {
                break reader.valid_len();
            };
            let ok = match &line {
                JournalLine::Begin { .. } => Err(Stop::Disagrees("a second begin line".to_string())),
                JournalLine::Add { .. } => match line.entry() {
                    Some((entry, tag)) => replay.add(entry, tag, start > last_checkpoint),
                    None => Err(Stop::Disagrees("a malformed add line".to_string())),
                },
                JournalLine::Forget { path } => replay.entries.remove(path).map(drop).map_err(Stop::Index),
                JournalLine::Checkpoint => Ok(()),
                JournalLine::Gap { end } => replay.gap(*end),
            };
            if let Err(stop) = ok {
                let why = match stop {
                    Stop::Disagrees(why) => why,
                    Stop::Index(source) => return Err(io(source)),
                };
                tracing::info!(partial = %partial.display(), "resuming before journal line at byte {start}: {why}");
                break start;
            }
        };

        let Replay { end, mut entries, tags, .. } = replay;
        let fresh = tags.is_empty();
        let (end, cut) = if fresh { (0, begin_len) } else { (end, cut) };
        if end < trusted {
            return Err(refuse(format!(
                "its journal ends at byte {end}, before byte {trusted}, which the store already holds and the \
                 local file no longer does"
            )));
        }
        file.set_len(end).map_err(io)?;
        let mut file = file;
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        jfile.set_len(cut).map_err(jio)?;
        jfile.seek(SeekFrom::Start(cut)).map_err(jio)?;
        let journal = JournalWriter::append(jfile, &jpath, cut);
        let mut writer = BagWriter::assemble(file, end, partial.to_path_buf(), bag_name, Some(journal));
        if fresh {
            writer.write_bagit()?;
        } else {
            for e in entries.live().map_err(io)? {
                each(e.map_err(io)?).map_err(io)?;
            }
            writer.entries = entries;
            writer.tags = tags;
        }
        writer.checkpoint()?;
        Ok(writer)
    }
}

/// Why replaying stops: the journal and the file disagree from here on (resume before this
/// line), or keeping the index of entries failed (give up, changing nothing).
enum Stop {
    Disagrees(String),
    Index(std::io::Error),
}

/// The state rebuilt from the journal so far.
struct Replay<'a> {
    file: &'a File,
    len: u64,
    bag_name: &'a str,
    /// Where the last good entry ends.
    end: u64,
    /// Entries before this offset are taken as the journal says (see `resume_shipped`).
    trusted: u64,
    entries: EntryIndex,
    tags: Vec<WrittenEntry>,
}

impl Replay<'_> {
    /// Skips a gap the journal records (see `JournalLine::Gap`).
    fn gap(&mut self, end: u64) -> Result<(), Stop> {
        if end < self.end || end > self.len {
            return Err(Stop::Disagrees(format!("a gap to byte {end} from byte {}", self.end)));
        }
        self.end = end;
        Ok(())
    }

    /// Takes one journaled entry once it checks out against the file.
    fn add(&mut self, e: WrittenEntry, tag: bool, deep: bool) -> Result<(), Stop> {
        if !tag && self.entries.get(&e.data_path).map_err(Stop::Index)?.is_some() {
            return Err(Stop::Disagrees(format!("data/{} journaled twice", e.data_path)));
        }
        self.end = self.check(&e, tag, deep).map_err(Stop::Disagrees)?;
        if tag {
            self.tags.push(e);
        } else {
            self.entries.insert(&e).map_err(Stop::Index)?;
        }
        Ok(())
    }

    /// Checks one journaled entry against the file (`deep`: its data too); returns where it ends.
    fn check(&self, e: &WrittenEntry, tag: bool, deep: bool) -> Result<u64, String> {
        let name = if tag {
            if e.data_path != BAGIT_TXT_NAME || !self.tags.is_empty() {
                return Err(format!("unexpected tag entry {:?}", e.data_path));
            }
            format!("{}/{}", self.bag_name, e.data_path)
        } else {
            if self.tags.is_empty() {
                return Err("payload before bagit.txt".into());
            }
            format!("{}/data/{}", self.bag_name, e.data_path)
        };
        if e.offset != self.end {
            return Err(format!("{name} at offset {} where {} was expected", e.offset, self.end));
        }
        if e.offset < self.trusted {
            let end = e.end(name.len());
            return if end <= self.len { Ok(end) } else { Err(format!("{name} runs past the end of the file")) };
        }
        let (local, data_offset) = read_local_header(self.file, e.offset, self.len)?;
        let (crc32, csize, size) = if e.descriptor { (0, 0, 0) } else { (e.crc32, e.compressed_size, e.size) };
        let agrees = local.raw_name == name.as_bytes()
            && local.flags & 0x9 == if e.descriptor { 0x8 } else { 0 }
            && local.compression == e.compression
            && local.crc32 == crc32
            && local.compressed_size == csize
            && local.size == size
            && data_offset == e.offset + local_header_len(name.len(), e.zip64);
        if !agrees {
            return Err(format!("the local header of {name} disagrees with the journal"));
        }
        let end = data_offset.checked_add(e.compressed_size).filter(|&end| end <= self.len);
        let mut end = end.ok_or_else(|| format!("the data of {name} runs past the end of the file"))?;
        if e.descriptor {
            let mut d = [0u8; DESCRIPTOR_LEN as usize];
            ReadAt::read_exact_at(self.file, &mut d, end)
                .map_err(|err| format!("the data descriptor of {name}: {err}"))?;
            if parse_descriptor(&d) != Some((e.crc32, e.compressed_size, e.size)) {
                return Err(format!("the data descriptor of {name} disagrees with the journal"));
            }
            end += DESCRIPTOR_LEN;
        }
        if deep {
            let (crc, sha, size) = data_digest(self.file, data_offset, e).map_err(|err| format!("{name}: {err}"))?;
            if (crc, sha, size) != (e.crc32, e.sha256, e.size) {
                return Err(format!("the data of {name} is not what the journal says"));
            }
        }
        Ok(end)
    }
}

/// CRC-32, SHA-256 and size of an entry's content read back from `file`.
fn data_digest(file: &File, data_offset: u64, e: &WrittenEntry) -> std::io::Result<(u32, [u8; 32], u64)> {
    let raw = RangeRead::new(file, data_offset, e.compressed_size);
    let mut buf = vec![0u8; 64 << 10];
    match e.compression {
        Compression::Stored => hash_stream(&mut { raw }, e.size, &mut buf),
        _ => hash_stream(&mut DeflateDecoder::new(raw), e.size, &mut buf),
    }
}

/// Hashes what `read` yields, failing once it goes past `declared` bytes (so a lying or hostile
/// deflate stream costs at most one buffer more). Returns CRC-32, SHA-256 and size.
pub(super) fn hash_stream(read: &mut dyn Read, declared: u64, buf: &mut [u8]) -> std::io::Result<(u32, [u8; 32], u64)> {
    let digest = digest::hash_reader(read, buf, |size, _| {
        if size > declared {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("more than the declared {declared} bytes"),
            ));
        }
        Ok(())
    })?;
    Ok((digest.crc32, digest.sha256, digest.size))
}
