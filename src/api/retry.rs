//! Pacing and retrying: a rate limiter for API calls, exponential backoff with full jitter,
//! `Retry-After` in both its forms, counters of every retry by kind, and the race of each step
//! against cancellation and the overall deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::RetryKind;

/// How failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest single wait.
    pub max_delay: Duration,
    /// The overall bound of one call: its attempts and the waits between them together never
    /// take longer. An API call still without an answer then fails with
    /// [`Error::Deadline`](super::Error::Deadline); a download stops retrying, but one whose
    /// body is still arriving is left to finish (the read timeout bounds its silences).
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): the service's own `Retry-After` when it
    /// gave one (plus a little jitter so that parallel callers do not return in lockstep),
    /// otherwise full-jitter exponential backoff.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let mut rng = rand::rng();
        if let Some(after) = retry_after {
            let jitter = Duration::from_millis(rng.random_range(0..=250));
            return after.min(self.max_delay.max(after)) + jitter;
        }
        let exp = self.base_delay.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rng.random_range(millis / 2..=millis))
    }
}

/// How a step raced against cancellation and a deadline ended.
#[derive(Debug)]
pub(crate) enum Raced<T> {
    /// The step finished.
    Done(T),
    /// The token was cancelled first.
    Cancelled,
    /// The deadline came first.
    TimedOut,
}

/// Runs `step` until it finishes, `cancel` is cancelled or `deadline` passes, whichever comes
/// first; a cancelled token wins even over a step that is ready.
pub(crate) async fn race<T>(
    step: impl std::future::Future<Output = T>,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> Raced<T> {
    let deadline = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Raced::Cancelled,
        done = step => Raced::Done(done),
        _ = deadline => Raced::TimedOut,
    }
}

/// Reads a `Retry-After` header value: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Reads "Please retry after N second(s)" from a throttling message.
pub fn parse_retry_after_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let rest = &lower[lower.find("retry after")? + "retry after".len()..];
    let number: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let secs = number.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Paces calls to at most `rate` per second, with no burst beyond one call, and adapts: a
/// throttled answer holds every caller back for the wait the service asked for and doubles the
/// spacing of calls; each success brings the spacing back toward the configured rate. So a
/// service whose real limit is below ours is met at its own pace after a few 429s instead of
/// answering 429 to every other call.
#[derive(Debug)]
pub struct RateLimiter {
    base: Option<Duration>,
    state: Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    next: Instant,
    interval: Duration,
}

/// The widest spacing adaptation may reach.
const MAX_INTERVAL: Duration = Duration::from_secs(5);
/// The spacing adaptation starts from when no rate was configured.
const FIRST_BACKOFF_INTERVAL: Duration = Duration::from_millis(100);

impl RateLimiter {
    /// A limiter for `rate` calls per second; `None` or a non-positive rate means no limit until
    /// the service throttles.
    pub fn new(rate: Option<f64>) -> RateLimiter {
        let base = rate.filter(|r| r.is_finite() && *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
        RateLimiter { base, state: Mutex::new(Pace { next: Instant::now(), interval: base.unwrap_or(Duration::ZERO) }) }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut pace = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if pace.interval.is_zero() {
                let now = Instant::now();
                if pace.next <= now {
                    return;
                }
                pace.next
            } else {
                let slot = pace.next.max(Instant::now());
                pace.next = slot + pace.interval;
                slot
            }
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Holds every caller back until `wait` from now, and slows the pace.
    pub fn pause(&self, wait: Duration) {
        let mut pace = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + wait;
        if pace.next < until {
            pace.next = until;
        }
        pace.interval = (pace.interval * 2).max(FIRST_BACKOFF_INTERVAL).min(MAX_INTERVAL);
    }

    /// A call went through: speed back up toward the configured rate.
    pub fn success(&self) {
        let mut pace = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let base = self.base.unwrap_or(Duration::ZERO);
        if pace.interval > base {
            let eased = pace.interval.mul_f64(0.95);
            pace.interval = if eased <= base + Duration::from_millis(1) { base } else { eased };
        }
    }
}

/// Counts of retries by kind, shared by every task of one client.
#[derive(Debug, Default)]
pub struct RetryStats {
    counts: [AtomicU64; RetryKind::ALL.len()],
}

impl RetryStats {
    /// Counts one retry of `kind`.
    pub fn record(&self, kind: RetryKind) {
        self.counts[Self::index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// The retries of `kind` so far.
    pub fn get(&self, kind: RetryKind) -> u64 {
        self.counts[Self::index(kind)].load(Ordering::Relaxed)
    }

    /// Every kind with a non-zero count.
    pub fn snapshot(&self) -> Vec<(RetryKind, u64)> {
        RetryKind::ALL.iter().map(|k| (*k, self.get(*k))).filter(|(_, n)| *n > 0).collect()
    }

    /// All retries, of every kind.
    pub fn total(&self) -> u64 {
        RetryKind::ALL.iter().map(|k| self.get(*k)).sum()
    }

    fn index(kind: RetryKind) -> usize {
        RetryKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retry_after_from_the_message() {
        let m = "Requests to the GetTaggedImages Operation under Custom_Vision_Training_3.3 have exceeded rate limit of your current Custom_Vision.Training F0 pricing tier. Please retry after 1 second. Please contact Azure support.";
        assert_eq!(parse_retry_after_message(m), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after_message("Please retry after 12 seconds"), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after_message("busy"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy { max_delay: Duration::from_secs(2), ..RetryPolicy::default() };
        for retry in 1..20 {
            let d = p.delay(retry, None);
            assert!(d <= Duration::from_secs(2), "{retry}: {d:?}");
        }
        assert!(p.delay(1, None) <= Duration::from_millis(250));
        assert!(p.delay(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_paces_calls() {
        let l = RateLimiter::new(Some(10.0));
        let start = Instant::now();
        for _ in 0..11 {
            l.acquire().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1000) && took < Duration::from_millis(1100), "{took:?}");
        l.pause(Duration::from_secs(3));
        let before = Instant::now();
        l.acquire().await;
        assert!(before.elapsed() >= Duration::from_secs(3) - Duration::from_millis(150));
        // After a 429 the spacing doubles, and successes bring it back to the configured rate.
        let before = Instant::now();
        l.acquire().await;
        assert!(before.elapsed() >= Duration::from_millis(190), "{:?}", before.elapsed());
        for _ in 0..200 {
            l.success();
        }
        l.acquire().await;
        let before = Instant::now();
        l.acquire().await;
        assert!(before.elapsed() < Duration::from_millis(110), "{:?}", before.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlimited_limiter_learns_from_throttling() {
        let l = RateLimiter::new(None);
        let start = Instant::now();
        for _ in 0..100 {
            l.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1));
        l.pause(Duration::from_secs(1));
        l.acquire().await;
        let before = Instant::now();
        l.acquire().await;
        assert!(before.elapsed() >= Duration::from_millis(90), "{:?}", before.elapsed());
    }
}
