//! Drawing progress, for every command: on a terminal, a status bar with one line under it per
//! project in flight; in a pipe, plain lines with a timestamp; JSON lines with `--json`; nothing
//! but errors with `-q`. The totals, rates and ETA it shows are computed in [`status`].

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use super::status::human_bytes;
use super::status::{ProjectLine, Status};
use crate::progress::{Event, Phase, Progress};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars on stderr.
    Bars,
    /// A plain line every few seconds on stderr, each with a timestamp.
    Lines,
    /// One JSON object per event on stdout.
    Json,
    /// Warnings only (`--no-progress`).
    Quiet,
    /// Nothing (`-q`): errors are the caller's to print.
    Silent,
}

/// How much the user asked to be told: `-q` (0), the default (1), `-v` (2), `-vv` (3).
static VERBOSITY: AtomicU8 = AtomicU8::new(1);

/// Sets the verbosity for the whole process, from the global `-q` and `-v` flags.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

/// Whether `-q` was given: nothing but errors is printed, `--json` output aside.
pub fn quiet() -> bool {
    VERBOSITY.load(Ordering::Relaxed) == 0
}

fn verbose() -> bool {
    VERBOSITY.load(Ordering::Relaxed) >= 2
}

impl Mode {
    /// The mode for a command's `--json` and `--no-progress` flags, the global `-q`, and where
    /// stderr goes.
    pub fn choose(json: bool, no_progress: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet() {
            Mode::Silent
        } else if no_progress {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// How often a status line is printed in a pipe.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often the bars' text is recomputed at most (they are drawn at indicatif's own pace).
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// The drawer at work, if any: log lines are printed above its bars, and [`finish_all`] clears
/// them when a command fails before it could.
static CURRENT: Mutex<Option<Weak<Drawer>>> = Mutex::new(None);

/// Finishes the drawer at work, if a command left one drawing (it failed before it could).
pub fn finish_all() {
    let current = lock(&CURRENT).take().and_then(|d| d.upgrade());
    if let Some(drawer) = current {
        drawer.finish();
    }
}

/// The CLI's implementation of [`Progress`], shared by every command.
pub struct Drawer {
    mode: Mode,
    verbose: bool,
    /// Whether stderr is a file or a pipe: every line then starts with a timestamp.
    stamped: bool,
    multi: Option<MultiProgress>,
    top: Option<ProgressBar>,
    status: Mutex<Status>,
    /// Set by [`Drawer::finish`]: nothing is drawn after.
    finished: AtomicBool,
}

impl Drawer {
    /// A drawer in `mode`; on a terminal or in a pipe, a thread redraws it (or prints a status
    /// line) every second while it lives, so that a stall shows as one.
    pub fn start(mode: Mode) -> Arc<Drawer> {
        let (multi, top) = match mode {
            Mode::Bars => {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                // A spinner and text until something is counted: a bar of 0/0 draws full.
                let top = multi.add(ProgressBar::new_spinner().with_style(style("{spinner} {wide_msg}")));
                top.set_message(super::status::STARTING);
                top.enable_steady_tick(Duration::from_millis(200));
                (Some(multi), Some(top))
            }
            _ => (None, None),
        };
        let status = Mutex::new(Status::new());
        let drawer = Arc::new(Drawer {
            mode,
            verbose: verbose(),
            stamped: !std::io::stderr().is_terminal(),
            multi,
            top,
            status,
            finished: AtomicBool::new(false),
        });
        *lock(&CURRENT) = Some(Arc::downgrade(&drawer));
        if matches!(mode, Mode::Bars | Mode::Lines) {
            let weak = Arc::downgrade(&drawer);
            std::thread::spawn(move || tick(weak));
        }
        drawer
    }

    /// Prints a line of the tool's own (not an event) on stderr, above the bars if there are
    /// any, so that their next redraw does not erase it.
    pub fn say(&self, message: &str) {
        if !matches!(self.mode, Mode::Silent) {
            self.println(message);
        }
    }

    /// Clears the bars before the summary is printed; in a pipe, prints the final counts.
    pub fn finish(&self) {
        let mut st = self.lock();
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(multi) = &self.multi {
            for p in st.active.drain(..) {
                if let Some(bar) = p.bar {
                    bar.finish_and_clear();
                }
            }
            if let Some(top) = &self.top {
                top.finish_and_clear();
            }
            let _ = multi.clear();
        } else if self.mode == Mode::Lines {
            let counts = st.counts_text();
            if st.done > 0 || st.verified > 0 || st.retries > 0 {
                self.println(&format!("done: {counts}"));
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        lock(&self.status)
    }

    /// One line on stderr: above the bars, or with a timestamp when stderr is not a terminal.
    fn println(&self, message: &str) {
        let text = crate::text::escape_control(message);
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(format!("cvarchive: {text}"));
            }
            None if self.stamped => eprintln!("{} cvarchive: {text}", timestamp()),
            None => eprintln!("cvarchive: {text}"),
        }
    }

    /// Recomputes the bars' text, or prints the status lines when they are due (`force`: now).
    fn draw(&self, st: &mut Status, force: bool) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        st.rate.sample(now, st.done);
        match self.mode {
            Mode::Bars => {
                if !force && now.duration_since(st.last_draw) < REDRAW_EVERY {
                    return;
                }
                st.last_draw = now;
                if let Some(top) = &self.top {
                    top.set_message(st.top_text());
                }
                for p in &st.active {
                    if let Some(bar) = &p.bar {
                        bar.set_message(p.text());
                    }
                }
            }
            Mode::Lines => {
                if !force && now.duration_since(st.last_draw) < LINE_EVERY {
                    return;
                }
                st.last_draw = now;
                if !st.anything_counted() && st.active.is_empty() {
                    return;
                }
                self.println(&st.top_text());
                if st.active.len() > 1 {
                    for p in &st.active {
                        self.println(&format!("  {}", p.text()));
                    }
                }
            }
            _ => {}
        }
    }

    fn project_started(&self, st: &mut Status, id: &str, name: &str) {
        st.started += 1;
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner().with_style(style("  {wide_msg}")));
            bar.set_message(name.to_owned());
            bar
        });
        st.active.push(ProjectLine::new(id, name, bar));
        if self.mode == Mode::Lines {
            self.println(&format!("project {} of {}: {name} ({id})", st.started, st.projects.max(st.started)));
        }
    }

    fn project_finished(&self, st: &mut Status, id: &str, images: u64) {
        st.finished += 1;
        if let Some(at) = st.active.iter().position(|p| p.id == id) {
            let p = st.active.remove(at);
            if let Some(bar) = &p.bar {
                bar.finish_and_clear();
                if let Some(multi) = &self.multi {
                    multi.remove(bar);
                }
            }
            // A project that transferred nothing (a deletion's survey) has no count to tell.
            if self.mode == Mode::Lines && p.done > 0 {
                self.println(&format!("project {} ({id}): done, {images} images", p.name));
            }
        }
    }

    fn phase(&self, st: &mut Status, phase: Phase, project: Option<&str>) {
        match project {
            None => {
                st.phase = Some(phase);
                if phase == Phase::Finishing {
                    st.active.iter_mut().for_each(|p| p.phase = Some(Phase::Finishing));
                }
                if self.mode == Mode::Lines {
                    self.println(phase.name());
                }
            }
            Some(id) => {
                if let Some(p) = st.project(id) {
                    p.phase = Some(phase);
                    if self.mode == Mode::Lines {
                        let line = format!("project {} ({id}): {}", p.name, phase.name());
                        self.println(&line);
                    }
                }
            }
        }
    }

    /// A line of its own for what happened, where the mode shows such lines.
    fn tell(&self, message: &str) {
        if matches!(self.mode, Mode::Bars | Mode::Lines) {
            self.println(message);
        }
    }
}

