"""The official Python SDK, both 3.0.0 (Training v3.3) and 3.1.x (v3.4-preview), drives the emulator.

Each case of sdk_cases.py runs in a subprocess: SDK 3.1.x from the venv's site-packages, SDK
3.0.0 from `$CVARCHIVE_SDK30_PATH` (a `pip install --target` directory, first on PYTHONPATH).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

HERE = Path(__file__).resolve().parent
CASES_FILE = HERE / "sdk_cases.py"

READ_CASES = [
    "projects_and_domains",
    "tags",
    "iterations_performance_exports",
    "images_and_counts",
    "downloads_and_artifact",
    "query_predictions",
    "wrong_key",
]
DESTRUCTIVE_CASES = ["deletes"]
GENERATED_CASES = ["paging_generated"]


def sdk30_path():
    value = os.environ.get("CVARCHIVE_SDK30_PATH")
    path = Path(value) if value else REPO / ".venv" / "sdk-3.0.0"
    if not (path / "azure" / "cognitiveservices" / "vision" / "customvision").is_dir():
        pytest.fail(f"SDK 3.0.0 not installed in {path}: run scripts/test (pip install --target)", pytrace=False)
    return path


# (name, API version the SDK must call, PYTHONPATH entry or None for the venv's own SDK)
SDKS = [("3.0.0", "v3.3", sdk30_path), ("3.1.x", "v3.4-preview", None)]


def run_case(case, em, sdk):
    name, api_version, path_of = sdk
    env = dict(os.environ)
    if path_of is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path_of()), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, str(CASES_FILE), case, em.endpoint, em.key, api_version],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"SDK {name} case {case} failed:\n{proc.stdout}\n{proc.stderr}"
    # The runner checked the loaded SDK calls this API version, so the right SDK ran.
    assert f"ok: {case} with SDK" in proc.stdout and f"({api_version})" in proc.stdout, proc.stdout


def test_every_case_is_run():
    defined = set(re.findall(r"^def case_(\w+)\(", CASES_FILE.read_text(encoding="utf-8"), re.M))
    assert defined == set(READ_CASES + DESTRUCTIVE_CASES + GENERATED_CASES)


@pytest.mark.parametrize("sdk", SDKS, ids=lambda s: f"sdk-{s[0]}")
@pytest.mark.parametrize("case", READ_CASES)
def test_read(case, sdk, emulator):
    run_case(case, emulator, sdk)


@pytest.mark.parametrize("sdk", SDKS, ids=lambda s: f"sdk-{s[0]}")
@pytest.mark.parametrize("case", DESTRUCTIVE_CASES)
def test_destructive(case, sdk, fresh_emulator):
    run_case(case, fresh_emulator, sdk)


@pytest.mark.parametrize("sdk", SDKS, ids=lambda s: f"sdk-{s[0]}")
@pytest.mark.parametrize("case", GENERATED_CASES)
def test_generated(case, sdk, generated_emulator):
    run_case(case, generated_emulator, sdk)
