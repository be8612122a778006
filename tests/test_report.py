"""Reports: one self-contained HTML file per run, comparison, lesson or leaderboard, that opens
offline (plotly.js inside), escapes every user string and stays a few MB."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from lab.cli import build_parser, config_from_args
from lab.core.config import RunConfig
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run
from lab.views import report as rep

SMALL = RunConfig(num_identities=12, images_per_identity=4, image_size=16, val_identities=3,
                  test_identities=4, network="mlp", embedding_dim=8, epochs=2, seed=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    first, _ = train_run(SMALL, store, name="<script>alert(1)</script> & co")
    second, _ = train_run(SMALL.replace(loss="triplet", margin=0.2, miner="semihard"), store,
                          name="triplet run")
    return store.load(first.id), store.load(second.id)


def test_reproduce_command_parses_back_to_the_same_config():
    config = SMALL.replace(loss="triplet", margin=0.3, normalize=False, split_seed=7,
                           chopra_q=None, extra={"width": 16, "lr_schedule": "cosine"})
    words = shlex.split(rep.reproduce_command(config, name="my 'run'"))
    assert words[:4] == ["python", "-m", "lab", "train"]
    args = build_parser("train").parse_args(words[3:])
    assert config_from_args(args) == config
    assert args.name == "my 'run'"


def test_user_strings_are_escaped_and_script_data_cannot_close_its_tag():
    report = rep.Report('<img src=x onerror="alert(1)">', "a & b")
    report.table([{"name": "</script><script>alert(2)</script>"}])
    import plotly.graph_objects as go

    report.figure(go.Figure(go.Scatter(x=[1], y=[2], name="</script><b>x</b>")))
    page = report.html()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "</script><script>alert(2)" not in page
    # The figure JSON keeps the name, with < and > as \u003c escapes.
    data = re.search(r'class="figure-data" data-target="fig0">(.*?)</script>', page).group(1)
    assert json.loads(data)["data"][0]["name"] == "</script><b>x</b>"
    assert page.count("</script>") == page.count("<script")  # every script closes once


def test_run_report_holds_config_formula_merits_seed_and_command(runs):
    first, _ = runs
    page = rep.run_report([first]).html()
    assert "<script>alert(1)" not in page and "alert(1)" in page  # shown, as text
    test = first.metrics["test"]
    assert f"{100 * test['eer']:.2f} %" in page
    assert "<math" in page  # the loss's formula as MathML
    assert rep.reproduce_command(first.config, first.name).replace("&", "&amp;").replace(
        "<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;").replace('"', "&quot;") in page
    assert page.count('class="figure-data"') == 4  # loss, map, histogram, ROC
    assert "Content-Security-Policy" in page


def test_cli_writes_a_comparison(runs, tmp_path, capsys):
    from lab.cli import main

    out = tmp_path / "compare.html"
    first, second = runs
    assert main(["report", first.id, second.id, "--out", str(out), "--runs",
                 str(first.path.parent)]) == 0
    page = out.read_text()
    assert "2 runs compared" in page and "triplet run" in page
    assert page.count('class="figure-data"') == 9  # overlaid ROC + 4 per run
    assert "report" in capsys.readouterr().out


@pytest.mark.slow
def test_a_default_run_report_opens_offline_in_chromium_and_every_figure_draws(
        browser, tmp_path):
    """The default app run (synthetic faces, cnn, 10 epochs), its report opened from a file
    with every network request refused: each figure draws and no request was attempted."""
    store = RunStore(tmp_path / "runs")
    run, _ = train_run(RunConfig(), store, name="default run")
    out = tmp_path / "report.html"
    size = rep.write(rep.run_report([store.load(run.id)]), out)
    assert size < 3_000_000, f"report is {size / 1e6:.2f} MB"
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    attempted: list[str] = []

    def refuse(route):
        if not route.request.url.startswith("file://"):
            attempted.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    page = context.new_page()
    page.on("request", lambda request: None if request.url.startswith(("file://", "data:"))
            else attempted.append(request.url))
    page.goto(out.as_uri())
    page.wait_for_function("document.body.dataset.figures !== undefined", timeout=60_000)
    assert page.evaluate("document.body.dataset.figures") == "drawn", page.inner_text(
        "#report-status")
    plots = page.locator("div.plot")
    assert plots.count() == 4
    for k in range(plots.count()):
        assert plots.nth(k).locator("svg.main-svg").count() >= 1  # plotly drew it
        assert plots.nth(k).get_attribute("data-drawn") == "1"
    assert attempted == []
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get("METRIC_LAB_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")
    context.close()


def test_train_and_compare_pages_offer_the_report(run_root):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    store = RunStore(run_root)
    train_run(SMALL.replace(epochs=1), store, name="one")
    root = Path(__file__).resolve().parents[1]
    for page, label in (("train", "Report (HTML)"), ("compare", "Report of these runs")):
        at = AppTest.from_file(str(root / "app.py"), default_timeout=90)
        at.run()
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        labels = [b.proto.label for b in at.get("download_button")]
        assert any(text.startswith(label) for text in labels), labels


def test_leaderboard_report_shows_names_as_text():
    rows = [{"rank": 1, "name": "<img src=x onerror=alert(1)>", "EER %": 4.5, "train s": 20.0},
            {"rank": 2, "name": "Ada", "EER %": 7.25, "train s": 31.0}]
    page = rep.leaderboard_report("Class 3B", rows, ("rank", "name", "EER %", "train s"),
                                  [("hidden people", 10)]).html()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "7.25" in page and page.count('class="figure-data"') == 1
