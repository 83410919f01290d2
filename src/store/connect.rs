//! An archive's address and the environment's credentials -> an `object_store` client.
//!
//! Credentials come only from the environment or the platform, read as the stores' own tools
//! read them:
//!
//! - Azure: `AZURE_STORAGE_CONNECTION_STRING` (its `BlobEndpoint` may name any host, as
//!   Azurite's does; `UseDevelopmentStorage=true` means Azurite on its default port), the Azure
//!   CLI's `AZURE_STORAGE_ACCOUNT` / `AZURE_STORAGE_KEY`, and every `AZURE_STORAGE_*` /
//!   `AZURE_*` variable `object_store` reads (`AZURE_STORAGE_ACCOUNT_NAME`,
//!   `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`, `AZURE_CLIENT_ID` +
//!   `AZURE_TENANT_ID` + `AZURE_CLIENT_SECRET` or `AZURE_FEDERATED_TOKEN_FILE` for workload
//!   identity, `AZURE_USE_AZURE_CLI`); a managed identity when the platform announces one
//!   (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`, `AZURE_CLIENT_ID`) or when
//!   `CVARCHIVE_AZURE_MANAGED_IDENTITY=1` asks for the VM's own.
//! - S3: the `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible stores,
//!   `AWS_ALLOW_HTTP`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_CONTAINER_CREDENTIALS_*`), else the
//!   profile `AWS_PROFILE` (or `default`) of the shared credentials and config files; the
//!   instance's role when `CVARCHIVE_AWS_INSTANCE_ROLE=1` asks for it.
//!
//! With none of these, connecting fails at once with the list of variables, instead of waiting
//! on a metadata endpoint that a machine outside the cloud does not have.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::multipart::MultipartStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use super::{Backend, Error, RemoteUrl};

/// A store client: reads, writes and multipart uploads.
pub trait Store: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Store for T {}

/// How long one request may take: a part of a multi-terabyte archive is up to 2 GiB.
const REQUEST_TIMEOUT: &str = "600s";
/// How long connecting may take.
const CONNECT_TIMEOUT: &str = "10s";

/// Opens a client for the container (bucket) of `url` with the environment's credentials.
/// Makes no request: a wrong key or a missing container shows at the first read or write.
pub fn connect(url: &RemoteUrl) -> Result<Arc<dyn Store>, Error> {
    let env: HashMap<String, String> = std::env::vars().collect();
    match url.backend() {
        Backend::Azure => azure(url, &env),
        Backend::S3 => s3(url, &env),
    }
}

fn retry() -> RetryConfig {
    // object_store's defaults: up to 10 retries of 5xx, 429 and 408 answers and of connection
    // errors, backing off from 100 ms to 15 s with jitter, within 3 minutes.
    RetryConfig::default()
}

fn azure(url: &RemoteUrl, env: &HashMap<String, String>) -> Result<Arc<dyn Store>, Error> {
    let unusable = |reason: String| Error::BadCredential { url: url.to_string(), reason };
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(url.container())
        .with_retry(retry())
        .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
        .with_config(AzureConfigKey::Client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT);
    let set = |name: &str| env.get(name).is_some_and(|v| !v.is_empty());
    let mut credential = [
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_USE_AZURE_CLI",
        "AZURE_CLIENT_ID",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
        "AZURE_STORAGE_USE_EMULATOR",
        "CVARCHIVE_AZURE_MANAGED_IDENTITY",
    ]
    .iter()
    .any(|n| set(n));
    // The Azure CLI's names.
    if let Some(account) = env.get("AZURE_STORAGE_ACCOUNT").filter(|_| !set("AZURE_STORAGE_ACCOUNT_NAME")) {
        b = b.with_account(account);
    }
    if let Some(key) = env.get("AZURE_STORAGE_KEY").filter(|v| !v.is_empty()) {
        b = b.with_access_key(key);
        credential = true;
    }
    let mut endpoint = None;
    if let Some(text) = env.get("AZURE_STORAGE_CONNECTION_STRING").filter(|v| !v.is_empty()) {
        let cs = ConnectionString::parse(text).map_err(unusable)?;
        if cs.development {
            b = b.with_use_emulator(true);
        }
        if let Some(account) = &cs.account {
            if url.account().is_some_and(|a| !a.eq_ignore_ascii_case(account)) {
                return Err(unusable(format!(
                    "AZURE_STORAGE_CONNECTION_STRING is for account {account:?}, the address names another"
                )));
            }
            b = b.with_account(account);
        }
        if let Some(key) = &cs.key {
            b = b.with_access_key(key);
        }
        if let Some(sas) = &cs.sas {
            b = b.with_config(AzureConfigKey::SasKey, sas.trim_start_matches('?'));
        }
        credential |= cs.key.is_some() || cs.sas.is_some() || cs.development;
        endpoint = cs.blob_endpoint.clone();
    }
    if let Some(account) = url.account() {
        b = b.with_account(account);
    }
    if let Some(endpoint) = endpoint {
        if endpoint.starts_with("http://") {
            b = b.with_allow_http(true);
        }
        b = b.with_endpoint(endpoint.trim_end_matches('/').to_string());
    }
    if !credential {
        return Err(Error::NoCredential {
            url: url.to_string(),
            hint: "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or \
                   AZURE_STORAGE_SAS_TOKEN, or AZURE_CLIENT_ID/AZURE_TENANT_ID with AZURE_CLIENT_SECRET or \
                   AZURE_FEDERATED_TOKEN_FILE; CVARCHIVE_AZURE_MANAGED_IDENTITY=1 uses the VM's managed identity"
                .into(),
        });
    }
    let store = b.build().map_err(|e| unusable(super::describe(&e)))?;
    Ok(Arc::new(store))
}

