//! Figure 7 (issue 16): every command on the one-million-image account, with its wall time and
//! its own peak memory, against the same commands at a tenth of the size, and a projection to
//! the service's largest account (100 projects of 100,000 images: ten million).
//!
//! The accounts are the emulator's generated ones, 10 projects of images of about 256 bytes:
//! `projects=10,images=100000,seed=3,size=256` (1,000,000 images, an archive of about 1 GB) and
//! `projects=10,images=10000,seed=3,size=256` (100,000). Same shape, a tenth of the images, so
//! the difference between the two is what grows per image. `CVARCHIVE_BENCH_IMAGES` scales
//! both down for a quick run (e.g. `100000`: 100,000 against 10,000).
//!
//! Each size is exported with `--api-rate unlimited` by the release binary, then every command
//! of `benches/common/commands.rs` runs on the archive as a child whose own peak resident memory is read:
//! verify, verify --fast, inspect, convert to COCO and to folders (each output removed once
//! measured), delete's dry run with the archive as its `--backup` (against the emulator), and
//! `restore --dry-run` when the binary has it ("n/a" otherwise). Printed per command: the peak
//! at the full size (target <= 256 MiB), the time ratio full/tenth (target <= 11), the bytes
//! per image of the peak's growth and the peaks and times it projects at ten million images;
//! and verify --fast <= 3 s, inspect <= 1 s at the full size. About 10 minutes at 1,000,000
//! images on two cores, and 2 to 3 GB of disk at once (the archive and one convert output), in
//! `$CVARCHIVE_BENCH_DIR` or the system temp dir, removed afterwards.

mod common;

use common::commands::{self, Outcome};
use common::{mib, note, Row};
use cvarchive::emulator::FaultConfig;

/// Projects in both accounts.
const PROJECTS: u64 = 10;
/// The service's largest account, which the figures are projected to.
const TEN_MILLION: f64 = 10_000_000.0;
/// The most peak memory any command may have at the full size.
const PEAK_TARGET: u64 = 256 << 20;

