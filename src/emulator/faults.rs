//! Injected failures and limits: a token-bucket rate limit answered with 429, a seeded share of
//! 503s, blob bodies cut mid-way, latency, hostile or misrouted answers, and workspace changes
//! between the pages of a listing.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

use uuid::Uuid;

use super::state::{ImageRec, ProjectState};

/// What can go wrong, on purpose. The default is nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// API requests per second; beyond it the answer is 429 with a retry hint.
    pub rate_limit: Option<f64>,
    /// Whether a 429 carries a `Retry-After` header (otherwise the hint is only in the message,
    /// "Please retry after N second(s)").
    pub retry_after_header: bool,
    /// Share (0..=1) of API and blob answers that are 503.
    pub error_rate: f64,
    /// Share (0..=1) of blob bodies cut mid-way: the connection drops after part of the body
    /// that `Content-Length` announced.
    pub reset_rate: f64,
    /// Delay before every API answer.
    pub api_latency: Duration,
    /// Delay before every blob answer.
    pub blob_latency: Duration,
    /// Seed of the fault dice, so a run can be repeated.
    pub seed: u64,
    /// A broken or hostile server, for testing that clients stay bounded and never hang.
    pub hostile: Option<Hostile>,
    /// The largest `maxCount` QueryPredictions accepts, when lower than the emulator's usual
    /// limit of 256 (see `ops::MAX_PREDICTION_COUNT`).
    pub prediction_max_count: Option<usize>,
    /// QueryPredictions pages hold at most this many results, and every second page is empty
    /// with a fresh continuation (0: every page is empty, and the continuations never end). The
    /// real service may send short pages before the last (API-NOTES §7).
    pub short_prediction_pages: Option<usize>,
    /// Someone else changes the workspace while a client pages through it.
    pub mutate_listing: Option<ListingMutation>,
}

/// Changes made to the workspace between the pages of a listing, as another user (or a labeling
/// job) would: each time a workspace page of GetTaggedImages or GetUntaggedImages has been
/// served, the oldest images are deleted and the oldest tagged ones untagged, so that every later
/// page, fetched by `skip`, starts past an image it never showed.
///
/// Source: an assumption of how offset paging behaves, which follows from the spec (`skip`
/// counts from the start of the list as it is when the page is asked for); nothing says the
/// service pins a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingMutation {
    /// Workspace images deleted each time (the oldest; without `allIterations`).
    pub delete: usize,
    /// Tagged images whose tags and regions are removed each time (the oldest tagged).
    pub untag: usize,
    /// How many pages it follows; then the workspace stays still.
    pub times: usize,
}

/// Ways a server can misbehave beyond transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Image lists (GetTaggedImages, GetUntaggedImages) answer with a valid JSON page of this
    /// many bytes, far larger than any real page.
    HugePage { bytes: usize },
    /// Blob bodies never end: chunked, no Content-Length.
    EndlessBlob,
    /// Blob answers send their headers, then nothing.
    StalledBlob,
    /// Blob answers carry a Content-MD5 that does not match the body.
    WrongMd5,
    /// Every request of this operation (by name, e.g. `DeleteProject`) is answered with the
    /// gateway's 404 for a path it does not serve, as a wrong endpoint or a misrouted path is:
    /// a 404 that says nothing about whether the resource exists.
    GatewayNotFound { operation: &'static str },
    /// API calls of this operation (its name as [`RecordedRequest`](super::RecordedRequest)
    /// gives it, e.g. `GetIterations`) get no answer at all: the connection stays open and
    /// nothing is sent, as from a hung backend behind a live gateway. Source: assumption; issue
    /// 13 item 8 reports an endpoint that accepts connections and never answers.
    SilentOperation(&'static str),
    /// The first `answers` CreateImagesFromFiles answers carry `"images": null`, though the
    /// images are created. Assumption: the spec lists `images` among no `required` properties
    /// of ImageCreateSummary, so a client must not count on it.
    NullUploadResults { answers: u32 },
    /// Every call of this operation fails with a 400 whose message echoes secrets: a SAS link
    /// with its `sig`, the caller's key as sent and percent-encoded, a URL with userinfo, and
    /// terminal control characters. Source: assumption; nothing says the service never echoes
    /// what it was sent, and error texts of Azure services do quote request URLs (issue 14
    /// item 5: the client must not trust them to be clean).
    LeakyErrors { operation: &'static str },
    /// Image answers (any list of images) give these two images hostile `originalImageUri`
    /// links: `metadata`'s points at the cloud metadata service (`http://169.254.169.254/...`),
    /// `file`'s is `file:///etc/passwd`. Source: assumption (issue 14 item 8: a link from the
    /// service is not trusted to point at blob storage).
    ForeignLinks { metadata: uuid::Uuid, file: uuid::Uuid },
}

/// The message of a [`Hostile::LeakyErrors`] answer, echoing `key` and carrying a SAS link.
pub(crate) fn leaky_message(key: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "Invalid request \x1b[2J\rfor https://irisprodwustraining.blob.core.windows.net/i-0/o-1?sv=2017-04-17&sr=b\
         &sig=LEAKEDSIG%2Bx%3D&se=2030-01-01T00%3A00%3A00Z&sp=r sent with Training-Key {key} (as {encoded}); \
         see https://admin:hunter2@status.invalid/incident"
    )
}

/// A JSON answer with the [`Hostile::ForeignLinks`] images' links rewritten; other answers as
/// they were.
pub(crate) fn foreign_links(body: Vec<u8>, metadata: uuid::Uuid, file: uuid::Uuid) -> Vec<u8> {
    let Ok(serde_json::Value::Array(mut items)) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    for item in &mut items {
        let id = item.get("id").and_then(|v| v.as_str()).and_then(|s| s.parse::<uuid::Uuid>().ok());
        let link = match id {
            Some(id) if id == metadata => "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
            Some(id) if id == file => "file:///etc/passwd",
            _ => continue,
        };
        if item.get("originalImageUri").is_some() {
            item["originalImageUri"] = link.into();
        }
    }
    serde_json::to_vec(&items).unwrap_or(body)
}

impl Default for FaultConfig {
    fn default() -> FaultConfig {
        FaultConfig {
            rate_limit: None,
            retry_after_header: true,
            error_rate: 0.0,
            reset_rate: 0.0,
            api_latency: Duration::ZERO,
            blob_latency: Duration::ZERO,
            seed: 0,
            hostile: None,
            mutate_listing: None,
            prediction_max_count: None,
            short_prediction_pages: None,
        }
    }
}

/// A failure chosen for an API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiFault {
    /// 429, retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// 503.
    Unavailable,
}

