//! Robustness by machine (issue 14, item 10): a property test that damages a real archive in
//! many ways and holds `verify`, `inspect`, `convert` and the CLI to their promises.
//!
//! The archive is the bundled fixture account, exported once per run by the real export over a
//! real socket. Each case applies one [`Mutation`] (byte flips in local headers, the central
//! directory, entry data or the end record; truncation; shuffled, dropped and duplicated
//! central-directory entries; huge declared sizes, ZIP64 fields included; entries renamed to
//! `../x`, absolute or drive-letter paths; a changed manifest line) and asserts:
//!
//! - nothing panics (`verify` full and fast, `inspect`, and `convert` on every
//!   [`CONVERT_EVERY`]th case);
//! - every finding names a path;
//! - an "intact" verdict only when every entry still reads back exactly as in the original
//!   (a flip in dead space, a shuffled directory); mutations that always damage must be found;
//! - `convert` writes nothing outside its output folder;
//! - on every [`CLI_EVERY`]th case, the binary's exit code agrees with the library (0 intact,
//!   1 findings, 2 unreadable) and its peak RSS stays under [`PEAK_RSS_LIMIT`].
//!
//! Deterministic: a fixed seed and case count, entries picked by name from an export made one
//! download at a time (the export's timestamps and a few ids the emulator draws at random still
//! vary, so a byte offset may land one field over from run to run). For longer local runs set
//! `CVARCHIVE_FUZZ_SEED=<u64>` and `CVARCHIVE_FUZZ_CASES=<n>`, e.g.
//! `CVARCHIVE_FUZZ_CASES=5000 cargo test --test tests robustness::`. A failure prints the
//! (shrunk) mutation that triggers it.

mod mutate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cvarchive::archive::BagReader;
use cvarchive::convert::{convert, ConvertOptions, Target};
use cvarchive::progress::NoProgress;
use cvarchive::verify::{inspect, verify, FindingKind, Report, VerifyOptions};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

use mutate::{Base, Mutation};

use crate::support::run_measured;

/// Cases in the default run (about 20 s in a debug build on two cores).
const DEFAULT_CASES: u32 = 300;
/// The default seed (the number).
const DEFAULT_SEED: u64 = 14;
/// Every this many cases, the CLI binary verifies the mutated archive in a child process.
const CLI_EVERY: usize = 16;
/// Every this many cases, the archive is also converted.
const CONVERT_EVERY: usize = 10;
/// The most a child process may hold at once on any of these archives.
const PEAK_RSS_LIMIT: u64 = 256 << 20;
/// Whether the default run includes bombs: deflated files of millions of invalid lines (a
/// manifest, an `images.jsonl`), checked through the CLI's peak RSS only. Since issue 14 item 1
/// every reader stays under [`PEAK_RSS_LIMIT`] on them (30 cases with bombs pass), but each bomb
/// costs seconds of inflating, too slow for the default run; `tests/hostile_archives.rs` pins
/// each kind of bomb, and `CVARCHIVE_FUZZ_BOMBS=1` mixes them in here.
const BOMBS_IN_DEFAULT_RUN: bool = false;
/// Largest entry read back when checking an "intact" verdict.
const READ_BACK_LIMIT: u64 = 64 << 20;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The fixture account exported by the library over a real socket.
fn export_fixture(dir: &Path) -> PathBuf {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let emu = crate::support::fixture_emulator().await;
        let out = dir.join("fixture.zip");
        let client = crate::support::client_for(&emu);
        // One download at a time, so entries are written in the same order on every run.
        let opts = cvarchive::export::ExportOptions { concurrency: 1, ..cvarchive::export::ExportOptions::new(&out) };
        cvarchive::export::export(&client, &opts, &NoProgress, &Default::default()).await.expect("export succeeds");
        emu.shutdown().await;
        out
    })
}

/// Every entry, by name, as our own reader reads it (first occurrence of a name); `None` when
/// any entry cannot be read.
fn read_back(path: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    let reader = BagReader::open(path).ok()?;
    let mut out = BTreeMap::new();
    for e in crate::support::entries(&reader) {
        let bytes = reader.read_entry(&e, READ_BACK_LIMIT).ok()?;
        out.entry(e.name.clone()).or_insert(bytes);
    }
    Some(out)
}

/// The library's verdict as the CLI's exit code.
fn exit_code(verdict: &Result<Report, cvarchive::verify::Error>) -> i32 {
    match verdict {
        Ok(r) if r.is_clean() => 0,
        Ok(_) => 1,
        Err(_) => 2,
    }
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

/// What one case checks, given the mutated archive at `path`.
struct Case<'a> {
    base: &'a Base,
    path: &'a Path,
    n: usize,
}

