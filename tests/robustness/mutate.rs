//! The mutations of the robustness test: a map of where each structure of the original archive
//! lies, the kinds of damage as a proptest strategy, and how each is applied to the bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use sha2::{Digest, Sha256};

const LOCAL_FIXED: usize = 30;
const CENTRAL_FIXED: usize = 46;
const EOCD_LEN: usize = 22;

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// One entry of the original: where its headers and data lie.
#[derive(Debug, Clone)]
pub struct EntryMap {
    /// Its name.
    pub name: String,
    /// Offset of the local header.
    pub local: usize,
    /// Offset and length of its stored data.
    pub data: (usize, usize),
    /// Offset and length of its central-directory record.
    pub central: (usize, usize),
}

/// The original archive: its bytes, its structure, and every entry's content.
pub struct Base {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Every entry, in directory order.
    pub entries: Vec<EntryMap>,
    /// Offset of the central directory.
    pub cd: usize,
    /// Offset of the end-of-central-directory record.
    pub eocd: usize,
    /// Every entry's uncompressed bytes, by name.
    pub contents: BTreeMap<String, Vec<u8>>,
}

impl Base {
    /// Maps the archive at `path` (as our writer makes it: one end record, no comment, no ZIP64).
    pub fn read(path: &Path) -> Base {
        let bytes = std::fs::read(path).unwrap();
        let eocd = bytes.len() - EOCD_LEN;
        assert_eq!(&bytes[eocd..eocd + 4], b"PK\x05\x06", "a plain end record");
        let cd = u32_at(&bytes, eocd + 16);
        // Sizes and offsets as our reader resolves them (ZIP64 extra fields included).
        let reader = cvarchive::archive::BagReader::open(path).unwrap();
        let mut entries = Vec::new();
        let mut at = cd;
        while at < eocd {
            assert_eq!(&bytes[at..at + 4], b"PK\x01\x02");
            let len = CENTRAL_FIXED + u16_at(&bytes, at + 28) + u16_at(&bytes, at + 30) + u16_at(&bytes, at + 32);
            let name =
                String::from_utf8(bytes[at + CENTRAL_FIXED..at + CENTRAL_FIXED + u16_at(&bytes, at + 28)].to_vec())
                    .unwrap();
            let e = &crate::support::entries(&reader)[entries.len()];
            assert_eq!(e.name, name);
            let local = e.header_offset as usize;
            let start = local + LOCAL_FIXED + u16_at(&bytes, local + 26) + u16_at(&bytes, local + 28);
            entries.push(EntryMap { name, local, data: (start, e.compressed_size as usize), central: (at, len) });
            at += len;
        }
        assert_eq!(entries.len(), u16_at(&bytes, eocd + 10));
        let contents = crate::support::zip_entries(path);
        Base { bytes, entries, cd, eocd, contents }
    }

    /// The entry a pick names, counting in name order, so a case picks the same entry however
    /// the export ordered them.
    fn pick(&self, i: &Pick) -> usize {
        let mut by_name: Vec<usize> = (0..self.entries.len()).collect();
        by_name.sort_by(|&a, &b| self.entries[a].name.cmp(&self.entries[b].name));
        by_name[i.of(by_name.len())]
    }

    /// The pick that names the first entry whose name ends with `suffix`.
    pub fn pick_for(&self, suffix: &str) -> Pick {
        let mut names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort();
        Pick::at(names.iter().position(|n| n.ends_with(suffix)).expect("such an entry"), names.len())
    }

    fn entry(&self, i: &Pick) -> &EntryMap {
        &self.entries[self.pick(i)]
    }

    /// The central records, each as bytes, in order.
    fn records(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(|e| self.bytes[e.central.0..e.central.0 + e.central.1].to_vec()).collect()
    }

