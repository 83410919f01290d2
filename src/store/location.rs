//! Where an archive is: a local path, or an object in Azure Blob Storage or an S3 bucket, as
//! the user writes it on the command line (`az://CONTAINER/PATH.zip`,
//! `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH.zip`, `s3://BUCKET/KEY.zip`).
//!
//! An address never carries a credential: a SAS token in the query string would put a secret on
//! the command line (and in the shell's history), so it is refused with a pointer to the
//! environment variable that takes it instead.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Error;

/// The host suffix of Azure Blob Storage accounts in the public cloud.
const AZURE_BLOB_SUFFIX: &str = ".blob.core.windows.net";

/// An archive's location, local or remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file on a local (or mounted) file system.
    Local(PathBuf),
    /// An object in a store.
    Remote(RemoteUrl),
}

/// Which kind of store holds a remote archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Azure Blob Storage (block blobs).
    Azure,
    /// Amazon S3 or an S3-compatible store.
    S3,
}

/// A remote archive's address: the store, the container (bucket) and the object's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteUrl {
    backend: BackendKey,
    /// The Azure storage account named by an `https://` address; `az://` takes it from the
    /// environment.
    account: Option<String>,
    container: String,
    key: String,
}

/// [`Backend`] with `Hash` (kept private so the public enum stays a plain choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BackendKey {
    Azure,
    S3,
}

impl Location {
    /// Reads a command-line argument: an `az://`, `s3://` or Azure `https://` address, else a
    /// local path (any other text, including relative paths and `-`-free names).
    pub fn parse(arg: &OsStr) -> Result<Location, Error> {
        let Some(text) = arg.to_str() else {
            return Ok(Location::Local(PathBuf::from(arg)));
        };
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("az://") || lower.starts_with("s3://") || lower.starts_with("https://") {
            return RemoteUrl::parse(text).map(Location::Remote);
        }
        if lower.starts_with("http://") || lower.contains("://") && !Path::new(text).exists() {
            return Err(Error::BadUrl {
                url: crate::secret::redact_url(text),
                reason:
                    "only az://, s3:// and https://ACCOUNT.blob.core.windows.net/ addresses are archives in a store"
                        .into(),
            });
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// The remote address, if this is one.
    pub fn remote(&self) -> Option<&RemoteUrl> {
        match self {
            Location::Remote(url) => Some(url),
            Location::Local(_) => None,
        }
    }

    /// The local path, if this is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::Remote(_) => None,
        }
    }

    /// The archive's own name, without its folder or container: the local file's name, or the
    /// last segment of the object's name (`az://c/nightly/b.zip` -> `b.zip`).
    pub fn file_name(&self) -> Option<&OsStr> {
        match self {
            Location::Local(path) => path.file_name(),
            Location::Remote(url) => url.key().rsplit('/').next().map(OsStr::new),
        }
    }

    /// A path that names this location in messages and reports: the local path itself, or the
    /// remote address as text.
    pub fn display_path(&self) -> PathBuf {
        match self {
            Location::Local(path) => path.clone(),
            Location::Remote(url) => PathBuf::from(url.to_string()),
        }
    }
}

/// A local path as a location (what the library's callers that only know files pass).
impl<P: AsRef<Path> + ?Sized> From<&P> for Location {
    fn from(path: &P) -> Location {
        Location::Local(path.as_ref().to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Local(path)
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Remote(url) => url.fmt(f),
        }
    }
}