impl Case<'_> {
    /// Runs every check; returns the library's verdict as an exit code.
    fn run(&self, m: &Mutation) -> Result<i32, TestCaseError> {
        if let Mutation::Bomb { .. } = m {
            return self.bomb();
        }
        let full = verify(self.path, &VerifyOptions { threads: 1, ..VerifyOptions::default() });
        let fast = verify(self.path, &VerifyOptions { fast: true, threads: 1, ..VerifyOptions::default() });
        for report in [&full, &fast].into_iter().flatten() {
            for f in &report.findings {
                check!(!f.path.is_empty(), "a {:?} finding names no path: {f:?}", f.kind);
            }
        }
        if let Ok(report) = &full {
            if report.is_clean() {
                check!(!m.always_damages(), "verify says intact after {m:?}");
                let same = read_back(self.path).as_ref() == Some(&self.base.contents);
                check!(same, "verify says intact, but the entries no longer read back as the original");
            }
        }
        let _ = inspect(self.path);
        if self.n.is_multiple_of(CONVERT_EVERY) {
            self.convert()?;
        }
        if self.n.is_multiple_of(CLI_EVERY) {
            let (code, peak) = run_measured(&["verify", "--json", self.path.to_str().unwrap()]);
            check!(code == exit_code(&full), "the CLI exits {code}, the library says {}", exit_code(&full));
            check!(peak < PEAK_RSS_LIMIT, "verify's peak RSS was {peak} bytes");
            let (code, peak) = run_measured(&["inspect", self.path.to_str().unwrap()]);
            check!(code == 0 || code == 2, "inspect exits {code}");
            check!(peak < PEAK_RSS_LIMIT, "inspect's peak RSS was {peak} bytes");
        }
        Ok(exit_code(&full))
    }

    /// A bomb, through the CLI only (in process it would take this test's memory): every command
    /// ends with findings or an error, in bounded memory.
    fn bomb(&self) -> Result<i32, TestCaseError> {
        let out = tempfile::tempdir().unwrap();
        let archive = self.path.to_str().unwrap();
        let convert = ["convert", archive, "--to", "coco", "--out", out.path().to_str().unwrap()];
        for args in [&["verify", "--fast", archive][..], &["verify", archive], &["inspect", archive], &convert] {
            let (code, peak) = run_measured(args);
            // convert exits 3 when it leaves damaged images out.
            check!((0..=2).contains(&code) || (args[0] == "convert" && code == 3), "{args:?} exits {code}");
            check!(args[0] != "verify" || code != 0, "{args:?} says intact");
            check!(peak < PEAK_RSS_LIMIT, "{args:?}: peak RSS {} MiB", peak >> 20);
        }
        Ok(1)
    }

    /// Converts into a fresh folder inside a fresh folder: whatever happens, nothing may appear
    /// beside the output folder.
    fn convert(&self) -> Result<(), TestCaseError> {
        let outer = tempfile::tempdir().unwrap();
        let out = outer.path().join("out");
        for to in [Target::Coco, Target::Folders] {
            let _ = std::fs::remove_dir_all(&out);
            let opts = ConvertOptions { to, out: out.clone(), projects: Vec::new(), force: false };
            let _ = convert(self.path, &opts, &NoProgress);
            let beside: Vec<_> = std::fs::read_dir(outer.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n != "out")
                .collect();
            check!(beside.is_empty(), "convert --to {to:?} wrote outside its folder: {beside:?}");
        }
        Ok(())
    }
}

#[test]
fn mutated_archives_are_reported_never_crash() {
    let dir = tempfile::tempdir().unwrap();
    let original = export_fixture(dir.path());
    let base = Base::read(&original);
    let clean = verify(&original, &VerifyOptions::default()).unwrap();
    assert!(clean.is_clean(), "the unmutated export is intact: {:#?}", clean.findings);

    mutator_is_sane(&base, &dir.path().join("sane.zip"));

    // The cases this test found, pinned so they hold whatever the seed: a ZIP64 size of 2^64 - 1
    // overflowed verify's overlap check and its payload byte sum (a panic in debug builds).
    let pinned = dir.path().join("pinned.zip");
    for value in [u64::MAX, u64::MAX - 1] {
        let entry = base.pick_for("/manifest-sha256.txt");
        let m = Mutation::HugeSize { entry, field: mutate::SizeField::Zip64Extra, value };
        std::fs::write(&pinned, m.apply(&base)).unwrap();
        let code = Case { base: &base, path: &pinned, n: 0 }.run(&m).unwrap_or_else(|e| panic!("{m:?}: {e}"));
        assert_eq!(code, 1, "{m:?} is a finding");
    }

    let seed = env_or("CVARCHIVE_FUZZ_SEED", DEFAULT_SEED);
    let config = Config {
        cases: env_or("CVARCHIVE_FUZZ_CASES", DEFAULT_CASES),
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let path = dir.path().join("mutated.zip");
    let count = AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new([0usize; 3]);
    let bombs = BOMBS_IN_DEFAULT_RUN || env_or("CVARCHIVE_FUZZ_BOMBS", 0u8) == 1;
    let result = runner.run(&mutate::strategy(bombs), |m| {
        std::fs::write(&path, m.apply(&base)).unwrap();
        let n = count.fetch_add(1, Ordering::Relaxed);
        let code = Case { base: &base, path: &path, n }.run(&m)?;
        outcomes.lock().unwrap()[code as usize] += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed}: {e}");
    }
    let [intact, findings, unreadable] = outcomes.into_inner().unwrap();
    eprintln!("seed {seed}: {intact} intact (no-op mutations), {findings} with findings, {unreadable} unreadable");
}

/// The mutator does what it says: a shuffled directory is a no-op the oracle accepts (every entry
/// reads back as the original), and a flipped bit in a stored image is a finding.
fn mutator_is_sane(base: &Base, path: &Path) {
    std::fs::write(path, Mutation::Shuffle { seed: 1 }.apply(base)).unwrap();
    assert_ne!(std::fs::read(path).unwrap(), base.bytes, "the directory was shuffled");
    assert!(verify(path, &VerifyOptions::default()).unwrap().is_clean());
    assert_eq!(read_back(path).as_ref(), Some(&base.contents));

    let image = base.entries.iter().find(|e| e.name.contains("/images/")).expect("an image entry");
    let flip =
        Mutation::Flip { region: mutate::Region::Data, entry: base.pick_for(&image.name), at: mutate::Pick(0), bit: 0 };
    std::fs::write(path, flip.apply(base)).unwrap();
    let report = verify(path, &VerifyOptions::default()).unwrap();
    assert!(report.findings.iter().any(|f| f.kind == FindingKind::HashMismatch), "{:#?}", report.findings);
    assert!(read_back(path).as_ref() != Some(&base.contents), "the oracle sees the change");
}
