//! What the progress display shows, computed from the events: counts per project and in all,
//! retries and throttling, a smoothed rate and the ETA, and the text of each line.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::progress::Phase;

/// The time constant of the smoothed rate: a rate that changes takes about this long to move
/// the ETA most of the way, so one slow or quick second (a throttled call, a burst of small
/// images) moves it little.
pub const RATE_WINDOW: Duration = Duration::from_secs(30);
/// The rate is sampled at most this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// What the status line says before the command names its first phase.
pub const STARTING: &str = "starting";
/// Width of a drawn bar, in characters.
const BAR_WIDTH: usize = 20;

/// A count per second: the plain average over the first [`RATE_WINDOW`], then an exponentially
/// weighted average with that time constant. The clock starts at the first counted item, so
/// the listing before it does not drag the rate down.
#[derive(Debug, Default)]
pub struct Rate {
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
    per_sec: Option<f64>,
}

impl Rate {
    /// Takes in the running `count` at `now` (at most one sample a second is kept).
    pub fn sample(&mut self, now: Instant, count: u64) {
        let Some((t0, c0)) = self.first else {
            if count > 0 {
                self.first = Some((now, count));
                self.last = self.first;
            }
            return;
        };
        let (t, c) = self.last.unwrap_or((t0, c0));
        let dt = now.saturating_duration_since(t);
        if dt < SAMPLE_EVERY {
            return;
        }
        let since = now.saturating_duration_since(t0);
        let instant = count.saturating_sub(c) as f64 / dt.as_secs_f64();
        self.per_sec = Some(match self.per_sec {
            Some(r) if since > RATE_WINDOW => {
                let weight = 1.0 - (-dt.as_secs_f64() / RATE_WINDOW.as_secs_f64()).exp();
                r + weight * (instant - r)
            }
            _ => count.saturating_sub(c0) as f64 / since.as_secs_f64(),
        });
        self.last = Some((now, count));
    }

    /// Counts per second, once there is a second to measure.
    pub fn per_sec(&self) -> Option<f64> {
        self.per_sec
    }

    /// How long `remaining` more take at this rate.
    pub fn eta(&self, remaining: u64) -> Option<Duration> {
        let r = self.per_sec.filter(|r| *r > 0.0)?;
        Some(Duration::from_secs_f64((remaining as f64 / r).min(1e7)))
    }
}

/// One project in flight, as its line shows it.
#[derive(Debug)]
pub struct ProjectLine {
    /// The project's id.
    pub id: String,
    /// The project's name.
    pub name: String,
    /// What it is doing, once it has said.
    pub phase: Option<Phase>,
    /// Images transferred.
    pub done: u64,
    /// Images expected, once counted.
    pub expected: u64,
    /// Its line on a terminal.
    pub bar: Option<ProgressBar>,
}

impl ProjectLine {
    /// A project that has just started.
    pub fn new(id: &str, name: &str, bar: Option<ProgressBar>) -> ProjectLine {
        ProjectLine { id: id.to_owned(), name: name.to_owned(), phase: None, done: 0, expected: 0, bar }
    }

    /// `name (1234abcd): downloading [====>   ] 40/100 images`.
    pub fn text(&self) -> String {
        let short: String = self.id.chars().take(8).collect();
        let mut text = format!("{} ({short})", self.name);
        if let Some(phase) = self.phase {
            text.push_str(&format!(": {}", phase.name()));
        }
        if self.expected > 0 {
            text.push_str(&format!(" {} {}/{} images", bar(self.done, self.expected), self.done, self.expected));
        } else if self.done > 0 {
            text.push_str(&format!(" {} images", self.done));
        }
        text
    }
}