/// A failure chosen for a blob request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobFault {
    /// Answer normally.
    None,
    /// 503 (Azure Storage's ServerBusy).
    Unavailable,
    /// Send part of the body, then drop the connection.
    Reset,
}

/// The live fault state: the configuration, its dice and the rate-limit bucket.
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
    rng: SmallRng,
    tokens: f64,
    refilled: Instant,
    /// CreateImagesFromFiles answers given so far with `images: null`.
    null_upload_results: u32,
}

impl Faults {
    /// Fresh state for a configuration: a full bucket, dice seeded from `config.seed`.
    pub fn new(config: FaultConfig) -> Faults {
        let tokens = config.rate_limit.map_or(0.0, |r| r.max(1.0));
        Faults {
            rng: SmallRng::seed_from_u64(config.seed),
            tokens,
            refilled: Instant::now(),
            null_upload_results: 0,
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Rolls the dice for one API request.
    pub fn api(&mut self) -> Option<ApiFault> {
        self.api_at(Instant::now())
    }

    fn api_at(&mut self, now: Instant) -> Option<ApiFault> {
        if let Some(rate) = self.config.rate_limit.filter(|r| *r > 0.0) {
            let capacity = rate.max(1.0);
            self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(capacity);
            self.refilled = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
            } else {
                let wait = ((1.0 - self.tokens) / rate).ceil().max(1.0);
                return Some(ApiFault::RateLimited { retry_after_secs: wait as u64 });
            }
        }
        if self.roll(self.config.error_rate) {
            return Some(ApiFault::Unavailable);
        }
        None
    }

    /// The change to make after a workspace page was served, if one is due (each counts down
    /// [`ListingMutation::times`]).
    pub fn listing_mutation(&mut self) -> Option<ListingMutation> {
        let m = self.config.mutate_listing.as_mut().filter(|m| m.times > 0)?;
        m.times -= 1;
        Some(*m)
    }

    /// Rolls the dice for one blob request.
    pub fn blob(&mut self) -> BlobFault {
        if self.roll(self.config.error_rate) {
            BlobFault::Unavailable
        } else if self.roll(self.config.reset_rate) {
            BlobFault::Reset
        } else {
            BlobFault::None
        }
    }

    /// Whether this CreateImagesFromFiles answer drops its per-image results
    /// ([`Hostile::NullUploadResults`]).
    pub fn null_upload_results(&mut self) -> bool {
        let Some(Hostile::NullUploadResults { answers }) = self.config.hostile else { return false };
        let null = self.null_upload_results < answers;
        self.null_upload_results += u32::from(null);
        null
    }

    fn roll(&mut self, share: f64) -> bool {
        share > 0.0 && self.rng.random::<f64>() < share
    }
}

impl ProjectState {
    /// Deletes the `delete` oldest workspace images (iterations keep theirs) and untags the
    /// `untag` oldest tagged ones: what another user does during a listing (a fault).
    pub fn mutate(&mut self, delete: usize, untag: usize) {
        let doomed: Vec<Uuid> = self.images.iter().take(delete).map(|i| i.id).collect();
        self.delete_images(&doomed, false);
        let untagged: Vec<ImageRec> = self
            .images
            .iter()
            .filter(|i| i.is_tagged())
            .take(untag)
            .map(|i| ImageRec { tags: Vec::new(), regions: Vec::new(), ..(**i).clone() })
            .collect();
        for image in untagged {
            self.replace(image);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let mut f = Faults::new(FaultConfig { rate_limit: Some(2.0), ..FaultConfig::default() });
        let t0 = f.refilled;
        assert_eq!(f.api_at(t0), None);
        assert_eq!(f.api_at(t0), None);
        assert_eq!(f.api_at(t0), Some(ApiFault::RateLimited { retry_after_secs: 1 }));
        assert_eq!(f.api_at(t0 + Duration::from_millis(600)), None);
        assert!(f.api_at(t0 + Duration::from_millis(600)).is_some());
        let mut slow = Faults::new(FaultConfig { rate_limit: Some(0.25), ..FaultConfig::default() });
        let t0 = slow.refilled;
        assert_eq!(slow.api_at(t0), None);
        assert_eq!(slow.api_at(t0), Some(ApiFault::RateLimited { retry_after_secs: 4 }));
    }

    #[test]
    fn dice_are_seeded_and_shares_hold() {
        let config = FaultConfig { error_rate: 0.3, seed: 7, ..FaultConfig::default() };
        let run = || {
            let mut f = Faults::new(config.clone());
            (0..1000).map(|_| f.api().is_some()).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let failures = a.iter().filter(|x| **x).count();
        assert!((200..400).contains(&failures), "{failures}");
    }
}
