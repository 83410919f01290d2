//! The emulator over real sockets: paging, auth, errors, signed blobs, VNET artifacts, deletes,
//! predictions, faults, the request record, generated accounts, and the command line.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use cvarchive::api::model::{Image, Iteration, PredictionQueryResult, Project, Tag};
use cvarchive::emulator::{self, AccountSpec, Emulator, EmulatorOptions, FaultConfig, GenerateSpec};
use md5::{Digest as _, Md5};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

const CLS: &str = "e532f7f9-9827-476d-9159-4b592bf2ea6f";
const OD: &str = "dc77de6a-c75e-4bb4-be00-87e8d4320d4d";
const VNET: &str = "43fd9486-ea52-419a-9776-239c16ef1678";
const CLS_PUBLISHED: &str = "661c64d6-e4ab-46a0-96c9-b06934fac218";
const CLS_UNTRAINED: &str = "7bf4eb2c-f9f6-48d2-8705-03f8ca290898";

async fn start(account: AccountSpec) -> Emulator {
    start_with(EmulatorOptions { account, ..EmulatorOptions::default() }).await
}

async fn start_with(opts: EmulatorOptions) -> Emulator {
    emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.expect("emulator starts")
}

fn generated(projects: usize, images: usize, seed: u64) -> AccountSpec {
    AccountSpec::Generated(GenerateSpec { projects, images, seed, image_bytes: 4096, ..Default::default() })
}

/// Calls the API under the v3.3 prefix with the right key.
async fn call(e: &Emulator, method: Method, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("{}/customvision/v3.3/training{path}", e.endpoint()))
        .header("Training-Key", e.key())
        .send()
        .await
        .expect("request is answered")
}

async fn get_json<T: serde::de::DeserializeOwned>(e: &Emulator, path: &str) -> T {
    let r = call(e, Method::GET, path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.expect("JSON body")
}

async fn error_code(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.expect("JSON error body");
    (status, body["code"].as_str().or(body["error"]["code"].as_str()).unwrap_or_default().to_owned())
}

#[tokio::test]
async fn images_page_with_take_skip_and_order() {
    let e = start(generated(1, 600, 1)).await;
    let p = e.projects()[0];
    let mut oldest = Vec::new();
    let mut sizes = Vec::new();
    for skip in (0..).step_by(256) {
        let page: Vec<Image> = get_json(&e, &format!("/projects/{p}/images?take=256&skip={skip}&orderBy=Oldest")).await;
        sizes.push(page.len());
        oldest.extend(page.iter().map(|i| i.id));
        if page.len() < 256 {
            break;
        }
    }
    assert_eq!(sizes, vec![256, 256, 88]);
    assert_eq!(oldest, e.image_ids(p), "Oldest pages walk the images oldest first");
    let newest: Vec<Image> = get_json(&e, &format!("/projects/{p}/images?take=10")).await;
    let expected: Vec<Uuid> = oldest.iter().rev().take(10).copied().collect();
    assert_eq!(newest.iter().map(|i| i.id).collect::<Vec<_>>(), expected, "Newest is the default");
    let default_page: Vec<Image> = get_json(&e, &format!("/projects/{p}/images")).await;
    assert_eq!(default_page.len(), 50, "take defaults to 50");

    let count = call(&e, Method::GET, &format!("/projects/{p}/images/count")).await.text().await.unwrap();
    assert_eq!(count, "600", "counts are bare numbers");
    let tagged: u64 = get_json(&e, &format!("/projects/{p}/images/tagged/count")).await;
    let untagged: u64 = get_json(&e, &format!("/projects/{p}/images/untagged/count")).await;
    assert_eq!(tagged + untagged, 600);
    assert!((480..=580).contains(&tagged), "about 90% tagged: {tagged}");
    let untagged_page: Vec<Image> = get_json(&e, &format!("/projects/{p}/images/untagged?take=256")).await;
    assert!(untagged_page.iter().all(|i| !i.is_tagged()) && untagged_page.len() as u64 == untagged.min(256));

    for bad in ["take=257", "take=-1", "skip=-1", "orderBy=Sideways"] {
        let (status, code) =
            error_code(call(&e, Method::GET, &format!("/projects/{p}/images/tagged?{bad}")).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "BadRequest"), "{bad}");
    }
    let ids: Vec<String> = (0..257).map(|_| Uuid::new_v4().to_string()).collect();
    let r = call(&e, Method::GET, &format!("/projects/{p}/images/id?imageIds={}", ids.join(","))).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "BadRequestExceededBatchSize".to_owned()));
    let some: Vec<String> = oldest[..3].iter().map(Uuid::to_string).collect();
    let by_ids: Vec<Image> = get_json(&e, &format!("/projects/{p}/images/id?imageIds={}", some.join(","))).await;
    assert_eq!(by_ids.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(), some);
}

