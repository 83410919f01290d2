//! The zip directory of an untrusted file, read by hand: the end records (ZIP64 too), the central
//! directory with every entry as it is (duplicates and hostile names kept, for verify to report),
//! and, when the end of the file is gone, a recovery scan of local headers from the start.
//! Nothing here allocates by a size the file declares, beyond fixed caps.

use super::zipconst::{
    Compression, CENTRAL_SIG, EOCD_SIG, LOCAL_HEADER_LEN, LOCAL_SIG, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG,
};

/// The most entries we read; a bag with more is refused as a whole. An entry costs a reader
/// 16 bytes of memory (its record's offset here, its name's key in the reader's index), so this
/// many cost 1 GiB; ten million images make about ten million entries.
pub const MAX_ENTRIES: u64 = 1 << 26;

const CENTRAL_HEADER_LEN: usize = 46;
const EOCD_LEN: usize = 22;
const CD_READ_CHUNK: usize = 1 << 20;
/// The most a central header can take: the fixed part and three fields of up to 64 KiB.
const MAX_CENTRAL_RECORD: usize = CENTRAL_HEADER_LEN + 3 * 0xFFFF;

/// One entry as the directory (or the recovery scan) declares it. Nothing here is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the directory, from 0.
    pub index: usize,
    /// The name, UTF-8 (invalid bytes replaced).
    pub name: String,
    /// The name's raw bytes, to compare with the local header.
    pub raw_name: Vec<u8>,
    /// Compression method.
    pub compression: Compression,
    /// General-purpose flags (bit 0: encrypted, bit 3: data descriptor).
    pub flags: u16,
    /// Declared CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// Declared compressed size.
    pub compressed_size: u64,
    /// Declared uncompressed size.
    pub size: u64,
    /// Offset of the local header.
    pub header_offset: u64,
}

impl Entry {
    /// Whether the name denotes a directory.
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}

/// The directory of a zip file, in bounded memory: where each entry's record is, not the
/// entries. An entry is parsed again from the file whenever it is asked for (8 bytes an entry
/// held, instead of its name and fields).
#[derive(Debug, Default)]
pub struct Directory {
    /// Where each entry's record starts, in directory order: its central header, or, when
    /// `recovered`, its local header.
    records: Vec<u64>,
    /// Set when the central directory could not be used and entries were recovered by scanning
    /// local headers: what was wrong.
    pub recovered: Option<String>,
}

/// Sees each entry once as the directory is read, to build what it needs (the reader's name
/// index). A central directory that turns out unusable half-way is read again from local
/// headers: `restart` says to forget what was seen.
pub trait Visit {
    /// One more entry, in directory order.
    fn entry(&mut self, entry: &Entry);
    /// Forget every entry seen so far.
    fn restart(&mut self);
}

impl Directory {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The entry at `index`, read again from `file` (of length `len`). `Err` when its record no
    /// longer parses: the file changed since the directory was read.
    pub fn entry_at(&self, file: &dyn ReadAt, len: u64, index: usize) -> Result<Entry, String> {
        let offset = *self.records.get(index).ok_or_else(|| format!("no entry {index}"))?;
        let mut entry = if self.recovered.is_some() {
            read_local_header(file, offset, len)?.0
        } else {
            let mut fixed = [0u8; CENTRAL_HEADER_LEN];
            file.read_exact_at(&mut fixed, offset).map_err(|e| format!("reading entry {index}: {e}"))?;
            let var = u16_at(&fixed, 28) as usize + u16_at(&fixed, 30) as usize;
            let mut record = vec![0u8; CENTRAL_HEADER_LEN + var];
            record[..CENTRAL_HEADER_LEN].copy_from_slice(&fixed);
            file.read_exact_at(&mut record[CENTRAL_HEADER_LEN..], offset + CENTRAL_HEADER_LEN as u64)
                .map_err(|e| format!("reading entry {index}: {e}"))?;
            parse_central(&record, index, false)?.0
        };
        entry.index = index;
        Ok(entry)
    }

    /// Every entry in directory order, read back through a window of `file` a megabyte at a
    /// time (one read per megabyte of directory, not one per entry).
    pub fn iter<'a>(&'a self, file: &'a dyn ReadAt, len: u64) -> Entries<'a> {
        Entries { dir: self, file, len, next: 0, window: Vec::new(), window_start: 0 }
    }
}

/// The entries of a [`Directory`], in order; see [`Directory::iter`].
pub struct Entries<'a> {
    dir: &'a Directory,
    file: &'a dyn ReadAt,
    len: u64,
    next: usize,
    window: Vec<u8>,
    window_start: u64,
}

