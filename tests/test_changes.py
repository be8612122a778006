"""Change a setting mid-run: while paused, a new learning rate or margin applies from the next
epoch, is recorded in the run's history, is marked on the loss curve, and replays exactly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st

from lab.core.config import RunConfig
from lab.learn import changes
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run
from lab.viz.curves import loss_curve

ROOT = Path(__file__).resolve().parents[1]
DIGITS = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=3, test_identities=3,
                   val_identities=2, p_identities=5, k_images=4, steps_per_epoch=4, seed=3)


def test_only_the_learning_rate_and_margin_change_and_within_range():
    assert changes.check({"lr": "0.01"}, DIGITS) == {"lr": 0.01}
    with pytest.raises(ValueError, match="not epochs"):
        changes.check({"epochs": 9}, DIGITS)
    with pytest.raises(ValueError, match="margin must be between"):
        changes.check({"margin": -1}, DIGITS)


def test_history_changes_become_a_replay_schedule_and_curve_markers():
    history = [{"epoch": 1, "changes": {}}, {"epoch": 2, "changes": {"lr": 0.01}},
               {"epoch": 3}]
    config = changes.replay_config(DIGITS, history)
    assert config.extra["changes"] == [{"epoch": 2, "lr": 0.01}]
    assert changes.scheduled(config) == {2: {"lr": 0.01}}
    assert changes.markers(history) == [(1, "lr → 0.01")]
    fig = loss_curve([1, 2, 3], [1.0, 0.5, 0.4], changes=changes.markers(history))
    assert [s.x0 for s in fig.layout.shapes] == [1]
    assert changes.replay_config(DIGITS, [{"epoch": 1}]) is DIGITS


def wait_paused(job, timeout=120):
    deadline = time.monotonic() + timeout
    while job.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.status == "paused", job.status


@pytest.mark.slow
def test_the_setting_at_an_epoch_is_the_last_change_before_it():
    config = RunConfig(margin=1.0, lr=1e-3)
    history = [{"epoch": 1}, {"epoch": 2}, {"epoch": 3, "changes": {"margin": 1.5}},
               {"epoch": 4}, {"epoch": 5, "changes": {"margin": 0.5, "lr": 1e-4}}]
    assert [changes.setting_at(config, history, e, "margin") for e in (1, 2, 3, 4, 5, 9)] == \
        [1.0, 1.0, 1.5, 1.5, 0.5, 0.5]
    assert changes.setting_at(config, history, 4, "lr") == 1e-3
    assert changes.setting_at(config, history, 5, "lr") == 1e-4
    assert changes.setting_at(config, [], 5, "margin") == 1.0


def test_a_change_while_paused_is_recorded_and_replays_exactly(run_root):
    store = RunStore(run_root)
    job = TrainingJob(DIGITS, store=store, limiter=TrainingLimiter(1), start_paused=True).start()
    wait_paused(job)  # after epoch 1
    with pytest.raises(ValueError):
        job.change(lr=1e9)
    assert job.change(lr=0.01, margin=0.5) == {"lr": 0.01, "margin": 0.5}
    job.resume()
    assert job.wait(120) and job.status == "done", job.message
    run = store.load(job.run_id)
    assert [r["changes"] for r in run.history] == [{}, {"lr": 0.01, "margin": 0.5}, {}]
    assert run.config == DIGITS  # the run's config is what it started with ...
    replay, _ = train_run(changes.replay_config(run.config, run.history), store=store)
    # ... and with its history's changes it trains the same weights
    assert [r["loss"] for r in replay.history] == pytest.approx(
        [r["loss"] for r in run.history], rel=1e-5)
    assert [r["changes"] for r in replay.history] == [r["changes"] for r in run.history]
    plain, _ = train_run(DIGITS, store=store)  # without the change, epoch 2 differs
    assert plain.history[1]["loss"] != pytest.approx(run.history[1]["loss"], rel=1e-3)


@pytest.mark.slow
def test_the_train_page_changes_the_learning_rate_of_a_paused_run(run_root):
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    job = TrainingJob(DIGITS, store=RunStore(run_root), limiter=TrainingLimiter(1),
                      start_paused=True).start()
    wait_paused(job)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/train.py")
    at.session_state["training_job"] = job
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    statuses = [list(d.value["status"]) for d in at.dataframe if "status" in d.value]
    assert ["paused"] in statuses, statuses  # the Saved runs table, not the store's "running"
    at.select_slider(key="change_lr").set_value(0.01)
    next(b for b in at.button if b.label == "Apply when the run goes on").click()
    at.run()
    assert any("From the next epoch: lr = 0.01" in s.value for s in at.success)
    job.resume()
    assert job.wait(120) and job.status == "done"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert RunStore(run_root).load(job.run_id).history[1]["changes"] == {"lr": 0.01}


@pytest.mark.slow
def test_energies_draws_the_margin_a_changed_run_had_at_that_epoch(run_root):
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    config = DIGITS.replace(extra={"changes": [{"epoch": 2, "margin": 0.5}]})
    run, _ = train_run(config, store=RunStore(run_root))
    assert [r["changes"] for r in run.history][1] == {"margin": 0.5}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/energies.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("margin m = 0.5 of the contrastive loss" in c for c in captions), captions
    assert any("started at 1 and was 0.5 in epoch 3" in c for c in captions), captions
