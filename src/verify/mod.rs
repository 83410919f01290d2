//! Verification: an archive -> a [`Report`] of every finding (being built).

/// Every finding about one archive.
#[derive(Debug, Default)]
pub struct Report {}