impl Entries<'_> {
    /// The central record at `offset`, from the window (refilled from `offset` when the record
    /// may reach past it).
    fn central(&mut self, offset: u64, index: usize) -> Result<Entry, String> {
        let in_window = |w: &Vec<u8>, start: u64| {
            offset >= start && {
                let at = (offset - start) as usize;
                at + CENTRAL_HEADER_LEN <= w.len() && {
                    let h = &w[at..];
                    let var = u16_at(h, 28) as usize + u16_at(h, 30) as usize + u16_at(h, 32) as usize;
                    at + CENTRAL_HEADER_LEN + var <= w.len()
                }
            }
        };
        if !in_window(&self.window, self.window_start) {
            let want = (CD_READ_CHUNK.max(MAX_CENTRAL_RECORD) as u64).min(self.len.saturating_sub(offset)) as usize;
            self.window.resize(want, 0);
            self.file.read_exact_at(&mut self.window, offset).map_err(|e| format!("reading entry {index}: {e}"))?;
            self.window_start = offset;
        }
        let at = (offset - self.window_start) as usize;
        Ok(parse_central(&self.window[at..], index, false)?.0)
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.next;
        let offset = *self.dir.records.get(index)?;
        self.next += 1;
        if self.dir.recovered.is_some() {
            return Some(read_local_header(self.file, offset, self.len).map(|(mut e, _)| {
                e.index = index;
                e
            }));
        }
        Some(self.central(offset, index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.dir.records.len() - self.next;
        (left, Some(left))
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

use super::input::ReadAt;
use super::zipconst::{DESCRIPTOR_LEN, DESCRIPTOR_SIG};
pub use crate::platform::{read_at, read_exact_at};

/// Reads the directory of `file` (of length `len`), showing each entry to `visit` once. `Err`
/// means nothing zip-like was found.
pub fn read_directory(file: &dyn ReadAt, len: u64, visit: &mut dyn Visit) -> Result<Directory, String> {
    match read_central(file, len, visit) {
        Ok(records) => Ok(Directory { records, recovered: None }),
        Err(why) => {
            visit.restart();
            let (records, stop) = scan_local_headers(file, len, visit).map_err(|e| format!("{why}; {e}"))?;
            if records.is_empty() {
                return Err(why);
            }
            let mut recovered = why;
            if let Some(stop) = stop {
                recovered.push_str("; ");
                recovered.push_str(&stop);
            }
            Ok(Directory { records, recovered: Some(recovered) })
        }
    }
}

/// Where each entry the central directory lists starts, as its end record (ZIP64 when needed)
/// places it.
fn read_central(file: &dyn ReadAt, len: u64, visit: &mut dyn Visit) -> Result<Vec<u64>, String> {
    let CentralEnd { total, cd_size, cd_offset, cd_end_limit } = read_end(file, len)?;
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > cd_end_limit) {
        return Err(format!("central directory ({cd_size} bytes at {cd_offset}) lies outside the file"));
    }
    if total > MAX_ENTRIES {
        return Err(format!("{total} entries declared, more than the {MAX_ENTRIES} we handle"));
    }
    if total.saturating_mul(CENTRAL_HEADER_LEN as u64) > cd_size {
        return Err(format!("{total} entries cannot fit in a {cd_size}-byte central directory"));
    }
    read_central_headers(file, total, cd_offset, cd_size, visit)
}

/// Where the central directory is, as the end record says.
struct CentralEnd {
    /// Entries it declares.
    total: u64,
    cd_size: u64,
    cd_offset: u64,
    /// Where the directory must end by (the end record, or the ZIP64 end record).
    cd_end_limit: u64,
}

/// Finds the end-of-central-directory record (the one whose comment reaches exactly the end of
/// the file, else the last one found) and follows it to the ZIP64 end record when its fields
/// say so.
fn read_end(file: &dyn ReadAt, len: u64) -> Result<CentralEnd, String> {
    let tail_len = len.min((EOCD_LEN + 0xFFFF) as u64) as usize;
    if tail_len < EOCD_LEN {
        return Err(format!("file is {len} bytes, too short for a zip end record"));
    }
    let tail_start = len - tail_len as u64;
    let mut tail = vec![0u8; tail_len];
    file.read_exact_at(&mut tail, tail_start).map_err(|e| format!("reading the end of the file: {e}"))?;
    // The end record whose comment reaches exactly the end of the file, else the last one found.
    let mut found = None;
    for p in (0..=tail_len - EOCD_LEN).rev() {
        if u32_at(&tail, p) == EOCD_SIG {
            let fits = p + EOCD_LEN + u16_at(&tail, p + 20) as usize == tail_len;
            if fits {
                found = Some(p);
                break;
            }
            found.get_or_insert(p);
        }
    }
    let p = found.ok_or("no end-of-central-directory record (truncated or not a zip)")?;
    let eocd_pos = tail_start + p as u64;
    let e = &tail[p..];
    let mut total = u16_at(e, 10) as u64;
    let mut cd_size = u32_at(e, 12) as u64;
    let mut cd_offset = u32_at(e, 16) as u64;
    let mut cd_end_limit = eocd_pos;
    if total == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        if eocd_pos < 20 {
            return Err("ZIP64 end record expected but the file is too short".into());
        }
        let mut loc = [0u8; 20];
        file.read_exact_at(&mut loc, eocd_pos - 20).map_err(|e| format!("reading the ZIP64 locator: {e}"))?;
        if u32_at(&loc, 0) != ZIP64_LOCATOR_SIG {
            return Err("ZIP64 end-record locator missing".into());
        }
        let z_off = u64_at(&loc, 8);
        if z_off.checked_add(56).is_none_or(|end| end > eocd_pos - 20) {
            return Err(format!("ZIP64 end record offset {z_off} out of range"));
        }
        let mut z = [0u8; 56];
        file.read_exact_at(&mut z, z_off).map_err(|e| format!("reading the ZIP64 end record: {e}"))?;
        if u32_at(&z, 0) != ZIP64_EOCD_SIG {
            return Err("ZIP64 end record signature missing".into());
        }
        total = u64_at(&z, 32);
        cd_size = u64_at(&z, 40);
        cd_offset = u64_at(&z, 48);
        cd_end_limit = z_off;
    }
    Ok(CentralEnd { total, cd_size, cd_offset, cd_end_limit })
}

/// Reads `total` central headers from the `cd_size` bytes at `cd_offset`, a window at a time.
fn read_central_headers(
    file: &dyn ReadAt,
    total: u64,
    cd_offset: u64,
    cd_size: u64,
    visit: &mut dyn Visit,
) -> Result<Vec<u64>, String> {
    let mut records = Vec::with_capacity(total as usize);
    let mut chunk = Vec::new();
    let mut pos = cd_offset;
    let cd_end = cd_offset + cd_size;
    // The file offset of chunk[0], and where the next record starts in chunk.
    let mut chunk_start = cd_offset;
    let mut at = 0usize;
    while (records.len() as u64) < total {
        // Keep at least one full header (fixed part + three u16-sized fields) in the window.
        if chunk.len() - at < MAX_CENTRAL_RECORD && pos < cd_end {
            chunk.drain(..at);
            chunk_start += at as u64;
            at = 0;
            let n = ((cd_end - pos) as usize).min(CD_READ_CHUNK);
            let old = chunk.len();
            chunk.resize(old + n, 0);
            file.read_exact_at(&mut chunk[old..], pos).map_err(|e| format!("reading the central directory: {e}"))?;
            pos += n as u64;
        }
        let (entry, rec_len) = parse_central(&chunk[at..], records.len(), true)?;
        visit.entry(&entry);
        records.push(chunk_start + at as u64);
        at += rec_len;
    }
    Ok(records)
}

/// Parses the central header at the start of `h` as entry `index`: the entry and the record's
/// length. `whole` asks for the comment to be inside `h` too (when `h` is the rest of the
/// directory, not one record read back without its comment).
fn parse_central(h: &[u8], index: usize, whole: bool) -> Result<(Entry, usize), String> {
    if h.len() < CENTRAL_HEADER_LEN || u32_at(h, 0) != CENTRAL_SIG {
        return Err(format!("central directory entry {index} is malformed"));
    }
    let (nlen, xlen, clen) = (u16_at(h, 28) as usize, u16_at(h, 30) as usize, u16_at(h, 32) as usize);
    let rec_len = CENTRAL_HEADER_LEN + nlen + xlen + clen;
    if h.len() < rec_len - if whole { 0 } else { clen } {
        return Err(format!("central directory entry {index} runs past the directory"));
    }
    let raw_name = h[CENTRAL_HEADER_LEN..CENTRAL_HEADER_LEN + nlen].to_vec();
    let extra = &h[CENTRAL_HEADER_LEN + nlen..CENTRAL_HEADER_LEN + nlen + xlen];
    let mut size = u32_at(h, 24) as u64;
    let mut compressed_size = u32_at(h, 20) as u64;
    let mut header_offset = u32_at(h, 42) as u64;
    apply_zip64_extra(extra, &mut size, &mut compressed_size, Some(&mut header_offset));
    let entry = Entry {
        index,
        name: String::from_utf8_lossy(&raw_name).into_owned(),
        raw_name,
        compression: Compression::from_method(u16_at(h, 10)),
        flags: u16_at(h, 8),
        crc32: u32_at(h, 16),
        compressed_size,
        size,
        header_offset,
    };
    Ok((entry, rec_len))
}

/// Replaces 32-bit fields that are all ones with their ZIP64 extra-field values, in the
/// order the spec gives (uncompressed, compressed, offset).
fn apply_zip64_extra(mut extra: &[u8], size: &mut u64, csize: &mut u64, offset: Option<&mut u64>) {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
        let body = &extra[4..(4 + len).min(extra.len())];
        if id == 0x0001 {
            let mut at = 0;
            let mut take = |field: &mut u64| {
                if *field == 0xFFFF_FFFF && body.len() >= at + 8 {
                    *field = u64_at(body, at);
                    at += 8;
                }
            };
            take(size);
            take(csize);
            if let Some(offset) = offset {
                take(offset);
            }
            return;
        }
        extra = &extra[(4 + len).min(extra.len())..];
    }
}

