//! Issue 14 items 1 and 2: hostile archives. Each bomb is built here, small on disk, and the CLI
//! (`verify`, `verify --fast`, `inspect`, `convert`, `restore`) runs on it as a child whose peak
//! memory must stay under 256 MiB while it exits 1 or 2 naming the problem; a quoted zip bomb is
//! reported and not inflated; a listing line must name its own file, once.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cvarchive::archive::data::{MAX_FINDINGS_PER_KIND, MAX_JSON_BYTES};
use cvarchive::archive::layout::{self, sniff_extension};
use cvarchive::archive::BagWriter;
use cvarchive::emulator::AccountSpec;
use cvarchive::verify::{verify, FindingKind, VerifyOptions};
use sha2::{Digest, Sha256};

use crate::support::bags::rebag;
use crate::support::fixtures::{
    image_bytes, info, listing_line, write_bag, write_good_bag, IMAGES, PREDICTION, PROJECT,
};
use crate::support::{emulator_with, full, run_measured};

const MEMORY_BOUND: u64 = 256 << 20;

/// One entry of a zip written by hand: its name, method (0 stored, 8 deflate), the bytes as
/// stored, and the CRC-32 and size of what they inflate to.
struct Raw {
    name: String,
    method: u16,
    data: Vec<u8>,
    crc: u32,
    size: u64,
}

impl Raw {
    fn stored(name: String, bytes: Vec<u8>) -> Raw {
        Raw { name, method: 0, crc: crc32fast::hash(&bytes), size: bytes.len() as u64, data: bytes }
    }
}

/// Writes `entries` as a zip (no zip64: every size fits in 32 bits).
fn write_raw_zip(path: &Path, entries: &[Raw]) {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let mut fixed = Vec::new();
        fixed.extend_from_slice(&20u16.to_le_bytes());
        fixed.extend_from_slice(&0u16.to_le_bytes());
        fixed.extend_from_slice(&e.method.to_le_bytes());
        fixed.extend_from_slice(&[0; 4]);
        fixed.extend_from_slice(&e.crc.to_le_bytes());
        fixed.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        fixed.extend_from_slice(&(e.size as u32).to_le_bytes());
        fixed.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        fixed.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&fixed);
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&e.data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&fixed);
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(e.name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    std::fs::write(path, out).unwrap();
}

/// Raw deflate of `chunk` repeated `times` times, built by repeating one fully flushed block (a
/// full flush ends byte-aligned with no back-references across it), then `tail` deflated. Returns
/// the stream, the CRC-32 and the size of what it inflates to.
fn repeated_deflate(chunk: &[u8], times: u64, tail: &[u8]) -> (Vec<u8>, u32, u64) {
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut block = Vec::with_capacity(chunk.len() + 4096);
    c.compress_vec(chunk, &mut block, flate2::FlushCompress::Full).unwrap();
    assert_eq!(c.total_in() as usize, chunk.len());
    let mut data = Vec::with_capacity(block.len() * times as usize + tail.len());
    for _ in 0..times {
        data.extend_from_slice(&block);
    }
    let mut enc = flate2::write::DeflateEncoder::new(data, flate2::Compression::fast());
    enc.write_all(tail).unwrap();
    let data = enc.finish().unwrap();
    let one = {
        let mut h = crc32fast::Hasher::new();
        h.update(chunk);
        h
    };
    let mut crc = crc32fast::Hasher::new();
    for _ in 0..times {
        crc.combine(&one);
    }
    crc.update(tail);
    (data, crc.finalize(), chunk.len() as u64 * times + tail.len() as u64)
}

/// The good bag's entries with `name_suffix`'s entry replaced by `bomb` (everything else stored).
fn with_bomb_entry(dir: &Path, name: &str, name_suffix: &str, bomb: (Vec<u8>, u32, u64)) -> PathBuf {
    let good = write_good_bag(dir, &format!("{name}-src"));
    let mut zip = zip::ZipArchive::new(File::open(&good).unwrap()).unwrap();
    let mut entries = Vec::new();
    let mut bomb = Some(bomb);
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let entry_name = f.name().unwrap().replacen(&format!("{name}-src/"), &format!("{name}/"), 1);
        if entry_name.ends_with(name_suffix) {
            let (data, crc, size) = bomb.take().unwrap();
            entries.push(Raw { name: entry_name, method: 8, data, crc, size });
        } else {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            entries.push(Raw::stored(entry_name, bytes));
        }
    }
    let path = dir.join(format!("{name}.zip"));
    write_raw_zip(&path, &entries);
    path
}

