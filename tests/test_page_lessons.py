"""The Lessons page: the list, every lesson by URL, the conditions verdict, and a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lab.views.lessons import LESSONS

ROOT = Path(__file__).resolve().parents[1]
PAGE = "app_pages/lessons.py"


def _app(lesson: str | None = None) -> AppTest:
    st.cache_resource.clear()  # the run store is cached per process: use this test's root
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    if lesson is not None:
        at.query_params["lesson"] = lesson
    at.switch_page(PAGE)
    return at.run()


def test_the_list_without_a_lesson(run_root):
    at = _app()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    for lesson in LESSONS.values():
        assert lesson.title in text


def test_an_unknown_lesson_says_so(run_root):
    at = _app("nope")
    assert not at.exception
    assert at.warning


@pytest.mark.parametrize("key", list(LESSONS))
def test_every_lesson_renders_by_url(run_root, key):
    at = _app(key)
    assert not at.exception
    assert at.header[0].value.endswith(LESSONS[key].title)
    if LESSONS[key].trains:
        assert at.button[0].label.startswith("Run this lesson")


def test_the_conditions_lesson_shows_its_verdict(run_root):
    at = _app("conditions")
    assert not at.exception
    assert at.success and "As the paper claims" in at.success[0].value


def test_a_trained_lesson_shows_its_spread_over_seeds(run_root):
    from lab.views.lessons import seed_spread

    at = _app("plateau")
    assert not at.exception
    entry = seed_spread("plateau")
    if entry is None:
        pytest.fail("benchmarks/results/lessons-cpu.json has no entry for the plateau lesson")
    notes = " ".join(i.value for i in at.info)
    assert f"{entry['runs']} seeds" in notes and "±" in notes and "bench lessons" in notes
    assert f"held on {entry['held']} of {entry['runs']}" in notes


def test_a_live_run_against_the_claim_says_so_and_why(run_root):
    from lab.views.lessons import LessonResult, VariantResult

    lesson = LESSONS["plateau"]
    variants = [VariantResult(label, config, {"status": "done", "eer": eer})
                for (label, config), eer in zip(lesson.variants, (0.30, 0.20), strict=True)]
    result = LessonResult("plateau", variants, False, "EER: L1 energy 30.0% ≥ squared L2 "
                          "energy 20.0%")
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params["lesson"] = "plateau"
    at.session_state["lesson_result_plateau"] = result
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    (error,) = at.error
    assert "against the claim" in error.value and "seed 0" in error.value
    assert "Why a run can go against it" in error.value and "the claim held on" in error.value
    assert not at.success
