//! The typed client of the Custom Vision Training API v3.3.
//!
//! [`model`] holds the wire types (shared with the emulator, so the two cannot drift);
//! [`Client`] makes the calls, paced by a rate limiter and retried with backoff; [`paging`] turns
//! offset and continuation paging into `Stream`s; errors are [`Error`], with secrets stripped.

mod client;
mod error;
pub mod model;
pub mod paging;
mod retry;

pub use client::{
    batch_tags, link_has_expired, upload_timeout, Blob, Client, ClientOptions, DeleteImages, ImageQuery, NewProject,
    OrderBy, DEFAULT_TIMEOUT, MAX_BATCH_TAGS, MAX_IMAGE_IDS, MAX_PREDICTION_IDS, MAX_TAKE, MAX_UPLOAD_BATCH,
    MAX_UPLOAD_BATCH_BYTES,
};
pub use error::{Error, RetryKind};
pub use retry::{parse_retry_after, parse_retry_after_message, RateLimiter, RetryPolicy, RetryStats};

/// The API version this client speaks, as it appears in the path.
pub const API_VERSION: &str = "v3.3";