/// One command at one size: `None` when the binary does not have it.
type Measured = Vec<(&'static str, Option<Outcome>)>;

/// The full size: `$CVARCHIVE_BENCH_IMAGES`, or one million.
fn full_size() -> u64 {
    let images = std::env::var("CVARCHIVE_BENCH_IMAGES")
        .ok()
        .map(|v| v.replace('_', "").parse::<u64>().expect("CVARCHIVE_BENCH_IMAGES is a number of images"))
        .unwrap_or(1_000_000);
    assert!(
        images >= 1000 && images.is_multiple_of(PROJECTS * 10),
        "CVARCHIVE_BENCH_IMAGES must be a multiple of 100, at least 1,000"
    );
    images
}

/// Exports the generated account of `images` images and runs every command on it.
async fn every_command_at(images: u64, dir: &tempfile::TempDir) -> Measured {
    let spec = format!("projects={PROJECTS},images={},seed=3,size=256", images / PROJECTS);
    eprintln!("  {images} images: generating {spec}");
    let emu = common::generated(&spec, FaultConfig::default()).await;
    emu.store_md5s();
    let archive = common::path_in(dir, &format!("{images}.zip"));
    let steps = commands::every_command(&archive, dir.path(), &emu.endpoint());
    let key = emu.key().to_owned();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_cvarchive"));
    let measured = tokio::task::spawn_blocking(move || {
        let mut measured = Vec::new();
        for step in &steps {
            if !commands::available(&binary, step) {
                eprintln!("  {images} images: {}: n/a (the binary does not have it)", step.name);
                measured.push((step.name, None));
                continue;
            }
            let o = commands::run(&binary, step, &key);
            eprintln!("  {images} images: {}: exit {}, {:.2} s, {}", step.name, o.code, o.seconds, mib(o.peak));
            if step.name == "export" {
                let bytes = std::fs::metadata(&archive).map_or(0, |m| m.len());
                note(format!("figure 7: the {images}-image archive is {:.2} GB", bytes as f64 / 1e9));
            }
            measured.push((step.name, Some(o)));
        }
        let _ = std::fs::remove_file(&archive);
        measured
    })
    .await
    .expect("the commands run");
    emu.shutdown().await;
    measured
}

/// Growth of the peak per image between the two sizes, in bytes (may be negative: noise).
fn slope(small: &Outcome, big: &Outcome, n_small: u64, n_big: u64) -> f64 {
    (big.peak as f64 - small.peak as f64) / (n_big - n_small) as f64
}

/// The peak projected at ten million images from the small size and the slope.
fn projected_peak(small: &Outcome, slope: f64, n_small: u64) -> f64 {
    small.peak as f64 + slope.max(0.0) * (TEN_MILLION - n_small as f64)
}

/// The table rows of one command at both sizes.
fn rows(name: &str, small: &Outcome, big: &Outcome, n_small: u64, n_big: u64) {
    if small.code != 0 || big.code != 0 {
        let failed = if big.code != 0 { big } else { small };
        Row {
            figure: "7",
            what: &format!("`{name}`, {n_small} and {n_big} images"),
            measured: format!("failed (exit {})", failed.code),
            reference: String::new(),
            result: "failed".into(),
            target: "exit 0",
            met: Some(false),
        }
        .print();
        note(format!("figure 7: `{name}` failed: {}", failed.stderr.trim().replace('\n', " / ")));
        return;
    }
    let per_image = slope(small, big, n_small, n_big);
    Row {
        figure: "7",
        what: &format!("peak RSS of `{name}`, {n_big} images"),
        measured: mib(big.peak),
        reference: format!("{} at {n_small}", mib(small.peak)),
        result: format!("{per_image:+.0} B/image; {} at 10M", mib(projected_peak(small, per_image, n_small) as u64)),
        target: "≤ 256 MiB",
        met: Some(big.peak <= PEAK_TARGET),
    }
    .print();
    let ratio = big.seconds / small.seconds;
    Row {
        figure: "7",
        what: &format!("time of `{name}`, {n_big} vs {n_small} images"),
        measured: format!("{:.2} s", big.seconds),
        reference: format!("{:.2} s", small.seconds),
        result: format!("{ratio:.1}×"),
        target: "≤ 11×",
        met: Some(ratio <= 11.0),
    }
    .print();
    let limit = match name {
        "verify --fast" => Some((3.0, "≤ 3 s")),
        "inspect" => Some((1.0, "≤ 1 s")),
        _ => None,
    };
    if let Some((seconds, target)) = limit {
        Row {
            figure: "7",
            what: &format!("time of `{name}`, {n_big} images"),
            measured: format!("{:.2} s", big.seconds),
            reference: String::new(),
            result: format!("{:.2} s", big.seconds),
            target,
            met: Some(big.seconds <= seconds),
        }
        .print();
    }
}

/// The per-command summary the README shows, as indented Markdown (`scripts/bench` prints it
/// after the figures).
fn summary(small: &Measured, big: &Measured, n_small: u64, n_big: u64) {
    println!("  | command | time {n_small} | time {n_big} | ratio | peak {n_small} | peak {n_big} | bytes/image | projected peak at 10M | projected time at 10M |");
    println!("  |---|---|---|---|---|---|---|---|---|");
    for ((name, s), (_, b)) in small.iter().zip(big) {
        match (s, b) {
            (Some(s), Some(b)) if s.code == 0 && b.code == 0 => {
                let per_image = slope(s, b, n_small, n_big);
                println!(
                    "  | {name} | {:.2} s | {:.2} s | {:.1} | {} | {} | {per_image:+.0} | {} | {:.0} s |",
                    s.seconds,
                    b.seconds,
                    b.seconds / s.seconds,
                    mib(s.peak),
                    mib(b.peak),
                    mib(projected_peak(s, per_image, n_small) as u64),
                    b.seconds * TEN_MILLION / n_big as f64
                );
            }
            (Some(_), Some(_)) => println!("  | {name} | failed | failed | | | | | | |"),
            _ => println!("  | {name} | n/a | n/a | | | | | | |"),
        }
    }
}

#[tokio::main]
async fn main() {
    let n_big = full_size();
    let n_small = n_big / 10;
    let dir = common::scratch();
    let small = every_command_at(n_small, &dir).await;
    let big = every_command_at(n_big, &dir).await;
    for ((name, s), (_, b)) in small.iter().zip(&big) {
        match (s, b) {
            (Some(s), Some(b)) => rows(name, s, b, n_small, n_big),
            _ => Row {
                figure: "7",
                what: &format!("`{name}`, {n_big} images"),
                measured: "n/a".into(),
                reference: String::new(),
                result: "not in this binary".into(),
                target: "≤ 256 MiB",
                met: None,
            }
            .print(),
        }
    }
    note(format!(
        "figure 7: {PROJECTS} projects of generated images of about 256 bytes, {n_small} and {n_big} images; \
         bytes/image = (peak at {n_big} - peak at {n_small}) / {}; projected peak at 10M = peak at {n_small} + \
         bytes/image × (10,000,000 - {n_small}); projected time = time at {n_big} × {}",
        n_big - n_small,
        10_000_000 / n_big
    ));
    summary(&small, &big, n_small, n_big);
}
