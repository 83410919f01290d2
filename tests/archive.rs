//! The archive format: the writer's bags read back, BagIt-conformant, and the reader's behaviour
//! on hostile zips. The good bag they start from is in `support::fixtures`.

use std::fs::File;
use std::io::Read;

use cvarchive::archive::{BagReader, BagWriter, Compression, EntryProblem};
use sha2::{Digest, Sha256};

use crate::support::fixtures::*;

mod bags;
mod resume;
mod writer;

#[test]
fn writer_output_reads_back_with_every_entry_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_good_bag(dir.path(), "my backup");
    let reader = BagReader::open(&path).unwrap();
    assert_eq!(reader.bag_name(), Some("my_backup"));
    assert!(reader.recovered().is_none());
    let mut buf = vec![0u8; 4096];
    for e in crate::support::entries(&reader) {
        assert!(e.name.starts_with("my_backup/"), "{}", e.name);
        let d = reader.hash_entry(&e, &mut buf).unwrap();
        assert_eq!(d.crc32, e.crc32, "{}", e.name);
        assert_eq!(d.size, e.size, "{}", e.name);
        let is_image = e.name.contains("/images/") || e.name.contains("/predictions/");
        assert_eq!(e.compression, if is_image { Compression::Stored } else { Compression::Deflated }, "{}", e.name);
    }
    // The zip crate agrees the archive is well formed.
    let mut zip = zip::ZipArchive::new(File::open(&path).unwrap()).unwrap();
    assert_eq!(zip.len(), reader.entry_count());
    let mut first = String::new();
    zip.by_index(0).unwrap().read_to_string(&mut first).unwrap();
    assert_eq!(first, "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n");
}

#[test]
fn bag_info_and_manifests_follow_the_rfc() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_good_bag(dir.path(), "b");
    let reader = BagReader::open(&path).unwrap();
    let text = |rel: &str| {
        String::from_utf8(reader.read_entry(&reader.bag_entry(rel).unwrap().unwrap(), 1 << 20).unwrap()).unwrap()
    };
    let info = text("bag-info.txt");
    let payload: Vec<_> =
        crate::support::entries(&reader).into_iter().filter(|e| e.name.starts_with("b/data/")).collect();
    let bytes: u64 = payload.iter().map(|e| e.size).sum();
    assert!(info.contains(&format!("Payload-Oxum: {bytes}.{}\n", payload.len())), "{info}");
    assert!(info.contains("Bagging-Date: 2026-11-27\n"));
    assert!(info.contains("Bagging-Software: cvarchive 0.1.0\n"));
    assert!(info.contains("Source-Endpoint-Host: westus.api.cognitive.microsoft.com\n"));
    assert!(info.contains("Custom-Vision-API-Version: v3.3\n"));
    let manifest = text("manifest-sha256.txt");
    assert_eq!(manifest.lines().count(), payload.len());
    let mut buf = vec![0u8; 4096];
    for e in &payload {
        let sha = hex::encode(reader.hash_entry(e, &mut buf).unwrap().sha256);
        let rel = e.name.strip_prefix("b/").unwrap();
        assert!(manifest.contains(&format!("{sha} {rel}\n")), "{rel} missing from manifest");
    }
    let tags = text("tagmanifest-sha256.txt");
    for name in ["bagit.txt", "bag-info.txt", "manifest-sha256.txt"] {
        let sha = hex::encode(Sha256::digest(text(name).as_bytes()));
        assert!(tags.contains(&format!("{sha} {name}\n")), "{name}");
    }
}

#[test]
fn writer_refuses_duplicates_and_escaping_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = BagWriter::new(File::create(dir.path().join("x.zip")).unwrap(), "x").unwrap();
    w.add_deflated("a.json", b"{}").unwrap();
    let dup = w.add_deflated("a.json", b"{}").unwrap_err();
    assert!(dup.to_string().contains("data/a.json"), "{dup}");
    for bad in ["../a", "/etc/passwd", "a//b", "a\\b", ""] {
        assert!(w.add_deflated(bad, b"{}").is_err(), "{bad:?} accepted");
    }
    assert!(BagWriter::new(File::create(dir.path().join("y.zip")).unwrap(), "../y").is_err());
}

#[test]
fn paths_with_percent_and_newlines_are_encoded_in_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.zip");
    let mut w = BagWriter::new(File::create(&path).unwrap(), "enc").unwrap();
    w.add_deflated("odd%name\nx.json", b"{}").unwrap();
    let summary = w.finish(&info()).unwrap();
    assert_eq!((summary.payload_files, summary.payload_bytes), (1, 2));
    let reader = BagReader::open(&path).unwrap();
    let manifest = reader.read_entry(&reader.bag_entry("manifest-sha256.txt").unwrap().unwrap(), 4096).unwrap();
    let manifest = String::from_utf8(manifest).unwrap();
    assert!(manifest.ends_with(" data/odd%25name%0Ax.json\n"), "{manifest:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_error_naming_the_archive() {
    let full = File::options().write(true).open("/dev/full");
    if !crate::support::tools::require("/dev/full", full.is_ok(), "a Linux with devtmpfs") {
        return;
    }
    let full = full.unwrap();
    let big = vec![7u8; 8 << 20];
    let result = BagWriter::new(full, "bag").and_then(|mut w| {
        w.add_stored("big.bin", &big, crc32fast::hash(&big), Sha256::digest(&big).into())?;
        w.finish(&info()).map(|_| ())
    });
    let err = cvarchive::text::error_chain(&result.unwrap_err());
    assert!(err.contains("No space left") || err.contains("os error 28"), "{err}");
    assert!(err.contains("/dev/full"), "{err}");
}

#[test]
fn reader_refuses_to_hold_more_than_its_limit_and_to_inflate_past_the_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    let mut w = BagWriter::new(File::create(&path).unwrap(), "big").unwrap();
    w.add_deflated("zeros.json", &vec![b' '; 4 << 20]).unwrap();
    w.finish(&info()).unwrap();
    let reader = BagReader::open(&path).unwrap();
    let e = &reader.bag_entry("data/zeros.json").unwrap().unwrap().clone();
    assert!(matches!(reader.read_entry(e, 1 << 20), Err(EntryProblem::TooLarge { .. })));
    // Lie about the size: the reader stops one byte past the claim.
    let mut lying = e.clone();
    lying.size = 1000;
    let err = reader.hash_entry(&lying, &mut vec![0u8; 1 << 16]).unwrap_err();
    assert_eq!(err, EntryProblem::LongerThanDeclared { declared: 1000 });
    lying.size = 5 << 20;
    assert!(matches!(
        reader.hash_entry(&lying, &mut vec![0u8; 1 << 16]),
        Err(EntryProblem::ShorterThanDeclared { .. })
    ));
}

#[test]
fn random_bytes_and_empty_files_are_not_archives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.zip");
    let noise: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, noise).unwrap();
    assert!(BagReader::open(&path).is_err());
    std::fs::write(&path, b"").unwrap();
    assert!(BagReader::open(&path).is_err());
    std::fs::write(&path, b"PK\x05\x06").unwrap();
    assert!(BagReader::open(&path).is_err());
}
