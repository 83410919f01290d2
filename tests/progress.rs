//! Honest progress (issue 15, item 5): the phases and a line per project on a terminal (a
//! pseudo-terminal), timestamped lines with the retry and throttle counts in a pipe, `-q`,
//! `RUST_LOG`, and the client reporting its retries as progress events.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cvarchive::api::{Client, ClientOptions};
use cvarchive::emulator::{Emulator, FaultConfig};
use cvarchive::progress::{Event, Phase, Progress};
use cvarchive::secret::TrainingKey;

use crate::support::*;

/// The binary with `args`, its environment cleared of keys and logging choices, the emulator's
/// key given; run on a blocking thread so the emulator keeps serving.
async fn run(emu: &Emulator, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> (Output, std::time::Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cvarchive"));
    cmd.args(args)
        .env_remove("VISION_TRAINING_ENDPOINT")
        .env_remove("RUST_LOG")
        .env("VISION_TRAINING_KEY", emu.key())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let child = cmd.spawn().expect("the binary runs");
    drop(cmd);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    (out, started.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A pseudo-terminal: the parent's end, and the child's end as a `Stdio`.
fn pty(cols: u16) -> (std::fs::File, Stdio) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize { ws_row: 40, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two descriptors it opened, which are then owned by the Files.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe { (std::fs::File::from_raw_fd(master), Stdio::from(std::fs::File::from_raw_fd(slave))) }
}

/// Everything written to the terminal until the child's end closes.
fn drain(mut master: std::fs::File) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        // Linux answers EIO once the child's end is closed.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        all
    })
}

/// Two projects exported at once, on a terminal: the bars show the phases as they come and one
/// line per project, each with its own count; never "project 2/2" from the first frame, and no
/// bar before the service has said how many images there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_shows_the_phases_and_a_line_per_project() {
    let emu = generated_emulator("projects=2,images=150,seed=21,size=4096").await;
    // About two seconds of downloads: many frames with both projects at it.
    emu.set_faults(FaultConfig { blob_latency: Duration::from_millis(30), ..FaultConfig::default() });
    let (_dir, out) = temp_archive("pty.zip");
    let (master, stderr) = pty(200);
    let reader = drain(master);
    let endpoint = emu.endpoint();
    let args =
        ["export", "--endpoint", &endpoint, "--api-rate", "100", "--concurrency", "4", "-o", out.to_str().unwrap()];
    let (o, took) = run(&emu, &args, &[("TERM", "xterm")], stderr).await;
    let screen = text(&reader.join().unwrap());
    assert_eq!(o.status.code(), Some(0), "{}\n{screen}", text(&o.stdout));
    assert!(took < Duration::from_secs(20), "{took:?}");

    for phase in ["connecting", "listing", "downloading", "finishing"] {
        assert!(screen.contains(phase), "no {phase:?} on the terminal:\n{screen}");
    }
    assert!(!screen.contains("project 2/2"), "{screen}");
    // A frame is what indicatif draws after moving the cursor up over the previous one: with
    // both projects in flight it holds the status line and one line for each.
    let both = screen.split("\x1b[2A").any(|frame| {
        frame.contains("Generated project 1 (")
            && frame.contains("Generated project 2 (")
            && frame.matches(": downloading [").count() == 2
            && frame.contains("/150 images")
    });
    assert!(both, "no frame with a downloading line for each project:\n{screen}");
    // Before the first count, a spinner and words, not a bar.
    let first_count = screen.find(" images").expect("images are counted");
    assert!(!screen[..first_count].contains("=]"), "a bar before anything was counted:\n{screen}");
}

/// Whether a line starts with `2026-12-04T21:05:09Z `.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21
        && b[..20].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[20] == b' '
}

