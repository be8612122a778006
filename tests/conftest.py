"""Shared fixtures: a throw-away run store, and a real streamlit server driven by chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadtest.classroom import Server

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


class StreamlitServer(Server):
    """The load test's `streamlit run app.py` on 127.0.0.1, answering before a test uses it."""

    def __init__(self, runs: Path, log: Path):
        super().__init__(runs, log)
        self.runs = runs  # the server's run store: tests may put runs there directly
        try:
            self.wait_healthy(120)
        except RuntimeError:
            self.stop()
            raise


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
