"""Lessons: every preset is valid and small, and each lesson's claim holds on its seed.

The slow tests train every lesson exactly as the Lessons page does and assert the DIRECTION of
the effect the lesson teaches, so a lesson can never silently teach what the app does not show.
"""

from __future__ import annotations

import pytest

from lab.config import problems
from lab.lessons import (
    LESSON_LIST,
    LESSONS,
    Lesson,
    VariantResult,
    budget_problems,
    evaluate,
    geometry_query,
    lesson_configs,
    run_lesson,
)

ISSUE_LESSONS = ("margin", "plateau", "mining", "normalize", "open-world", "arcface", "few-shot",
                 "conditions")


def test_the_eight_lessons_of_the_issue_exist_in_order():
    assert tuple(LESSONS)[:8] == ISSUE_LESSONS
    for lesson in LESSON_LIST:
        assert lesson.key and lesson.title and lesson.summary and "\n" not in lesson.summary
        assert lesson.look_at and lesson.claim and lesson.expect


@pytest.mark.parametrize("lesson", LESSON_LIST, ids=lambda lesson: lesson.key)
def test_every_variant_is_a_valid_config_within_the_budget(lesson: Lesson):
    assert lesson.variants
    labels = lesson.labels
    assert len(set(labels)) == len(labels)
    for label, config in lesson.variants:
        assert problems(config) == [], label
    assert budget_problems(lesson) == []
    for config in lesson_configs(lesson):
        assert config.extra["sweep"] == f"lesson-{lesson.key}"
        assert problems(config) == []


def test_a_missing_figure_fails_the_check_honestly():
    lesson = LESSONS["mining"]
    variants = [VariantResult(label, config, {"status": "failed", "eer": None})
                for label, config in lesson.variants]
    result = evaluate(lesson, variants)
    assert not result.passed and "not measured" in result.sentence
    assert not evaluate(lesson, variants[:1]).passed


def test_the_conditions_lesson_needs_no_training_and_flips():
    lesson = LESSONS["conditions"]
    result = run_lesson(lesson)
    assert result.passed, result.sentence
    measured = result.measured
    assert measured["contrastive m_c = 1, m = 0.5"]["all_ok"]
    assert not measured["contrastive m_c = 1, m = 1.5"]["condition2"]
    assert measured["naive, m = 0.5, energies ≤ 2"]["all_ok"]  # minimum at the corner (0, 2)
    assert not measured["naive, m = 0.5, unbounded energies"]["condition2"]  # H → −∞
    query = geometry_query(lesson.variants[1][1])
    assert query == {"view": "contrastive", "m": "1.5", "emax": "2", "mc": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in ISSUE_LESSONS if LESSONS[k].trains])
def test_the_lesson_shows_what_the_paper_claims(key: str):
    result = run_lesson(LESSONS[key])
    assert result.passed, result.sentence
    assert result.cpu_seconds < 60, f"{key} took {result.cpu_seconds:.0f} s of CPU"
