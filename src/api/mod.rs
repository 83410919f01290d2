//! The typed client of the Custom Vision Training API v3.3.
//!
//! [`model`] holds the wire types (shared with the emulator, so the two cannot drift); errors are
//! [`Error`], with secrets stripped.

mod error;
pub mod model;

pub use error::{Error, RetryKind};

/// The API version this client speaks, as it appears in the path.
pub const API_VERSION: &str = "v3.3";
