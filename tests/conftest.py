"""Shared fixtures: a throw-away run store, and a real streamlit server driven by chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("METRIC_LAB_CHROMIUM", "/usr/bin/chromium"))
ATT_DIR = Path(os.environ.get("METRIC_LAB_ATT", ROOT.parent / "shared" / "data" / "att_faces"))

# Tests never write into the developer's own data/runs.
os.environ.setdefault("METRIC_LAB_RUNS", str(ROOT / ".pytest_cache" / "runs-unused"))


@pytest.fixture
def run_root(tmp_path, monkeypatch) -> Path:
    """A fresh, empty run store for one test."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("METRIC_LAB_RUNS", str(root))
    return root


@pytest.fixture
def att_dir() -> Path:
    if not (ATT_DIR / "s1").is_dir():
        pytest.skip(f"AT&T faces not found at {ATT_DIR} (set METRIC_LAB_ATT to run this test)")
    return ATT_DIR


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` on 127.0.0.1, stopped by the fixture that started it."""

    def __init__(self, runs: Path, log: Path, extra_env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        env = {**os.environ, "METRIC_LAB_RUNS": str(runs), **(extra_env or {})}
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py",
             "--server.address", "127.0.0.1", "--server.port", str(self.port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"streamlit did not answer in {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}: `make test` installs it when run "
                    "as root (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (make test installs requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """One streamlit server for the browser tests, with its own empty run store."""
    base = tmp_path_factory.mktemp("app")
    runs = base / "runs"
    runs.mkdir()
    server = StreamlitServer(runs, base / "streamlit.log")
    yield server
    server.stop()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