#[track_caller]
fn assert_bounded(args: &[&str], codes: &[i32]) {
    let (code, peak) = run_measured(args);
    assert!(codes.contains(&code), "{args:?} exited {code}");
    assert!(peak > 0, "the child's memory was measured");
    assert!(peak < MEMORY_BOUND, "{args:?}: peak memory {} MiB", peak >> 20);
}

fn cli_stdout(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cvarchive")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A deflated manifest of two million invalid lines and 3,000 unique 60 KB paths (180 MB
/// inflated, a few hundred KB on disk): verify keeps 1,000 findings of a kind and counts the
/// rest, holds no path that is not an entry, and its JSON stays small.
#[test]
fn a_manifest_bomb_is_read_in_bounded_memory_with_capped_findings() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(60_000);
    let mut tail = Vec::new();
    for i in 0..3000 {
        tail.extend_from_slice(format!("{} data/{long}{i}\n", "0".repeat(64)).as_bytes());
    }
    let bomb = repeated_deflate(&b"x\n".repeat(500_000), 4, &tail);
    assert!(bomb.0.len() < 4 << 20, "small on disk: {} bytes", bomb.0.len());
    let path = with_bomb_entry(dir.path(), "manifest-bomb", "/manifest-sha256.txt", bomb);
    let p = path.to_str().unwrap();
    assert_bounded(&["verify", "--fast", p], &[1]);
    assert_bounded(&["verify", p], &[1]);
    let out = dir.path().join("out");
    assert_bounded(&["convert", p, "--to", "folders", "--out", out.to_str().unwrap()], &[2]);

    let (code, json, _) = cli_stdout(&["verify", "--fast", "--json", p]);
    assert_eq!(code, 1);
    assert!(json.len() < 4 << 20, "--json is bounded: {} bytes", json.len());
    let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let omitted = report["omitted"].as_array().unwrap();
    let bad_lines = omitted.iter().find(|o| o["kind"] == "invalidManifestLine").expect("counted past the cap");
    assert_eq!(bad_lines["count"].as_u64().unwrap(), 2_000_000 + 3000 - MAX_FINDINGS_PER_KIND as u64);
    let (_, text, _) = cli_stdout(&["verify", "--fast", p]);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(&format!("and {} more", 2_003_000 - MAX_FINDINGS_PER_KIND)), "{}", &text[..2000]);
}

/// Two million invalid lines in a `.jsonl` payload file: one finding each, capped.
#[test]
fn invalid_jsonl_lines_are_capped_findings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_bag(dir.path(), "jsonl-bomb", |w| {
        let mut many = RepeatChunk::new(b"x\n".repeat(500_000), 4);
        w.add_deflated_from("extra/more.jsonl", &mut many).unwrap();
    });
    assert_bounded(&["verify", path.to_str().unwrap()], &[1]);
    let report = full(&path);
    assert_eq!(report.findings.iter().filter(|f| f.kind == FindingKind::InvalidJson).count(), MAX_FINDINGS_PER_KIND);
    assert_eq!(report.omitted(FindingKind::InvalidJson), 2_000_000 - MAX_FINDINGS_PER_KIND as u64);
}

/// A reader of `times` copies of `chunk`.
struct RepeatChunk {
    chunk: Vec<u8>,
    left: u64,
    at: usize,
}

impl RepeatChunk {
    fn new(chunk: Vec<u8>, times: u64) -> RepeatChunk {
        RepeatChunk { chunk, left: times, at: 0 }
    }
}

impl Read for RepeatChunk {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        if self.at == self.chunk.len() {
            self.at = 0;
            self.left -= 1;
        }
        Ok(n)
    }
}

