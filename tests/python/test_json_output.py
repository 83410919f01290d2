"""Every line of every command's `--json` output validates against schema/cvarchive-output.schema.json.

Each command runs as a real process against a real `cvarchive emulator` (conftest.run_emulator):
export (clean, and through injected 503s so that `retry` events and the `retries` object appear),
verify (intact and damaged), inspect, convert (both formats), delete (plan, refusal, receipt) and
restore. Failures of every kind (a bad argument, no key, a refused key, an unreachable endpoint, an
unreadable archive, a refused deletion, an existing output) must end stdout with an `error` line
whose `exitCode` is the process's. The schema is strict (no field or type it does not name), so a
new event variant or field that is not added to it fails here.
"""

import json
import os
import signal
import subprocess
import zipfile
from collections import Counter

import jsonschema
import pytest

from conftest import REPO, emulator_bin, run_emulator

SCHEMA_PATH = REPO / "schema" / "cvarchive-output.schema.json"
CLASSIFICATION = "e532f7f9-9827-476d-9159-4b592bf2ea6f"
DETECTION = "dc77de6a-c75e-4bb4-be00-87e8d4320d4d"
RUN_SECONDS = 120


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def run(validator, *args, emulator=None, env=None):
    """Runs cvarchive ARGS; every stdout line must be a JSON object valid against the schema.

    Returns (exit code, parsed lines, stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VISION_TRAINING_")}
    if emulator is not None:
        environ["VISION_TRAINING_ENDPOINT"], environ["VISION_TRAINING_KEY"] = emulator
    environ.update(env or {})
    proc = subprocess.run(
        [str(emulator_bin()), *args], capture_output=True, env=environ, timeout=RUN_SECONDS, stdin=subprocess.DEVNULL
    )
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    assert stdout.endswith("\n"), f"{args}: no --json output (exit {proc.returncode}); stderr:\n{stderr}"
    lines = []
    for raw in stdout.splitlines():
        line = json.loads(raw)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(line)]
        assert not errors, f"{args}: a line does not validate: {errors}\n{raw[:2000]}"
        lines.append(line)
    return proc.returncode, lines, stderr


def types(lines):
    return [line["type"] for line in lines]


def test_every_command_writes_valid_lines_ending_with_its_result(validator, tmp_path):
    with run_emulator() as emu:
        code, lines, err = run(validator, "projects", "--json", emulator=emu)
        assert (code, types(lines)) == (0, ["projectList"]), err
        assert len(lines[0]["projects"]) == 4 and lines[0]["totals"]["projects"] == 4
        archive = str(tmp_path / "a.zip")
        code, lines, err = run(validator, "export", "--out", archive, "--dry-run", "--json", emulator=emu)
        assert (code, types(lines)[-1], lines[-1]["dryRun"]) == (0, "exportPlan", True), err
        assert not os.path.exists(archive)
        code, lines, err = run(validator, "export", "--out", archive, "--json", emulator=emu)
        assert code == 0, err
        assert "started" in types(lines) and types(lines)[-1] == "exportSummary", types(lines)
        assert {"phase", "projectStarted", "imagesFound", "transferred", "projectFinished"} <= set(types(lines))
        per_project = [line for line in lines if line["type"] in ("imagesFound", "transferred")]
        assert all(line["projectId"] for line in per_project)
        assert {"projectStarted", "imagesFound", "transferred", "projectFinished"} <= set(types(lines))
        assert lines[-1]["complete"] is True and lines[-1]["retries"] == {}
        assert all(line["schema"] == "cvarchive/1" for line in lines)

        code, lines, err = run(validator, "verify", archive, "--json")
        assert (code, types(lines), lines[-1]["findings"]) == (0, ["verifyReport"], []), err
        code, lines, err = run(validator, "verify", "--fast", archive, "--json")
        assert (code, lines[-1]["mode"]) == (0, "fast"), err
        code, lines, err = run(validator, "inspect", archive, "--json")
        assert (code, types(lines)) == (0, ["inspectSummary"]), err
        assert lines[0]["complete"] is True and len(lines[0]["projects"]) == 4
        for to in ("coco", "folders"):
            code, lines, err = run(validator, "convert", archive, "--to", to, "--out", str(tmp_path / to), "--json")
            assert (code, types(lines)[-1], lines[-1]["to"]) == (0, "convertReport", to), err

        code, lines, err = run(validator, "delete", "--backup", archive, "--project", DETECTION, "--json", emulator=emu)
        assert (code, types(lines)[-1], lines[-1]["dryRun"]) == (0, "deletePlan", True), err
        assert "backupVerified" in types(lines) and "projectStarted" in types(lines)
        receipt = str(tmp_path / "receipt.json")
        args = ["delete", "--backup", archive, "--project", DETECTION, "--yes", "--receipt", receipt, "--json"]
        code, lines, err = run(validator, *args, emulator=emu)
        assert (code, types(lines)[-1], lines[-1]["outcome"]) == (0, "deleteReceipt", "complete"), err
        assert "deleted" in types(lines)

        code, lines, err = run(validator, "restore", archive, "--project", DETECTION, "--dry-run", "--json")
        assert (code, types(lines), lines[-1]["dryRun"]) == (0, ["restorePlan"], True), err
        code, lines, err = run(validator, "restore", archive, "--project", DETECTION, "--json", emulator=emu)
        assert (code, types(lines)[-1], lines[-1]["complete"]) == (0, "restoreReport", True), err
        assert "projectStarted" in types(lines)


def test_retries_are_spelt_the_same_in_events_and_in_the_summary(validator, tmp_path):
    with run_emulator("--error-rate", "0.15", "--fault-seed", "7") as emu:
        archive = str(tmp_path / "r.zip")
        args = ["export", "--out", archive, "--project", CLASSIFICATION, "--json"]
        code, lines, err = run(validator, *args, emulator=emu)
    assert code == 0, err
    events = [line for line in lines if line["type"] == "retry"]
    assert events, "503s were injected: some requests were retried"
    summary = lines[-1]
    assert summary["type"] == "exportSummary"
    assert summary["retries"] == dict(Counter(e["kind"] for e in events)), (summary["retries"], len(events))
    assert summary["retries"].get("serverError", 0) > 0


def test_link_refreshes_are_events_counted_in_the_summary(validator, tmp_path):
    # Links live 1 s and every API answer takes 1.1 s: listed links expire before their download.
    with run_emulator("--sas-ttl", "1", "--api-latency-ms", "1100") as emu:
        archive = str(tmp_path / "l.zip")
        code, lines, err = run(validator, "export", "--out", archive, "--project", DETECTION, "--json", emulator=emu)
    assert code == 0, err
    refreshed = [line for line in lines if line["type"] == "linkRefreshed"]
    assert refreshed, types(lines)
    assert lines[-1]["retries"] == {"expiredLink": len(refreshed)}, lines[-1]


def test_a_damaged_archive_reports_findings_in_the_schema(validator, tmp_path):
    with run_emulator() as emu:
        good = tmp_path / "good.zip"
        code, _, err = run(validator, "export", "--out", str(good), "--json", emulator=emu)
        assert code == 0, err
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(damaged, "w") as dst:
        dropped = next(i.filename for i in src.infolist() if "/images/" in i.filename and not i.is_dir())
        for info in src.infolist():
            if info.filename != dropped:
                dst.writestr(info, src.read(info.filename))
    code, lines, err = run(validator, "verify", str(damaged), "--json")
    assert (code, types(lines)) == (1, ["verifyReport"]), err
    assert "missingPayloadFile" in {f["kind"] for f in lines[0]["findings"]}


FAILURES = [
    # (name, args, env, expected kind); {emu}, {tmp} and {archive} are filled in.
    ("an unknown flag", ["export", "--out", "{tmp}/x.zip", "--bogus", "--json"], {}, "usage"),
    ("no key", ["export", "--out", "{tmp}/x.zip", "--endpoint", "{emu}", "--json"], {"VISION_TRAINING_KEY": ""}, "usage"),
    ("a refused key", ["export", "--out", "{tmp}/x.zip", "--endpoint", "{emu}", "--json"], {"VISION_TRAINING_KEY": "wrong"}, "auth"),
    ("no server", ["export", "--out", "{tmp}/x.zip", "--endpoint", "http://127.0.0.1:9", "--json"], {"VISION_TRAINING_KEY": "k"}, "network"),
    ("an existing output", ["export", "--out", "{archive}", "--endpoint", "{emu}", "--json"], {"VISION_TRAINING_KEY": "{key}"}, "refused"),
    ("verify of noise", ["verify", "{tmp}/noise.zip", "--json"], {}, "archive"),
    ("inspect of nothing", ["inspect", "{tmp}/absent.zip", "--json"], {}, "archive"),
    ("convert of noise", ["convert", "{tmp}/noise.zip", "--to", "coco", "--out", "{tmp}/c", "--json"], {}, "archive"),
    ("delete without a backup", ["delete", "--project", CLASSIFICATION, "--endpoint", "{emu}", "--json"], {"VISION_TRAINING_KEY": "{key}"}, "refused"),
    ("restore with a refused key", ["restore", "{archive}", "--endpoint", "{emu}", "--json"], {"VISION_TRAINING_KEY": "wrong"}, "auth"),
]


def test_every_failure_ends_with_an_error_line(validator, tmp_path):
    (tmp_path / "noise.zip").write_bytes(b"\x42" * 5000)
    with run_emulator() as emu:
        archive = tmp_path / "a.zip"
        code, _, err = run(validator, "export", "--out", str(archive), "--json", emulator=emu)
        assert code == 0, err
        fill = {"{emu}": emu.endpoint, "{key}": emu.key, "{tmp}": str(tmp_path), "{archive}": str(archive)}

        def filled(text):
            for k, v in fill.items():
                text = text.replace(k, v)
            return text

        for name, args, env, kind in FAILURES:
            code, lines, err = run(validator, *map(filled, args), env={k: filled(v) for k, v in env.items()})
            assert code != 0, name
            last = lines[-1]
            assert last["type"] == "error", f"{name}: {types(lines)}"
            assert (last["exitCode"], last["kind"]) == (code, kind), f"{name}: {last}"
            assert last["message"] and last["message"].splitlines()[0] in err, f"{name}: {last}\n{err}"
            assert types(lines).count("error") == 1, name


def test_an_interrupted_export_ends_with_an_error_line(validator, tmp_path):
    with run_emulator("--api-latency-ms", "300") as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_TRAINING_")}
        env["VISION_TRAINING_ENDPOINT"], env["VISION_TRAINING_KEY"] = emu
        args = [str(emulator_bin()), "export", "--out", str(tmp_path / "i.zip"), "--json"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
        first = proc.stdout.readline()
        assert first, proc.stderr.read().decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=RUN_SECONDS)
    lines = [json.loads(raw) for raw in (first + rest).decode().splitlines()]
    for line in lines:
        assert validator.is_valid(line), line
    last = lines[-1]
    assert (last["type"], last["kind"], last["exitCode"]) == ("error", "interrupted", proc.returncode), (last, err)
    assert proc.returncode != 0


def test_a_refusal_names_what_the_backup_lacks(validator, tmp_path):
    with run_emulator() as emu:
        archive = tmp_path / "a.zip"
        code, _, err = run(validator, "export", "--out", str(archive), "--project", DETECTION, "--json", emulator=emu)
        assert code == 0, err
        code, lines, err = run(validator, "delete", "--backup", str(archive), "--all-projects", "--json", emulator=emu)
    assert (code, lines[-1]["type"], lines[-1]["kind"]) == (2, "error", "refused"), err
    assert {item["project"] for item in lines[-1]["lacking"]} >= {CLASSIFICATION}


def test_the_schema_is_strict(validator):
    line = {"schema": "cvarchive/1", "time": "2026-12-04T20:55:00.123Z", "type": "started", "projects": 1}
    assert validator.is_valid(line)
    bad = [
        {**line, "extra": 1},
        {**line, "type": "somethingNew"},
        {k: v for k, v in line.items() if k != "time"},
        {**line, "time": "2026-12-04 20:55:00"},
        {**line, "schema": "cvarchive/2"},
        {"schema": "cvarchive/1", "time": line["time"], "type": "retry", "kind": "throttled (429)", "waitMs": 1},
        {"schema": "cvarchive/1", "time": line["time"], "type": "projectStarted", "project_id": CLASSIFICATION, "name": "x"},
    ]
    for b in bad:
        assert not validator.is_valid(b), b
