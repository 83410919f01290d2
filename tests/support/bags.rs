//! Building damaged archives for tests: reading a zip's entries back, rewriting it with the
//! entries edited (manifests kept), re-bagging an edited payload (manifests made consistent),
//! and patching names and sizes in the zip's headers in place.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use cvarchive::archive::{layout, BagWriter};
use sha2::{Digest, Sha256};

use super::fixtures::info;

/// Every entry of a zip, decompressed, in order (read with the zip crate, not our reader).
pub fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (f.name().unwrap().to_string(), bytes)
        })
        .collect()
}

/// Copies a zip entry by entry after `edit` changes the list (not re-bagged: manifests stay).
pub fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let mut list = entries(src);
    edit(&mut list);
    let mut zip = zip::ZipWriter::new(File::create(dst).unwrap());
    for (name, bytes) in list {
        let method =
            if name.contains("/images/") { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
        zip.start_file(name, zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        std::io::Write::write_all(&mut zip, &bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Re-bags the payload (paths below `data/`) after `edit` changes it, so BagIt is consistent, as
/// an attacker's re-bagging would be, and only our own metadata can disagree.
pub fn rebag(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let mut payload: Vec<_> = entries(src)
        .into_iter()
        .filter_map(|(n, b)| n.split_once("/data/").map(|(_, rel)| (rel.to_string(), b)))
        .collect();
    edit(&mut payload);
    let mut w = BagWriter::new(File::create(dst).unwrap(), &layout::bag_name_for(dst)).unwrap();
    for (name, bytes) in payload {
        w.add_stored(&name, &bytes, crc32fast::hash(&bytes), Sha256::digest(&bytes).into()).unwrap();
    }
    w.finish(&info()).unwrap();
}

/// Renames an entry in place by patching its name in the local and central headers only.
pub fn rename_raw(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut patched = 0;
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(from.len()).position(|w| w == from.as_bytes()).map(|p| p + i) {
        let local = pos >= 30 && bytes[pos - 30..pos - 26] == *b"PK\x03\x04";
        let central = pos >= 46 && bytes[pos - 46..pos - 42] == *b"PK\x01\x02";
        if local || central {
            bytes[pos..pos + to.len()].copy_from_slice(to.as_bytes());
            patched += 1;
        }
        i = pos + 1;
    }
    assert_eq!(patched, 2, "{from} not found in both headers");
    std::fs::write(path, bytes).unwrap();
}

/// Replaces the text of the entry whose name ends with `suffix` by `f` of it.
pub fn replace_entry(list: &mut [(String, Vec<u8>)], suffix: &str, f: impl FnOnce(String) -> String) {
    let e = list.iter_mut().find(|(n, _)| n.ends_with(suffix)).unwrap();
    e.1 = f(String::from_utf8(e.1.clone()).unwrap()).into_bytes();
}

/// Writes the tag manifest anew for the (edited) tag files, so only the edit itself is wrong.
pub fn recompute_tagmanifest(list: &mut [(String, Vec<u8>)]) {
    let mut text = String::new();
    for name in ["bagit.txt", "bag-info.txt", "manifest-sha256.txt"] {
        let (_, bytes) = list.iter().find(|(n, _)| n.ends_with(&format!("/{name}"))).unwrap();
        text.push_str(&format!("{} {name}\n", hex::encode(Sha256::digest(bytes))));
    }
    replace_entry(list, "/tagmanifest-sha256.txt", |_| text);
}

/// Adds `more` to the compressed size that the central directory records for the entry named
/// `name` (the local header keeps the true size): its data then runs into the next entry's.
pub fn grow_central_size(path: &Path, name: &str, more: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut patched = 0;
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(name.len()).position(|w| w == name.as_bytes()).map(|p| p + i) {
        if pos >= 46 && bytes[pos - 46..pos - 42] == *b"PK\x01\x02" {
            let at = pos - 46 + 20;
            let size = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            bytes[at..at + 4].copy_from_slice(&(size + more).to_le_bytes());
            patched += 1;
        }
        i = pos + 1;
    }
    assert_eq!(patched, 1, "{name} not found in the central directory");
    std::fs::write(path, bytes).unwrap();
}