/// Parses the local header at `offset`: returns (its entry fields, data offset).
pub fn read_local_header(file: &dyn ReadAt, offset: u64, len: u64) -> Result<(Entry, u64), String> {
    if offset.checked_add(LOCAL_HEADER_LEN).is_none_or(|end| end > len) {
        return Err(format!("local header at {offset} lies past the end of the file"));
    }
    let mut h = [0u8; LOCAL_HEADER_LEN as usize];
    file.read_exact_at(&mut h, offset).map_err(|e| e.to_string())?;
    if u32_at(&h, 0) != LOCAL_SIG {
        return Err(format!("no local header signature at {offset}"));
    }
    let (nlen, xlen) = (u16_at(&h, 26) as usize, u16_at(&h, 28) as usize);
    let data_offset = offset + LOCAL_HEADER_LEN + (nlen + xlen) as u64;
    if data_offset > len {
        return Err(format!("local header at {offset} runs past the end of the file"));
    }
    let mut var = vec![0u8; nlen + xlen];
    file.read_exact_at(&mut var, offset + LOCAL_HEADER_LEN).map_err(|e| e.to_string())?;
    let raw_name = var[..nlen].to_vec();
    let mut size = u32_at(&h, 22) as u64;
    let mut compressed_size = u32_at(&h, 18) as u64;
    apply_zip64_extra(&var[nlen..], &mut size, &mut compressed_size, None);
    let entry = Entry {
        index: 0,
        name: String::from_utf8_lossy(&raw_name).into_owned(),
        raw_name,
        compression: Compression::from_method(u16_at(&h, 8)),
        flags: u16_at(&h, 6),
        crc32: u32_at(&h, 14),
        compressed_size,
        size,
        header_offset: offset,
    };
    Ok((entry, data_offset))
}