impl Progress for Drawer {
    fn event(&self, event: Event) {
        match self.mode {
            Mode::Json => {
                let _ = super::json::write_event(&event);
                return;
            }
            Mode::Silent => return,
            Mode::Quiet => {
                if let Event::Warning { message } = &event {
                    self.println(&format!("warning: {message}"));
                }
                return;
            }
            Mode::Bars | Mode::Lines => {}
        }
        let mut st = self.lock();
        let force = match &event {
            Event::Started { projects } => {
                st.projects = *projects as u64;
                true
            }
            Event::Phase { phase, project_id } => {
                self.phase(&mut st, *phase, project_id.as_deref());
                true
            }
            Event::ProjectStarted { project_id, name } => {
                self.project_started(&mut st, project_id, name);
                true
            }
            Event::ImagesFound { project_id, total } => {
                st.found(project_id, *total);
                true
            }
            Event::Transferred { project_id, bytes } => {
                st.archived(project_id, *bytes);
                false
            }
            Event::Verified { bytes } => {
                st.verified = st.verified.max(*bytes);
                false
            }
            Event::Retry { kind, throttled, wait_ms } => {
                st.retries += 1;
                st.throttled += u64::from(*throttled);
                if self.verbose {
                    self.tell(&format!("retrying ({kind}) in {wait_ms} ms"));
                }
                false
            }
            Event::LinkRefreshed => {
                st.links += 1;
                false
            }
            Event::Warning { message } => {
                self.println(&format!("warning: {message}"));
                false
            }
            Event::ProjectFinished { project_id, images } => {
                self.project_finished(&mut st, project_id, *images);
                true
            }
            Event::BackupVerified { bytes } => {
                self.tell(&format!("backup verified in full ({bytes} bytes)"));
                false
            }
            Event::Deleted { project_id, what, count } => {
                self.tell(&format!("{project_id}: {what}: {count} done"));
                false
            }
        };
        // Lines mode prints on its own clock; a phase change shows at once on a terminal only.
        self.draw(&mut st, force && self.mode == Mode::Bars);
    }
}

/// Redraws the drawer every second while it lives, so a stall shows (and the rate falls).
fn tick(drawer: Weak<Drawer>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(drawer) = drawer.upgrade() else { return };
        let mut st = drawer.lock();
        drawer.draw(&mut st, false);
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Now, in UTC, to the second: the prefix of every line in a pipe.
fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Where log lines (tracing) go: stderr, above the bars when there are any.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let drawer = lock(&CURRENT).as_ref().and_then(Weak::upgrade);
        let bars = drawer.as_ref().filter(|d| !d.finished.load(Ordering::Relaxed)).and_then(|d| d.multi.as_ref());
        match bars {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