impl RemoteUrl {
    /// Parses an `az://`, `s3://` or `https://ACCOUNT.blob.core.windows.net/` address.
    pub fn parse(text: &str) -> Result<RemoteUrl, Error> {
        let bad = |reason: &str| Error::BadUrl { url: crate::secret::redact_url(text), reason: reason.to_string() };
        // The URL parser resolves `.` and `..` segments away; an archive name never has them.
        let raw_path = text.split_once("://").map_or("", |(_, rest)| rest);
        if raw_path.split(['/', '?', '#']).any(|s| s == "." || s == ".." || s.eq_ignore_ascii_case("%2e%2e")) {
            return Err(bad("the object's name has an empty, '.' or '..' segment"));
        }
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.query().is_some() {
            return Err(bad(
                "an address carries no query string: a SAS token goes in AZURE_STORAGE_SAS_TOKEN (or the \
                 connection string), never on the command line",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(bad("an address carries no user, password or fragment"));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let (backend, account, container, key) = match url.scheme() {
            "az" => (BackendKey::Azure, None, host, url.path().to_string()),
            "s3" => (BackendKey::S3, None, host, url.path().to_string()),
            "https" => {
                let Some(account) = host.strip_suffix(AZURE_BLOB_SUFFIX) else {
                    return Err(bad("an https:// archive address is an Azure blob: https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH"));
                };
                if url.port().is_some() {
                    return Err(bad("an Azure blob address has no port"));
                }
                let path = url.path().trim_start_matches('/');
                let (container, key) = path.split_once('/').unwrap_or((path, ""));
                (BackendKey::Azure, Some(account.to_string()), container.to_string(), format!("/{key}"))
            }
            _ => return Err(bad("unknown scheme")),
        };
        if container.is_empty() {
            return Err(bad("no container or bucket"));
        }
        let key = percent_encoding::percent_decode_str(key.trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| bad("the object's name is not UTF-8"))?
            .into_owned();
        if key.is_empty() || key.ends_with('/') {
            return Err(bad("no object name after the container (an archive is one object, e.g. .../backup.zip)"));
        }
        if object_store::path::Path::parse(&key).is_err()
            || key.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad("the object's name has an empty, '.' or '..' segment"));
        }
        if key.chars().any(char::is_control) {
            return Err(bad("the object's name has a control character"));
        }
        Ok(RemoteUrl { backend, account, container, key })
    }

    /// Which store.
    pub fn backend(&self) -> Backend {
        match self.backend {
            BackendKey::Azure => Backend::Azure,
            BackendKey::S3 => Backend::S3,
        }
    }

    /// The Azure storage account the address names (`https://` addresses only).
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The container (Azure) or bucket (S3).
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The object's name within the container.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object's name as `object_store` takes it.
    pub(crate) fn object_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(self.key.as_str())
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.backend, &self.account) {
            (BackendKey::Azure, Some(account)) => {
                write!(f, "https://{account}{AZURE_BLOB_SUFFIX}/{}/{}", self.container, self.key)
            }
            (BackendKey::Azure, None) => write!(f, "az://{}/{}", self.container, self.key),
            (BackendKey::S3, _) => write!(f, "s3://{}/{}", self.container, self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Location, Error> {
        Location::parse(OsStr::new(s))
    }

    #[test]
    fn the_three_address_forms_and_local_paths() {
        let az = parse("az://backups/nightly/2026-12-05.zip").unwrap();
        let url = az.remote().unwrap();
        assert_eq!((url.backend(), url.container(), url.key()), (Backend::Azure, "backups", "nightly/2026-12-05.zip"));
        assert_eq!(url.to_string(), "az://backups/nightly/2026-12-05.zip");

        let https = parse("https://acct.blob.core.windows.net/backups/a%20b.zip").unwrap();
        let url = https.remote().unwrap();
        assert_eq!((url.account(), url.container(), url.key()), (Some("acct"), "backups", "a b.zip"));

        let s3 = parse("s3://bucket/k.zip").unwrap();
        assert_eq!(s3.remote().unwrap().backend(), Backend::S3);

        assert_eq!(parse("out/backup.zip").unwrap(), Location::Local(PathBuf::from("out/backup.zip")));
        assert_eq!(parse("C:backup.zip").unwrap().local(), Some(Path::new("C:backup.zip")));
    }

    #[test]
    fn addresses_that_are_refused_say_why_and_never_echo_a_signature() {
        for bad in [
            "https://acct.blob.core.windows.net/c/a.zip?sv=2024&sig=SECRETSIG",
            "https://example.com/c/a.zip",
            "az://container",
            "az://container/",
            "az://container/a/../b.zip",
            "s3:///key.zip",
            "http://127.0.0.1:10000/devstoreaccount1/c/a.zip",
            "az://c/a//b.zip",
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(!err.contains("SECRETSIG"), "{err}");
        }
    }
}
