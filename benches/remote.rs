//! Figure 8 (issue 17): exporting to Azure Blob Storage (a local Azurite) against exporting the
//! same account to a local file, side by side in one run, and the local disk a remote export
//! takes.
//!
//! The account is the emulator's generated one, 10 projects of images of about 256 bytes
//! (`projects=10,images=10000,seed=3,size=256`: 100,000 images, an archive of about 100 MB);
//! `CVARCHIVE_BENCH_IMAGES` scales it. Azurite keeps its data on the same disk as the local
//! archive (`$CVARCHIVE_BENCH_DIR` or the system temp dir). The release binary exports it with
//! `--api-rate unlimited`, alternately to a local file and to `az://bench/round-N.zip`
//! (`--spool-dir` in the same folder), `CVARCHIVE_BENCH_ROUNDS` times each (default 4), in the
//! order L R, R L, L R, R L so that drift favours neither. `CVARCHIVE_BENCH_PART_SIZES` (MiB,
//! comma-separated; default `8`) repeats the remote runs for other `--part-size`s;
//! `CVARCHIVE_BENCH_TRACE=DIR` writes every disk sample of every run to a file there.
//!
//! Per run: wall time; the child's peak resident memory (`VmHWM`) and CPU time (user + system,
//! per thread name too); Azurite's CPU time and this process's (the emulator serving the export)
//! and the whole machine's (the rest is other work on a shared machine) over the run; when the
//! archive stopped growing (the rest of the wall time is the upload's tail and the commit); and
//! every 50 ms the local disk allocated under the output folder (blocks, so the holes punched
//! into the sparse spool file are not counted), the writer's journal, staging folders and the
//! unlinked temporary files the child holds open apart. Printed:
//! the median time ratio remote/local (target ≤ 1.3), the spool's peak against the bound
//! `store::upload` states (`IN_FLIGHT` + 2 parts, plus an entry being written), the peak memory
//! of both (target < 150 MiB at 100,000 images), and a per-run table (where the time goes).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::azurite::Azurite;
use common::watch::{self, Watch, Watched};
use common::{mib, note, Row};
use cvarchive::emulator::FaultConfig;
use cvarchive::store::upload::IN_FLIGHT;

/// Projects in the account.
const PROJECTS: u64 = 10;
/// The container the remote archives go to.
const CONTAINER: &str = "bench";
/// The most a remote export may take, as a multiple of the local one.
const RATIO_TARGET: f64 = 1.3;
/// The memory budget at 100,000 images (issue 17).
const PEAK_TARGET: u64 = 150 << 20;
/// What the spool may hold besides its parts: the entry being written when the journal is behind
/// (a project's listing, "a few MB"), and the journal and record.
const SPOOL_SLACK: u64 = 8 << 20;

/// Where one export goes.
#[derive(Clone, Copy, PartialEq)]
enum Dest {
    Local,
    /// To Azurite with this `--part-size`, in MiB.
    Azurite(u64),
}

impl Dest {
    fn label(self) -> String {
        match self {
            Dest::Local => "local file".into(),
            Dest::Azurite(p) => format!("Azurite, --part-size {p}"),
        }
    }
}

/// One export, measured.
struct Run {
    dest: Dest,
    round: u32,
    seconds: f64,
    peak_rss: u64,
    /// The child's user + system CPU, seconds.
    cpu: f64,
    /// Azurite's CPU over the run, seconds.
    azurite_cpu: f64,
    /// This process's CPU over the run (the emulator serving the export), seconds.
    emulator_cpu: f64,
    /// The whole machine's CPU over the run (all cores), seconds: the rest is other work.
    machine_cpu: f64,
    watched: Watched,
    /// The archive's size (local file, or committed blob).
    bytes: u64,
}

/// `$name` as a number, or `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.replace('_', "").parse::<u64>().unwrap_or_else(|_| panic!("{name} is a number")))
        .unwrap_or(default)
}