#[tokio::test]
async fn keys_unknown_paths_and_missing_things_answer_like_the_service() {
    let e = start(AccountSpec::Fixture).await;
    let client = reqwest::Client::new();
    let url = format!("{}/customvision/v3.3/training/projects", e.endpoint());
    for key in [Some("wrong"), None] {
        let mut req = client.get(&url);
        if let Some(k) = key {
            req = req.header("training-key", k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "401");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Access denied due to invalid subscription key"));
    }
    // Header names are case-insensitive; both API versions are served.
    for prefix in ["v3.3", "v3.4-preview"] {
        let r = client
            .get(format!("{}/customvision/{prefix}/training/projects", e.endpoint()))
            .header("TRAINING-KEY", e.key())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/json; charset=utf-8");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(r.headers().contains_key("apim-request-id") && r.headers().contains_key("request-id"));
        let projects: Vec<Project> = r.json().await.unwrap();
        assert_eq!(projects.len(), 4);
    }
    let r = call(&e, Method::GET, "/nothing/here").await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "404".to_owned()));
    let missing = Uuid::new_v4();
    let cases = [
        (format!("/projects/{missing}"), "NotFoundProject"),
        (format!("/projects/{CLS}/iterations/{missing}"), "NotFoundIteration"),
        (format!("/projects/{CLS}/tags/{missing}"), "NotFoundTag"),
        (format!("/projects/{CLS}/images/tagged?iterationId={missing}"), "NotFoundIteration"),
    ];
    for (path, code) in cases {
        assert_eq!(
            error_code(call(&e, Method::GET, &path).await).await,
            (StatusCode::NOT_FOUND, code.to_owned()),
            "{path}"
        );
    }
    let r = call(&e, Method::GET, &format!("/projects/{CLS}/iterations/{CLS_UNTRAINED}/performance")).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "BadRequestIterationIsNotTrained".to_owned()));
}