    /// The archive with its central directory replaced by `records` and the end record to match.
    fn with_records(&self, records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = self.bytes[..self.cd].to_vec();
        for r in records {
            out.extend_from_slice(r);
        }
        let mut end = self.bytes[self.eocd..].to_vec();
        let n = records.len().min(0xFFFF) as u16;
        end[8..10].copy_from_slice(&n.to_le_bytes());
        end[10..12].copy_from_slice(&n.to_le_bytes());
        end[12..16].copy_from_slice(&((out.len() - self.cd) as u32).to_le_bytes());
        out.extend_from_slice(&end);
        out
    }
}

/// Which part of the file a byte flip lands in.
#[derive(Debug, Clone, Copy)]
pub enum Region {
    LocalHeader,
    Central,
    Data,
    End,
    Anywhere,
}

/// Which declared size a huge value replaces.
#[derive(Debug, Clone, Copy)]
pub enum SizeField {
    CentralCompressed,
    CentralUncompressed,
    LocalCompressed,
    LocalUncompressed,
    /// Both central 32-bit sizes set to "see ZIP64" and a ZIP64 extra field with the value in both.
    Zip64Extra,
}

/// A same-length hostile name for an entry.
#[derive(Debug, Clone, Copy)]
pub enum Hostile {
    ParentDir,
    Absolute,
    DriveLetter,
    Backslash,
    Nul,
}

/// A change to one line of `manifest-sha256.txt`.
#[derive(Debug, Clone, Copy)]
pub enum ManifestEdit {
    /// One hex digit of the hash changed.
    Hash,
    /// The line removed.
    Drop,
    /// The line repeated.
    Duplicate,
    /// The path replaced by `data/../x`.
    ParentPath,
    /// The line replaced by text that is not a manifest line.
    Garbage,
}

/// One kind of damage, with where it lands.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// One bit flipped in a region (the entry picks the local header or data, where that matters).
    Flip { region: Region, entry: Pick, at: Pick, bit: u8 },
    /// The file cut short.
    Truncate { keep: Pick },
    /// The central-directory records in another order.
    Shuffle { seed: u64 },
    /// One central-directory record removed.
    DropEntry { entry: Pick },
    /// One central-directory record repeated.
    Duplicate { entry: Pick, at: Pick },
    /// A declared size replaced.
    HugeSize { entry: Pick, field: SizeField, value: u64 },
    /// The end record in ZIP64 form, its fields true (`None`) or lies.
    Zip64End { total: Option<u64>, size: Option<u64>, offset: Option<u64> },
    /// An entry renamed in both headers.
    Rename { entry: Pick, to: Hostile },
    /// A manifest line changed.
    Manifest { line: Pick, edit: ManifestEdit, retag: bool },
    /// Not in the default run (see `BOMBS_IN_DEFAULT_RUN`): checked through the CLI only.
    Bomb { file: BombFile },
}

/// Which file a bomb inflates.
#[derive(Debug, Clone, Copy)]
pub enum BombFile {
    Manifest,
    ImagesJsonl,
}

/// A position in a collection whose length is known only when the mutation is applied: the
/// fraction `raw / 2^64` of it (shrinks towards the first).
#[derive(Debug, Clone, Copy)]
pub struct Pick(pub u64);

impl Pick {
    /// The position `i` of `len`.
    pub fn at(i: usize, len: usize) -> Pick {
        let p = Pick((((i as u128 * 2 + 1) << 64) / (2 * len as u128)) as u64);
        assert_eq!(p.of(len), i);
        p
    }

    /// The position in a collection of `len` (more than 0) items.
    pub fn of(self, len: usize) -> usize {
        ((len as u128 * self.0 as u128) >> 64) as usize
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<u64>().prop_map(Pick)
}

fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(0xFFFF_FFFF),
        Just(0xFFFF_FFFE),
        Just(0x7FFF_FFFF),
        Just(1 << 40),
        Just(0),
        any::<u64>(),
    ]
}