/// Walks local headers from the start of the file, as far as they are whole. Returns where each
/// entry's local header is and, if the walk stopped early, why.
fn scan_local_headers(
    file: &dyn ReadAt,
    len: u64,
    visit: &mut dyn Visit,
) -> Result<(Vec<u64>, Option<String>), String> {
    let mut records = Vec::new();
    let mut offset = 0u64;
    loop {
        if offset + 4 > len {
            return Ok((records, None));
        }
        let mut sig = [0u8; 4];
        file.read_exact_at(&mut sig, offset).map_err(|e| e.to_string())?;
        if u32::from_le_bytes(sig) != LOCAL_SIG {
            let stop = (u32::from_le_bytes(sig) != CENTRAL_SIG).then(|| format!("no entry header at offset {offset}"));
            return Ok((records, stop));
        }
        let (mut entry, data_offset) = match read_local_header(file, offset, len) {
            Ok(x) => x,
            Err(e) => return Ok((records, Some(format!("entry at offset {offset} is cut off: {e}")))),
        };
        if entry.flags & 0x8 != 0 && entry.compressed_size == 0 {
            return Ok((records, Some(format!("entry {} has no sizes in its local header; scan stopped", entry.name))));
        }
        let end = data_offset.saturating_add(entry.compressed_size);
        if end > len {
            return Ok((records, Some(format!("entry {} is cut off", entry.name))));
        }
        if records.len() as u64 >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        entry.index = records.len();
        visit.entry(&entry);
        records.push(offset);
        offset = end;
    }
}

/// Reads a data descriptor as the writer writes it (`zipwrite::data_descriptor`): `(crc32, compressed, size)`.
pub fn parse_descriptor(bytes: &[u8; DESCRIPTOR_LEN as usize]) -> Option<(u32, u64, u64)> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    (u32_at(0) == DESCRIPTOR_SIG).then(|| (u32_at(4), u64_at(8), u64_at(16)))
}
