//! What the store answers wrong, against real servers through the fault proxy: throttling and a
//! 500 are retried and the export completes; a container that does not exist, a refused key, an
//! expired SAS, no credential at all and an archive already at the name are refused before any
//! image is downloaded, with exit code 2, a message that names the cause, and no secret printed.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{account, assert_no_secret, export_cmd, is_block, is_part, summary, CONTAINER};
use crate::support::storage::{Azurite, Fault, FaultProxy, S3Server, AZURITE_ACCOUNT, AZURITE_KEY};
use crate::support::text;

/// A small account: about 2.4 MiB of archive, three 1 MiB blocks.
const SMALL: &str = "projects=1,images=300,seed=1717,size=8192";

/// Azurite with the tests' container, and a proxy in front of it.
async fn azurite_behind_proxy() -> (Azurite, FaultProxy) {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let proxy = FaultProxy::start(azurite.addr());
    (azurite, proxy)
}

/// The Custom Vision requests `emu` served that downloaded an image.
fn image_downloads(emu: &cvarchive::emulator::Emulator) -> usize {
    emu.requests().iter().filter(|r| r.operation == "Blob").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_blocks_and_parts_are_retried_and_the_export_completes() {
    let (azurite, proxy) = azurite_behind_proxy().await;
    proxy.fail_next(3, Fault::AzureServerBusy, is_block);
    let emu = account(SMALL, 0).await;
    let spool = tempfile::tempdir().unwrap();
    let env = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];
    let o = export_cmd(&emu, "az://backups/throttled.zip", spool.path(), 1, &env).output().await.unwrap();
    assert_no_secret(&o, &[AZURITE_KEY, &env[0].1]);
    summary(&o);
    let busy: Vec<_> = proxy.requests().into_iter().filter(|r| r.fault == Some(Fault::AzureServerBusy)).collect();
    assert_eq!(busy.len(), 3);
    for r in &busy {
        let again = proxy.count(|s| s.fault.is_none() && s.method == "PUT" && s.query == r.query);
        assert_eq!(again, 1, "the throttled block {} went through on a retry", r.query);
    }
    assert!(azurite.blob_bytes(CONTAINER, "throttled.zip").await.is_some());

    let s3 = S3Server::start().await;
    s3.create_bucket(CONTAINER).await;
    let proxy = FaultProxy::start(s3.addr());
    proxy.fail_next(2, Fault::S3SlowDown, is_part);
    let spool = tempfile::tempdir().unwrap();
    let o = export_cmd(&emu, "s3://backups/throttled.zip", spool.path(), 5, &S3Server::env_for(&proxy.url()))
        .output()
        .await
        .unwrap();
    summary(&o);
    assert_eq!(proxy.count(|r| r.fault == Some(Fault::S3SlowDown)), 2);
    assert!(proxy.count(|r| is_part(r) && r.fault.is_none()) >= 1, "the part went through on a retry");
    assert!(s3.object_bytes(CONTAINER, "throttled.zip").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_the_commit_is_retried_and_the_export_completes() {
    let (azurite, proxy) = azurite_behind_proxy().await;
    let is_commit = |r: &crate::support::storage::ProxiedRequest| r.is("PUT", "comp=blocklist");
    proxy.fail_next(1, Fault::InternalError, is_commit);
    let emu = account(SMALL, 0).await;
    let spool = tempfile::tempdir().unwrap();
    let env = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string_via(&proxy))];
    let s = summary(&export_cmd(&emu, "az://backups/commit.zip", spool.path(), 1, &env).output().await.unwrap());
    assert_eq!(proxy.count(is_commit), 2, "the commit was sent again");
    assert_eq!(proxy.pending_faults(), 0);
    let bytes = azurite.blob_bytes(CONTAINER, "commit.zip").await.unwrap();
    assert_eq!(hex::encode(<Sha256 as sha2::Digest>::digest(&bytes)), s["sha256"].as_str().unwrap());
}

/// Runs the export of a fresh small account with `env`, expects exit code 2 and no image
/// downloaded, and returns stderr.
async fn refused(out: &str, env: &[(&str, String)], secrets: &[&str]) -> String {
    let emu = account(SMALL, 0).await;
    let spool = tempfile::tempdir().unwrap();
    let part_mib = if out.starts_with("s3://") { 5 } else { 1 };
    let o = export_cmd(&emu, out, spool.path(), part_mib, env).output().await.unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(image_downloads(&emu), 0, "refused before any download: {err}");
    assert_no_secret(&o, secrets);
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_or_bucket_that_does_not_exist_is_refused_before_any_download() {
    let azurite = Azurite::start().await;
    let env = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())];
    let err = refused("az://nosuchcontainer/backup.zip", &env, &[AZURITE_KEY, &env[0].1]).await;
    assert!(err.contains("\"nosuchcontainer\" does not exist"), "{err}");

    let s3 = S3Server::start().await;
    let err = refused("s3://nosuchbucket/backup.zip", &s3.env(), &[]).await;
    assert!(err.contains("\"nosuchbucket\" does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_key_is_refused_as_a_credential() {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={wrong};BlobEndpoint={};",
        azurite.endpoint()
    );
    let env = [("AZURE_STORAGE_CONNECTION_STRING", cs.clone())];
    let err = refused("az://backups/backup.zip", &env, &[&wrong, &cs]).await;
    assert!(err.contains("the store refused the credential for az://backups/backup.zip"), "{err}");
}

