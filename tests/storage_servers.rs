//! The storage test servers themselves (tests/support/storage.rs): Azurite and moto start,
//! object_store round-trips bytes through the fault proxy to both, a scripted throttling answer
//! on a part is retried and the upload still completes, and a multipart upload through
//! object_store's `MultipartStore` commits its parts, in order, on both.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::multipart::MultipartStore;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};

use crate::support::storage::{Azurite, Fault, FaultProxy, ProxiedRequest, S3Server, AZURITE_ACCOUNT, AZURITE_KEY};

/// S3's smallest part but the last (moto enforces it at completion, as S3 does).
const MIN_PART: usize = 5 * 1024 * 1024;

/// An object_store client of container `container` on `endpoint` (Azurite's, or a proxy's).
fn azure(endpoint: String, container: &str) -> object_store::azure::MicrosoftAzure {
    MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_container_name(container)
        .build()
        .expect("an Azure client")
}

/// An object_store client of bucket `bucket` on `endpoint` (moto's, or a proxy's), path-style.
fn s3(endpoint: String, bucket: &str) -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("an S3 client")
}

/// Distinct bytes of `len`, so a part out of place or cut short shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Puts `bytes` at `name`, reads it back through the same store, and returns what came back.
async fn round_trip(store: &dyn ObjectStore, name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = StorePath::from(name);
    store.put(&path, PutPayload::from(bytes.to_vec())).await.expect("put");
    store.get(&path).await.expect("get").bytes().await.expect("the body").to_vec()
}

#[tokio::test]
async fn a_blob_round_trips_through_the_proxy_to_azurite() {
    let azurite = Azurite::start().await;
    eprintln!("Azurite started in {:?}", azurite.startup());
    azurite.create_container("archives").await;
    let proxy = FaultProxy::start(azurite.addr());
    let store = azure(azurite.endpoint_via(&proxy), "archives");

    let bytes = b"a small blob, through the proxy".to_vec();
    assert_eq!(round_trip(&store, "dir/small.bin", &bytes).await, bytes);

    assert_eq!(azurite.blob_bytes("archives", "dir/small.bin").await, Some(bytes));
    assert_eq!(azurite.list_blobs("archives").await, ["dir/small.bin"]);
    assert_eq!(azurite.blob_bytes("archives", "absent").await, None);
    let seen: Vec<_> = proxy.requests().into_iter().map(|r| (r.method, r.path)).collect();
    let path = "/devstoreaccount1/archives/dir/small.bin".to_owned();
    assert_eq!(seen, [("PUT".to_owned(), path.clone()), ("GET".to_owned(), path)]);
}

#[tokio::test]
async fn an_object_round_trips_through_the_proxy_to_moto() {
    let moto = S3Server::start().await;
    eprintln!("moto started in {:?}", moto.startup());
    moto.create_bucket("archives").await;
    let proxy = FaultProxy::start(moto.addr());
    let store = s3(proxy.url(), "archives");

    let bytes = b"a small object, through the proxy".to_vec();
    assert_eq!(round_trip(&store, "dir/small.bin", &bytes).await, bytes);

    assert_eq!(moto.object_bytes("archives", "dir/small.bin").await, Some(bytes));
    assert_eq!(moto.list_objects("archives").await, ["dir/small.bin"]);
    assert_eq!(moto.object_bytes("archives", "absent").await, None);
    let seen: Vec<_> = proxy.requests().into_iter().map(|r| (r.method, r.path)).collect();
    let path = "/archives/dir/small.bin".to_owned();
    assert_eq!(seen, [("PUT".to_owned(), path.clone()), ("GET".to_owned(), path)]);
}

/// Uploads `parts` with object_store's streaming multipart upload and returns the stored bytes
/// as `fetch` reads them from the server directly.
async fn upload_in_parts(store: &dyn ObjectStore, name: &str, parts: &[Vec<u8>]) {
    let mut upload = store.put_multipart(&StorePath::from(name)).await.expect("the upload starts");
    for part in parts {
        upload.put_part(PutPayload::from(part.clone())).await.expect("a part uploads");
    }
    upload.complete().await.expect("the upload completes");
}