/// Every mutation, weighted towards the cheap and common; bombs only `with_bombs`.
pub fn strategy(with_bombs: bool) -> BoxedStrategy<Mutation> {
    let region = prop_oneof![
        Just(Region::LocalHeader),
        Just(Region::Central),
        Just(Region::Data),
        Just(Region::End),
        Just(Region::Anywhere)
    ];
    let field = prop_oneof![
        Just(SizeField::CentralCompressed),
        Just(SizeField::CentralUncompressed),
        Just(SizeField::LocalCompressed),
        Just(SizeField::LocalUncompressed),
        Just(SizeField::Zip64Extra),
    ];
    let hostile = prop_oneof![
        Just(Hostile::ParentDir),
        Just(Hostile::Absolute),
        Just(Hostile::DriveLetter),
        Just(Hostile::Backslash),
        Just(Hostile::Nul),
    ];
    let edit = prop_oneof![
        Just(ManifestEdit::Hash),
        Just(ManifestEdit::Drop),
        Just(ManifestEdit::Duplicate),
        Just(ManifestEdit::ParentPath),
        Just(ManifestEdit::Garbage),
    ];
    let z64 = prop_oneof![Just(None), huge().prop_map(Some)];
    let mutations = prop_oneof![
        6 => (region, pick(), pick(), 0u8..8).prop_map(|(region, entry, at, bit)| Mutation::Flip { region, entry, at, bit }),
        2 => pick().prop_map(|keep| Mutation::Truncate { keep }),
        1 => any::<u64>().prop_map(|seed| Mutation::Shuffle { seed }),
        1 => pick().prop_map(|entry| Mutation::DropEntry { entry }),
        1 => (pick(), pick()).prop_map(|(entry, at)| Mutation::Duplicate { entry, at }),
        3 => (pick(), field, huge()).prop_map(|(entry, field, value)| Mutation::HugeSize { entry, field, value }),
        1 => (z64.clone(), z64.clone(), z64).prop_map(|(total, size, offset)| Mutation::Zip64End { total, size, offset }),
        2 => (pick(), hostile).prop_map(|(entry, to)| Mutation::Rename { entry, to }),
        2 => (pick(), edit, any::<bool>()).prop_map(|(line, edit, retag)| Mutation::Manifest { line, edit, retag }),
    ]
    .boxed();
    if !with_bombs {
        return mutations;
    }
    let bombs =
        prop_oneof![Just(BombFile::Manifest), Just(BombFile::ImagesJsonl)].prop_map(|file| Mutation::Bomb { file });
    // The other mutations' weights add up to 19: bombs in about one case of ten.
    prop_oneof![19 => mutations, 2 => bombs].boxed()
}

impl Mutation {
    /// Whether this mutation damages every archive it is applied to, so an intact verdict after
    /// it is always wrong (flips, sizes and shuffles may land where nothing is read).
    pub fn always_damages(&self) -> bool {
        matches!(
            self,
            Mutation::Truncate { .. }
                | Mutation::DropEntry { .. }
                | Mutation::Duplicate { .. }
                | Mutation::Rename { .. }
                | Mutation::Manifest { .. }
                | Mutation::Bomb { .. }
        )
    }

    /// The mutated archive.
    pub fn apply(&self, base: &Base) -> Vec<u8> {
        let mut b = base.bytes.clone();
        match self {
            Mutation::Flip { region, entry, at, bit } => {
                let e = base.entry(entry);
                let (start, len) = match region {
                    Region::LocalHeader => (e.local, e.data.0 - e.local),
                    Region::Central => (base.cd, base.eocd - base.cd),
                    Region::Data if e.data.1 > 0 => e.data,
                    Region::Data => (e.local, e.data.0 - e.local),
                    Region::End => (base.eocd, EOCD_LEN),
                    Region::Anywhere => (0, b.len()),
                };
                b[start + at.of(len)] ^= 1 << bit;
                b
            }
            Mutation::Truncate { keep } => {
                b.truncate(keep.of(b.len()));
                b
            }
            Mutation::Shuffle { seed } => {
                let mut records = base.records();
                let mut s = *seed;
                for i in (1..records.len()).rev() {
                    s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    records.swap(i, (s >> 33) as usize % (i + 1));
                }
                base.with_records(&records)
            }
            Mutation::DropEntry { entry } => {
                let mut records = base.records();
                records.remove(base.pick(entry));
                base.with_records(&records)
            }
            Mutation::Duplicate { entry, at } => {
                let mut records = base.records();
                let copy = records[base.pick(entry)].clone();
                records.insert(at.of(records.len() + 1), copy);
                base.with_records(&records)
            }
            Mutation::HugeSize { entry, field, value } => huge_size(base, base.entry(entry), *field, *value),
            Mutation::Zip64End { total, size, offset } => zip64_end(base, *total, *size, *offset),
            Mutation::Rename { entry, to } => {
                let e = base.entry(entry);
                let name = hostile_name(&e.name, *to);
                b[e.local + LOCAL_FIXED..e.local + LOCAL_FIXED + name.len()].copy_from_slice(&name);
                b[e.central.0 + CENTRAL_FIXED..e.central.0 + CENTRAL_FIXED + name.len()].copy_from_slice(&name);
                b
            }
            Mutation::Manifest { line, edit, retag } => manifest(base, line, *edit, *retag),
            Mutation::Bomb { file } => bomb(base, *file),
        }
    }
}