/// An account SAS (version 2019-12-12) for the development account: blob service, every
/// resource type, read-write-delete-list-add-create, valid until `expiry`. Signed as in
/// <https://learn.microsoft.com/en-us/rest/api/storageservices/create-account-sas>.
fn account_sas(expiry: chrono::DateTime<chrono::Utc>) -> (String, String) {
    let (sv, ss, srt, sp, spr) = ("2019-12-12", "b", "sco", "rwdlac", "https,http");
    let st = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let se = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let to_sign = format!("{AZURITE_ACCOUNT}\n{sp}\n{ss}\n{srt}\n{st}\n{se}\n\n{spr}\n{sv}\n");
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let encoded: String = url::form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    (format!("sv={sv}&ss={ss}&srt={srt}&sp={sp}&st={st}&se={se}&spr={spr}&sig={encoded}"), encoded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sas_is_refused_and_a_valid_one_works() {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    // As the portal writes a SAS connection string: no AccountName, the endpoint names it.
    let with_sas = |sas: &str| format!("BlobEndpoint={};SharedAccessSignature={sas}", azurite.endpoint());
    let (expired, sig) = account_sas(chrono::Utc::now() - chrono::Duration::days(1));
    let env = [("AZURE_STORAGE_CONNECTION_STRING", with_sas(&expired))];
    let err = refused("az://backups/sas.zip", &env, &[&sig, AZURITE_KEY, &env[0].1]).await;
    assert!(err.contains("the store refused the credential") && err.contains("SAS token's expiry"), "{err}");

    let (valid, sig) = account_sas(chrono::Utc::now() + chrono::Duration::hours(1));
    let env = [("AZURE_STORAGE_CONNECTION_STRING", with_sas(&valid))];
    let emu = account(SMALL, 0).await;
    let spool = tempfile::tempdir().unwrap();
    let o = export_cmd(&emu, "az://backups/sas.zip", spool.path(), 1, &env).output().await.unwrap();
    assert_no_secret(&o, &[&sig, AZURITE_KEY]);
    let s = summary(&o);
    let bytes = azurite.blob_bytes(CONTAINER, "sas.zip").await.unwrap();
    assert_eq!(hex::encode(<Sha256 as sha2::Digest>::digest(&bytes)), s["sha256"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_in_the_environment_is_an_immediate_error_naming_the_variables() {
    let err = refused("az://backups/backup.zip", &[], &[]).await;
    assert!(err.contains("no credential for az://backups/backup.zip"), "{err}");
    assert!(err.contains("AZURE_STORAGE_CONNECTION_STRING") && err.contains("AZURE_STORAGE_KEY"), "{err}");
    let err = refused("s3://backups/backup.zip", &[], &[]).await;
    assert!(err.contains("no credential for s3://backups/backup.zip") && err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_already_at_the_name_is_refused_unless_forced() {
    let azurite = Azurite::start().await;
    azurite.create_container(CONTAINER).await;
    let env = [("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())];
    let out = "az://backups/exists.zip";
    let first = account(SMALL, 0).await;
    let spool = tempfile::tempdir().unwrap();
    summary(&export_cmd(&first, out, spool.path(), 1, &env).output().await.unwrap());
    let before = azurite.blob_bytes(CONTAINER, "exists.zip").await.unwrap();

    let err = refused(out, &env, &[AZURITE_KEY, &env[0].1]).await;
    assert!(err.contains(out) && err.contains("--force"), "{err}");
    assert_eq!(azurite.blob_bytes(CONTAINER, "exists.zip").await.unwrap(), before, "left as it was");

    let other = account("projects=1,images=200,seed=1718,size=8192", 0).await;
    let mut cmd = export_cmd(&other, out, spool.path(), 1, &env);
    let s = summary(&cmd.arg("--force").output().await.unwrap());
    let after = azurite.blob_bytes(CONTAINER, "exists.zip").await.unwrap();
    assert_ne!(after, before, "replaced");
    assert_eq!(hex::encode(<Sha256 as sha2::Digest>::digest(&after)), s["sha256"].as_str().unwrap());
}