/// The part sizes (MiB) of the remote runs.
fn part_sizes() -> Vec<u64> {
    let text = std::env::var("CVARCHIVE_BENCH_PART_SIZES").unwrap_or_else(|_| "8".into());
    text.split(',').map(|p| p.trim().parse().expect("CVARCHIVE_BENCH_PART_SIZES: MiB, comma-separated")).collect()
}

/// Runs one export as a child and watches it.
fn export(endpoint: &str, key: &str, azurite: &Azurite, dir: &Path, dest: Dest, round: u32) -> Run {
    let (out, watched_dir, busy_at, mut extra): (String, PathBuf, u64, Vec<String>) = match dest {
        Dest::Local => {
            let folder = dir.join("local");
            // No earlier archive: the disk and the growth watched are this run's alone.
            let _ = std::fs::remove_dir_all(&folder);
            std::fs::create_dir_all(&folder).unwrap();
            (folder.join("archive.zip").to_str().unwrap().to_owned(), folder, u64::MAX, Vec::new())
        }
        Dest::Azurite(part) => {
            let spool = dir.join("spool");
            let extra =
                vec!["--spool-dir".into(), spool.to_str().unwrap().into(), "--part-size".into(), part.to_string()];
            (
                format!("az://{CONTAINER}/round-{round}-part-{part}.zip"),
                spool,
                (IN_FLIGHT as u64 + 1) * (part << 20),
                extra,
            )
        }
    };
    let mut args: Vec<String> =
        ["export", "--endpoint", endpoint, "--api-rate", "unlimited", "--no-progress", "--force", "-q"]
            .map(str::to_owned)
            .to_vec();
    args.extend(["--out".to_owned(), out.clone()]);
    args.append(&mut extra);
    let err = tempfile::tempfile().expect("a stderr file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(&args)
        .env_remove("VISION_TRAINING_ENDPOINT")
        .env("VISION_TRAINING_KEY", key)
        .env("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.try_clone().expect("dup"));
    for var in
        ["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "CVARCHIVE_SPOOL_DIR"]
    {
        cmd.env_remove(var);
    }
    let (own_before, children_before) = watch::own_and_children_cpu();
    let azurite_before = watch::cpu_of(azurite.pid());
    let machine_before = watch::machine_cpu();
    let started = Instant::now();
    let mut child = cmd.spawn().expect("the binary runs");
    let trace = std::env::var_os("CVARCHIVE_BENCH_TRACE").map(|d| {
        let name = match dest {
            Dest::Local => format!("round-{round}-local.tsv"),
            Dest::Azurite(p) => format!("round-{round}-azurite-{p}.tsv"),
        };
        PathBuf::from(d).join(name)
    });
    let w = Watch::start(child.id(), watched_dir, busy_at, trace);
    let (code, peak_rss) = common::peak::wait_with_peak(&mut child);
    let seconds = started.elapsed().as_secs_f64();
    let watched = w.stop();
    let (own_after, children_after) = watch::own_and_children_cpu();
    let azurite_cpu = watch::cpu_of(azurite.pid()) - azurite_before;
    let machine_cpu = watch::machine_cpu() - machine_before;
    if code != 0 {
        use std::io::{Read, Seek};
        let (mut err, mut text) = (err, String::new());
        err.rewind().ok();
        err.take(4000).read_to_string(&mut text).ok();
        panic!("export to {out} exited with {code}:\n{text}");
    }
    let bytes = match dest {
        Dest::Local => std::fs::metadata(&out).map_or(0, |m| m.len()),
        Dest::Azurite(_) => 0,
    };
    Run {
        dest,
        round,
        seconds,
        peak_rss,
        cpu: children_after - children_before,
        azurite_cpu,
        emulator_cpu: own_after - own_before,
        machine_cpu,
        watched,
        bytes,
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The figure's rows for the remote runs of one part size against the local runs.
fn rows(local: &[&Run], remote: &[&Run], part: u64, images: u64) {
    let (l, r) =
        (median(local.iter().map(|x| x.seconds).collect()), median(remote.iter().map(|x| x.seconds).collect()));
    let paired = median(
        remote.iter().filter_map(|x| Some(x.seconds / local.iter().find(|y| y.round == x.round)?.seconds)).collect(),
    );
    Row {
        figure: "8",
        what: &format!("export time to Azurite (--part-size {part}) vs a local file, {images} images, median"),
        measured: format!("{r:.2} s"),
        reference: format!("{l:.2} s"),
        result: format!("{:.2}× (median of each round's own ratio: {paired:.2}×)", r / l),
        target: "≤ 1.3×",
        met: Some(r / l <= RATIO_TARGET),
    }
    .print();
    let spool = remote.iter().map(|x| x.watched.peak_other).max().unwrap_or(0);
    let staging = remote.iter().map(|x| x.watched.peak_staging).max().unwrap_or(0);
    let journal = remote.iter().map(|x| x.watched.peak_journal).max().unwrap_or(0);
    let unlinked = remote.iter().map(|x| x.watched.peak_unlinked).max().unwrap_or(0);
    let total = remote.iter().map(|x| x.watched.peak_total).max().unwrap_or(0);
    let bound = (IN_FLIGHT as u64 + 2) * (part << 20);
    Row {
        figure: "8",
        what: &format!("local disk of the spool file (--part-size {part}), {images} images, peak"),
        measured: mib(spool),
        reference: format!("bound {} + an entry", mib(bound)),
        result: format!(
            "beside it: journal {}, staging {}, unlinked temporary files {}; all at once {}",
            mib(journal),
            mib(staging),
            mib(unlinked),
            mib(total)
        ),
        target: "≤ bound + 8 MiB",
        met: Some(spool <= bound + SPOOL_SLACK),
    }
    .print();
    let med = |runs: &[&Run], f: &dyn Fn(&Run) -> f64| median(runs.iter().map(|x| f(x)).collect());
    let at_limit: u64 = remote.iter().map(|x| x.watched.samples_at).sum();
    let samples: u64 = remote.iter().map(|x| x.watched.samples).sum::<u64>().max(1);
    note(format!(
        "figure 8, --part-size {part}, where the time goes (medians): to a local file {l:.2} s, CPU cvarchive {:.1} s + \
         emulator {:.1} s; to Azurite {r:.2} s, CPU cvarchive {:.1} s + emulator {:.1} s + Azurite {:.1} s; \
         the spool stopped growing {:.2} s before the end (the last parts and the commit); \
         {:.0} % of samples had ≥ {} parts spooled (the writer at the in-flight limit)",
        med(local, &|x| x.cpu),
        med(local, &|x| x.emulator_cpu),
        med(remote, &|x| x.cpu),
        med(remote, &|x| x.emulator_cpu),
        med(remote, &|x| x.azurite_cpu),
        med(remote, &|x| x.seconds - x.watched.last_growth.as_secs_f64()),
        100.0 * at_limit as f64 / samples as f64,
        IN_FLIGHT + 1
    ));
    let (lp, rp) =
        (local.iter().map(|x| x.peak_rss).max().unwrap_or(0), remote.iter().map(|x| x.peak_rss).max().unwrap_or(0));
    Row {
        figure: "8",
        what: &format!("peak RSS of export to Azurite (--part-size {part}), {images} images"),
        measured: mib(rp),
        reference: format!("{} to a local file", mib(lp)),
        result: format!("{:+.1} MiB", (rp as f64 - lp as f64) / f64::from(1 << 20)),
        target: "< 150 MiB",
        met: (images == 100_000).then_some(rp < PEAK_TARGET),
    }
    .print();
}

/// The per-run table (indented, so `scripts/bench` prints it under its own heading).
fn table(runs: &[Run]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "  | round | to | wall | writing ended | peak RSS | CPU: cvarchive | Azurite | emulator | other work | \
         machine busy | disk peak (journal; staging; unlinked) | samples ≥ {} parts | cvarchive threads (CPU s) |",
        IN_FLIGHT + 1
    );
    println!("  |---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let threads: Vec<String> = r.watched.threads.iter().take(5).map(|(name, s)| format!("{name} {s:.1}")).collect();
        let ours = r.cpu + r.azurite_cpu + r.emulator_cpu;
        let at_limit = match r.dest {
            Dest::Local => String::new(),
            Dest::Azurite(_) => format!("{}/{}", r.watched.samples_at, r.watched.samples),
        };
        println!(
            "  | {} | {} | {:.2} s | {:.2} s | {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.0} % \
             | {} ({}; {}; {}) | {at_limit} | {} |",
            r.round,
            r.dest.label(),
            r.seconds,
            r.watched.last_growth.as_secs_f64(),
            mib(r.peak_rss),
            r.cpu,
            r.azurite_cpu,
            r.emulator_cpu,
            (r.machine_cpu - ours).max(0.0),
            100.0 * r.machine_cpu / (r.seconds * cores),
            mib(r.watched.peak_total),
            mib(r.watched.peak_journal),
            mib(r.watched.peak_staging),
            mib(r.watched.peak_unlinked),
            threads.join(", ")
        );
    }
}

#[tokio::main]
async fn main() {
    let images = env_number("CVARCHIVE_BENCH_IMAGES", 100_000);
    assert!(images >= 100 && images.is_multiple_of(PROJECTS), "CVARCHIVE_BENCH_IMAGES: a multiple of 10, at least 100");
    let rounds = env_number("CVARCHIVE_BENCH_ROUNDS", 4).max(1) as u32;
    let parts = part_sizes();
    let dir = common::scratch();
    let spec = format!("projects={PROJECTS},images={},seed=3,size=256", images / PROJECTS);
    eprintln!("  remote: generating {spec}");
    let emu = common::generated(&spec, FaultConfig::default()).await;
    let azurite = Azurite::start(&dir.path().join("azurite")).await;
    azurite.create_container(CONTAINER).await;
    let (endpoint, key) = (emu.endpoint(), emu.key().to_owned());
    let mut plan = Vec::new();
    for round in 1..=rounds {
        let mut pair: Vec<Dest> = std::iter::once(Dest::Local).chain(parts.iter().map(|&p| Dest::Azurite(p))).collect();
        if round % 2 == 0 {
            pair.reverse();
        }
        plan.extend(pair.into_iter().map(|d| (round, d)));
    }
    let mut runs = Vec::new();
    for (round, dest) in plan {
        let (endpoint, key, path) = (endpoint.clone(), key.clone(), dir.path().to_path_buf());
        let az = &azurite;
        // The emulator serves on this runtime's threads while the child runs.
        let mut run = tokio::task::block_in_place(|| export(&endpoint, &key, az, &path, dest, round));
        if let Dest::Azurite(part) = dest {
            let name = format!("round-{round}-part-{part}.zip");
            run.bytes = azurite.blob_size(CONTAINER, &name).await.unwrap_or_else(|| panic!("{name} is not committed"));
        }
        eprintln!(
            "  remote: round {round}, {}: {:.2} s, {}, cvarchive {:.1} s CPU, Azurite {:.1} s, disk peak {} (staging {})",
            dest.label(),
            run.seconds,
            mib(run.peak_rss),
            run.cpu,
            run.azurite_cpu,
            mib(run.watched.peak_total),
            mib(run.watched.peak_staging)
        );
        runs.push(run);
    }
    let local: Vec<&Run> = runs.iter().filter(|r| r.dest == Dest::Local).collect();
    for &part in &parts {
        let remote: Vec<&Run> = runs.iter().filter(|r| r.dest == Dest::Azurite(part)).collect();
        rows(&local, &remote, part, images);
    }
    note(format!(
        "figure 8: {PROJECTS} projects of generated images of about 256 bytes, {images} images, {rounds} rounds; \
         Azurite on the same disk and the same cores; disk = blocks allocated under the output (the spool folder \
         for Azurite), journal, staging and the export's unlinked temporary files included, sampled every {} ms",
        watch::EVERY.as_millis()
    ));
    table(&runs);
    emu.shutdown().await;
}
