//! The writer's own zip encoding read back by every reader we know (ours, the zip crate, Python's
//! zipfile, unzip), ZIP64, determinism, the lock, forget and raw copies from a previous archive.

use std::io::Read;

use cvarchive::archive::bagit::parse_manifest_line;
use cvarchive::archive::{BagReader, BagWriter, Compression, Error, Zip64Limits};
use sha2::{Digest, Sha256};

use super::bags::{
    assert_verifies, bag_contents, finish_to, items, partial_for, python_listing, unzip_test, write_items, Item, BAG,
    FP,
};

/// Every reader agrees on every entry of `path`, and it verifies.
fn assert_every_reader_agrees(path: &std::path::Path) {
    let ours = BagReader::open(path).unwrap();
    assert!(ours.recovered().is_none());
    let mut buf = vec![0u8; 1 << 16];
    let mut digests = std::collections::BTreeMap::new();
    for e in crate::support::entries(&ours) {
        let d = ours.hash_entry(&e, &mut buf).unwrap();
        assert_eq!((d.crc32, d.size), (e.crc32, e.size), "{}", e.name);
        digests.insert(e.name.clone(), hex::encode(d.sha256));
    }
    let zip_crate = crate::support::zip_entries(path);
    assert_eq!(zip_crate.len(), digests.len());
    for (name, bytes) in &zip_crate {
        assert_eq!(hex::encode(Sha256::digest(bytes)), digests[name], "zip crate: {name}");
    }
    let python = python_listing(path);
    assert_eq!(python.len(), digests.len());
    for (name, (sha, year, utf8)) in &python {
        assert_eq!(sha, &digests[name], "python: {name}");
        assert_eq!((*year, *utf8), (1980, true), "python: {name}");
    }
    if let Some(passed) = unzip_test(path) {
        assert!(passed, "unzip -t failed on {}", path.display());
    }
    assert_verifies(path);
}

#[test]
fn every_reader_reads_what_the_writer_writes_and_output_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(30);
    let a = write_items(dir.path(), "a.zip", &list, |_| {});
    assert_every_reader_agrees(&a);
    let reader = BagReader::open(&a).unwrap();
    assert_eq!(crate::support::entries(&reader)[0].name, "bag/bagit.txt");
    let all = crate::support::entries(&reader);
    let names: Vec<_> = all.iter().rev().take(3).map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bag/tagmanifest-sha256.txt", "bag/manifest-sha256.txt", "bag/bag-info.txt"]);
    for e in crate::support::entries(&reader) {
        let stored = e.name.contains("/images/") || e.name.contains("/predictions/");
        assert_eq!(e.compression, if stored { Compression::Stored } else { Compression::Deflated }, "{}", e.name);
        assert_eq!(e.flags & 0x8, 0, "{}: no data descriptors", e.name);
    }
    // Nothing in the bytes depends on the time or the run.
    let b = write_items(dir.path(), "b.zip", &list, |_| {});
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // The journal is gone once finished.
    assert!(!cvarchive::archive::journal_path(&partial_for(&a)).exists());
}

#[test]
fn zip64_records_are_written_and_read_where_the_limits_are_reached() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(12);
    let limits = Zip64Limits { size: 20_000, count: 10 };
    let big = write_items(dir.path(), "zip64.zip", &list, |w| w.set_zip64_limits(limits));
    let small = write_items(dir.path(), "plain.zip", &list, |_| {});
    assert_every_reader_agrees(&big);
    assert_eq!(bag_contents(&big), bag_contents(&small));
    let bytes = std::fs::read(&big).unwrap();
    let has = |sig: &[u8]| crate::support::contains(&bytes, sig);
    assert!(has(b"PK\x06\x06") && has(b"PK\x06\x07"), "ZIP64 end record and locator");
    assert!(!crate::support::contains(&std::fs::read(&small).unwrap(), b"PK\x06\x06"));
    // Entries past the size limit have ZIP64 extra fields in their local headers: 0xFFFFFFFF in
    // both 32-bit sizes, and the real ones in the extra field.
    let reader = BagReader::open(&big).unwrap();
    let e = crate::support::entries(&reader).into_iter().find(|e| e.size >= 40_000).expect("a large image");
    let at = e.header_offset as usize;
    assert_eq!(&bytes[at + 18..at + 26], &[0xFF; 8]);
    assert_eq!(&bytes[at + 30 + e.raw_name.len()..][..4], &[1, 0, 16, 0]);
    assert!(crate::support::entries(&reader).iter().any(|e| e.header_offset >= limits.size));
}

