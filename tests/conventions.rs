//! Conventions of the ecosystem, checked on the built binary: shell completions and manual
//! pages generated from the parser's own definitions (each parsed by its shell, the man page
//! rendered), `--version` naming the commit, `--ca-cert` on every command that talks to the
//! service, and `inspect`'s sizes in human units beside the exact count, projects by name.
//!
//! The tools they need (bash, zsh, fish, man, groff) are installed in CI by
//! `scripts/ci-shell-deps`: a missing one fails the test under CI and skips only that check
//! elsewhere, saying so (the policy of `support::tools`).

use std::path::Path;
use std::process::{Command, Output};

use clap::CommandFactory;

fn cvarchive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvarchive")).args(args).output().expect("the binary runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = cvarchive(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every subcommand the parser knows, from the same definitions the binary uses.
fn subcommands() -> Vec<String> {
    let names: Vec<String> =
        cvarchive::cli::Cli::command().get_subcommands().map(|c| c.get_name().to_owned()).collect();
    assert!(names.len() >= 9 && names.iter().any(|n| n == "export"), "{names:?}");
    names
}

/// Whether `tool` can be run, under the one skip policy (`support::tools`).
fn have(tool: &str) -> bool {
    crate::support::tools::require_command(tool, "scripts/ci-shell-deps installs it")
}

/// Runs `shell` with `args`, asserting it exits 0.
fn run_ok(shell: &str, args: &[&str]) -> String {
    let out = Command::new(shell).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{shell} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn completions_parse_in_their_shells_and_offer_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell} completion names {name}");
        }
        assert!(script.contains("--ca-cert"), "{shell} completion offers --ca-cert");
    }

    if have("bash") {
        let path = write(dir.path(), "cvarchive.bash", &stdout_of(&["completions", "bash"]));
        run_ok("bash", &["-n", &path]);
        // Complete `cvarchive ex` and `cvarchive export --ca`, as bash does on Tab.
        let complete = |words: &str| {
            let probe = format!(
                "source {path}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _cvarchive cvarchive \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            );
            run_ok("bash", &["-c", &probe])
        };
        let offered = complete("cvarchive ex");
        assert_eq!(offered.lines().collect::<Vec<_>>(), ["export"], "{offered}");
        let offered = complete("cvarchive export --ca");
        assert!(offered.lines().any(|l| l == "--ca-cert"), "{offered}");
    }
    if have("zsh") {
        let path = write(dir.path(), "_cvarchive", &stdout_of(&["completions", "zsh"]));
        run_ok("zsh", &["-n", &path]);
    }
    if have("fish") {
        let path = write(dir.path(), "cvarchive.fish", &stdout_of(&["completions", "fish"]));
        run_ok("fish", &["--no-execute", &path]);
    }
    let refused = cvarchive(&["completions", "tcsh"]);
    assert_eq!(refused.status.code(), Some(2), "an unknown shell is refused");
}

#[test]
fn the_manual_names_every_command_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands();
    let page = stdout_of(&["man"]);
    assert!(page.starts_with(".ie") || page.contains(".TH cvarchive 1"), "{}", &page[..page.len().min(300)]);
    assert!(page.contains(env!("CARGO_PKG_VERSION")), "the page carries the version");
    for name in &names {
        assert!(page.contains(&format!("cvarchive\\-{name}")), "the main page lists {name}");
    }

    let pages = dir.path().join("man1");
    stdout_of(&["man", "--dir", pages.to_str().unwrap()]);
    for name in std::iter::once("cvarchive".to_owned()).chain(names.iter().map(|n| format!("cvarchive-{n}"))) {
        let path = pages.join(format!("{name}.1"));
        assert!(path.is_file(), "{} written", path.display());
    }
    let export = std::fs::read_to_string(pages.join("cvarchive-export.1")).unwrap();
    assert!(export.contains("ca\\-cert"), "the export page documents --ca-cert");

    if have("groff") {
        let main = pages.join("cvarchive.1");
        let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&main).output().unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "groff warns: {}", String::from_utf8_lossy(&out.stderr));
    }
    if have("man") {
        let out = Command::new("man")
            .args(["-l", pages.join("cvarchive-export.1").to_str().unwrap()])
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("--ca-cert") && text.contains("--out"), "rendered: {text}");
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let line = stdout_of(&["--version"]);
    let expected = format!("cvarchive {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected) && line.trim_end().ends_with(')'), "{line}");
    let commit = line.trim_end().trim_end_matches(')').rsplit("(commit ").next().unwrap().to_owned();
    let head = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit.trim_end_matches("-dirty"), head, "{line}"),
        None => assert_eq!(commit, "unknown", "{line}"),
    }
}

#[test]
fn every_command_that_talks_to_the_service_takes_ca_cert() {
    let names = subcommands();
    for name in ["export", "delete", "restore", "projects"] {
        if name == "projects" && !names.iter().any(|n| n == name) {
            continue; // not on this branch yet
        }
        let help = stdout_of(&[name, "--help"]);
        assert!(help.contains("--ca-cert <FILE>") && help.contains("SSL_CERT_FILE"), "{name} --help: {help}");
    }
}

#[test]
fn inspect_gives_sizes_in_binary_units_with_the_exact_count_and_projects_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.zip");
    let archive = archive.to_str().unwrap();
    stdout_of(&["export", "--demo", "--no-progress", "--out", archive]);
    let text = stdout_of(&["inspect", archive]);
    let size = checked_sizes(&text);
    assert!(size >= 1, "a size reads like `66.6 KiB (68,178 bytes)`: {text}");

    let names: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("project "))
        .map(|l| l.split('"').nth(1).expect("a quoted name").to_owned())
        .collect();
    assert!(names.len() >= 3, "{text}");
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted, "projects by name in text");

    let json: serde_json::Value = serde_json::from_str(&stdout_of(&["inspect", "--json", archive])).unwrap();
    let in_json: Vec<String> =
        json["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(in_json, sorted, "projects by name in JSON");
    assert!(json["archiveBytes"].is_u64() || json["archive_bytes"].is_u64(), "JSON keeps exact byte counts: {json}");
}

/// How many sizes in `text` read `N.N XiB (N,NNN bytes)` with the two agreeing.
fn checked_sizes(text: &str) -> usize {
    let mut found = 0;
    for (i, _) in text.match_indices(" bytes)") {
        let open = text[..i].rfind('(').unwrap();
        let exact: u64 = text[open + 1..i].replace(',', "").parse().unwrap();
        let before = text[..open].trim_end();
        let mut words = before.rsplit(' ');
        let (unit, value) = (words.next().unwrap(), words.next().unwrap());
        let power = ["KiB", "MiB", "GiB", "TiB"].iter().position(|u| *u == unit).expect("a binary unit") as i32 + 1;
        let shown: f64 = value.parse().unwrap();
        let actual = exact as f64 / 1024f64.powi(power);
        assert!((shown - actual).abs() <= 0.05 + 1e-9, "{value} {unit} for {exact} bytes");
        found += 1;
    }
    found
}
