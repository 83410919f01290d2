//! Writer throughput: 4,000 stored 256 KiB entries (1 GiB), written resumably and finished (with
//! its fsync), against a plain sequential write of the same bytes (the disk's own speed) and the
//! `zip` crate's writer. Prints MB/s. `cargo bench --bench writer`; set `CVARCHIVE_BENCH_DIR` to
//! measure another disk (default: cargo's target tmp dir), `CVARCHIVE_BENCH_ENTRIES` and
//! `CVARCHIVE_BENCH_ENTRY_KIB` to change the count and size of entries.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use cvarchive::archive::{BagInfo, BagWriter};
use sha2::{Digest, Sha256};

fn entries(n: usize, size: usize) -> Vec<(String, Vec<u8>, [u8; 32])> {
    (0..n)
        .map(|i| {
            let bytes: Vec<u8> = (0..size).map(|j| (j.wrapping_mul(2_654_435_761) >> 7) as u8 ^ i as u8).collect();
            let sha = Sha256::digest(&bytes).into();
            (format!("projects/p/images/{i:08}.jpg"), bytes, sha)
        })
        .collect()
}

fn ours(dir: &Path, items: &[(String, Vec<u8>, [u8; 32])]) -> Duration {
    let partial = dir.join("bench.zip.partial");
    let start = Instant::now();
    let mut w = BagWriter::create(&partial, "bench", "bench").unwrap();
    for (path, bytes, sha) in items {
        // The CRC-32 is taken here, timed, as the zip crate takes its own.
        w.add_stored(path, bytes, crc32fast::hash(bytes), *sha).unwrap();
    }
    let info = BagInfo {
        source_host: "bench".into(),
        api_version: "v3.3".into(),
        tool_version: "0".into(),
        bagging_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        extra: Vec::new(),
    };
    w.finish(&info).unwrap();
    let took = start.elapsed();
    std::fs::remove_file(partial).unwrap();
    took
}

fn plain(dir: &Path, items: &[(String, Vec<u8>, [u8; 32])]) -> Duration {
    let path = dir.join("bench.raw");
    let start = Instant::now();
    let mut f = std::io::BufWriter::with_capacity(4 << 20, File::create(&path).unwrap());
    for (_, bytes, _) in items {
        f.write_all(bytes).unwrap();
    }
    f.into_inner().unwrap().sync_all().unwrap();
    let took = start.elapsed();
    std::fs::remove_file(path).unwrap();
    took
}

fn zip_crate(dir: &Path, items: &[(String, Vec<u8>, [u8; 32])]) -> Duration {
    let path = dir.join("bench-zipcrate.zip");
    let start = Instant::now();
    let file = std::io::BufWriter::with_capacity(4 << 20, File::create(&path).unwrap());
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes, _) in items {
        zip.start_file(format!("bench/data/{name}"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner().unwrap().sync_all().unwrap();
    let took = start.elapsed();
    std::fs::remove_file(path).unwrap();
    took
}

fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let n = env("CVARCHIVE_BENCH_ENTRIES", 4000);
    let size = env("CVARCHIVE_BENCH_ENTRY_KIB", 256) << 10;
    let dir = std::env::var_os("CVARCHIVE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let items = entries(n, size);
    let mb = (n * size) as f64 / 1e6;
    println!("{n} stored entries of {} KiB ({mb:.0} MB) in {}", size >> 10, dir.display());
    type Run = fn(&Path, &[(String, Vec<u8>, [u8; 32])]) -> Duration;
    let mut runs: [(&str, Run); 3] =
        [("plain sequential write", plain), ("cvarchive BagWriter", ours), ("zip crate ZipWriter", zip_crate)];
    for round in 1..=3 {
        // Each round starts with another contender, so none always follows the same one.
        for &(name, run) in &runs {
            let took = run(&dir, &items);
            println!("round {round}: {name:<24} {:>8.1} MB/s ({:.2} s)", mb / took.as_secs_f64(), took.as_secs_f64());
        }
        runs.rotate_left(1);
    }
}
