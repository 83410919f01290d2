//! Outside programs and system facilities some tests need (Python with `bagit`, Chromium, shells,
//! `unzip`, `unshare`, `/dev/full`), and the one skip policy for them: a test whose tool is
//! missing FAILS when `CI` or `CVARCHIVE_REQUIRE_TOOLS` is set, and otherwise skips with a
//! `skipped: ...` line on stderr, never silently.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether a missing tool fails the test: under CI (`CI` set) or with `CVARCHIVE_REQUIRE_TOOLS`.
pub fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("CVARCHIVE_REQUIRE_TOOLS").is_some()
}

/// Applies the skip policy: returns `present`; when it is false, panics under [`required`] and
/// otherwise prints `skipped: <what> is missing (<fix>)`. A test that gets `false` returns at
/// once. `what` names the tool, `fix` says how to get it.
pub fn require(what: &str, present: bool, fix: &str) -> bool {
    if !present {
        assert!(!required(), "{what} is missing (under CI a missing tool is a failure): {fix}");
        eprintln!("skipped: {what} is missing ({fix})");
    }
    present
}

/// Whether the command `tool` is on the PATH, under the skip policy ([`require`]).
pub fn require_command(tool: &str, fix: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    require(tool, found, fix)
}

/// Whether this process may mount a file system in a private mount namespace (`unshare -m`, as
/// root), under the skip policy ([`require`]).
pub fn require_unshare() -> bool {
    let ok = Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success());
    require("`unshare -m` (util-linux, run as root) to mount a small tmpfs", ok, "run the tests as root, as CI does")
}

/// The Python interpreter with `bagit` installed (`$CVARCHIVE_PYTHON`, else `<repo>/.venv`). It
/// is needed everywhere, not only under CI: a missing one fails the test.
pub fn python() -> PathBuf {
    let path = std::env::var_os("CVARCHIVE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python with bagit at {}: run scripts/test (or set CVARCHIVE_PYTHON) to set it up",
        path.display()
    );
    path
}