fn huge_size(base: &Base, e: &EntryMap, field: SizeField, value: u64) -> Vec<u8> {
    let mut b = base.bytes.clone();
    let v32 = (value.min(0xFFFF_FFFF) as u32).to_le_bytes();
    match field {
        SizeField::CentralCompressed => b[e.central.0 + 20..e.central.0 + 24].copy_from_slice(&v32),
        SizeField::CentralUncompressed => b[e.central.0 + 24..e.central.0 + 28].copy_from_slice(&v32),
        SizeField::LocalCompressed => b[e.local + 18..e.local + 22].copy_from_slice(&v32),
        SizeField::LocalUncompressed => b[e.local + 22..e.local + 26].copy_from_slice(&v32),
        SizeField::Zip64Extra => {
            let mut records = base.records();
            let i = base.entries.iter().position(|x| x.local == e.local).unwrap();
            let r = &mut records[i];
            r[20..28].copy_from_slice(&[0xFF; 8]);
            let (nlen, xlen) = (u16_at(r, 28), u16_at(r, 30));
            let mut sizes = value.to_le_bytes().to_vec();
            sizes.extend_from_slice(&value.to_le_bytes());
            // Our writer gives streamed entries a ZIP64 field already: replace its sizes, since a
            // second one would be dead space to a reader that takes the first.
            let mut at = CENTRAL_FIXED + nlen;
            while at + 4 <= CENTRAL_FIXED + nlen + xlen && !(u16_at(r, at) == 1 && u16_at(r, at + 2) >= 16) {
                at += 4 + u16_at(r, at + 2);
            }
            if at + 20 <= CENTRAL_FIXED + nlen + xlen {
                r[at + 4..at + 20].copy_from_slice(&sizes);
            } else {
                let at = CENTRAL_FIXED + nlen + xlen;
                r.splice(at..at, [1, 0, 16, 0].into_iter().chain(sizes));
                r[30..32].copy_from_slice(&((xlen + 20) as u16).to_le_bytes());
            }
            return base.with_records(&records);
        }
    }
    b
}

/// The end record turned into ZIP64 form, each of its three fields the true value or `Some` lie.
fn zip64_end(base: &Base, total: Option<u64>, size: Option<u64>, offset: Option<u64>) -> Vec<u8> {
    let mut out = base.bytes[..base.eocd].to_vec();
    let z_off = out.len() as u64;
    let mut z = Vec::with_capacity(56);
    z.extend_from_slice(b"PK\x06\x06");
    z.extend_from_slice(&44u64.to_le_bytes());
    z.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let n = base.entries.len() as u64;
    z.extend_from_slice(&total.unwrap_or(n).to_le_bytes());
    z.extend_from_slice(&total.unwrap_or(n).to_le_bytes());
    z.extend_from_slice(&size.unwrap_or((base.eocd - base.cd) as u64).to_le_bytes());
    z.extend_from_slice(&offset.unwrap_or(base.cd as u64).to_le_bytes());
    out.extend_from_slice(&z);
    out.extend_from_slice(b"PK\x06\x07");
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&z_off.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut end = base.bytes[base.eocd..].to_vec();
    end[8..12].copy_from_slice(&[0xFF; 4]);
    end[12..20].copy_from_slice(&[0xFF; 8]);
    out.extend_from_slice(&end);
    out
}

