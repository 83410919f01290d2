//! Surviving the real service: throttling, 5xx, cut bodies, expiring links, and hostile or
//! broken servers. Every test runs against the emulator over real sockets.

use std::collections::HashSet;
use std::time::Duration;

use cvarchive::api::{Client, ClientOptions, RetryKind};
use cvarchive::emulator::{self, AccountSpec, EmulatorOptions, FaultConfig, Hostile};
use cvarchive::export::{export, ExportOptions, ExportSummary};
use cvarchive::progress::NoProgress;
use cvarchive::secret::TrainingKey;
use cvarchive::verify::{verify, VerifyOptions};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

async fn start(spec: &str, sas_ttl: Duration, faults: FaultConfig) -> emulator::Emulator {
    let opts = EmulatorOptions {
        account: AccountSpec::Generated(spec.parse().unwrap()),
        sas_ttl,
        faults,
        ..EmulatorOptions::default()
    };
    emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

fn client(emu: &emulator::Emulator, tune: impl FnOnce(&mut ClientOptions)) -> Client {
    let mut o = ClientOptions::new(emu.endpoint(), TrainingKey::new(emu.key()));
    tune(&mut o);
    Client::new(o).unwrap()
}

async fn run_export(client: &Client, out: &std::path::Path) -> Result<ExportSummary, cvarchive::export::Error> {
    let opts = ExportOptions { predictions: false, ..ExportOptions::new(out) };
    tokio::time::timeout(Duration::from_secs(300), export(client, &opts, &NoProgress, &CancellationToken::new()))
        .await
        .expect("the export never hangs")
}

fn retries(summary: &ExportSummary, kind: RetryKind) -> u64 {
    summary.retries.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_matrix_finishes_complete() {
    // 2,000 images behind a 5 requests/s limit, 5% of answers 503, 2% of blob bodies cut mid-way,
    // and links that expire after 3 seconds (downloads take longer than that, at 40 ms a blob);
    // the client paces itself at the S0 default of 10/s,
    // so it meets 429s too.
    let faults = FaultConfig {
        rate_limit: Some(5.0),
        error_rate: 0.05,
        reset_rate: 0.02,
        blob_latency: Duration::from_millis(40),
        seed: 42,
        ..FaultConfig::default()
    };
    let emu = start("projects=1,images=2000,seed=5,size=8192", Duration::from_secs(3), faults).await;
    let client = client(&emu, |o| o.retry.max_delay = Duration::from_secs(4));
    let (_dir, out) = temp_archive("faults.zip");
    let summary = run_export(&client, &out).await.expect("the export finishes");
    let mut ops = std::collections::BTreeMap::new();
    for r in emu.requests() {
        *ops.entry((r.operation.clone(), r.status)).or_insert(0) += 1;
    }
    eprintln!("fault matrix: {:.1} s, retries {:?}, requests {ops:?}", summary.seconds, summary.retries);
    assert!(summary.complete, "missing: {:?}", summary.missing);
    assert_eq!(summary.images, 2000);
    let report = verify(&out, &VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let project = emu.projects()[0];
    let payload = payload(&out);
    let archived: HashSet<Uuid> = jsonl(&payload, &format!("projects/{project}/images.jsonl"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(archived, emu.image_ids(project).into_iter().collect::<HashSet<_>>());
    for id in emu.image_ids(project).into_iter().take(50) {
        let line = jsonl(&payload, &format!("projects/{project}/images.jsonl"))
            .into_iter()
            .find(|l| l["id"] == id.to_string())
            .unwrap();
        assert_eq!(
            payload[line["file"].as_str().unwrap()],
            emu.image_bytes(project, id).unwrap(),
            "no damaged body archived"
        );
    }
    for kind in [RetryKind::Throttled, RetryKind::ServerError, RetryKind::Damaged, RetryKind::ExpiredLink] {
        assert!(retries(&summary, kind) > 0, "{kind:?} retried: {:?}", summary.retries);
    }
    // Expired links are refreshed in batches, not one call per image.
    let refreshes = emu.requests().iter().filter(|r| r.operation == "GetImagesByIds" && r.status == 200).count() as u64;
    assert!(refreshes * 4 <= retries(&summary, RetryKind::ExpiredLink).max(4), "{refreshes} refresh calls");
}

#[tokio::test]
async fn a_huge_json_page_is_refused_with_bounded_memory() {
    let faults = FaultConfig { hostile: Some(Hostile::HugePage { bytes: 8 << 20 }), ..FaultConfig::default() };
    let emu = start("projects=1,images=10,seed=1", Duration::from_secs(3600), faults).await;
    let client = client(&emu, |o| o.max_json_bytes = 1 << 20);
    let (_dir, out) = temp_archive("huge.zip");
    let err = cvarchive::text::error_chain(&run_export(&client, &out).await.unwrap_err());
    assert!(err.contains("larger than 1048576 bytes") && err.contains("GetTaggedImages"), "{err}");
    assert!(!out.exists(), "nothing at the target");
    assert!(err.contains("run the same command again to resume"), "{err}");
}

#[tokio::test]
async fn an_endless_blob_is_an_error_for_that_image_only() {
    let faults = FaultConfig { hostile: Some(Hostile::EndlessBlob), ..FaultConfig::default() };
    let emu = start("projects=1,images=3,seed=1", Duration::from_secs(3600), faults).await;
    let client = client(&emu, |_| {});
    let (_dir, out) = temp_archive("endless.zip");
    let opts = ExportOptions { predictions: false, max_image_bytes: 1 << 20, ..ExportOptions::new(&out) };
    let summary = export(&client, &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    assert!(!summary.complete);
    assert_eq!(summary.missing.len(), 3);
    assert!(summary.missing.iter().all(|m| m.reason.contains("larger than 1048576 bytes")), "{:?}", summary.missing);
    assert!(verify(&out, &VerifyOptions::default()).unwrap().is_clean(), "what was archived is consistent");
}

#[tokio::test]
async fn a_stalled_server_times_out_instead_of_hanging() {
    let faults = FaultConfig { hostile: Some(Hostile::StalledBlob), ..FaultConfig::default() };
    let emu = start("projects=1,images=2,seed=1", Duration::from_secs(3600), faults).await;
    let client = client(&emu, |o| {
        o.read_timeout = Duration::from_millis(300);
        o.retry.max_attempts = 2;
        o.retry.base_delay = Duration::from_millis(10);
    });
    let (_dir, out) = temp_archive("stalled.zip");
    let summary = run_export(&client, &out).await.unwrap();
    assert_eq!(summary.missing.len(), 2);
    assert!(
        retries(&summary, RetryKind::Timeout) > 0 || retries(&summary, RetryKind::Damaged) > 0,
        "{:?}",
        summary.retries
    );
}

#[tokio::test]
async fn a_content_md5_mismatch_is_never_archived() {
    let faults = FaultConfig { hostile: Some(Hostile::WrongMd5), ..FaultConfig::default() };
    let emu = start("projects=1,images=2,seed=1", Duration::from_secs(3600), faults).await;
    let client = client(&emu, |o| {
        o.retry.max_attempts = 3;
        o.retry.base_delay = Duration::from_millis(10);
    });
    let (_dir, out) = temp_archive("md5.zip");
    let summary = run_export(&client, &out).await.unwrap();
    assert_eq!(summary.images, 0);
    assert!(summary.missing.iter().all(|m| m.reason.contains("Content-MD5")), "{:?}", summary.missing);
    assert_eq!(retries(&summary, RetryKind::Damaged), 4, "two images, two retries each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_deleted_during_the_export_leave_a_consistent_archive() {
    let faults = FaultConfig { blob_latency: Duration::from_millis(2), ..FaultConfig::default() };
    let emu = start("projects=1,images=600,seed=9", Duration::from_secs(3600), faults).await;
    let project = emu.projects()[0];
    let doomed: Vec<Uuid> = emu.image_ids(project).into_iter().rev().take(40).collect();
    let client = client_for(&emu);
    let (_dir, out) = temp_archive("deleting.zip");
    let deleter = async {
        while !emu.requests().iter().any(|r| r.operation == "GetTaggedImages") {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        emu.remove_images(project, &doomed);
    };
    let (summary, ()) = tokio::join!(run_export(&client, &out), deleter);
    let summary = summary.unwrap();
    assert!(summary.complete, "a deleted image is a change, not a loss: {:?}", summary.missing);
    let report = verify(&out, &VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let payload = payload(&out);
    let lines = jsonl(&payload, &format!("projects/{project}/images.jsonl"));
    assert!(lines.len() >= 560 && lines.len() <= 600);
    if lines.len() < 600 {
        assert!(summary.notes.iter().any(|n| n.contains("deleted")), "{:?}", summary.notes);
    }
}

/// Exports `emu` with stored predictions (and models when asked), `concurrency` downloads at once.
async fn export_with_predictions(
    emu: &emulator::Emulator,
    out: &std::path::Path,
    models: bool,
    concurrency: usize,
) -> ExportSummary {
    let client = client(emu, |o| o.api_rate = None);
    let opts = ExportOptions { predictions: true, include_models: models, concurrency, ..ExportOptions::new(out) };
    tokio::time::timeout(Duration::from_secs(120), export(&client, &opts, &NoProgress, &CancellationToken::new()))
        .await
        .expect("the export never hangs")
        .expect("the export finishes")
}

fn archived_predictions(out: &std::path::Path, project: Uuid) -> HashSet<Uuid> {
    let payload = payload(out);
    jsonl(&payload, &format!("projects/{project}/predictions.jsonl"))
        .iter()
        .map(|l| {
            assert!(!payload[l["file"].as_str().unwrap()].is_empty(), "the image is archived");
            l["id"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn predictions_page_past_a_refused_max_count_and_short_pages() {
    // The service refuses maxCount above 20 and sends pages of at most one result, with an empty
    // page (and a fresh continuation) between every two.
    let faults =
        FaultConfig { prediction_max_count: Some(20), short_prediction_pages: Some(1), ..FaultConfig::default() };
    let emu = start("projects=1,images=3,seed=2", Duration::from_secs(3600), faults).await;
    let (_dir, out) = temp_archive("short-pages.zip");
    let summary = export_with_predictions(&emu, &out, false, 4).await;
    assert!(summary.complete, "missing: {:?}", summary.missing);
    let project = emu.projects()[0];
    let expected: HashSet<Uuid> = emu.prediction_ids(project).into_iter().collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(archived_predictions(&out, project), expected);
    let queries: Vec<u16> =
        emu.requests().iter().filter(|r| r.operation == "QueryPredictions").map(|r| r.status).collect();
    assert_eq!(queries.iter().filter(|s| **s == 400).count(), 2, "256 and 64 refused, then 0: {queries:?}");
    assert!(queries.iter().filter(|s| **s == 200).count() >= 9, "short and empty pages followed: {queries:?}");
}

#[tokio::test]
async fn endless_prediction_continuations_are_bounded_and_reported_missing() {
    // Every page is empty and offers a new continuation, forever.
    let faults = FaultConfig { short_prediction_pages: Some(0), ..FaultConfig::default() };
    let emu = start("projects=1,images=3,seed=2", Duration::from_secs(3600), faults).await;
    let (_dir, out) = temp_archive("endless-pages.zip");
    let summary = export_with_predictions(&emu, &out, false, 4).await;
    assert!(!summary.complete);
    let project = emu.projects()[0];
    let cut: Vec<_> = summary.missing.iter().filter(|m| m.kind == "predictions").collect();
    assert_eq!(cut.len(), 1, "{:?}", summary.missing);
    assert_eq!(cut[0].project, project);
    assert!(cut[0].reason.contains("still offered a continuation"), "{}", cut[0].reason);
    let queries = emu.requests().iter().filter(|r| r.operation == "QueryPredictions").count() as u64;
    assert_eq!(queries, cvarchive::api::paging::MAX_EMPTY_PAGES);
    let account = json(&payload(&out), "account.json");
    assert_eq!(account["complete"], false);
    assert!(account.to_string().contains("\"kind\":\"predictions\""), "account.json names what was not read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_model_and_prediction_links_are_refreshed() {
    // Links last 2 s, every blob answer takes 600 ms and downloads run one at a time: the links
    // listed for predictions and the model expire before their turn comes.
    let faults = FaultConfig { blob_latency: Duration::from_millis(600), ..FaultConfig::default() };
    let emu = start("projects=1,images=4,seed=3", Duration::from_secs(2), faults).await;
    let (_dir, out) = temp_archive("expiring.zip");
    let summary = export_with_predictions(&emu, &out, true, 1).await;
    let ops: Vec<(String, u16)> = emu.requests().iter().map(|r| (r.operation.clone(), r.status)).collect();
    eprintln!("expiring links: {:.1} s, retries {:?}, requests {ops:?}", summary.seconds, summary.retries);
    assert!(summary.complete, "missing: {:?}", summary.missing);
    let project = emu.projects()[0];
    assert_eq!(archived_predictions(&out, project), emu.prediction_ids(project).into_iter().collect());
    assert_eq!(summary.models, 1);
    let payload = payload(&out);
    assert!(
        payload.keys().any(|k| k.starts_with(&format!("projects/{project}/")) && k.ends_with(".zip")),
        "the model package is archived"
    );
    let report = verify(&out, &VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let calls = |op: &str| emu.requests().iter().filter(|r| r.operation == op && r.status == 200).count();
    assert!(calls("GetExports") >= 2, "the model link was renewed");
    assert!(calls("QueryPredictions") >= 2, "prediction links were renewed");
    assert!(retries(&summary, RetryKind::ExpiredLink) > 0, "{:?}", summary.retries);
}