/// A bag whose `images.jsonl` is its three real lines and then 300 MB of copies of the first:
/// a few hundred KB on disk. `convert` and `restore` stream it and stop at the first copy.
fn listing_bomb(dir: &Path) -> PathBuf {
    let path = dir.join("listing-bomb.zip");
    let mut w = BagWriter::new(File::create(&path).unwrap(), &layout::bag_name_for(&path)).unwrap();
    let p = PROJECT;
    w.add_deflated(&layout::project_json(p), format!(r#"{{"id":"{p}","name":"cats"}}"#).as_bytes()).unwrap();
    w.add_deflated(&layout::tags_json(p), br#"[{"id":"00000000-0000-0000-0000-0000000000c1","name":"cat"}]"#).unwrap();
    let mut listing = String::new();
    for (i, id) in IMAGES.iter().enumerate() {
        let bytes = image_bytes(i);
        let file = layout::image_file(p, *id, sniff_extension(&bytes));
        w.add_stored(&file, &bytes, crc32fast::hash(&bytes), Sha256::digest(&bytes).into()).unwrap();
        listing.push_str(&listing_line(p, *id, &file, &bytes, true));
    }
    let first = listing.lines().next().unwrap().to_owned() + "\n";
    let copies = first.repeat((1 << 20) / first.len());
    let mut bomb = listing.as_bytes().chain(RepeatChunk::new(copies.into_bytes(), 300));
    w.add_deflated_from(&layout::images_jsonl(p), &mut bomb).unwrap();
    w.add_deflated(layout::account_json(), br#"{"projects":[]}"#).unwrap();
    w.finish(&info()).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 4 << 20);
    path
}

#[test]
fn convert_streams_a_listing_bomb_and_names_the_copied_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = listing_bomb(dir.path());
    let out = dir.path().join("out");
    let args = ["convert", path.to_str().unwrap(), "--to", "folders", "--out", out.to_str().unwrap()];
    assert_bounded(&args, &[2]);
    let (code, _, stderr) = cli_stdout(&args);
    assert_eq!(code, 2);
    assert!(stderr.contains("listed again"), "{stderr}");
    assert_bounded(&["verify", "--fast", path.to_str().unwrap()], &[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_streams_a_listing_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let path = listing_bomb(dir.path());
    let target = emulator_with(AccountSpec::Empty).await;
    let (endpoint, key) = (target.endpoint(), target.key().to_owned());
    let report = dir.path().join("r.json");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, key).unwrap();
    let ((code, peak), stderr) = tokio::task::spawn_blocking(move || {
        let (path, report, key_file) = (path.to_str().unwrap(), report.to_str().unwrap(), key_file.to_str().unwrap());
        let args =
            ["restore", path, "--endpoint", &endpoint, "--key-file", key_file, "--no-progress", "--report", report];
        (run_measured(&args), cli_stdout(&args).2)
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("listed again"), "{stderr}");
    assert!(peak > 0 && peak < MEMORY_BOUND, "peak memory {} MiB", peak >> 20);
}

/// `account.json` of almost 16 MiB holding eight million array items (a few KB deflated):
/// inspect keeps 10,000 items and counts the rest.
#[test]
fn inspect_reads_an_account_bomb_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let items = (MAX_JSON_BYTES as usize - 100) / 2;
    let mut account = String::from(r#"{"source":{"endpointHost":"h"},"missing":["#);
    account.push_str(&"0,".repeat(items));
    account.push_str("0]}");
    let bomb = repeated_deflate(account.as_bytes(), 1, b"");
    let path = with_bomb_entry(dir.path(), "account-bomb", "/account.json", bomb);
    assert_bounded(&["inspect", path.to_str().unwrap()], &[0, 1]);
    let summary = cvarchive::verify::inspect(&path).unwrap();
    assert_eq!(summary.missing, items as u64 + 1);
}

/// A quoted zip bomb: each entry's data quotes the next entry's local header in a stored block
/// and runs on into it, so 100 entries share one 8 MiB kernel. Verify reports the overlap and
/// inflates none of them.
#[test]
fn a_quoted_overlap_bomb_is_reported_not_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100;
    let kernel_size = 8u64 << 20;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; kernel_size as usize]).unwrap();
    let kernel = enc.finish().unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("quoted/data/x{i:04}.bin")).collect();
    let header_len = |name: &str| 30 + name.len() as u64;
    // Sizes from the last entry back: each quotes the next one's header and runs into its data.
    let mut sizes = vec![(kernel.len() as u64, kernel_size); n];
    for i in (0..n - 1).rev() {
        let h = header_len(&names[i + 1]);
        sizes[i] = (5 + h + sizes[i + 1].0, h + sizes[i + 1].1);
    }
    let local = |i: usize| {
        let mut h = Vec::new();
        h.extend_from_slice(b"PK\x03\x04");
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&8u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&(sizes[i].0 as u32).to_le_bytes());
        h.extend_from_slice(&(sizes[i].1 as u32).to_le_bytes());
        h.extend_from_slice(&(names[i].len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(names[i].as_bytes());
        h
    };
    let mut out = Vec::new();
    let mut central = Vec::new();
    for i in 0..n {
        let offset = out.len() as u32;
        let h = local(i);
        out.extend_from_slice(&h);
        if i + 1 < n {
            let len = header_len(&names[i + 1]) as u16;
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
        } else {
            out.extend_from_slice(&kernel);
        }
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&h[4..30]);
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(names[i].as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let path = dir.path().join("quoted.zip");
    std::fs::write(&path, out).unwrap();

    // The construction works: the first entry really inflates to every later header and the kernel.
    let reader = cvarchive::archive::BagReader::open(&path).unwrap();
    let first = reader.entry(&names[0]).unwrap().unwrap();
    let digest = reader.hash_entry(&first, &mut vec![0u8; 1 << 20]).unwrap();
    assert_eq!(digest.size, sizes[0].1);

    let report = verify(&path, &VerifyOptions::default()).unwrap();
    assert!(report.findings.iter().any(|f| f.kind == FindingKind::OverlappingEntries), "{:#?}", report.findings);
    assert!(report.bytes_hashed < kernel_size, "re-inflated {} bytes", report.bytes_hashed);
}

/// The forged listings of item 2, each re-bagged so BagIt is consistent: (name, edit of
/// `images.jsonl`/`predictions.jsonl`, the detail verify must give).
fn forge(dir: &Path, name: &str, listing: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let good = write_good_bag(dir, &format!("{name}-good"));
    let path = dir.join(format!("{name}.zip"));
    rebag(&good, &path, |l| {
        let e = l.iter_mut().find(|(n, _)| *n == listing).unwrap();
        e.1 = edit(String::from_utf8(e.1.clone()).unwrap()).into_bytes();
    });
    path
}

#[track_caller]
fn assert_listing_finding(path: &Path, listing: &str, detail: &str) {
    let report = full(path);
    let listing = format!("data/{listing}");
    assert!(
        report.findings.iter().any(|f| f.kind == FindingKind::InvalidListing
            && f.path == listing
            && f.detail.as_deref().is_some_and(|d| d.contains(detail))),
        "expected InvalidListing at {listing} saying {detail:?}, got {:#?}",
        report.findings
    );
    let backup = cvarchive::delete::Backup::open(path);
    assert!(backup.is_err(), "the delete gate refuses a backup whose listing is not bound to its files");
}

#[test]
fn a_listed_image_the_archive_does_not_hold_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let listing = layout::images_jsonl(PROJECT);
    let stranger = uuid::Uuid::from_u128(0xdead);
    // A line for an id the archive does not hold, copying the first line's file, sha256 and size.
    let path = forge(dir.path(), "stranger", &listing, |text| {
        let first = text.lines().next().unwrap().replace(&IMAGES[0].to_string(), &stranger.to_string());
        let file = layout::image_file(PROJECT, IMAGES[0], sniff_extension(&image_bytes(0)));
        let copied = first.replace(&layout::image_file(PROJECT, stranger, "jpg"), &file);
        format!("{text}{copied}\n")
    });
    assert_listing_finding(&path, &listing, &format!("image {stranger} names file"));
}

#[test]
fn an_image_file_listed_twice_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let listing = layout::images_jsonl(PROJECT);
    let path = forge(dir.path(), "twice", &listing, |text| {
        let first = text.lines().next().unwrap().to_owned();
        format!("{text}{first}\n")
    });
    assert_listing_finding(&path, &listing, "is listed again (first on line 1)");
}

#[test]
fn a_listed_prediction_must_name_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let listing = layout::predictions_jsonl(PROJECT);
    // A prediction line pointing at an image of the project: another id's file.
    let path = forge(dir.path(), "prediction", &listing, |text| {
        let image = layout::image_file(PROJECT, IMAGES[1], sniff_extension(&image_bytes(1)));
        let mut v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        v["file"] = image.into();
        format!("{v}\n")
    });
    assert_listing_finding(&path, &listing, &format!("prediction {PREDICTION} names file"));
}