/// Everything the display knows.
#[derive(Debug)]
pub struct Status {
    /// The command's own phase.
    pub phase: Option<Phase>,
    /// Projects the command works on, started and finished.
    pub projects: u64,
    /// Projects started so far.
    pub started: u64,
    /// Projects finished so far.
    pub finished: u64,
    counted: HashSet<String>,
    expected: u64,
    /// Images (and other blobs) transferred.
    pub done: u64,
    bytes: u64,
    /// Bytes checked by a verification (a running total).
    pub verified: u64,
    /// Retries of any kind, and how many of them were throttling (429).
    pub retries: u64,
    /// Retries after a 429.
    pub throttled: u64,
    /// Download links refreshed.
    pub links: u64,
    /// Images per second.
    pub rate: Rate,
    bytes_rate: Rate,
    /// The projects in flight, in the order they started.
    pub active: Vec<ProjectLine>,
    /// When the display last drew (or printed a status line).
    pub last_draw: Instant,
}

impl Status {
    /// Nothing counted yet.
    pub fn new() -> Status {
        Status {
            phase: None,
            projects: 0,
            started: 0,
            finished: 0,
            counted: HashSet::new(),
            expected: 0,
            done: 0,
            bytes: 0,
            verified: 0,
            retries: 0,
            throttled: 0,
            links: 0,
            rate: Rate::default(),
            bytes_rate: Rate::default(),
            active: Vec::new(),
            last_draw: Instant::now(),
        }
    }

    /// The project in flight with this id.
    pub fn project(&mut self, id: &str) -> Option<&mut ProjectLine> {
        self.active.iter_mut().find(|p| p.id == id)
    }

    /// `total` more images of project `id` are to be transferred.
    pub fn found(&mut self, id: &str, total: u64) {
        self.counted.insert(id.to_owned());
        self.expected += total;
        if let Some(p) = self.project(id) {
            p.expected += total;
        }
    }

    /// One more image of project `id`, of `bytes`, is transferred.
    pub fn archived(&mut self, id: &str, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        self.expected = self.expected.max(self.done);
        if let Some(p) = self.project(id) {
            p.done += 1;
            p.expected = p.expected.max(p.done);
        }
        self.bytes_rate.sample(Instant::now(), self.bytes);
    }

    /// Whether any transfer or check has been counted.
    pub fn anything_counted(&self) -> bool {
        self.done > 0 || self.verified > 0 || self.expected > 0
    }

    /// Whether every project has said how many images it has: only then is the total, and so
    /// the bar and the ETA, true.
    fn all_counted(&self) -> bool {
        self.projects > 0 && self.counted.len() as u64 >= self.projects
    }

    /// The phase shown: the command's own (connecting, listing, finishing), or while projects
    /// are at work the most telling of theirs.
    fn shown_phase(&self) -> Option<Phase> {
        let any = |want: &[Phase]| self.active.iter().filter_map(|p| p.phase).find(|p| want.contains(p));
        if self.phase == Some(Phase::Finishing) {
            return self.phase;
        }
        any(&[Phase::Downloading, Phase::Uploading, Phase::Deleting])
            .or_else(|| any(&[Phase::Listing]))
            .or_else(|| any(&[Phase::Finishing]))
            .or(self.phase)
    }

    /// The status line: the phase, then [`Status::counts_text`].
    pub fn top_text(&mut self) -> String {
        let phase = self.shown_phase().map_or(STARTING, Phase::name);
        match self.counts_text() {
            counts if counts.is_empty() => phase.to_owned(),
            counts => format!("{phase}  {counts}"),
        }
    }

    /// Counts, bar, ETA, rate, retries and projects, most telling first (a narrow terminal cuts
    /// the end).
    pub fn counts_text(&mut self) -> String {
        self.bytes_rate.sample(Instant::now(), self.bytes);
        let transfer = matches!(self.shown_phase(), Some(Phase::Downloading | Phase::Uploading));
        let mut parts = Vec::new();
        if self.verified > 0 {
            parts.push(format!("{} checked", human_bytes(self.verified)));
        }
        if self.done > 0 || transfer {
            let known = self.all_counted() && self.expected > 0;
            parts.push(match known {
                true => format!("{} {}/{} images", bar(self.done, self.expected), self.done, self.expected),
                false => format!("{} images (still counting)", self.done),
            });
            if let Some(eta) = self.rate.eta(self.expected.saturating_sub(self.done)).filter(|_| known && transfer) {
                parts.push(format!("ETA {}", duration(eta)));
            }
            let rate = self.bytes_rate.per_sec().map(|r| format!(" {}/s", human_bytes(r as u64))).unwrap_or_default();
            parts.push(format!("{}{rate}", human_bytes(self.bytes)));
        }
        if self.retries > 0 {
            parts.push(format!("{} retries ({} throttled)", self.retries, self.throttled));
        }
        if self.links > 0 {
            parts.push(format!("{} links refreshed", self.links));
        }
        if self.projects > 1 {
            parts.push(format!("{}/{} projects done", self.finished, self.projects));
        }
        parts.join("  ")
    }
}

