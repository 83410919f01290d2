//! Pacing and retrying: a rate limiter for API calls, exponential backoff with full jitter,
//! `Retry-After` in both its forms, and counters of every retry by kind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

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
    /// Give up on one request after this long in total, waits included.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(600),
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

/// Paces calls to at most `rate` per second, with no burst beyond one call. A throttled answer
/// pushes every caller back, so the whole client slows down, not just the one request.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter for `rate` calls per second; `None` or a non-positive rate means no limit.
    pub fn new(rate: Option<f64>) -> RateLimiter {
        let interval = rate.filter(|r| r.is_finite() && *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
        RateLimiter { interval, next: Mutex::new(Instant::now()) }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let Some(interval) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Holds every caller back until `wait` from now.
    pub fn pause(&self, wait: Duration) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + wait;
        if *next < until {
            *next = until;
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
    }
}
