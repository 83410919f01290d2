//! Archives in object storage: Azure Blob Storage (block blobs) and S3 or S3-compatible stores.
//!
//! - [`location`]: what the user writes (`az://`, `https://ACCOUNT.blob.core.windows.net/`,
//!   `s3://`, or a local path) parsed into a [`Location`].
//! - `connect`: an address and the environment's credentials -> an `object_store` client, with
//!   retries (5xx, 429, 408, throttling) and timeouts set for archives; credentials only ever
//!   come from the environment or the platform, the way the stores' own tools read them.
//! - `runtime`: the store's own small tokio runtime, so the synchronous archive reader can wait
//!   on a ranged read from any thread, inside an async context or not.
//! - [`RemoteFile`]: an object read by position through ranged GETs (a few blocks cached, the
//!   next ones fetched ahead when reads are sequential), pinned to the object's ETag so a blob
//!   replaced mid-read fails instead of mixing two versions.
//! - [`upload`]: a local spool file shipped as it grows, block by block (Azure) or part by part
//!   (S3), with the parts accepted recorded for a resume and committed only when complete.
//!
//! Everything the stores answer goes through [`describe`] before it reaches a message: the
//! credential parts of URLs are removed and control characters escaped.

pub mod location;
pub mod upload;

mod connect;
mod remote_file;
mod runtime;

pub use connect::{connect, Store};
pub use location::{Backend, Location, RemoteUrl};
pub use remote_file::RemoteFile;

/// What can go wrong reaching a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address cannot name an archive.
    #[error("{url} is not an archive address: {reason}")]
    BadUrl {
        /// The address, credentials removed.
        url: String,
        /// Why.
        reason: String,
    },
    /// The environment holds no credential for the store.
    #[error("no credential for {url}: {hint}")]
    NoCredential {
        /// The archive's address.
        url: String,
        /// Which variables would give one.
        hint: String,
    },
    /// The environment holds a credential that cannot be used as it is.
    #[error("the credential for {url} is not usable: {reason}")]
    BadCredential {
        /// The archive's address.
        url: String,
        /// Why, without the credential.
        reason: String,
    },
    /// The object, or its container or bucket, does not exist.
    #[error("{url} does not exist ({detail})")]
    NotFound {
        /// The archive's address.
        url: String,
        /// What the store said.
        detail: String,
    },
    /// The store refused the credential (HTTP 401 or 403): a wrong key, an expired SAS token,
    /// or a role without access.
    #[error("the store refused the credential for {url}: {detail} (check the key, the SAS token's expiry and permissions, or the identity's role)")]
    Refused {
        /// The archive's address.
        url: String,
        /// What the store said.
        detail: String,
    },
    /// The object changed while it was being read.
    #[error("{url} changed while it was being read ({detail})")]
    Changed {
        /// The archive's address.
        url: String,
        /// What the store said.
        detail: String,
    },
    /// Anything else the store answered, after its retries gave up.
    #[error("{url}: {detail}")]
    Store {
        /// The archive's address.
        url: String,
        /// What the store said.
        detail: String,
    },
}

impl Error {
    /// Sorts an `object_store` error for the archive at `url`.
    pub fn from_store(url: &RemoteUrl, e: &object_store::Error) -> Error {
        let url = url.to_string();
        let detail = describe(e);
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound { url, detail },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Error::Refused { url, detail }
            }
            object_store::Error::Precondition { .. } => Error::Changed { url, detail },
            _ => Error::Store { url, detail },
        }
    }

    /// As an `io::Error` (for readers that speak `io`, whose error names the archive already):
    /// the message without the address.
    pub fn into_io(self) -> std::io::Error {
        let kind = match self {
            Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            Error::Refused { .. } => std::io::ErrorKind::PermissionDenied,
            _ => std::io::ErrorKind::Other,
        };
        let text = self.to_string();
        let url = match &self {
            Error::BadUrl { url, .. }
            | Error::NoCredential { url, .. }
            | Error::BadCredential { url, .. }
            | Error::NotFound { url, .. }
            | Error::Refused { url, .. }
            | Error::Changed { url, .. }
            | Error::Store { url, .. } => url.as_str(),
        };
        // "X does not exist (...)" -> "does not exist (...)"; "... for X: ..." -> "...: ...".
        let short = match text.strip_prefix(url) {
            Some(rest) => rest.trim_start_matches([':', ' ']).to_string(),
            None => text.replacen(&format!(" for {url}"), "", 1),
        };
        std::io::Error::new(kind, short)
    }
}

/// Whether the object at `url` exists. A container (bucket) that does not exist, and a
/// credential the store refuses, are errors. Blocking.
pub fn exists(url: &RemoteUrl) -> Result<bool, Error> {
    let store = connect(url)?;
    let (s, path) = (std::sync::Arc::clone(&store), url.object_path());
    match runtime::wait(async move { s.head(&path).await }) {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => match missing(&store, url) {
            Error::NotFound { detail, .. } if detail.is_empty() => Ok(false),
            e => Err(e),
        },
        Err(e) => Err(Error::from_store(url, &e)),
    }
}

/// Why the object at `url` was not found: its container (bucket) does not exist, or only the
/// object is missing (an empty `detail`). A HEAD of a blob answers a bare 404 either way;
/// listing the container tells them apart. Blocking.
pub(crate) fn missing(store: &std::sync::Arc<dyn Store>, url: &RemoteUrl) -> Error {
    let parent = url.key().rsplit_once('/').map(|(p, _)| object_store::path::Path::from(p));
    let s = std::sync::Arc::clone(store);
    match runtime::wait(async move { s.list_with_delimiter(parent.as_ref()).await }) {
        Ok(_) => Error::NotFound { url: url.to_string(), detail: String::new() },
        // Azure's list answers 404 with the code in its body, which object_store passes on as
        // a generic error; S3's is NoSuchBucket.
        Err(e)
            if matches!(e, object_store::Error::NotFound { .. })
                || ["ContainerNotFound", "NoSuchBucket"].iter().any(|code| describe(&e).contains(code)) =>
        {
            Error::NotFound {
                url: url.to_string(),
                detail: format!("the container or bucket {:?} does not exist", url.container()),
            }
        }
        Err(e) => Error::from_store(url, &e),
    }
}

/// An `object_store` error as one line fit to print: its causes joined, credentials removed
/// (SAS signatures, keys in URLs), control characters escaped. `object_store`'s errors quote
/// their source in their own message, so a cause already said is not said again.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        let said = said.trim_end_matches([':', ' ']);
        if !said.is_empty() && !text.contains(said) {
            text.push_str(": ");
            text.push_str(said);
        }
        source = cause.source();
    }
    let text = text.trim_end_matches([':', ' ']);
    crate::text::escape_control(&crate::secret::redact_url(text)).into_owned()
}