/// The one request `fault` was scripted for was sent again, identically, and the retry went through.
#[track_caller]
fn assert_retried_once(requests: &[ProxiedRequest], fault: Fault, is_part: impl Fn(&ProxiedRequest) -> bool) {
    let parts: Vec<_> = requests.iter().filter(|r| is_part(r)).collect();
    let failed: Vec<_> = parts.iter().filter(|r| r.fault == Some(fault)).collect();
    assert_eq!(failed.len(), 1, "one part answered with {fault:?}: {parts:#?}");
    let again: Vec<_> = parts.iter().filter(|r| (&r.path, &r.query) == (&failed[0].path, &failed[0].query)).collect();
    assert_eq!(again.len(), 2, "the failed part was sent twice: {parts:#?}");
    assert_eq!(again[1].fault, None, "the retry was forwarded");
}

#[tokio::test]
async fn azure_server_busy_on_a_block_is_retried_and_the_upload_completes() {
    let azurite = Azurite::start().await;
    azurite.create_container("archives").await;
    let proxy = FaultProxy::start(azurite.addr());
    let store = azure(azurite.endpoint_via(&proxy), "archives");
    proxy.fail_next(1, Fault::AzureServerBusy, |r| r.is("PUT", "comp=block&"));

    let parts = [pattern(1000, 1), pattern(700, 2)];
    upload_in_parts(&store, "busy.zip", &parts).await;

    assert_eq!(azurite.blob_bytes("archives", "busy.zip").await, Some(parts.concat()));
    assert_eq!(proxy.pending_faults(), 0);
    assert_retried_once(&proxy.requests(), Fault::AzureServerBusy, |r| r.is("PUT", "comp=block&"));
}

#[tokio::test]
async fn s3_slow_down_on_a_part_is_retried_and_the_upload_completes() {
    let moto = S3Server::start().await;
    moto.create_bucket("archives").await;
    let proxy = FaultProxy::start(moto.addr());
    let store = s3(proxy.url(), "archives");
    proxy.fail_next(1, Fault::S3SlowDown, |r| r.is("PUT", "partNumber="));

    let parts = [pattern(MIN_PART, 1), pattern(700, 2)];
    upload_in_parts(&store, "slow.zip", &parts).await;

    assert_eq!(moto.object_bytes("archives", "slow.zip").await, Some(parts.concat()));
    assert_eq!(proxy.pending_faults(), 0);
    assert_retried_once(&proxy.requests(), Fault::S3SlowDown, |r| r.is("PUT", "partNumber="));
}

#[tokio::test]
async fn a_plain_500_and_a_dropped_connection_on_parts_are_retried() {
    let moto = S3Server::start().await;
    moto.create_bucket("archives").await;
    let proxy = FaultProxy::start(moto.addr());
    let store = s3(proxy.url(), "archives");
    proxy.fail_next(1, Fault::InternalError, |r| r.is("PUT", "partNumber=1&"));
    proxy.fail_next(1, Fault::DropConnection, |r| r.is("PUT", "partNumber=2&"));

    let parts = [pattern(MIN_PART, 3), pattern(900, 4)];
    upload_in_parts(&store, "flaky.zip", &parts).await;

    assert_eq!(moto.object_bytes("archives", "flaky.zip").await, Some(parts.concat()));
    let requests = proxy.requests();
    assert_retried_once(&requests, Fault::InternalError, |r| r.is("PUT", "partNumber=1&"));
    assert_retried_once(&requests, Fault::DropConnection, |r| r.is("PUT", "partNumber=2&"));
}

