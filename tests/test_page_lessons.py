"""The Lessons page: the list, every lesson by URL, the conditions verdict, and a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lab.lessons import LESSONS

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