#[test]
fn a_second_writer_on_a_locked_partial_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("x.zip.partial");
    let mut first = BagWriter::create(&partial, BAG, FP).unwrap();
    first.add_deflated("a.json", b"{}").unwrap();
    for second in [BagWriter::create(&partial, BAG, FP).map(|_| ()), BagWriter::resume(&partial, BAG, FP).map(|_| ())] {
        let err = second.unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&partial.display().to_string()) && msg.contains("locked"), "{msg}");
    }
    // The refused writers did not touch the first one's work.
    first.add_deflated("b.json", b"[]").unwrap();
    drop(first);
    let (_w, found) = BagWriter::resume(&partial, BAG, FP).unwrap();
    let paths: Vec<_> = found.iter().map(|e| e.data_path.as_str()).collect();
    assert_eq!(paths, ["a.json", "b.json"]);
}

#[test]
fn resume_refuses_another_job_another_bag_or_a_missing_journal() {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("x.zip.partial");
    drop(BagWriter::create(&partial, BAG, FP).unwrap());
    let err = BagWriter::resume(&partial, BAG, "job-2").unwrap_err().to_string();
    assert!(err.contains("job-1") && err.contains("job-2") && err.contains("x.zip.partial"), "{err}");
    let err = BagWriter::resume(&partial, "other", FP).unwrap_err().to_string();
    assert!(err.contains("\"bag\"") && err.contains("\"other\""), "{err}");
    std::fs::remove_file(cvarchive::archive::journal_path(&partial)).unwrap();
    let err = BagWriter::resume(&partial, BAG, FP).unwrap_err().to_string();
    assert!(err.contains("x.zip.partial.journal") && err.contains("missing"), "{err}");
}

#[test]
fn forgotten_entries_stay_out_of_the_bag_across_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(6);
    let final_path = dir.path().join("f.zip");
    let partial = partial_for(&final_path);
    let deleted = Item::Stored("projects/x/images/deleted.jpg".into(), vec![0xFF, 0xD8, 0xFF, 0x42, 7, 7, 7, 7, 7]);
    let changed = Item::Deflated(list[0].path().into(), b"{\"stale\":true}".to_vec());

    let mut w = BagWriter::create(&partial, BAG, FP).unwrap();
    for item in [&deleted, &changed, &list[1], &list[2]] {
        item.add(&mut w).unwrap();
    }
    assert_eq!(w.forget(deleted.path()).unwrap().map(|e| e.size), Some(deleted.bytes().len() as u64));
    assert!(w.contains(deleted.path()).unwrap().is_none());
    assert!(w.forget(deleted.path()).unwrap().is_none());
    drop(w);

    let (mut w, found) = BagWriter::resume(&partial, BAG, FP).unwrap();
    let paths: Vec<_> = found.iter().map(|e| e.data_path.as_str()).collect();
    assert_eq!(paths, [list[0].path(), list[1].path(), list[2].path()]);
    // Changed since: forget the old entry and write the path again.
    assert!(w.forget(changed.path()).unwrap().is_some());
    for item in &list {
        if w.contains(item.path()).unwrap().is_none() {
            item.add(&mut w).unwrap();
        }
    }
    finish_to(w, &final_path);
    assert_verifies(&final_path);
    let contents = bag_contents(&final_path);
    assert!(!contents.contains_key(&format!("data/{}", deleted.path())));
    assert_eq!(contents[&format!("data/{}", list[0].path())], list[0].bytes());
    let manifest = String::from_utf8(contents["manifest-sha256.txt"].clone()).unwrap();
    assert_eq!(manifest.lines().count(), list.len());
    // The forgotten bytes are still in the file, as dead space no entry points to.
    assert!(crate::support::contains(&std::fs::read(&final_path).unwrap(), deleted.bytes()));
}

/// The manifest of an archive, path (below `data/`) to SHA-256.
fn manifest_of(reader: &BagReader) -> std::collections::HashMap<String, [u8; 32]> {
    let text = reader.read_entry(&reader.bag_entry("manifest-sha256.txt").unwrap().unwrap(), 1 << 24).unwrap();
    String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| parse_manifest_line(l).unwrap())
        .map(|(sha, path)| (path.strip_prefix("data/").unwrap().to_string(), sha))
        .collect()
}

/// An entry's data bytes as stored in the file.
fn raw_bytes(path: &std::path::Path, e: &cvarchive::archive::Entry) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let at = e.header_offset as usize;
    let start = at + 30 + u16::from_le_bytes([bytes[at + 26], bytes[at + 27]]) as usize;
    let start = start + u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
    bytes[start..start + e.compressed_size as usize].to_vec()
}