/// The parts of an Azure Storage connection string this tool uses.
#[derive(Debug, Default)]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    blob_endpoint: Option<String>,
    development: bool,
}

impl ConnectionString {
    /// `Name=value;` pairs; names are case-insensitive, values may hold `=` (keys end in `==`).
    /// Errors never quote a value.
    fn parse(text: &str) -> Result<ConnectionString, String> {
        let mut cs = ConnectionString::default();
        let (mut protocol, mut suffix) = (None, None);
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err("AZURE_STORAGE_CONNECTION_STRING has a part without '='".into());
            };
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "accountname" => cs.account = Some(value),
                "accountkey" => cs.key = Some(value),
                "sharedaccesssignature" => cs.sas = Some(value),
                "blobendpoint" => cs.blob_endpoint = Some(value),
                "defaultendpointsprotocol" => protocol = Some(value),
                "endpointsuffix" => suffix = Some(value),
                "usedevelopmentstorage" => cs.development = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if cs.blob_endpoint.is_none() && !cs.development {
            if let Some(account) = &cs.account {
                let protocol = protocol.as_deref().unwrap_or("https");
                let suffix = suffix.as_deref().unwrap_or("core.windows.net");
                cs.blob_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
            }
        }
        if let Some(endpoint) = &cs.blob_endpoint {
            let parsed = url::Url::parse(endpoint).map_err(|e| format!("its BlobEndpoint is not a URL ({e})"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
                return Err("its BlobEndpoint must be an http(s) URL without a query".into());
            }
            // A SAS connection string (as the portal and Storage Explorer write it) names no
            // AccountName: the endpoint does, as ACCOUNT.blob.<suffix> or, path-style (Azurite),
            // as its first path segment.
            if cs.account.is_none() {
                let host = parsed.host_str().unwrap_or_default();
                cs.account = match host.split_once(".blob.") {
                    Some((account, _)) => Some(account.to_owned()),
                    None => {
                        parsed.path_segments().and_then(|mut s| s.next()).filter(|a| !a.is_empty()).map(str::to_owned)
                    }
                };
            }
        }
        if cs.account.is_none() && !cs.development {
            return Err("AZURE_STORAGE_CONNECTION_STRING names no AccountName".into());
        }
        Ok(cs)
    }
}

