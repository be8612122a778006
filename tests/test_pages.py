"""Every page in Streamlit's AppTest: renders with and without runs, controls reach the config
(and the URL), and a short training run completes from the Train page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lab.core.config import RunConfig
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("home", "train", "embeddings", "energies", "compare")
TINY = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=2, test_identities=3,
                 val_identities=2, p_identities=5, k_images=4, steps_per_epoch=4, seed=3)


@pytest.fixture
def store(run_root) -> RunStore:
    st.cache_resource.clear()  # ui.run_store() must see this test's METRIC_LAB_RUNS
    st.cache_data.clear()
    return RunStore(run_root)


@pytest.fixture
def trained(store) -> RunStore:
    train_run(TINY, store=store, name="tiny digits")
    return store


def app(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    if page != "home":
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_runs(store, page):
    at = app(page)
    assert not at.exception, [e.value for e in at.exception]
    if page in ("embeddings", "energies"):
        assert any("No trained run yet" in i.value for i in at.info)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_a_run(trained, page):
    at = app(page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_energies_threshold_slider_moves_far_and_frr(trained):
    at = app("energies")

    def rates() -> tuple[str, str]:
        found = {m.label.split()[0]: m.value for m in at.metric}
        return found["FAR"], found["FRR"]

    at.slider(key="threshold").set_value(0.0).run()  # accept nobody (every E > 0)
    assert rates() == ("0.0%", "100.0%")
    slider = at.slider(key="threshold")
    slider.set_value(slider.max).run()  # accept nearly every pair (its top: 99.5th percentile)
    far, frr = (float(rate.rstrip("%")) for rate in rates())
    assert far > 50.0 and frr < 5.0


def test_controls_change_the_config_and_the_url(store):
    at = app("train")
    at.selectbox(key="cfg_loss").set_value("triplet").run()
    assert at.session_state["train_config"].loss == "triplet"
    assert at.query_params["loss"] == ["triplet"] or at.query_params["loss"] == "triplet"
    labels = [s.label for s in at.selectbox]
    assert "Mining" in labels  # the triplet loss shows its miner ...
    assert not any(s.label.startswith("Q ") for s in at.number_input)  # ... and not Chopra's Q


def test_a_bad_link_is_explained_not_obeyed(store):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params["margin"] = "-5"
    at.query_params["loss"] = "nonsense"
    at.run()
    at.switch_page("app_pages/train.py")
    at.run()
    warnings = " ".join(w.value for w in at.warning)
    assert "margin" in warnings and "loss" in warnings
    assert at.session_state["train_config"].margin == 1.0


def test_short_training_from_the_train_page(store):
    at = app("train")
    at.selectbox(key="cfg_dataset").set_value("digits").run()
    at.selectbox(key="cfg_network").set_value("mlp").run()
    at.slider(key="cfg_epochs").set_value(2).run()
    at.button[0].click().run()  # ▶ Run
    job = at.session_state["training_job"]
    assert job.wait(180), "training did not finish"
    at.run()
    assert job.status == "done", job.message
    assert not at.exception, [e.value for e in at.exception]
    assert any("never seen in training" in h.value for h in at.subheader)
    deadline = time.monotonic() + 10
    while not store.list() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [i.status for i in store.list()] == ["done"]


def test_presenter_mode_switches_off_with_one_click(store):
    """The toggle keeps its identity when the URL follows it: on, then off, one click each."""
    at = app("train")
    def controls_shown() -> bool:
        return "cfg_loss" in [s.key for s in at.selectbox]

    assert controls_shown()
    at.toggle(key="presenter_mode").set_value(True).run()
    assert at.query_params.get("presenter") in ("1", ["1"])
    assert not controls_shown()
    at.toggle(key="presenter_mode").set_value(False).run()
    assert "presenter" not in at.query_params
    assert controls_shown()


def test_tables_write_a_dash_for_a_missing_figure_and_numbers_as_read():
    import ui

    rows = [{"name": "a", "EER %": 28.0, "AUC": 0.7934, "TAR@1e-3 %": None, "epochs": 20,
             "energy scale": 136591.0},
            {"name": "b", "EER %": None, "AUC": None, "TAR@1e-3 %": None, "epochs": 3,
             "energy scale": 1.653}]
    frame = ui.readable(rows)
    assert list(frame["EER %"]) == ["28", "–"] and list(frame["AUC"]) == ["0.7934", "–"]
    assert list(frame["TAR@1e-3 %"]) == ["–", "–"]
    # a column without a gap stays numbers (it sorts as numbers)
    assert list(frame["epochs"]) == [20, 3] and frame["energy scale"].dtype.kind == "f"
