"""The app in a real browser: Debian chromium driven by Playwright against `streamlit run`.

The paths a teacher walks in front of a class (issue 15): a lesson opened from the Lessons
list shows its result; two runs with the same name both stay on ROC & compare; two sessions'
sweeps draw two curves; the Embeddings animation says which epoch it plays; a run keeps one
colour in every figure of a page. One server for the whole session (conftest `app_server`).

Screenshots of every page are saved under the test's temporary folder (and, when
METRIC_LAB_SHOTS names a folder, copied there to be looked at).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EXCEPTION = '[data-testid="stException"]'
PAGES = ("embeddings", "energies", "geometry", "compare", "verify", "lessons")
SHARED_NAME = "contrastive on synthetic"  # every student's first run was called this
# Plotly figures of the page, as (title, [(trace name, legend group, colour)]).
FIGURES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(el => [
    ((el._fullLayout && el._fullLayout.title && el._fullLayout.title.text) || '')
        .replace(/<[^>]+>/g, ''),
    (el.data || []).map(t => [t.name || '', t.legendgroup || '',
                              (t.line && t.line.color) || (t.marker && t.marker.color) || ''])])"""


def shoot(page, tmp_path: Path, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so the viewport is made as
    tall as that block for the picture (full_page alone caught only the top)."""
    path = tmp_path / f"{name}.png"
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # A page caught mid-rerun shows grey placeholders where its widgets go; if they stay, the
    # picture shows them (a screenshot never fails a test).
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function("""() => !document.querySelector(
            '[data-testid="stSkeleton"], [data-testid="stStatusWidget"], [data-stale="true"]')
            """, timeout=60_000)
    size = page.viewport_size
    tall = page.evaluate("""() => 120 + Math.max(...[...document.querySelectorAll(
        '[data-testid="stMainBlockContainer"], [data-testid="stMain"]')]
        .map(el => el.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], tall)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    target = os.environ.get("METRIC_LAB_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def wait_for_app(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)


PLOT_MS = 180_000  # plotly draws a figure in 40-60 s on the shared 2-core VM under load


def plot(page, key: str):
    """The drawn plotly figure of the element with this key (the first: while a rerun replaces
    an element, Streamlit keeps the stale copy beside the new one for a moment)."""
    locator = page.locator(f".st-key-{key} .js-plotly-plot").first
    locator.wait_for(timeout=PLOT_MS)
    return locator


def button(page, label: str):
    """A button by its own words (a Material icon's ligature text precedes them)."""
    return page.get_by_role("button", name=re.compile(rf"(^|\s){re.escape(label)}$"))


@pytest.fixture(scope="module")
def twin_runs(app_server):
    """Two finished runs in the server's store with the same name (3 epochs each, so the
    Embeddings animation has frames to play)."""
    from lab.core.config import RunConfig
    from lab.learn.runs import RunStore
    from lab.learn.training_run import train_run

    store = RunStore(app_server.runs)
    runs = []
    for seed in (0, 1):
        config = RunConfig(network="mlp", image_size=16, epochs=3, seed=seed, num_identities=30)
        run, _ = train_run(config, store=store, name=SHARED_NAME)
        runs.append(run.id)
    return runs


def test_home_page_renders(app_server, page, tmp_path):
    page.goto(app_server.url)
    wait_for_app(page)
    page.get_by_role("heading", name="Metric Lab").first.wait_for()
    assert page.title() == "Metric Lab" or "Metric Lab" in page.title()
    page.get_by_text("Synthetic faces").first.wait_for()
    assert page.locator(EXCEPTION).count() == 0
    shoot(page, tmp_path, "home")


def test_train_live_then_every_page(app_server, page, tmp_path):
    page.goto(f"{app_server.url}/train?epochs=20")  # long enough to pause it midway
    wait_for_app(page)
    button(page, "Run").click()
    progress = page.locator('[data-testid="stProgress"]').first
    progress.wait_for(timeout=120_000)
    # The page polls once a second, so it may skip an epoch: wait for any epoch's progress.
    page.get_by_text(re.compile(r"Epoch \d+/20")).first.wait_for(timeout=120_000)
    # The cards say whose numbers they are: training batches, or people never seen.
    page.get_by_text("Training loss").first.wait_for()
    page.get_by_text("Unseen genuine E").first.wait_for()
    button(page, "Pause").click()
    page.get_by_text("Paused").first.wait_for(timeout=60_000)
    shoot(page, tmp_path, "train-paused")
    # the miner inspector, beside the live view: the paused run's next batch
    page.get_by_role("tab", name="Miner inspector").click()
    page.locator(".st-key-train-inspector-plane .js-plotly-plot").first.wait_for(timeout=PLOT_MS)
    page.get_by_text("one Step of the optimiser").first.wait_for()
    shoot(page, tmp_path, "train-inspector")
    page.get_by_role("tab", name="Live").click()
    # mid-run change: one step up the margin, applied when the run goes on
    page.get_by_text("Change a setting, then Resume or Step").first.click()
    margin = page.get_by_role("slider", name="Margin from the next epoch")
    margin.focus()
    margin.press("ArrowRight")
    button(page, "Apply when the run goes on").click()
    page.get_by_text(re.compile(r"From the next epoch: margin = ")).first.wait_for()
    shoot(page, tmp_path, "train-change")
    button(page, "Resume").click()
    page.get_by_text("Verification of people never seen in training").wait_for(timeout=300_000)
    assert page.locator(EXCEPTION).count() == 0
    for chart in ("live-loss", "live-map", "live-hist"):
        plot(page, chart)
    # the change is marked on the loss curve
    labels = page.evaluate("""() => [...document.querySelectorAll(
        '.st-key-live-loss .js-plotly-plot')].flatMap(el =>
        (el._fullLayout.annotations || []).map(a => a.text))""")
    assert any(text.startswith("margin → ") for text in labels), labels
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
    button(page, "Run").click()
    page.get_by_text("Loss stuck at the margin").first.wait_for(timeout=180_000)
    page.get_by_text("lower the margin below 2").first.wait_for()
    assert page.locator(EXCEPTION).count() == 0
    shoot(page, tmp_path, "train-health")


def test_a_lesson_opened_from_the_list_shows_its_result(app_server, page, tmp_path):
    page.goto(f"{app_server.url}/lessons")
    wait_for_app(page)
    # The first lesson ("Why a margin?", two variants of 6 epochs).
    page.locator(".st-key-open-margin button").click()
    page.wait_for_url(re.compile(r"[?&]lesson=margin"))
    button(page, "Run this lesson").click()
    page.get_by_text("What the app measured").wait_for(timeout=240_000)
    assert "lesson=margin" in page.url
    plot(page, "eer-margin")
    plot(page, "roc-margin")
    assert page.locator(EXCEPTION).count() == 0
    shoot(page, tmp_path, "lesson-margin")
    # One colour per variant: the ROC's curve and the EER plot's point of a variant match.
    figures = dict(page.evaluate(FIGURES_JS))
    roc = next(traces for title, traces in figures.items() if title.startswith("ROC"))
    eer = next(traces for title, traces in figures.items() if title.startswith("EER"))
    roc_colors = {group: color for _, group, color in roc if group and group != "chance"}
    # the variants' dots (the grey spread over seeds beside them has its own names)
    eer_colors = {name: color for name, _, color in eer if name in roc_colors}
    assert any("seeds" in name for name, _, _ in eer)
    assert set(roc_colors) == set(eer_colors) and len(set(eer_colors.values())) == 2
    assert roc_colors == eer_colors


def test_two_runs_with_one_name_both_stay_on_compare(app_server, page, tmp_path, twin_runs):
    page.goto(f"{app_server.url}/compare")
    wait_for_app(page)
    plot(page, "roc")

    def curves() -> set[str]:
        figures = page.evaluate(FIGURES_JS)
        traces = next(t for title, t in figures if title.startswith("ROC"))
        return {group for name, group, _ in traces if name != "chance"}

    assert set(twin_runs) <= curves()
    shoot(page, tmp_path, "compare-twins-both")
    # Remove the first tag: the other run of the same name stays, on the curve and the table.
    # Streamlit 1.67's multiselect: each tag is [data-tag] with a "Remove <label>" button.
    tags = page.locator('.st-key-compare_runs [data-tag]')
    before = tags.count()
    assert before >= 2, before
    tags.first.locator('[aria-label^="Remove "]').click()
    wait_for_app(page)
    page.wait_for_function(
        "() => document.querySelectorAll('.st-key-compare_runs [data-tag]')"
        f".length === {before - 1}")
    wait_for_app(page)
    assert len(curves()) == before - 1
    labels = tags.all_inner_texts()
    assert len(set(labels)) == len(labels), labels
    shoot(page, tmp_path, "compare-twins")


def test_sweeps_of_two_sessions_draw_two_curves(app_server, browser, tmp_path):
    pages = []
    for epochs, margins in ((1, "0.5, 1"), (2, "0.5, 1.5")):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{app_server.url}/train?network=mlp&image_size=16&num_identities=30")
        wait_for_app(page)
        page.goto(f"{app_server.url}/compare")
        wait_for_app(page)
        page.get_by_role("tab", name="Sweep the margin").click()
        margins_box = page.get_by_role("textbox", name="Margins")
        margins_box.fill(margins)
        margins_box.press("Enter")
        wait_for_app(page)
        slider = page.get_by_role("slider", name="Epochs per run")
        slider.focus()
        for _ in range(8 - epochs):
            slider.press("ArrowLeft")
        wait_for_app(page)
        pages.append(page)
    for page in pages:
        button(page, "Train 2 runs").click()
    try:
        for page, margins in zip(pages, ([0.5, 1.0], [0.5, 1.5]), strict=True):
            page.get_by_text("2 of 2 runs trained").wait_for(timeout=240_000)
            wait_for_app(page)
            # Finished: Stop has gone and a new sweep can start.
            button(page, "Stop the sweep").wait_for(state="detached", timeout=30_000)
            assert button(page, "Train 2 runs").is_enabled()
            points = page.evaluate("""() => [...document.querySelectorAll(
                '.st-key-sweep_plot .js-plotly-plot')].flatMap(el => el.data.map(t => t.x))""")
            assert points == [margins], points  # one curve, this session's margins only
        shoot(pages[0], tmp_path, "sweep-first-session")
        shoot(pages[1], tmp_path, "sweep-second-session")
    finally:
        for page in pages:
            page.context.close()


def test_the_embeddings_animation_names_the_epoch_it_plays(app_server, page, tmp_path,
                                                           twin_runs):
    page.goto(f"{app_server.url}/embeddings?run={twin_runs[0]}")
    wait_for_app(page)
    page.get_by_role("tab", name=re.compile("Play")).click()
    animation = plot(page, "animation")
    title = animation.locator(".gtitle")
    first = title.text_content()
    animation.locator(".updatemenu-button").first.click()  # Plotly's own Play button
    page.wait_for_function(
        """() => /epoch 3$/.test(document.querySelector(
            '.st-key-animation .js-plotly-plot .gtitle').textContent)""", timeout=30_000)
    assert first.endswith("epoch 0") and title.text_content().endswith("epoch 3")
    shoot(page, tmp_path, "embeddings-played")