/// One raw HTTP/1.1 request on a fresh connection; the whole answer, read until the server
/// closes (every request asks it to).
async fn raw(e: &Emulator, head: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = e.endpoint().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("{head}Host: {addr}\r\nTraining-Key: {}\r\nConnection: close\r\n\r\n", e.key());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Issue 13, item 3: the front end answers 411 to a POST that says neither its length nor that
/// it is chunked; reqwest sends a body-less POST that way, and the client must not.
#[tokio::test]
async fn a_post_without_content_length_is_refused_with_411_and_the_client_sends_one() {
    let e = start(AccountSpec::Empty).await;
    let path = "/customvision/v3.3/training/projects?name=raw";
    let refused = raw(&e, &format!("POST {path} HTTP/1.1\r\n")).await;
    assert!(refused.starts_with("HTTP/1.1 411"), "{refused}");
    assert!(refused.contains("HTTP Error 411. The request must be chunked or have a content length."), "{refused}");
    assert!(e.projects().is_empty(), "nothing created by a refused request");
    let accepted = raw(&e, &format!("POST {path} HTTP/1.1\r\nContent-Length: 0\r\n")).await;
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    assert_eq!(e.projects().len(), 1);

    // What reqwest sends for a POST with no body: no Content-Length, so the front end refuses it.
    let r = call(&e, Method::POST, "/projects?name=bare").await;
    assert_eq!(r.status(), StatusCode::LENGTH_REQUIRED);
    assert_eq!(e.projects().len(), 1);

    // The client's CreateProject and CreateTag (POSTs with no body) go through.
    let client = cvarchive::api::Client::new(cvarchive::api::ClientOptions::new(
        e.endpoint(),
        cvarchive::secret::TrainingKey::new(e.key()),
    ))
    .unwrap();
    let project = client
        .create_project(&cvarchive::api::NewProject { name: "client".into(), ..Default::default() })
        .await
        .expect("CreateProject is not refused");
    client.create_tag(project.id, "thing", None, None).await.expect("CreateTag is not refused");
    let refusals = e.requests().into_iter().filter(|r| r.status == 411).count();
    assert_eq!(refusals, 2, "only the two raw-length-less POSTs were refused");
}

#[tokio::test]
async fn the_fixture_has_what_a_backup_must_handle() {
    let e = start(AccountSpec::Fixture).await;
    let tags: Vec<Tag> = get_json(&e, &format!("/projects/{CLS}/tags")).await;
    let names: HashSet<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains("日本語 tag") && names.contains("café"));
    let cat = tags.iter().find(|t| t.name == "cat").unwrap();
    assert_eq!(cat.image_count, Some(2));
    let images: Vec<Image> = get_json(&e, &format!("/projects/{CLS}/images?take=256")).await;
    assert_eq!(images.len(), 7);
    assert!(images
        .iter()
        .any(|i| i.metadata.as_ref().is_some_and(|m| m.get("photographer").map(String::as_str) == Some("Zoë"))));
    let raw: Value = get_json(&e, &format!("/projects/{CLS}/images?take=256")).await;
    let created = raw[0]["created"].as_str().unwrap();
    assert!(!created.ends_with('Z') && created.rsplit('.').next().unwrap().len() == 7, "{created}");
    assert!(
        raw.as_array().unwrap().iter().all(|i| i.get("regions").is_none()),
        "classification images have no regions key"
    );
    let od: Vec<Image> = get_json(&e, &format!("/projects/{OD}/images/tagged")).await;
    assert!(od.iter().all(|i| i.regions.as_ref().is_some_and(|r| !r.is_empty())));
    let iterations: Vec<Iteration> = get_json(&e, &format!("/projects/{CLS}/iterations")).await;
    assert!(iterations.iter().any(|i| i.is_published()) && iterations.iter().any(|i| !i.is_trained()));
    let performances: Vec<Value> =
        get_json(&e, &format!("/projects/{CLS}/iterations/{CLS_PUBLISHED}/performance/images?take=2")).await;
    assert_eq!(performances.len(), 2);
    assert!(performances[0]["imageUri"].as_str().unwrap().contains("/blob/"));
    let count: u64 =
        get_json(&e, &format!("/projects/{CLS}/iterations/{CLS_PUBLISHED}/performance/images/count")).await;
    assert_eq!(count, 3);
    let exports: Vec<Value> = get_json(&e, &format!("/projects/{CLS}/iterations/{CLS_PUBLISHED}/export")).await;
    assert_eq!(exports.len(), 2);
    let done = exports.iter().find(|x| x["status"] == "Done").unwrap();
    let zip = reqwest::get(done["downloadUri"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(&zip[..2], b"PK");
    assert!(exports.iter().any(|x| x["status"] == "Exporting" && x.get("downloadUri").is_none()));
}

#[tokio::test]
async fn blobs_serve_the_image_bytes_with_their_headers() {
    let e = start(AccountSpec::Fixture).await;
    let images: Vec<Image> = get_json(&e, &format!("/projects/{CLS}/images?take=256")).await;
    let mut types = HashSet::new();
    for image in &images {
        let r = reqwest::get(image.original_image_uri.as_deref().unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let md5 = r.headers()["content-md5"].to_str().unwrap().to_owned();
        types.insert(r.headers()["content-type"].to_str().unwrap().to_owned());
        let bytes = r.bytes().await.unwrap();
        assert_eq!(Some(bytes.to_vec()), e.image_bytes(CLS.parse().unwrap(), image.id));
        assert_eq!(md5, base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes)));
        let thumb = reqwest::get(image.thumbnail_uri.as_deref().unwrap()).await.unwrap();
        assert_eq!(thumb.status(), StatusCode::OK);
    }
    assert_eq!(types.len(), 4, "jpeg, png, gif and bmp: {types:?}");
    let blob_requests: Vec<_> = e.requests().into_iter().filter(|r| r.operation == "Blob").collect();
    assert_eq!(blob_requests.len(), 14);
    assert!(blob_requests.iter().all(|r| !r.had_training_key && r.path.contains("sig=REDACTED")));

    let big = start(AccountSpec::Generated(GenerateSpec {
        projects: 1,
        images: 4,
        seed: 9,
        image_bytes: 262_144,
        ..Default::default()
    }))
    .await;
    let p = big.projects()[0];
    for id in big.image_ids(p) {
        let bytes = big.image_bytes(p, id).unwrap();
        assert!(bytes.len().abs_diff(262_144) < 64, "{}", bytes.len());
        assert!(bytes.starts_with(&[0xFF, 0xD8]) || bytes.starts_with(b"\x89PNG"));
    }
}

#[tokio::test]
async fn expired_and_tampered_links_are_refused() {
    let e = start_with(EmulatorOptions { sas_ttl: Duration::from_secs(1), ..EmulatorOptions::default() }).await;
    let images: Vec<Image> = get_json(&e, &format!("/projects/{CLS}/images?take=1")).await;
    let link = images[0].original_image_uri.clone().unwrap();
    let tampered = link.replacen("sig=", "sig=A", 1);
    let r = reqwest::get(&tampered).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("<Code>AuthenticationFailed</Code>"));
    let other = link.replacen("/i-", "/t-", 2).replacen("/t-", "/i-", 1);
    assert_eq!(reqwest::get(&other).await.unwrap().status(), StatusCode::FORBIDDEN, "a signature is for one blob");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = reqwest::get(&link).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<Code>AuthenticationFailed</Code>")
            && body.contains("Signature not valid in the specified time frame"),
        "{body}"
    );
    let fresh: Vec<Image> = get_json(&e, &format!("/projects/{CLS}/images?take=1")).await;
    assert_eq!(reqwest::get(fresh[0].original_image_uri.as_deref().unwrap()).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn vnet_images_and_exports_come_through_get_artifact() {
    let e = start(AccountSpec::Fixture).await;
    let images: Vec<Image> = get_json(&e, &format!("/projects/{VNET}/images")).await;
    assert_eq!(images.len(), 2);
    for image in &images {
        let path = image.original_image_uri.as_deref().unwrap();
        assert!(path.starts_with("/i-") && !path.contains('?'), "{path}");
        assert!(image.thumbnail_uri.as_deref().unwrap().starts_with("http"), "mixed forms, as recorded");
        let encoded = percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC);
        let r = call(&e, Method::GET, &format!("/projects/{VNET}/artifacts?path={encoded}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/octet-stream");
        assert_eq!(Some(r.bytes().await.unwrap().to_vec()), e.image_bytes(VNET.parse().unwrap(), image.id));
    }
    let iterations: Vec<Iteration> = get_json(&e, &format!("/projects/{VNET}/iterations")).await;
    let exports: Vec<Value> = get_json(&e, &format!("/projects/{VNET}/iterations/{}/export", iterations[0].id)).await;
    let path = exports[0]["downloadUri"].as_str().unwrap();
    assert!(path.starts_with("/m-"), "{path}");
    let r = call(&e, Method::GET, &format!("/projects/{VNET}/artifacts?path={path}")).await;
    assert_eq!(&r.bytes().await.unwrap()[..2], b"PK");
    // Another project's artifact through this project is refused.
    let cls_path =
        format!("/i-{}/i-{}", Uuid::parse_str(CLS).unwrap().simple(), e.image_ids(CLS.parse().unwrap())[0].simple());
    let r = call(&e, Method::GET, &format!("/projects/{VNET}/artifacts?path={cls_path}")).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "BadRequestInvalidArtifactUri".to_owned()));
}

