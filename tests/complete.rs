//! Issue 15, items 1, 6 and 8: commands say what they did not do. `verify` reports an intact but
//! incomplete archive with its own exit code and names what is missing; `--fast` says what it
//! did not check; every exit code is in each command's `--help` and README's table; an
//! incomplete export prints the command that fetches the rest (Ctrl-C's 130: `resume::`); restore lists
//! what it did not recreate; delete says when the backup is of another endpoint; `convert
//! --force` replaces only its own earlier output; tag-folder output names projects by name and id.

use std::path::{Path, PathBuf};

use cvarchive::emulator::{self, AccountSpec, Emulator, EmulatorOptions, FaultConfig, Hostile};
use cvarchive::export::{export, ExportOptions};
use cvarchive::progress::NoProgress;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::delete::{backup_of, delete_cli};
use crate::support::fixtures::{fixture_archive, CLASSIFICATION};
use crate::support::*;

async fn emulator_faulty(spec: &str, faults: FaultConfig) -> Emulator {
    let opts = EmulatorOptions { account: AccountSpec::Generated(spec.parse().unwrap()), faults, ..Default::default() };
    emulator::start("127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

/// An archive whose export could not archive its 3 images (every blob is endless, and the
/// export takes at most 1 MiB an image): intact, but incomplete.
async fn incomplete_archive(dir: &Path) -> (PathBuf, Vec<String>) {
    let faults = FaultConfig { hostile: Some(Hostile::EndlessBlob), ..FaultConfig::default() };
    let emu = emulator_faulty("projects=1,images=3,seed=1", faults).await;
    let out = dir.join("incomplete.zip");
    let opts = ExportOptions { predictions: false, max_image_bytes: 1 << 20, ..ExportOptions::new(&out) };
    let summary = export(&client_for(&emu), &opts, &NoProgress, &CancellationToken::new()).await.unwrap();
    assert!(!summary.complete);
    (out, summary.missing.iter().map(|m| m.id.to_string()).collect())
}

/// The command's result: the last line of its `--json` output.
fn stdout_json(o: &std::process::Output) -> Value {
    crate::support::last_json_line(&o.stdout)
}

#[tokio::test]
async fn verify_calls_an_intact_archive_with_missing_items_incomplete_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, missing) = incomplete_archive(dir.path()).await;
    assert_eq!(missing.len(), 3);
    let path = archive.to_str().unwrap();

    let o = cvarchive(&["verify", path], &[]).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("intact, but INCOMPLETE") && out.contains("missing (3)"), "{out}");
    for id in &missing {
        assert!(out.contains(&format!("image {id}")), "names {id}: {out}");
    }
    assert!(!out.contains("not checked"), "the full check checks everything: {out}");

    let o = cvarchive(&["verify", path, "--json"], &[]).await;
    assert_eq!(o.status.code(), Some(3));
    let report = stdout_json(&o);
    assert_eq!(report["complete"], false);
    assert_eq!(report["missingTotal"], 3);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "intact");
    let items = report["missing"].as_array().unwrap();
    assert!(items.iter().all(|m| m["kind"] == "image" && m["reason"].as_str().unwrap().contains("larger than")));
    assert!(report.get("notChecked").is_none());

    let o = cvarchive(&["verify", path, "--fast"], &[]).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("not checked (--fast): payload SHA-256") && out.contains("INCOMPLETE"), "{out}");
    let o = cvarchive(&["verify", path, "--fast", "--json"], &[]).await;
    let report = stdout_json(&o);
    let skipped: Vec<&str> = report["notChecked"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(skipped, ["payloadSha256", "entryCrc32", "metadataJson", "pageDataScripts", "listings"]);
}