/// An emulator that throttles: a bucket of 4 calls, refilled at 4 a second, while the CLI asks
/// for 100 a second.
async fn throttling_emulator() -> Emulator {
    let emu = generated_emulator("projects=1,images=40,seed=22,size=2048").await;
    emu.set_faults(FaultConfig { rate_limit: Some(4.0), ..FaultConfig::default() });
    emu
}

/// In a pipe, every line carries a timestamp, the phases are lines of their own, and the final
/// line counts the retries and how many were throttling, as the summary does.
#[tokio::test]
async fn a_pipe_gets_timestamped_lines_with_the_retry_and_throttle_counts() {
    let emu = throttling_emulator().await;
    let (_dir, out) = temp_archive("lines.zip");
    let args = ["export", "--endpoint", &emu.endpoint(), "--api-rate", "100", "-o", out.to_str().unwrap()];
    let (o, took) = run(&emu, &args, &[], Stdio::piped()).await;
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(stamped(line), "no timestamp: {line:?}\n{stderr}");
    }
    for phase in
        [" cvarchive: connecting", " cvarchive: listing", "): downloading", "): finishing", " cvarchive: finishing"]
    {
        assert!(lines.iter().any(|l| l.contains(phase)), "no {phase:?} line:\n{stderr}");
    }
    // The summary's count of 429s, and the last progress line's.
    let throttled: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("retries: throttled (429) "))
        .and_then(|n| n.split(',').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("the service throttled, and the summary says how often:\n{stdout}"));
    let done = lines.iter().rev().find(|l| l.contains(" cvarchive: done: ")).expect("a final line");
    assert!(done.contains(&format!("({throttled} throttled)")), "{done}\nsummary: {throttled} throttled");
    assert!(!stderr.contains("DEBUG"), "{stderr}");
}

/// RUST_LOG chooses the logs, which are off by default: with it, the client's debug lines
/// (one per retry) appear among the progress lines.
#[tokio::test]
async fn rust_log_turns_on_the_debug_logs() {
    let emu = throttling_emulator().await;
    let (_dir, out) = temp_archive("logs.zip");
    let args = ["export", "--endpoint", &emu.endpoint(), "--api-rate", "100", "-o", out.to_str().unwrap()];
    let (o, _) = run(&emu, &args, &[("RUST_LOG", "cvarchive=debug")], Stdio::piped()).await;
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("DEBUG") && l.contains("retrying")), "{stderr}");
}

/// `-q`: nothing at all on success, from export and verify alike; an error still says what
/// went wrong.
#[tokio::test]
async fn quiet_prints_nothing_but_errors() {
    let emu = generated_emulator("projects=2,images=10,seed=23,size=1024").await;
    let (_dir, out) = temp_archive("quiet.zip");
    let path = out.to_str().unwrap();
    let (o, _) = run(&emu, &["-q", "export", "--endpoint", &emu.endpoint(), "-o", path], &[], Stdio::piped()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!((text(&o.stdout), text(&o.stderr)), (String::new(), String::new()));
    let (o, _) = run(&emu, &["verify", path, "--quiet"], &[], Stdio::piped()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!((text(&o.stdout), text(&o.stderr)), (String::new(), String::new()));
    // Without -q the same commands do speak.
    let (o, _) = run(&emu, &["verify", path], &[], Stdio::piped()).await;
    assert!(text(&o.stdout).contains("intact"), "{}", text(&o.stdout));

    let (o, _) = run(&emu, &["-q", "export", "--endpoint", &emu.endpoint(), "-o", path], &[], Stdio::piped()).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stdout), "");
    assert!(text(&o.stderr).starts_with("cvarchive: ") && text(&o.stderr).contains("exists"), "{}", text(&o.stderr));
}

/// Every event, kept.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Progress for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

