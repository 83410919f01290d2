//! Watching a running child from outside, for the benchmark of remote exports
//! (`benches/remote.rs`): the local disk a folder takes (allocated blocks, so the holes punched
//! into a sparse spool file do not count), split into the export's staging folders, the writer's
//! journals (`*.journal`) and the rest, and the files the child holds open unlinked; how long the
//! biggest file there went on growing; and the CPU time of each of the child's threads by name.
//! Plus the CPU time of any process (`/proc/<pid>/stat`), of this process and its reaped
//! children (`getrusage`), and of the whole machine (`/proc/stat`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the folder and the threads are sampled.
pub const EVERY: Duration = Duration::from_millis(50);
/// The prefix of the export's staging folders (`export::sink`).
const STAGING: &str = ".cvarchive-staging-";

/// What the samples of one run found.
#[derive(Debug, Default, Clone)]
pub struct Watched {
    /// Samples taken.
    pub samples: u64,
    /// The most bytes allocated under the folder at once, staging included.
    pub peak_total: u64,
    /// The most bytes allocated in staging folders at once.
    pub peak_staging: u64,
    /// The most bytes allocated in the writer's journals at once.
    pub peak_journal: u64,
    /// The most bytes allocated at once in files the child holds open but has unlinked (the
    /// writer's index, the listings' id sets: temporary files, wherever they are).
    pub peak_unlinked: u64,
    /// The most bytes allocated in the other files at once (the spool file and the upload's
    /// record; for a local export, the archive).
    pub peak_other: u64,
    /// Samples whose allocation in the other files was at least `busy_at` bytes.
    pub samples_at: u64,
    /// When the largest file's length last grew, from the start of the watch.
    pub last_growth: Duration,
    /// CPU time per thread name (`comm`), in seconds, as last sampled.
    pub threads: Vec<(String, f64)>,
}

/// A sampler running on its own thread until [`Watch::stop`].
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Watched>,
}

impl Watch {
    /// Starts sampling `folder` (which need not exist yet) and the threads of process `pid`;
    /// [`Watched::samples_at`] counts samples with at least `busy_at` bytes outside staging.
    /// With `trace`, each sample is also a line there: seconds, bytes allocated in the other
    /// files, in staging and in journals, and the largest file's length.
    pub fn start(pid: u32, folder: PathBuf, busy_at: u64, trace: Option<PathBuf>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || run(pid, &folder, busy_at, trace, &flag));
        Watch { stop, thread }
    }

    /// Stops sampling and returns what was found.
    pub fn stop(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the watch thread")
    }
}

fn run(pid: u32, folder: &Path, busy_at: u64, trace: Option<PathBuf>, stop: &AtomicBool) -> Watched {
    use std::io::Write;
    let mut trace = trace.map(|p| std::io::BufWriter::new(std::fs::File::create(p).expect("a trace file")));
    let began = Instant::now();
    let mut w = Watched::default();
    let mut longest = 0u64;
    let mut ticks: HashMap<u32, (String, u64)> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let mut usage = Usage::default();
        usage.add(folder, false);
        w.samples += 1;
        let unlinked = unlinked_of(pid);
        w.peak_unlinked = w.peak_unlinked.max(unlinked);
        w.peak_total = w.peak_total.max(usage.staging + usage.journal + usage.other + unlinked);
        w.peak_journal = w.peak_journal.max(usage.journal);
        w.peak_staging = w.peak_staging.max(usage.staging);
        w.peak_other = w.peak_other.max(usage.other);
        if usage.other >= busy_at {
            w.samples_at += 1;
        }
        if let Some(t) = &mut trace {
            let _ = writeln!(
                t,
                "{:.3}\t{}\t{}\t{}\t{}",
                began.elapsed().as_secs_f64(),
                usage.other,
                usage.staging,
                usage.journal,
                usage.longest
            );
        }
        if usage.longest > longest {
            longest = usage.longest;
            w.last_growth = began.elapsed();
        }
        read_threads(pid, &mut ticks);
        std::thread::sleep(EVERY);
    }
    let mut by_name: HashMap<String, u64> = HashMap::new();
    for (name, t) in ticks.into_values() {
        *by_name.entry(name).or_default() += t;
    }
    let tick = clock_tick();
    w.threads = by_name.into_iter().map(|(n, t)| (n, t as f64 / tick)).collect();
    w.threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    w
}

/// Bytes allocated under a folder, and the longest file's length.
#[derive(Default)]
struct Usage {
    staging: u64,
    journal: u64,
    other: u64,
    longest: u64,
}

impl Usage {
    /// Adds what is under `dir` (files vanish as the export goes on: errors are skipped).
    fn add(&mut self, dir: &Path, in_staging: bool) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                let staging = in_staging || entry.file_name().to_string_lossy().starts_with(STAGING);
                self.add(&entry.path(), staging);
            } else if in_staging {
                self.staging += meta.blocks() * 512;
            } else if entry.file_name().to_string_lossy().ends_with(".journal") {
                self.journal += meta.blocks() * 512;
            } else {
                self.other += meta.blocks() * 512;
                self.longest = self.longest.max(meta.len());
            }
        }
    }
}

/// Bytes allocated in the files process `pid` holds open that are unlinked.
fn unlinked_of(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    for fd in fds.flatten() {
        let deleted = std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().ends_with(" (deleted)"));
        // The link leads to the file itself, unlinked or not.
        match std::fs::metadata(fd.path()) {
            Ok(meta) if deleted && meta.is_file() && seen.insert((meta.dev(), meta.ino())) => {
                bytes += meta.blocks() * 512
            }
            _ => {}
        }
    }
    bytes
}

/// Updates `ticks` with the CPU time (user + system, in clock ticks) of every thread of `pid`.
fn read_threads(pid: u32, ticks: &mut HashMap<u32, (String, u64)>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Some((name, t)) = stat_of(&task.path().join("stat")) {
            ticks.insert(tid, (name, t));
        }
    }
}

/// The name and user + system ticks in a `/proc/.../stat` file.
fn stat_of(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    // After the name: state (field 3), ... utime (14), stime (15).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// The CPU time (user + system) process `pid` has used so far, in seconds (0 if it is gone).
pub fn cpu_of(pid: u32) -> f64 {
    stat_of(Path::new(&format!("/proc/{pid}/stat"))).map_or(0.0, |(_, t)| t as f64 / clock_tick())
}

/// CPU time (every state but idle and iowait, in seconds) the whole machine has used so far,
/// summed over its cores (`/proc/stat`).
pub fn machine_cpu() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy as f64 / clock_tick()
}

/// CPU time (user + system, seconds) of this process, and of its children reaped so far.
pub fn own_and_children_cpu() -> (f64, f64) {
    let seconds = |who| {
        // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    (seconds(libc::RUSAGE_SELF), seconds(libc::RUSAGE_CHILDREN))
}

fn clock_tick() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