fn s3(url: &RemoteUrl, env: &HashMap<String, String>) -> Result<Arc<dyn Store>, Error> {
    let unusable = |reason: String| Error::BadCredential { url: url.to_string(), reason };
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(url.container())
        .with_retry(retry())
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT);
    let set = |name: &str| env.get(name).is_some_and(|v| !v.is_empty());
    let mut credential = set("AWS_ACCESS_KEY_ID")
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("CVARCHIVE_AWS_INSTANCE_ROLE");
    if !set("AWS_ACCESS_KEY_ID") {
        let profile = profile::read(env).map_err(unusable)?;
        if let Some((id, secret)) = profile.id.zip(profile.secret) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = profile.token {
                b = b.with_token(token);
            }
            credential = true;
        }
        if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
            if let Some(region) = profile.region {
                b = b.with_region(region);
            }
        }
        if !set("AWS_ENDPOINT_URL") && !set("AWS_ENDPOINT") {
            if let Some(endpoint) = profile.endpoint {
                b = b.with_endpoint(endpoint);
            }
        }
    }
    if let Some(region) = env.get("AWS_DEFAULT_REGION").filter(|_| !set("AWS_REGION")) {
        b = b.with_region(region);
    }
    if !credential {
        return Err(Error::NoCredential {
            url: url.to_string(),
            hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_ENDPOINT_URL for an S3-compatible store), \
                   AWS_PROFILE for a profile of ~/.aws/credentials, or AWS_WEB_IDENTITY_TOKEN_FILE; \
                   CVARCHIVE_AWS_INSTANCE_ROLE=1 uses the instance's role"
                .into(),
        });
    }
    let store = b.build().map_err(|e| unusable(super::describe(&e)))?;
    Ok(Arc::new(store))
}

mod profile {
    //! The AWS shared credentials and config files, as far as a profile's keys, region and
    //! endpoint go (`object_store` reads only the environment). Both are INI files:
    //! `[name]` sections (`[profile name]` in the config file), `key = value` lines.

    use std::collections::HashMap;
    use std::path::PathBuf;

    /// What a profile gives.
    #[derive(Debug, Default)]
    pub(super) struct Profile {
        pub id: Option<String>,
        pub secret: Option<String>,
        pub token: Option<String>,
        pub region: Option<String>,
        pub endpoint: Option<String>,
    }

    pub(super) fn read(env: &HashMap<String, String>) -> Result<Profile, String> {
        let name = env.get("AWS_PROFILE").cloned().unwrap_or_else(|| "default".into());
        let home = env.get("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            env.get(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)))
        };
        let mut p = Profile::default();
        if let Some(path) = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials") {
            let section = section(&path, &[name.as_str()])?;
            p.id = section.get("aws_access_key_id").cloned();
            p.secret = section.get("aws_secret_access_key").cloned();
            p.token = section.get("aws_session_token").cloned();
        }
        if let Some(path) = file("AWS_CONFIG_FILE", ".aws/config") {
            let titled = format!("profile {name}");
            let section = section(&path, &[titled.as_str(), name.as_str()])?;
            p.region = section.get("region").cloned();
            p.endpoint = section.get("endpoint_url").cloned();
            p.id = p.id.or_else(|| section.get("aws_access_key_id").cloned());
            p.secret = p.secret.or_else(|| section.get("aws_secret_access_key").cloned());
        }
        if env.contains_key("AWS_PROFILE") && p.id.is_none() && p.region.is_none() {
            return Err(format!("AWS_PROFILE names profile {name:?}, which the shared files do not have"));
        }
        Ok(p)
    }

    /// The first section named one of `names` in the INI file at `path` (missing file: empty).
    fn section(path: &std::path::Path, names: &[&str]) -> Result<HashMap<String, String>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let mut current: Option<&str> = None;
        let mut out = HashMap::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(title) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                if !out.is_empty() {
                    break;
                }
                current = names.iter().copied().find(|n| *n == title.trim());
                continue;
            }
            if current.is_some() {
                if let Some((k, v)) = line.split_once('=') {
                    out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_as_azurite_and_the_portal_write_them() {
        let azurite = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
            AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
            BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";
        let cs = ConnectionString::parse(azurite).unwrap();
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert!(cs.key.as_deref().unwrap().ends_with("=="));
        assert_eq!(cs.blob_endpoint.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1"));

        let portal = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net";
        let cs = ConnectionString::parse(portal).unwrap();
        assert_eq!(cs.blob_endpoint.as_deref(), Some("https://acct.blob.core.windows.net"));

        let sas = "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=x";
        assert_eq!(ConnectionString::parse(sas).unwrap().account.as_deref(), Some("acct"));
        let sas = "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=2022-11-02&sig=x";
        assert_eq!(ConnectionString::parse(sas).unwrap().account.as_deref(), Some("devstoreaccount1"));

        let err = ConnectionString::parse("AccountKey=c2VjcmV0S0VZ;").unwrap_err();
        assert!(!err.contains("c2VjcmV0S0VZ"), "{err}");
        assert!(ConnectionString::parse("UseDevelopmentStorage=true").unwrap().development);
    }
}