/// The client reports every retry to the command's progress, saying which were throttling; the
/// export reports its phases, and each project's images under the project's id.
#[tokio::test]
async fn the_client_reports_retries_as_progress_events() {
    let emu = throttling_emulator().await;
    let recorder = Arc::new(Recorder::default());
    let mut o = ClientOptions::new(emu.endpoint(), TrainingKey::new(emu.key()));
    o.api_rate = None;
    o.progress = recorder.clone();
    let client = Client::new(o).unwrap();
    let (_dir, out) = temp_archive("events.zip");
    let opts = cvarchive::export::ExportOptions::new(&out);
    let summary = cvarchive::export::export(&client, &opts, recorder.as_ref(), &Default::default()).await.unwrap();
    let events = recorder.0.lock().unwrap();
    let throttled = events.iter().filter(|e| matches!(e, Event::Retry { throttled: true, .. })).count() as u64;
    let counted = summary.retries.iter().find(|(k, _)| *k == cvarchive::api::RetryKind::Throttled).map(|(_, n)| *n);
    assert!(throttled > 0);
    assert_eq!(Some(throttled), counted);
    let phases: Vec<(Phase, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Phase { phase, project_id } => Some((*phase, project_id.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(phases.first(), Some(&(Phase::Connecting, false)));
    assert_eq!(phases.last(), Some(&(Phase::Finishing, false)));
    for want in [Phase::Listing, Phase::Downloading, Phase::Finishing] {
        assert!(phases.contains(&(want, true)), "{phases:?}");
    }
    let project = summary_project(&out);
    assert!(events.iter().any(|e| matches!(e, Event::Transferred { project_id, .. } if *project_id == project)));
    assert!(events.iter().any(|e| matches!(e, Event::ImagesFound { project_id, total: 40 } if *project_id == project)));
}

/// The one project's id, from the archive.
fn summary_project(out: &std::path::Path) -> String {
    let account = json(&payload(out), "account.json");
    account["projects"][0]["id"].as_str().unwrap().to_owned()
}

/// `restore` knows its totals before the first upload: every project's count comes first, and
/// they add up to what is uploaded, project by project.
#[tokio::test]
async fn restore_counts_every_project_before_the_first_upload() {
    use cvarchive::restore::{restore, RestoreOptions};
    let source = generated_emulator("projects=2,images=30,seed=24,size=1024").await;
    let (dir, archive) = temp_archive("restore-me.zip");
    let opts =
        cvarchive::export::ExportOptions { predictions: false, ..cvarchive::export::ExportOptions::new(&archive) };
    cvarchive::export::export(&client_for(&source), &opts, &cvarchive::progress::NoProgress, &Default::default())
        .await
        .unwrap();
    let target = emulator_with(cvarchive::emulator::AccountSpec::Empty).await;
    let opts = RestoreOptions::new(dir.path().join("restore.json"));
    let recorder = Recorder::default();
    let report = restore(&client_for(&target), &archive, &opts, &recorder, &Default::default()).await.unwrap();
    assert!(report.complete);
    let events = recorder.0.into_inner().unwrap();
    let first_upload = events.iter().position(|e| matches!(e, Event::Transferred { .. })).expect("uploads");
    let first_project = events.iter().position(|e| matches!(e, Event::ProjectStarted { .. })).unwrap();
    let counts: Vec<(&str, u64)> = events
        .iter()
        .enumerate()
        .filter_map(|(at, e)| match e {
            Event::ImagesFound { project_id, total } => {
                assert!(at < first_project && at < first_upload, "a count after the work began");
                Some((project_id.as_str(), *total))
            }
            _ => None,
        })
        .collect();
    assert_eq!(counts.len(), 2, "{counts:?}");
    let uploads = events.iter().filter(|e| matches!(e, Event::Transferred { .. })).count() as u64;
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), uploads);
    for p in &report.projects {
        let per: u64 = events
            .iter()
            .filter(|e| matches!(e, Event::Transferred { project_id, .. } if *project_id == p.old_id.to_string()))
            .count() as u64;
        assert!(counts.contains(&(p.old_id.to_string().as_str(), per)), "{counts:?} vs {per} for {}", p.old_id);
    }
}