/// A complete archive exits 0 and says it is complete in JSON; one whose `account.json` records
/// more missing items than a report keeps names the first 1000 and counts the rest.
#[tokio::test]
async fn missing_items_are_capped_like_findings() {
    let dir = tempfile::tempdir().unwrap();
    let good = crate::support::fixtures::write_good_bag(dir.path(), "good");
    let o = cvarchive(&["verify", good.to_str().unwrap(), "--json"], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let report = stdout_json(&o);
    assert_eq!((report["complete"].clone(), report["missingTotal"].clone()), (Value::Bool(true), 0.into()));

    let many = dir.path().join("many.zip");
    crate::support::bags::rebag(&good, &many, |payload| {
        let at = payload.iter().position(|(n, _)| n == "account.json").unwrap();
        let mut account: Value = serde_json::from_slice(&payload[at].1).unwrap();
        let item = |n: u128| {
            serde_json::json!({"kind": "image", "project": crate::support::fixtures::PROJECT,
                "id": uuid::Uuid::from_u128(n), "reason": "HTTP 500"})
        };
        account["complete"] = false.into();
        account["missing"] = (0..2).map(item).collect();
        account["projects"][0]["missing"] = (2..1500).map(item).collect();
        payload[at].1 = serde_json::to_vec(&account).unwrap();
    });
    let o = cvarchive(&["verify", many.to_str().unwrap(), "--json"], &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stdout));
    let report = stdout_json(&o);
    assert_eq!(report["missingTotal"], 1500);
    assert_eq!(report["missing"].as_array().unwrap().len(), 1000);
    let o = cvarchive(&["verify", many.to_str().unwrap()], &[]).await;
    assert!(text(&o.stdout).contains("  and 500 more"), "{}", text(&o.stdout));
}

/// An export that misses items exits 3 and prints the command that fetches them: a new export
/// with this archive as its base, no secret in it. Run as printed, it completes the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_export_exits_3_and_says_how_to_fetch_the_rest() {
    // Stored predictions never finish listing: every page is empty with a new continuation.
    let faults = FaultConfig { short_prediction_pages: Some(0), ..FaultConfig::default() };
    let emu = emulator_faulty("projects=1,images=3,seed=2", faults).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nightly.zip");
    let env = [("VISION_TRAINING_KEY", emu.key())];
    let endpoint = emu.endpoint();
    let args = ["export", "--endpoint", &endpoint, "--out", out.to_str().unwrap(), "--api-rate", "1000"];
    let o = cvarchive(&[&args[..], &["--no-progress"]].concat(), &env).await;
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{}", text(&o.stderr));
    assert!(!stdout.contains(emu.key()) && !text(&o.stderr).contains(emu.key()));
    let rest = dir.path().join("nightly.rest.zip");
    let expected = format!("cvarchive export --endpoint {endpoint} --out {} --base {}", rest.display(), out.display());
    assert!(stdout.contains("to fetch what is missing") && stdout.contains(&expected), "{stdout}");

    let json_out = dir.path().join("json.zip");
    let o = cvarchive(
        &["export", "--endpoint", &endpoint, "--out", json_out.to_str().unwrap(), "--api-rate", "1000", "--json"],
        &env,
    )
    .await;
    assert_eq!(o.status.code(), Some(3));
    let summary: Value = serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
    assert!(summary["rerun"].as_str().unwrap().contains(&format!("--base {}", json_out.display())), "{summary}");

    // The service recovers; the printed command, run as is, fetches the rest.
    emu.set_faults(FaultConfig::default());
    let words: Vec<&str> = expected.split(' ').skip(1).collect();
    let o = cvarchive(&[&words[..], &["--api-rate", "1000", "--no-progress"]].concat(), &env).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(json(&payload(&rest), "account.json")["complete"], true);
    assert!(text(&o.stdout).contains("copied from the base archive"), "{}", text(&o.stdout));
}

/// Every command's `--help` lists its exit codes, and every code listed is in README's table.
#[tokio::test]
async fn every_exit_code_is_in_help_and_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: Vec<&str> =
        readme.split("## Exit codes").nth(1).unwrap().lines().filter(|l| l.starts_with("| ")).collect();
    let in_table = |code: &str| table.iter().any(|row| row.starts_with(&format!("| {code} |")));
    for command in ["export", "verify", "delete", "inspect", "convert", "restore", "emulator"] {
        let o = cvarchive(&[command, "--help"], &[]).await;
        let help = text(&o.stdout);
        let (_, codes) = help.split_once("Exit codes:").unwrap_or_else(|| panic!("{command} --help: {help}"));
        let listed: Vec<&str> =
            codes.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u8>().is_ok()).collect();
        assert!(listed.contains(&"0") && listed.contains(&"2"), "{command}: {listed:?}");
        for code in listed {
            assert!(in_table(code), "{command} exits {code}, which README's table lacks");
        }
    }
    for code in ["0", "1", "2", "3", "130"] {
        assert!(in_table(code), "README lists {code}");
    }
}

