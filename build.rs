//! Build script: records the git commit the binary is built from, for `--version`
//! (`CVARCHIVE_COMMIT`: the short hash, `-dirty` when tracked files differ from it, or "unknown"
//! outside a git checkout, e.g. a build from a source package).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=10", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash}-dirty")
            } else {
                hash
            }
        }
        _ => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=CVARCHIVE_COMMIT={commit}");

    // Run again when HEAD moves (a checkout, or a commit on the branch) or the sources change.
    // Only paths that exist: cargo reruns a script on every build while one it watches is absent.
    let mut watched = vec![PathBuf::from("build.rs"), PathBuf::from("src"), PathBuf::from("Cargo.toml")];
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        watched.push(dir.join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from) {
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(common.join(head_ref));
        }
        watched.push(common.join("packed-refs"));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