/// Creates a multipart upload at `name`, puts `parts` by index, completes it.
async fn multipart_store_upload(store: &dyn MultipartStore, name: &str, parts: &[Vec<u8>]) {
    let path = StorePath::from(name);
    let id = store.create_multipart(&path).await.expect("create_multipart");
    let mut ids = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        ids.push(store.put_part(&path, &id, i, PutPayload::from(part.clone())).await.expect("put_part"));
    }
    store.complete_multipart(&path, &id, ids).await.expect("complete_multipart");
}

#[tokio::test]
async fn multipart_store_parts_commit_in_order_on_azurite() {
    let azurite = Azurite::start().await;
    azurite.create_container("archives").await;
    let proxy = FaultProxy::start(azurite.addr());
    let store = Arc::new(azure(azurite.endpoint_via(&proxy), "archives"));

    let parts = [pattern(MIN_PART, 5), pattern(MIN_PART, 6), pattern(1234, 7)];
    assert_eq!(azurite.list_blobs("archives").await, Vec::<String>::new());
    multipart_store_upload(store.as_ref(), "parts.zip", &parts).await;

    assert_eq!(azurite.blob_bytes("archives", "parts.zip").await, Some(parts.concat()));
    assert_eq!(azurite.list_blobs("archives").await, ["parts.zip"]);
    assert_eq!(proxy.count(|r| r.is("PUT", "comp=block&")), 3);
    assert_eq!(proxy.count(|r| r.is("PUT", "comp=blocklist")), 1);
}

#[tokio::test]
async fn multipart_store_parts_commit_in_order_on_moto() {
    let moto = S3Server::start().await;
    moto.create_bucket("archives").await;
    let proxy = FaultProxy::start(moto.addr());
    let store = Arc::new(s3(proxy.url(), "archives"));

    let parts = [pattern(MIN_PART, 5), pattern(MIN_PART, 6), pattern(1234, 7)];
    multipart_store_upload(store.as_ref(), "parts.zip", &parts).await;

    assert_eq!(moto.object_bytes("archives", "parts.zip").await, Some(parts.concat()));
    assert_eq!(moto.list_objects("archives").await, ["parts.zip"]);
    assert_eq!(proxy.count(|r| r.is("POST", "uploads")), 1);
    assert_eq!(proxy.count(|r| r.is("PUT", "partNumber=")), 3);
    assert_eq!(proxy.count(|r| r.is("POST", "uploadId=")), 1);
}

#[tokio::test]
async fn the_proxy_answers_each_scripted_failure_as_documented_and_forwards_the_rest() {
    let moto = S3Server::start().await;
    moto.create_bucket("archives").await;
    let proxy = FaultProxy::start(moto.addr());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/archives?list-type=2", proxy.url());
    proxy.fail_next(1, Fault::AzureServerBusy, |r| r.method == "GET");
    proxy.fail_next(1, Fault::S3SlowDown, |r| r.method == "GET");
    proxy.fail_next(1, Fault::InternalError, |r| r.method == "GET");
    proxy.fail_next(1, Fault::DropConnection, |r| r.method == "GET");
    let get = || http.get(&url).header("authorization", crate::support::storage::MOTO_AUTH).send();

    let busy = get().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["x-ms-error-code"], "ServerBusy");
    assert!(busy.text().await.unwrap().contains("<Code>ServerBusy</Code><Message>The server is currently unable"));
    let slow = get().await.unwrap();
    assert_eq!(slow.status(), 503);
    assert!(slow.text().await.unwrap().contains("<Error><Code>SlowDown</Code>"));
    assert_eq!(get().await.unwrap().status(), 500);
    assert!(get().await.is_err(), "a dropped connection is no response");
    let listing = get().await.unwrap();
    assert_eq!(listing.status(), 200, "once the scripts are used up, requests go through");
    assert!(listing.text().await.unwrap().contains("<Name>archives</Name>"));

    let faults: Vec<_> = proxy.requests().into_iter().map(|r| r.fault).collect();
    let expected = [Fault::AzureServerBusy, Fault::S3SlowDown, Fault::InternalError, Fault::DropConnection];
    assert_eq!(faults, expected.map(Some).into_iter().chain([None]).collect::<Vec<_>>());
}