/// `[=========>              ]`: never full before the end, empty while nothing is known.
pub fn bar(done: u64, total: u64) -> String {
    let filled = match total {
        0 => 0,
        t => ((done.min(t) as u128 * BAR_WIDTH as u128) / t as u128) as usize,
    };
    let mut s = String::with_capacity(BAR_WIDTH + 2);
    s.push('[');
    for i in 0..BAR_WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    s.push(']');
    s
}

/// `45s`, `3m 05s`, `2h 10m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 images a second on average, in bursts: 0 one second, 20 the next (as throttling and
    /// batches of small images do). An ETA from the last second's rate would swing between
    /// infinite and half the truth; the smoothed one stays within a few percent of it.
    #[test]
    fn the_eta_does_not_swing_with_bursts() {
        let start = Instant::now();
        let (total, mut count, mut rate) = (3000u64, 1u64, Rate::default());
        rate.sample(start, count);
        for second in 1..=240u64 {
            count += if second % 2 == 0 { 20 } else { 0 };
            rate.sample(start + Duration::from_secs(second), count);
            if second > 40 {
                let eta = rate.eta(total - count).unwrap().as_secs_f64();
                let truth = (total - count) as f64 / 10.0;
                assert!((eta - truth).abs() <= truth * 0.05 + 1.0, "second {second}: ETA {eta} s, truth {truth} s");
            }
        }
        let r = rate.per_sec().unwrap();
        assert!((9.5..=10.5).contains(&r), "rate {r}");
    }

    #[test]
    fn a_stall_lowers_the_rate_and_the_clock_starts_at_the_first_item() {
        let start = Instant::now();
        let mut rate = Rate::default();
        // A minute of listing with nothing counted does not count against the rate.
        rate.sample(start, 0);
        rate.sample(start + Duration::from_secs(60), 0);
        assert_eq!(rate.per_sec(), None);
        rate.sample(start + Duration::from_secs(60), 1);
        for s in 1..=40u64 {
            rate.sample(start + Duration::from_secs(60 + s), 1 + 5 * s);
        }
        let before = rate.per_sec().unwrap();
        assert!((4.5..=5.5).contains(&before), "{before}");
        for s in 41..=70u64 {
            rate.sample(start + Duration::from_secs(60 + s), 201);
        }
        let after = rate.per_sec().unwrap();
        assert!(after < before / 2.0, "{before} -> {after}");
    }

    #[test]
    fn no_full_bar_before_anything_is_known() {
        assert_eq!(bar(0, 0), format!("[>{}]", " ".repeat(BAR_WIDTH - 1)));
        assert!(bar(99, 100).contains('>'));
        assert!(!bar(100, 100).contains('>'));
        let mut st = Status::new();
        st.projects = 2;
        let text = st.top_text();
        assert!(text.starts_with(STARTING) && !text.contains('['), "{text}");
        st.phase = Some(Phase::Connecting);
        assert!(st.top_text().starts_with("connecting"));
        st.active.push(ProjectLine::new("a", "one", None));
        st.found("a", 10);
        st.active[0].phase = Some(Phase::Downloading);
        st.archived("a", 100);
        let text = st.top_text();
        assert!(text.contains("1 images (still counting)") && !text.contains('['), "{text}");
        st.found("b", 10);
        assert!(st.top_text().contains("1/20 images"), "{}", st.top_text());
    }
}