#[test]
fn raw_copies_from_a_previous_archive_are_verbatim_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(9);
    let old = write_items(dir.path(), "old.zip", &list, |_| {});
    let old_reader = BagReader::open(&old).unwrap();
    let manifest = manifest_of(&old_reader);

    // A damaged copy of the old archive: one flipped byte in a stored image and in a JSON file.
    let bad = dir.path().join("bad.zip");
    let mut bytes = std::fs::read(&old).unwrap();
    let image = crate::support::entries(&old_reader).iter().find(|e| e.name.contains("/images/")).unwrap().clone();
    let json = crate::support::entries(&old_reader).iter().find(|e| e.name.ends_with("/tags.json")).unwrap().clone();
    for e in [&image, &json] {
        let data = raw_bytes(&old, e);
        let at = bytes.windows(data.len()).position(|w| w == data.as_slice()).unwrap() + data.len() / 2;
        bytes[at] ^= 0x20;
    }
    std::fs::write(&bad, bytes).unwrap();
    let bad_reader = BagReader::open(&bad).unwrap();

    let new = dir.path().join("new.zip");
    let mut w = BagWriter::create(&partial_for(&new), BAG, FP).unwrap();
    for e in [&image, &json] {
        let path = e.name.strip_prefix("bag/data/").unwrap();
        let err = w
            .add_raw_from(&bad_reader, &bad_reader.entry(&e.name).unwrap().unwrap(), path, manifest[path])
            .unwrap_err();
        assert!(matches!(err, Error::RawCopy { .. }), "{err:?}");
        assert!(err.to_string().contains("bad.zip") && err.to_string().contains(&e.name), "{err}");
        assert!(w.contains(path).unwrap().is_none());
    }
    // An intact entry that is not what the manifest expects is refused too.
    let path = image.name.strip_prefix("bag/data/").unwrap();
    let err = w.add_raw_from(&old_reader, &image, path, [0; 32]).unwrap_err().to_string();
    assert!(err.contains("SHA-256"), "{err}");

    // Everything copied from the intact archive, stored and deflated alike.
    for e in crate::support::entries(&old_reader).iter().filter(|e| e.name.starts_with("bag/data/")) {
        let path = e.name.strip_prefix("bag/data/").unwrap();
        w.add_raw_from(&old_reader, e, path, manifest[path]).unwrap();
    }
    finish_to(w, &new);
    assert_every_reader_agrees(&new);
    let (old_contents, new_contents) = (bag_contents(&old), bag_contents(&new));
    assert_eq!(old_contents, new_contents);
    let new_reader = BagReader::open(&new).unwrap();
    let copied = new_reader.entry(&json.name).unwrap().unwrap();
    assert_eq!(copied.compression, Compression::Deflated);
    assert_eq!(raw_bytes(&new, &copied), raw_bytes(&old, &json), "deflated bytes copied verbatim");
}

#[test]
fn entries_that_fail_part_way_leave_nothing_behind() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the spool broke"));
            }
            self.0 -= 1;
            buf.fill(b'x');
            Ok(buf.len())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("r.zip");
    let mut w = BagWriter::create(&partial_for(&final_path), BAG, FP).unwrap();
    let err = w.add_deflated_from("broken.jsonl", &mut Failing(3)).unwrap_err();
    let msg = cvarchive::text::error_chain(&err);
    assert!(msg.contains("data/broken.jsonl") && msg.contains("the spool broke"), "{msg}");
    assert!(w.contains("broken.jsonl").unwrap().is_none());
    w.add_deflated_from("broken.jsonl", &mut &b"{}\n"[..]).unwrap();
    finish_to(w, &final_path);
    let reader = BagReader::open(&final_path).unwrap();
    assert!(reader.recovered().is_none());
    assert_eq!(reader.entry_count(), 5);
    assert_eq!(crate::support::entries(&reader)[1].header_offset, {
        let first = &crate::support::entries(&reader)[0];
        first.header_offset + 30 + first.raw_name.len() as u64 + first.compressed_size
    });
}

#[test]
fn the_archive_hash_is_taken_while_writing_or_left_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    // A small bag: every byte passes through the buffer once, so the writer knows the hash.
    let path = dir.path().join("small.zip");
    let mut w = BagWriter::new(std::fs::File::create(&path).unwrap(), "small").unwrap();
    let jpeg = b"\xff\xd8\xffabc";
    w.add_stored("projects/p/images/a.jpg", jpeg, crc32fast::hash(jpeg), Sha256::digest(jpeg).into()).unwrap();
    w.add_deflated_from("projects/p/images.jsonl", &mut &b"{\"id\":1}\n"[..]).unwrap();
    let summary = w.finish(&crate::support::fixtures::info()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(summary.archive_sha256, Some(<[u8; 32]>::from(Sha256::digest(&bytes))));
    assert_eq!(summary.archive_bytes, bytes.len() as u64);

    // A streamed entry larger than the buffer has its header patched on disk: the hash waits at
    // its header and takes the entry in once it is patched, so it still holds.
    let path = dir.path().join("big.zip");
    let file = std::fs::File::options().read(true).write(true).create_new(true).open(&path).unwrap();
    let mut w = BagWriter::new(file, "big").unwrap();
    let mut noise: Vec<u8> = (0..12u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    w.add_deflated_from("projects/p/images.jsonl", &mut &noise[..]).unwrap();
    noise.clear();
    let summary = w.finish(&crate::support::fixtures::info()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(summary.archive_sha256, Some(<[u8; 32]>::from(Sha256::digest(&bytes))));
}