fn hostile_name(name: &str, to: Hostile) -> Vec<u8> {
    let mut n = name.as_bytes().to_vec();
    match to {
        Hostile::ParentDir => n[..3].copy_from_slice(b"../"),
        Hostile::Absolute => n[0] = b'/',
        Hostile::DriveLetter => n[..2].copy_from_slice(b"C:"),
        Hostile::Backslash => {
            let slash = n.iter().position(|&c| c == b'/').unwrap_or(0);
            n[slash] = b'\\';
        }
        Hostile::Nul => *n.last_mut().unwrap() = 0,
    }
    n
}

/// The archive rewritten (every entry stored, in the original order) with one manifest line
/// changed, and with the tag manifest's line for the manifest recomputed when `retag`.
fn manifest(base: &Base, line: &Pick, edit: ManifestEdit, retag: bool) -> Vec<u8> {
    let mut contents = base.contents.clone();
    let (mname, text) = contents.iter().find(|(n, _)| n.ends_with("/manifest-sha256.txt")).unwrap();
    let (mname, text) = (mname.clone(), String::from_utf8(text.clone()).unwrap());
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = line.of(lines.len());
    match edit {
        ManifestEdit::Hash => {
            let c = if lines[i].starts_with('0') { "1" } else { "0" };
            lines[i].replace_range(0..1, c);
        }
        ManifestEdit::Drop => {
            lines.remove(i);
        }
        ManifestEdit::Duplicate => lines.insert(i, lines[i].clone()),
        ManifestEdit::ParentPath => {
            let hash = lines[i].split_once(' ').map_or("", |(h, _)| h).to_string();
            lines[i] = format!("{hash} data/../x");
        }
        ManifestEdit::Garbage => lines[i] = "not a manifest line".into(),
    }
    let new: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if retag {
        let tname = mname.replace("/manifest-sha256.txt", "/tagmanifest-sha256.txt");
        let old_hash = hex::encode(Sha256::digest(text.as_bytes()));
        let new_hash = hex::encode(Sha256::digest(new.as_bytes()));
        let tag = String::from_utf8(contents[&tname].clone()).unwrap().replace(&old_hash, &new_hash);
        contents.insert(tname, tag.into_bytes());
    }
    contents.insert(mname, new.into_bytes());
    rezip(base, &contents, |_| zip::CompressionMethod::Stored)
}

/// Lines in a bomb: about 120 MB inflated from a few hundred KB.
const BOMB_LINES: usize = 2_000_000;

/// The archive rewritten with `BOMB_LINES` invalid lines appended to `file` (deflated).
fn bomb(base: &Base, file: BombFile) -> Vec<u8> {
    let suffix = match file {
        BombFile::Manifest => "/manifest-sha256.txt",
        BombFile::ImagesJsonl => "/images.jsonl",
    };
    let mut contents = base.contents.clone();
    let (name, bytes) = contents.iter_mut().find(|(n, _)| n.ends_with(suffix)).unwrap();
    let name = name.clone();
    for i in 0..BOMB_LINES {
        bytes.extend_from_slice(format!("{i:0>60} not a valid line\n").as_bytes());
    }
    rezip(
        base,
        &contents,
        |n| {
            if n == name {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            }
        },
    )
}

/// `contents` zipped anew in the original's entry order, each entry compressed as `method` says.
fn rezip(
    base: &Base,
    contents: &BTreeMap<String, Vec<u8>>,
    method: impl Fn(&str) -> zip::CompressionMethod,
) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for e in &base.entries {
        let opts = zip::write::SimpleFileOptions::default().compression_method(method(&e.name));
        zip.start_file(e.name.as_str(), opts.large_file(contents[&e.name].len() >= u32::MAX as usize)).unwrap();
        zip.write_all(&contents[&e.name]).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