/// Restore lists, per project, what the archive holds that it did not recreate, with the counts
/// `account.json` gives, in the report and on the terminal.
#[tokio::test]
async fn restore_lists_what_it_did_not_recreate() {
    let (dir, archive) = fixture_archive().await;
    let account = json(&payload(&archive), "account.json");
    let target = emulator_with(AccountSpec::Empty).await;
    let endpoint = target.endpoint();
    let args = ["restore", archive.to_str().unwrap(), "--endpoint", &endpoint, "--no-progress"];
    let o = cvarchive(&args, &[("VISION_TRAINING_KEY", target.key())]).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("demo.restore.json")).unwrap()).unwrap();
    let mut listed = 0;
    for p in account["projects"].as_array().unwrap() {
        let restored = report["projects"].as_array().unwrap().iter().find(|r| r["oldId"] == p["id"]).unwrap();
        let not = restored["notRecreated"].as_array().unwrap();
        let count = |what: &str| not.iter().find(|n| n["what"] == what).map_or(0, |n| n["count"].as_u64().unwrap());
        let archived = &p["archived"];
        assert_eq!(count("iterations"), archived["iterations"].as_u64().unwrap(), "{restored:#}");
        assert_eq!(count("storedPredictions"), archived["predictions"].as_u64().unwrap());
        assert_eq!(count("modelExports"), archived["modelExports"].as_u64().unwrap());
        assert_eq!(count("iterationImages"), archived["onlyInIterations"].as_u64().unwrap());
        listed += not.len();
    }
    assert!(listed > 0, "the fixture has iterations and stored predictions");
    assert!(out.contains("not recreated:") && out.contains("iterations: trained iterations"), "{out}");
}

/// A backup of another endpoint, let through by `--backup-from-other-endpoint`, is named as such
/// in the plan (human and JSON) and in the receipt.
#[tokio::test]
async fn delete_says_when_the_backup_is_of_another_endpoint() {
    let source = fixture_emulator().await;
    let target = fixture_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_of(&source, dir.path()).await;
    let source_host = client_for(&source).host().to_owned();
    let args = ["--backup", backup.to_str().unwrap(), "--project", CLASSIFICATION, "--backup-from-other-endpoint"];

    let o = delete_cli(&target, &args).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains(&format!("the backup is of ANOTHER ENDPOINT ({source_host})")), "{out}");
    let o = delete_cli(&target, &[&args[..], &["--json"]].concat()).await;
    assert_eq!(stdout_json(&o)["backupFromOtherEndpoint"], source_host.as_str());
    // The same endpoint's backup says nothing of the kind.
    std::fs::create_dir(dir.path().join("own")).unwrap();
    let own = backup_of(&target, &dir.path().join("own")).await;
    let o = delete_cli(&target, &["--backup", own.to_str().unwrap(), "--project", CLASSIFICATION, "--json"]).await;
    assert!(stdout_json(&o).get("backupFromOtherEndpoint").is_none());

    let receipt = dir.path().join("receipt.json");
    let o = delete_cli(&target, &[&args[..], &["--yes", "--receipt", receipt.to_str().unwrap()]].concat()).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("ANOTHER ENDPOINT"), "{out}");
    let r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(r["backup"]["otherEndpoint"], source_host.as_str(), "{r:#}");
}

/// Tag folders are named `<name>-<id>`; `--force` replaces an earlier output of convert whole
/// (nothing of it is left), and never a folder convert did not write.
#[tokio::test]
async fn convert_force_replaces_only_its_own_output_and_folders_carry_names() {
    let (dir, archive) = fixture_archive().await;
    let out = dir.path().join("folders");
    let run = |force: bool| {
        let mut args = vec!["convert", archive.to_str().unwrap(), "--to", "folders", "--out", out.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        async move { cvarchive(&args, &[]).await }
    };
    let o = run(false).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let project = out.join(format!("Fixture classification-{CLASSIFICATION}"));
    assert!(project.join("labels.csv").is_file(), "{}", text(&o.stdout));

    let o = run(false).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("pass --force to replace it"), "{}", text(&o.stderr));

    std::fs::write(project.join("stray.txt"), b"from the earlier run").unwrap();
    let o = run(true).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("replaced the earlier output"), "{}", text(&o.stdout));
    assert!(!project.join("stray.txt").exists() && project.join("labels.csv").is_file());
    let hidden: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(hidden, Vec::<String>::new(), "nothing left aside");

    // A folder of the user's at that name (no marker) is not replaced.
    std::fs::remove_file(project.join(".cvarchive-convert.json")).unwrap();
    std::fs::write(project.join("mine.txt"), b"precious").unwrap();
    let o = run(true).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("is not a folder cvarchive convert wrote"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(project.join("mine.txt")).unwrap(), b"precious");
}
