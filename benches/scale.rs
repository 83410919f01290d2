//! Figures 3 and 4: one project of 100,000 small images behind the service's own limit of 10
//! API requests per second, and the exporter's peak memory at 10,000 and 100,000 images.
//!
//! The exporter runs as the `cvarchive` binary, a child of this process, so that its own peak
//! resident set (`VmHWM`) is what is measured; the emulator runs here.
//!
//! - Memory (4): each account is exported with API pacing off and no service limit; the peak
//!   RSS of each run and the growth between them are reported.
//! - The same 100,000-image run gives the download floor of figure 3: the time the export takes
//!   when nothing limits API calls.
//! - Service limit (3): the emulator then answers more than 10 API requests per second with 429,
//!   and the binary runs with its defaults (`--api-rate 10`). The listing time is read from the
//!   emulator's record (first to last list request), against ceil(images / 256) / 10 s; the
//!   whole export against max(listing floor, download floor).

mod common;

use common::{mib, note, Row};
use cvarchive::emulator::{Emulator, FaultConfig};

const SMALL: &str = "projects=1,images=10000,seed=3,size=2048";
const LARGE: &str = "projects=1,images=100000,seed=3,size=2048";
const RATE: f64 = 10.0;

async fn unpaced(emu: &Emulator, dir: &tempfile::TempDir, name: &str) -> common::Measured {
    let out = common::path_in(dir, name);
    let emu_endpoint = emu.endpoint();
    let key = emu.key().to_owned();
    tokio::task::spawn_blocking(move || {
        let args = [
            "export",
            "--endpoint",
            &emu_endpoint,
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
            "--force",
            "--api-rate",
            "unlimited",
        ];
        let m = common::run_measured(&args, &[("VISION_TRAINING_KEY", &key)]);
        assert_eq!(m.code, 0, "export failed: {}", m.stderr);
        let _ = std::fs::remove_file(&out);
        m
    })
    .await
    .expect("the export runs")
}

#[tokio::main]
async fn main() {
    let dir = common::scratch();

    let small = common::generated(SMALL, FaultConfig::default()).await;
    small.store_md5s();
    let m10k = unpaced(&small, &dir, "10k.zip").await;
    drop(small);

    let large = common::generated(LARGE, FaultConfig::default()).await;
    large.store_md5s();
    let images = large.image_ids(large.projects()[0]).len() as f64;
    let m100k = unpaced(&large, &dir, "100k.zip").await;
    let growth = m100k.peak_rss.saturating_sub(m10k.peak_rss);

    Row {
        figure: "4",
        what: "peak RSS of the exporter, 100,000 small images",
        measured: mib(m100k.peak_rss),
        reference: "150 MiB".into(),
        result: mib(m100k.peak_rss),
        target: "<= 150 MiB",
        met: Some(m100k.peak_rss <= 150 << 20),
    }
    .print();
    Row {
        figure: "4",
        what: "peak RSS growth from 10,000 to 100,000 small images",
        measured: mib(m100k.peak_rss),
        reference: format!("{} at 10,000", mib(m10k.peak_rss)),
        result: format!("+{}", mib(growth)),
        target: "<= 20 MiB",
        met: Some(growth <= 20 << 20),
    }
    .print();
    note(format!(
        "figure 4: images of about 2 KiB, API pacing off; 10,000 in {:.1} s, 100,000 in {:.1} s",
        m10k.seconds, m100k.seconds
    ));

    // Figure 3: the same account behind the service's limit, the binary at its defaults.
    large.set_faults(FaultConfig { rate_limit: Some(RATE), ..FaultConfig::default() });
    large.clear_requests();
    let out = common::path_in(&dir, "limited.zip");
    let limited = tokio::task::spawn_blocking({
        let (endpoint, key) = (large.endpoint(), large.key().to_owned());
        move || {
            let args = ["export", "--endpoint", &endpoint, "--out", out.to_str().unwrap(), "--no-progress"];
            let m = common::run_measured(&args, &[("VISION_TRAINING_KEY", &key)]);
            let _ = std::fs::remove_file(&out);
            m
        }
    })
    .await
    .expect("the export runs");
    assert_eq!(limited.code, 0, "export failed: {}", limited.stderr);
    let requests = large.requests();
    let listing: Vec<_> =
        requests.iter().filter(|r| r.operation == "GetTaggedImages" || r.operation == "GetUntaggedImages").collect();
    let (first, last) = (listing.first().expect("listed").received, listing.last().expect("listed").received);
    let listing_seconds = last.duration_since(first).as_secs_f64();
    let listing_floor = (images / 256.0).ceil() / RATE;
    let download_floor = m100k.seconds;
    let whole_floor = listing_floor.max(download_floor);
    let throttled = requests.iter().filter(|r| r.status == 429).count();
    let api_calls = requests.iter().filter(|r| r.operation != "Blob").count();

    let ratio = listing_seconds / listing_floor;
    Row {
        figure: "3",
        what: "listing 100,000 images at 10 requests/s vs ceil(n/256)/10",
        measured: format!("{listing_seconds:.1} s"),
        reference: format!("{listing_floor:.1} s"),
        result: format!("{ratio:.3}"),
        target: "<= 1.15",
        met: Some(ratio <= 1.15),
    }
    .print();
    let ratio = limited.seconds / whole_floor;
    Row {
        figure: "3",
        what: "whole export at 10 requests/s vs max(listing floor, download floor)",
        measured: format!("{:.1} s", limited.seconds),
        reference: format!("{whole_floor:.1} s"),
        result: format!("{ratio:.3}"),
        target: "<= 1.2",
        met: Some(ratio <= 1.2),
    }
    .print();
    note(format!(
        "figure 3: {} list calls, {api_calls} API calls in all, {throttled} answered 429; download floor = the \
         same export with no API limit: {download_floor:.1} s; peak RSS {}",
        listing.len(),
        mib(limited.peak_rss)
    ));
}
