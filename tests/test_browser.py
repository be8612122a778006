"""The app in a real browser: Debian chromium driven by Playwright against `streamlit run`.

Screenshots of every page are saved under the test's temporary folder (and, when
METRIC_LAB_SHOTS names a folder, copied there to be looked at).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EXCEPTION = '[data-testid="stException"]'
PAGES = ("embeddings", "energies", "geometry", "compare", "verify", "lessons")


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("METRIC_LAB_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def wait_for_app(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)


def test_home_page_renders(app_server, page, tmp_path):
    page.goto(app_server.url)
    wait_for_app(page)
    page.get_by_role("heading", name="Metric Lab").first.wait_for()
    assert page.title() == "Metric Lab" or "Metric Lab" in page.title()
    page.get_by_text("Synthetic faces").first.wait_for()
    assert page.locator(EXCEPTION).count() == 0
    shoot(page, tmp_path, "home")


def test_train_live_then_every_page(app_server, page, tmp_path):
    page.goto(f"{app_server.url}/train?epochs=40")  # long enough to pause it midway
    wait_for_app(page)
    page.get_by_role("button", name="▶ Run").click()
    progress = page.locator('[data-testid="stProgress"]').first
    progress.wait_for(timeout=120_000)
    # The page polls once a second, so it may skip an epoch: wait for any epoch's progress.
    page.get_by_text(re.compile(r"Epoch \d+/40")).first.wait_for(timeout=120_000)
    page.get_by_role("button", name="⏸ Pause").click()
    page.get_by_text("Paused").first.wait_for(timeout=60_000)
    shoot(page, tmp_path, "train-paused")
    # the miner inspector, beside the live view: the paused run's next batch
    page.get_by_role("tab", name="🔍 Miner inspector").click()
    page.locator(".st-key-train-inspector-plane .js-plotly-plot").first.wait_for(timeout=60_000)
    page.get_by_text("one Step of the optimiser").first.wait_for()
    shoot(page, tmp_path, "train-inspector")
    page.get_by_role("tab", name="📈 Live").click()
    page.get_by_text("Change a setting, then Resume or Step").first.wait_for()  # mid-run change
    page.get_by_role("button", name="▶ Resume").click()
    page.get_by_text("Verification of people never seen in training").wait_for(timeout=180_000)
    assert page.locator(EXCEPTION).count() == 0
    for chart in ("live-loss", "live-map", "live-hist"):
        page.locator(f".st-key-{chart} .js-plotly-plot").first.wait_for()
    shoot(page, tmp_path, "train")
    for name in PAGES:
        page.goto(f"{app_server.url}/{name}")
        wait_for_app(page)
        page.wait_for_timeout(1500)
        assert page.locator(EXCEPTION).count() == 0, f"exception on the {name} page"
        if name == "embeddings":  # faces on the map
            page.locator(".st-key-map_images label").first.click()
            page.locator(".st-key-map .js-plotly-plot image").first.wait_for(timeout=60_000)
        if name == "energies":  # the miner inspector of the saved run
            page.locator(".st-key-energies-inspector-plane .js-plotly-plot").first.wait_for(
                timeout=60_000)
        shoot(page, tmp_path, name)


def test_train_shows_a_health_banner_for_a_margin_beyond_reach(app_server, page, tmp_path):
    """Contrastive m = 4 on the unit sphere, where no L2 energy exceeds 2: the loss is stuck."""
    page.goto(f"{app_server.url}/train?dataset=digits&network=mlp&margin=4&epochs=4"
              "&test_identities=3&val_identities=2&embedding_dim=8")
    wait_for_app(page)
    page.get_by_role("button", name="▶ Run").click()
    page.get_by_text("Loss stuck at the margin").first.wait_for(timeout=180_000)
    page.get_by_text("lower the margin below 2").first.wait_for()
    assert page.locator(EXCEPTION).count() == 0
    shoot(page, tmp_path, "train-health")