#[tokio::test]
async fn deletes_change_counts_and_all_images_goes_asynchronously() {
    let e = start(AccountSpec::Fixture).await;
    let cls: Uuid = CLS.parse().unwrap();
    let first = e.image_ids(cls)[0];
    let r = call(&e, Method::DELETE, &format!("/projects/{CLS}/images?imageIds={first}")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let count: u64 = get_json(&e, &format!("/projects/{CLS}/images/count")).await;
    assert_eq!(count, 6);
    let r = call(&e, Method::DELETE, &format!("/projects/{CLS}/images?allImages=true")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut polls = 0;
    loop {
        let count: u64 = get_json(&e, &format!("/projects/{CLS}/images/count")).await;
        if count == 0 {
            break;
        }
        polls += 1;
        assert!(polls < 50, "images never went");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(polls > 0, "the delete is asynchronous");
    let tags: Vec<Tag> = get_json(&e, &format!("/projects/{CLS}/tags")).await;
    assert!(tags.iter().all(|t| t.image_count == Some(0)));
    let trained: Vec<Tag> = get_json(&e, &format!("/projects/{CLS}/tags?iterationId={CLS_PUBLISHED}")).await;
    assert!(trained.iter().any(|t| t.image_count > Some(0)), "a trained iteration keeps its counts");

    let tag = tags[0].id;
    assert_eq!(call(&e, Method::DELETE, &format!("/projects/{CLS}/tags/{tag}")).await.status(), StatusCode::NO_CONTENT);
    let r = call(&e, Method::GET, &format!("/projects/{CLS}/tags/{tag}")).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "NotFoundTag".to_owned()));
}

#[tokio::test]
async fn published_iterations_guard_deletes() {
    let e = start(AccountSpec::Fixture).await;
    let it = format!("/projects/{CLS}/iterations/{CLS_PUBLISHED}");
    assert_eq!(
        error_code(call(&e, Method::DELETE, &it).await).await,
        (StatusCode::BAD_REQUEST, "BadRequestIterationIsPublished".to_owned())
    );
    let r = call(&e, Method::DELETE, &format!("/projects/{CLS}")).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "BadRequestIterationIsPublished".to_owned()));
    let r = call(&e, Method::DELETE, &format!("/projects/{CLS}/iterations/{CLS_UNTRAINED}/publish")).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "BadRequestIterationNotPublished".to_owned()));
    assert_eq!(call(&e, Method::DELETE, &format!("{it}/publish")).await.status(), StatusCode::NO_CONTENT);
    let unpublished: Iteration = get_json(&e, &it).await;
    assert!(!unpublished.is_published());
    assert_eq!(call(&e, Method::DELETE, &it).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(call(&e, Method::DELETE, &format!("/projects/{CLS}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(e.projects().len(), 3);

    let mutations: Vec<(String, u16, bool)> =
        e.requests().into_iter().map(|r| (r.operation, r.status, r.mutating)).collect();
    assert_eq!(
        mutations,
        vec![
            ("DeleteIteration".to_owned(), 400, false),
            ("DeleteProject".to_owned(), 400, false),
            ("UnpublishIteration".to_owned(), 400, false),
            ("UnpublishIteration".to_owned(), 204, true),
            ("GetIteration".to_owned(), 200, false),
            ("DeleteIteration".to_owned(), 204, true),
            ("DeleteProject".to_owned(), 204, true),
        ]
    );
    assert!(e.requests().iter().all(|r| r.had_training_key));
}

async fn all_predictions(e: &Emulator, project: Uuid, max_count: i64) -> (Vec<usize>, Vec<Uuid>) {
    let client = reqwest::Client::new();
    let mut token = serde_json::json!({"maxCount": max_count});
    let (mut sizes, mut ids) = (Vec::new(), Vec::new());
    loop {
        let r = client
            .post(format!("{}/customvision/v3.3/training/projects/{project}/predictions/query", e.endpoint()))
            .header("Training-Key", e.key())
            .json(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page: PredictionQueryResult = r.json().await.unwrap();
        sizes.push(page.results.len());
        ids.extend(page.results.iter().map(|p| p.id));
        let next = page.token.unwrap();
        if next.continuation.as_deref().unwrap_or_default().is_empty() {
            return (sizes, ids);
        }
        token = serde_json::to_value(next).unwrap();
        assert!(sizes.len() < 100);
    }
}

#[tokio::test]
async fn prediction_queries_continue_past_short_pages_and_deletes_apply() {
    let e = start(generated(1, 10, 2)).await;
    let p = e.projects()[0];
    let (sizes, ids) = all_predictions(&e, p, 2).await;
    assert_eq!(sizes, vec![1, 2, 2], "a short first page is not the last");
    let mut expected = e.prediction_ids(p);
    expected.reverse();
    assert_eq!(ids, expected, "Newest first, each once");
    let too_many: Vec<String> = (0..65).map(|_| Uuid::new_v4().to_string()).collect();
    let r = call(&e, Method::DELETE, &format!("/projects/{p}/predictions?ids={}", too_many.join(","))).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "BadRequestPredictionIdsExceededCount".to_owned()));
    let r = call(&e, Method::DELETE, &format!("/projects/{p}/predictions?ids={},{}", ids[0], ids[1])).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(all_predictions(&e, p, 50).await.1.len(), 3);
    let link = {
        let r = reqwest::Client::new()
            .post(format!("{}/customvision/v3.3/training/projects/{p}/predictions/query", e.endpoint()))
            .header("Training-Key", e.key())
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let page: PredictionQueryResult = r.json().await.unwrap();
        page.results[0].original_image_uri.clone().unwrap()
    };
    assert_eq!(reqwest::get(link).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn faults_rate_limit_fail_and_cut_bodies() {
    let e = start(generated(1, 20, 3)).await;
    let p = e.projects()[0];
    e.set_faults(FaultConfig { rate_limit: Some(2.0), ..FaultConfig::default() });
    let mut limited = None;
    for _ in 0..6 {
        let r = call(&e, Method::GET, "/projects").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a burst beyond the rate is refused");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Please retry after"));

    e.set_faults(FaultConfig { rate_limit: Some(0.5), retry_after_header: false, ..FaultConfig::default() });
    call(&e, Method::GET, "/projects").await;
    let r = call(&e, Method::GET, "/projects").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("Please retry after 2 seconds"));

    e.set_faults(FaultConfig::default());
    let images: Vec<Image> = get_json(&e, &format!("/projects/{p}/images?take=1")).await;
    let link = images[0].original_image_uri.clone().unwrap();
    let full = e.image_bytes(p, images[0].id).unwrap();
    e.set_faults(FaultConfig { reset_rate: 1.0, ..FaultConfig::default() });
    let r = reqwest::get(&link).await.unwrap();
    assert_eq!(r.content_length(), Some(full.len() as u64));
    let cut = r.bytes().await.map_or(true, |body| body.len() < full.len());
    assert!(cut, "the body is cut short of its Content-Length");
    e.set_faults(FaultConfig { error_rate: 1.0, ..FaultConfig::default() });
    assert_eq!(call(&e, Method::GET, "/projects").await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    e.set_faults(FaultConfig::default());
    assert_eq!(reqwest::get(&link).await.unwrap().bytes().await.unwrap().to_vec(), full);

    // A cut download resumes with a Range request.
    let r = reqwest::Client::new().get(&link).header("Range", "bytes=100-").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes 100-{}/{}", full.len() - 1, full.len()));
    assert!(r.headers().contains_key("x-ms-blob-content-md5") && !r.headers().contains_key("content-md5"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), full[100..].to_vec());
    let r = reqwest::Client::new().get(&link).header("Range", format!("bytes={}-", full.len())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn generated_accounts_are_deterministic_and_images_can_be_added_and_removed() {
    let (a, b, c) =
        (start(generated(2, 30, 5)).await, start(generated(2, 30, 5)).await, start(generated(2, 30, 6)).await);
    assert_eq!(a.projects(), b.projects());
    assert_ne!(a.projects(), c.projects());
    let p = a.projects()[1];
    assert_eq!(a.image_ids(p), b.image_ids(p));
    let first = a.image_ids(p)[0];
    assert_eq!(a.image_bytes(p, first), b.image_bytes(p, first));
    let od: Vec<Image> = get_json(&a, &format!("/projects/{p}/images/tagged")).await;
    assert!(od.iter().all(|i| i.regions.as_ref().is_some_and(|r| !r.is_empty())), "the second project detects objects");

    let added = a.add_images(p, 3);
    let ids = a.image_ids(p);
    assert_eq!(&ids[ids.len() - 3..], &added[..], "new images are the newest");
    let bytes: HashSet<Vec<u8>> = added.iter().map(|id| a.image_bytes(p, *id).unwrap()).collect();
    assert_eq!(bytes.len(), 3);
    a.remove_images(p, &added[..2]);
    let count: u64 = get_json(&a, &format!("/projects/{p}/images/count")).await;
    assert_eq!(count, 31);
}

#[tokio::test]
async fn a_hundred_thousand_images_list_first_and_last_pages() {
    let e = start(AccountSpec::Generated(GenerateSpec {
        projects: 1,
        images: 100_000,
        seed: 7,
        image_bytes: 1024,
        ..Default::default()
    }))
    .await;
    let p = e.projects()[0];
    let count: u64 = get_json(&e, &format!("/projects/{p}/images/count")).await;
    assert_eq!(count, 100_000);
    let first: Vec<Image> = get_json(&e, &format!("/projects/{p}/images?take=256&orderBy=Oldest")).await;
    let last: Vec<Image> = get_json(&e, &format!("/projects/{p}/images?take=256&skip=99900&orderBy=Oldest")).await;
    assert_eq!((first.len(), last.len()), (256, 100));
    let ids = e.image_ids(p);
    assert_eq!(first[0].id, ids[0]);
    assert_eq!(last.last().unwrap().id, ids[99_999]);
    let link = last.last().unwrap().original_image_uri.clone().unwrap();
    assert_eq!(
        reqwest::get(link).await.unwrap().bytes().await.unwrap().to_vec(),
        e.image_bytes(p, ids[99_999]).unwrap()
    );
}

#[test]
fn the_command_prints_endpoint_and_key_then_serves() {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cvarchive"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--generate", "projects=1,images=5,seed=1", "--key", "k123"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let endpoint = lines.next().unwrap().unwrap();
    let key = lines.next().unwrap().unwrap();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(key, "key: k123");
        let port = endpoint.strip_prefix("endpoint: http://127.0.0.1:").expect("first line is the endpoint").to_owned();
        assert_ne!(port, "0", "the real port is printed");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let projects: Vec<Project> = runtime.block_on(async {
            let r = reqwest::Client::new()
                .get(format!("http://127.0.0.1:{port}/customvision/v3.3/training/projects"))
                .header("Training-Key", "k123")
                .send()
                .await
                .unwrap();
            r.json().await.unwrap()
        });
        assert_eq!(projects.len(), 1);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
