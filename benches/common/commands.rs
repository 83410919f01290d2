//! Every command whose memory issue 16 bounds, as one list that the million-image benchmark
//! (`benches/million.rs`) and the CI memory test (`tests/scale_memory.rs`, which includes this
//! file) both run, each as a child process of the binary measured for wall time and its own peak
//! resident memory (the kernel's `ru_maxrss`, see [`super::peak`]).
//!
//! The list: export (which makes the archive the others read), verify, verify --fast, inspect,
//! convert to COCO and to folders, delete's dry run with the archive as its backup (against the
//! emulator that served the export), and restore's plan (`restore --dry-run`). A step whose flag
//! the binary does not have (restore --dry-run before it exists) is reported as not available,
//! not run. Holds nothing per image: the figures are the children's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The variable the children read the (emulator's) training key from.
const KEY_VAR: &str = "VISION_TRAINING_KEY";

/// One command of the list: its name (as tables print it) and its arguments.
pub struct Step {
    /// The command as a reader would type it, e.g. `verify --fast`.
    pub name: &'static str,
    /// The arguments after the binary.
    pub args: Vec<String>,
    /// A subcommand and a flag of it that the binary must have for this step to run.
    pub needs: Option<(&'static str, &'static str)>,
    /// A folder the step writes, removed once it has run (convert's output).
    pub output: Option<PathBuf>,
}

/// How one step went.
pub struct Outcome {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Wall time from spawn to exit, in seconds.
    pub seconds: f64,
    /// The child's peak resident memory, in bytes.
    pub peak: u64,
    /// The first 4 KiB of what it printed on stderr.
    pub stderr: String,
}

/// The list, in the order it must run: `archive` is written by the first step (export of the
/// account the emulator at `endpoint` serves) and read by the others; convert writes under
/// `scratch`.
pub fn every_command(archive: &Path, scratch: &Path, endpoint: &str) -> Vec<Step> {
    let archive = archive.to_str().expect("a UTF-8 archive path").to_owned();
    let service = |cmd: &str| -> Vec<String> {
        [cmd, "--endpoint", endpoint, "--api-rate", "unlimited", "-q"].map(str::to_owned).to_vec()
    };
    let with = |mut head: Vec<String>, tail: &[&str]| {
        head.extend(tail.iter().map(|s| (*s).to_owned()));
        head
    };
    let plain = |tail: &[&str]| with(Vec::new(), tail);
    let convert = |to: &'static str, name: &'static str| {
        let out = scratch.join(format!("convert-{to}"));
        let args = plain(&["convert", "-q", "--to", to, "--out", out.to_str().expect("a UTF-8 path"), &archive]);
        Step { name, args, needs: None, output: Some(out) }
    };
    let step = |name, args| Step { name, args, needs: None, output: None };
    vec![
        step("export", with(service("export"), &["--out", &archive, "--force"])),
        step("verify", plain(&["verify", "-q", &archive])),
        step("verify --fast", plain(&["verify", "-q", "--fast", &archive])),
        step("inspect", plain(&["inspect", "-q", &archive])),
        convert("coco", "convert --to coco"),
        convert("folders", "convert --to folders"),
        step(
            "delete --all-projects --backup (dry run)",
            with(service("delete"), &["--all-projects", "--backup", &archive]),
        ),
        Step {
            name: "restore --dry-run",
            args: with(service("restore"), &["--dry-run", &archive]),
            needs: Some(("restore", "--dry-run")),
            output: None,
        },
    ]
}

/// Whether `binary` has what `step` needs (its `--help` names the flag).
pub fn available(binary: &Path, step: &Step) -> bool {
    let Some((command, flag)) = step.needs else { return true };
    let help = Command::new(binary).args([command, "--help"]).output().expect("the binary runs");
    String::from_utf8_lossy(&help.stdout).split_whitespace().any(|word| word.trim_end_matches(',') == flag)
}

/// Runs `step` with the emulator's key in the environment (and none of the caller's service
/// variables), reading its peak memory when it exits; removes its output folder afterwards.
pub fn run(binary: &Path, step: &Step, key: &str) -> Outcome {
    let err = tempfile::tempfile().expect("a stderr file");
    let mut child = Command::new(binary)
        .args(&step.args)
        .env_remove("VISION_TRAINING_ENDPOINT")
        .env(KEY_VAR, key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.try_clone().expect("dup"))
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    let (code, peak) = super::peak::wait_with_peak(&mut child);
    let seconds = started.elapsed().as_secs_f64();
    if let Some(out) = &step.output {
        let _ = std::fs::remove_dir_all(out);
    }
    let mut stderr = String::new();
    {
        use std::io::{Read, Seek};
        let mut err = err;
        err.rewind().ok();
        err.take(4096).read_to_string(&mut stderr).ok();
    }
    Outcome { code, seconds, peak, stderr }
}
