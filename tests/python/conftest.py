"""Fixtures of the conformance suite: a real `cvarchive emulator` process per scope, and the spec.

`$CVARCHIVE_BIN emulator --listen 127.0.0.1:0 ...` prints `endpoint: URL` and `key: KEY` first
on stdout, then serves until SIGTERM. A missing binary or spec is a failure, never a skip: this
suite is how we know the emulator speaks the real API. The Rust tests' skip policy holds here too
(tests/support/tools.rs): under `CI` or `CVARCHIVE_REQUIRE_TOOLS` any skipped test is a failure.
"""

import json
import os
import selectors
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (or `CVARCHIVE_REQUIRE_TOOLS`) a skip is a failure: nothing passes unrun there."""
    outcome = yield
    report = outcome.get_result()
    required = os.environ.get("CI") or os.environ.get("CVARCHIVE_REQUIRE_TOOLS")
    if required and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which is a failure: {report.longrepr}"


@dataclass(frozen=True)
class Emulator:
    """A running emulator: where it listens and the training key it accepts."""

    endpoint: str
    key: str

    def url(self, path, version="v3.3"):
        """The full URL of an API path such as `/projects`."""
        return f"{self.endpoint}/customvision/{version}/training{path}"

    def __iter__(self):
        # So `endpoint, key = emulator` reads like the brief's (endpoint, key) pair.
        return iter((self.endpoint, self.key))


def emulator_bin():
    value = os.environ.get("CVARCHIVE_BIN")
    path = Path(value) if value else REPO / "target" / "debug" / "cvarchive"
    if not path.is_file():
        pytest.fail(f"emulator binary not found at {path}: run `cargo build --bins` or set CVARCHIVE_BIN", pytrace=False)
    return path


def spec_dir():
    value = os.environ.get("CVARCHIVE_SPEC_DIR")
    path = Path(value) if value else REPO.parent / "shared" / "spec"
    if not (path / "Training-v3.3.json").is_file():
        pytest.fail(f"spec not found in {path}: put shared/ beside the repository or set CVARCHIVE_SPEC_DIR", pytrace=False)
    return path


@contextmanager
def run_emulator(*args):
    """Starts `cvarchive emulator --listen 127.0.0.1:0 ARGS`, yields an Emulator, stops it."""
    stderr = tempfile.TemporaryFile()
    cmd = [str(emulator_bin()), "emulator", "--listen", "127.0.0.1:0", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)

    def failure(why):
        proc.kill()
        proc.wait()
        stderr.seek(0)
        tail = stderr.read().decode(errors="replace")[-4000:]
        return f"emulator {' '.join(cmd[1:])}: {why}; stderr:\n{tail}"

    try:
        lines = []
        buffer = b""
        deadline = time.monotonic() + STARTUP_SECONDS
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while len(lines) < 2:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(failure(f"did not print its two lines within {STARTUP_SECONDS}s (got {lines!r})"), pytrace=False)
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    pytest.fail(failure(f"exited with {proc.wait()} before printing its two lines (got {lines!r})"), pytrace=False)
                buffer += chunk
                while b"\n" in buffer and len(lines) < 2:
                    line, buffer = buffer.split(b"\n", 1)
                    lines.append(line.decode().rstrip("\r"))
        if not (lines[0].startswith("endpoint: http://127.0.0.1:") and lines[1].startswith("key: ")):
            pytest.fail(failure(f"first lines are not `endpoint: ...` and `key: ...`: {lines!r}"), pytrace=False)
        # Keep draining stdout so a chatty emulator never blocks on a full pipe.
        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
        yield Emulator(lines[0][len("endpoint: "):].rstrip("/"), lines[1][len("key: "):])
        if proc.poll() is not None:
            pytest.fail(failure(f"died during the test with exit code {proc.returncode}"), pytrace=False)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr.close()


@pytest.fixture(scope="module")
def emulator():
    """The bundled fixture account, shared by the read-only tests of a module."""
    with run_emulator() as em:
        yield em


@pytest.fixture
def fresh_emulator():
    """A fixture account of its own, for a test that deletes things."""
    with run_emulator() as em:
        yield em


@pytest.fixture(scope="session")
def generated_emulator():
    """A generated account of 2 projects of 600 images each, for paging."""
    with run_emulator("--generate", "projects=2,images=600,seed=1") as em:
        yield em


@pytest.fixture(scope="session")
def spec():
    """Training-v3.3.json, parsed."""
    return json.loads((spec_dir() / "Training-v3.3.json").read_text(encoding="utf-8"))
