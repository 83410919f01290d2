//! Drawing progress: bars on a terminal, plain lines in a pipe, JSON lines with `--json`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Event, Progress};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars on stderr.
    Bars,
    /// A plain line every few seconds on stderr.
    Lines,
    /// One JSON object per event on stdout.
    Json,
    /// Warnings only.
    Quiet,
}

impl Mode {
    /// The mode for a command's `--json` and `--no-progress` flags and where stderr goes.
    pub fn choose(json: bool, no_progress: bool) -> Mode {
        if json {
            Mode::Json
        } else if no_progress {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// The CLI's implementation of [`Progress`].
pub struct Drawer {
    mode: Mode,
    bar: Option<ProgressBar>,
    /// Gives the bar its length, once, at the first count.
    sized: Once,
    started: Instant,
    last_line: Mutex<Instant>,
    projects: AtomicU64,
    projects_total: AtomicU64,
    images: AtomicU64,
    images_expected: AtomicU64,
    bytes: AtomicU64,
}

impl Drawer {
    /// A drawer in `mode`.
    pub fn new(mode: Mode) -> Drawer {
        let bar = (mode == Mode::Bars).then(|| {
            // No length until the first count: a bar of 0/0 draws full, which looked finished
            // while the first call was still waiting for an answer.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} images  {msg}  {elapsed_precise} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Drawer {
            mode,
            bar,
            sized: Once::new(),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            projects: AtomicU64::new(0),
            projects_total: AtomicU64::new(0),
            images: AtomicU64::new(0),
            images_expected: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Prints a line of the tool's own (not an event) on stderr, above the bar if there is one,
    /// so that the bar's next redraw does not erase it.
    pub fn say(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("cvarchive: {}", crate::text::escape_control(message))),
            None => eprintln_escaped!("cvarchive: {message}"),
        }
    }

    /// Clears the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn rate(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let bytes = self.bytes.load(Ordering::Relaxed);
        format!("{}  {}/s", human_bytes(bytes), human_bytes((bytes as f64 / secs) as u64))
    }

    fn line(&self, force: bool) {
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if !force && last.elapsed() < Duration::from_secs(5) {
            return;
        }
        *last = Instant::now();
        eprintln_escaped!(
            "cvarchive: project {}/{}, {} of ~{} images, {}",
            self.projects.load(Ordering::Relaxed),
            self.projects_total.load(Ordering::Relaxed),
            self.images.load(Ordering::Relaxed),
            self.images_expected.load(Ordering::Relaxed),
            self.rate()
        );
    }
}

impl Progress for Drawer {
    fn event(&self, event: Event) {
        if self.mode == Mode::Json {
            let _ = super::json::write_event(&event);
            return;
        }
        match &event {
            Event::Started { projects } => {
                self.projects_total.store(*projects as u64, Ordering::Relaxed);
            }
            Event::ProjectStarted { project_id, name } => {
                let n = self.projects.fetch_add(1, Ordering::Relaxed) + 1;
                let total = self.projects_total.load(Ordering::Relaxed);
                match &self.bar {
                    Some(bar) => bar.set_prefix(format!("project {n}/{total}")),
                    None if self.mode == Mode::Lines => {
                        eprintln_escaped!("cvarchive: project {n}/{total}: {name} ({project_id})")
                    }
                    None => {}
                }
            }
            Event::ImagesFound { total } => {
                self.images_expected.fetch_add(*total, Ordering::Relaxed);
                if let Some(bar) = &self.bar {
                    self.sized.call_once(|| bar.set_length(0));
                    bar.inc_length(*total);
                }
            }
            Event::BlobArchived { bytes } => {
                self.images.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
                match &self.bar {
                    Some(bar) => {
                        if bar.position() >= bar.length().unwrap_or(0) {
                            bar.inc_length(1);
                        }
                        bar.inc(1);
                        bar.set_message(self.rate());
                    }
                    None if self.mode == Mode::Lines => self.line(false),
                    None => {}
                }
            }
            Event::Verified { bytes } => {
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
                if self.mode == Mode::Lines {
                    self.line(false);
                }
            }
            Event::Warning { message } => match &self.bar {
                Some(bar) => bar.println(format!("warning: {}", crate::text::escape_control(message))),
                None => eprintln_escaped!("cvarchive: warning: {message}"),
            },
            Event::Retry { .. }
            | Event::ProjectFinished { .. }
            | Event::Deleted { .. }
            | Event::BackupVerified { .. } => {}
        }
    }
}

/// `1.2 MB`, in powers of 1000 like most download tools.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
