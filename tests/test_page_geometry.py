"""The margin geometry page: draws without runs, flips the conditions, keeps its state in the
URL, redraws fast, and draws a run's real energies when one is chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = "app_pages/geometry.py"


def _app(**query: str) -> AppTest:
    st.cache_resource.clear()  # the run store is cached per process: use this test's root
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for name, value in query.items():
        at.query_params[name] = value
    at.switch_page(PAGE)
    return at.run()


def _conditions(at: AppTest) -> dict[int, bool]:
    found = {}
    for element in at.markdown:
        for number in (1, 2, 3):
            if element.value.endswith(f"Condition {number}]"):
                found[number] = "✓" in element.value
    return found


def test_draws_without_any_run_and_flips_condition_2(run_root):
    at = _app()
    assert not at.exception
    assert at.selectbox(key="geo_run").value is None
    assert _conditions(at) == {1: True, 2: True, 3: True}  # contrastive m_c = 1, m = 0.5
    at.slider(key="geo_m").set_value(1.5).run()
    assert not at.exception
    assert _conditions(at)[2] is False
    assert at.query_params["m"] == "1.5" and at.query_params["view"] == "contrastive"
    at.slider(key="geo_mc").set_value(2.0).run()
    assert _conditions(at)[2] is True


def test_naive_and_chopra_judged_by_the_same_rule(run_root):
    """Bounded energies: both minimised at the corner (0, E_max), all three hold. Unbounded:
    neither has a minimum (condition 2 fails), conditions 1 and 3 still hold."""
    at = _app()
    for view in ("naive", "chopra"):
        at.selectbox(key="geo_view").set_value(view).run()
        at.toggle(key="geo_bounded").set_value(True).run()
        assert not at.exception
        assert _conditions(at) == {1: True, 2: True, 3: True}, view
        at.toggle(key="geo_bounded").set_value(False).run()
        assert _conditions(at) == {1: True, 2: False, 3: True}, view
        assert at.query_params["bounded"] == "0"
    assert at.query_params["q"] == "2"


def test_a_lesson_link_opens_its_view(run_root):
    at = _app(view="contrastive", mc="1", m="1.5", emax="2")
    assert not at.exception
    assert at.slider(key="geo_m").value == 1.5
    assert _conditions(at)[2] is False


def test_triplet_view_and_bad_url_values(run_root):
    at = _app(view="triplet", alpha="nonsense", emax="99")
    assert not at.exception
    assert at.slider(key="geo_alpha").value == 0.2
    assert at.slider(key="geo_emax").value == 5.0


@pytest.fixture
def trained_run(run_root):
    from lab.core.config import RunConfig
    from lab.learn.runs import RunStore
    from lab.learn.training_run import train_run

    config = RunConfig(num_identities=12, images_per_identity=4, image_size=16, network="mlp",
                       embedding_dim=8, epochs=1, val_identities=3, test_identities=3,
                       device="cpu", extra={"width": 32})
    run, _ = train_run(config, store=RunStore(run_root))
    return run


@pytest.mark.slow
def test_a_runs_energies_as_points_and_triplets(trained_run):
    at = _app(run=trained_run.id)
    assert not at.exception
    assert at.selectbox(key="geo_run").value.id == trained_run.id
    assert any("satisfy condition 1" in m.value for m in at.markdown)
    at.selectbox(key="geo_view").set_value("triplet").run()
    assert not at.exception
    assert any(metric.label.endswith("triplets") for metric in at.metric)
