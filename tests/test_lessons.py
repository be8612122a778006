"""Lessons: every preset is valid and small, compares like with like, and each lesson's claim
holds on 3 seeds (weights and people).

The slow tests train every lesson exactly as the Lessons page does, on each of SEEDS, and assert
the DIRECTION of the effect the lesson teaches, so a lesson can never silently teach what the app
does not show. (About 20 s of CPU per seed for all lessons together on the project's 2-core CPU;
``python -m lab bench lessons`` records the seconds, no test asserts them.)
"""

from __future__ import annotations

import pytest
import torch

from lab.core.config import RunConfig, problems
from lab.views.lessons import (
    LESSON_LIST,
    LESSONS,
    SPREAD_FILE,
    Lesson,
    VariantResult,
    budget_problems,
    evaluate,
    geometry_query,
    lesson_configs,
    run_lesson,
    seed_spread,
    spread_sentence,
    with_seed,
)

SEEDS = (0, 1, 2)  # the seeds of the slow test and of benchmarks/results/lessons-cpu.json

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


def test_with_seed_moves_the_weights_and_the_people():
    lesson = with_seed(LESSONS["few-shot"], 7)
    for (label, config), (_, original) in zip(lesson.variants, LESSONS["few-shot"].variants,
                                              strict=True):
        assert config.seed == 7 and config.data_seed == 7
        assert config.replace(seed=original.seed) == original, label
    assert with_seed(LESSONS["margin"], None) is LESSONS["margin"]


def test_the_few_images_lesson_varies_only_the_training_images():
    """Same people, same unseen people with all their images, same batches and steps; K = 2 so
    a 2-image person is never paired with itself."""
    configs = [config for _, config in LESSONS["few-shot"].variants]
    kept = [c.train_images_per_identity for c in configs]
    assert kept == [2, 5, 10]
    bare = {c.replace(train_images_per_identity=None) for c in configs}
    assert len(bare) == 1
    (base,) = bare
    assert base.images_per_identity == 10 and base.k_images <= min(kept)
    assert base.steps_per_epoch is not None  # the same number of steps, whatever the images


def test_the_training_image_cap_keeps_the_unseen_people_whole():
    from lab.data import load_for_config
    from lab.learn.train import Trainer

    config = RunConfig(dataset="synthetic", num_identities=12, images_per_identity=6,
                       image_size=16, val_identities=2, test_identities=3, network="linear",
                       embedding_dim=4, epochs=0, device="cpu",
                       train_images_per_identity=2)
    faceset = load_for_config(config)
    capped = Trainer(config, faceset)
    whole = Trainer(config.replace(train_images_per_identity=None), faceset)
    assert capped.split == whole.split
    counts = torch.bincount(capped.train_labels_cpu)
    assert counts.tolist() == [2] * 7  # 12 - 2 - 3 training people, 2 images each
    assert torch.bincount(whole.train_labels_cpu).tolist() == [6] * 7
    assert torch.equal(capped.test_index, whole.test_index)  # all 6 images of each test person


def test_the_spread_files_cover_every_trained_lesson_on_the_test_seeds():
    """The committed bench results the page shows: every trained lesson on at least the seeds
    of the slow test, where its claim held on each; each variant's spread; and the sentence
    says on how many of all the measured seeds the claim held, and which not."""
    if not SPREAD_FILE.exists():
        pytest.fail(f"{SPREAD_FILE} is missing: run python -m lab bench lessons --json ...")
    for lesson in LESSON_LIST:
        if not lesson.trains:
            continue
        entry = seed_spread(lesson.key)
        assert entry is not None, lesson.key
        assert set(SEEDS) <= set(entry["seeds"]) and entry["runs"] == len(entry["seeds"])
        on_test_seeds = [s for s in entry["per_seed"] if s["seed"] in SEEDS]
        assert all(s["passed"] for s in on_test_seeds), (lesson.key, on_test_seeds)
        assert set(entry["spread"]) == set(lesson.labels)
        for seed in entry["per_seed"]:  # like with like on every seed measured
            assert len({f["steps"] for f in seed["figures"].values()}) == 1, lesson.key
        sentence = spread_sentence(lesson, entry)
        assert f"held on {entry['held']} of {entry['runs']}" in sentence and "±" in sentence
        missed = [s["seed"] for s in entry["per_seed"] if not s["passed"]]
        assert ("(not on seed" in sentence) == bool(missed)


def test_spread_sentence_by_hand(tmp_path):
    import json

    lesson = LESSONS["plateau"]
    eers = {0: (0.07, 0.10), 1: (0.08, 0.12), 2: (0.09, 0.14)}
    per_seed = [{"seed": seed, "passed": seed != 2,
                 "figures": {label: {"eer": eer, "steps": 36}
                             for label, eer in zip(lesson.labels, pair, strict=True)}}
                for seed, pair in eers.items()]
    path = tmp_path / "lessons.json"
    path.write_text(json.dumps({"quick": False, "machine": {"date": "2026-12-02T07:00:00Z",
                                                           "cpu_count": 2,
                                                           "load_average": [3.5, 3, 2]},
                                "lessons": {"plateau": {"seeds": [0, 1, 2], "held": 2,
                                                        "runs": 3, "per_seed": per_seed}}}))
    entry = seed_spread("plateau", path)
    assert seed_spread("margin", path) is None
    assert entry["held"] == 2 and entry["runs"] == 3 and entry["seeds"] == [0, 1, 2]
    sentence = spread_sentence(lesson, entry)
    assert "3 seeds (0, 1, 2" in sentence
    # means 8.0 % and 12.0 %; population std √(2/3)·1 = 0.8 and √(2/3)·2 = 1.6 points
    assert "L1 energy 8.0 ± 0.8 % vs squared L2 energy 12.0 ± 1.6 %" in sentence
    assert "held on 2 of 3 (not on seed 2)" in sentence
    assert "2026-12-02" in sentence and "load 3.5" in sentence


def test_planned_steps_are_the_steps_a_run_takes():
    """The page's steps column, against the trainer's count: equal within every lesson."""
    from lab.views.lessons import planned_steps

    assert [planned_steps(c) for _, c in LESSONS["few-shot"].variants] == [360] * 3
    # 40 - 5 - 10 = 25 people x 8 images = 200, P x K = 32: 6 batches an epoch, 6 epochs
    assert planned_steps(LESSONS["margin"].variants[0][1]) == 36
    for lesson in LESSON_LIST:
        if lesson.trains:
            assert len({planned_steps(c) for _, c in lesson.variants}) == 1, lesson.key


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("key", [k for k in ISSUE_LESSONS if LESSONS[k].trains])
def test_the_lesson_shows_what_the_paper_claims(key: str, seed: int):
    result = run_lesson(LESSONS[key], seed=seed)
    assert result.passed, f"seed {seed}: {result.sentence}"
    steps = {v.label: v.figures["steps"] for v in result.variants}
    assert len(set(steps.values())) == 1 and min(steps.values()) > 0, steps  # like with like
    from lab.views.lessons import planned_steps

    assert set(steps.values()) == {planned_steps(result.variants[0].config)}
