"""What the pages show, computed from a saved run's probe embeddings."""

import time
from pathlib import Path

import numpy as np

from lab.core.config import RunConfig
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run
from lab.views.run_view import probe_history, seen_mask, verification_at

TINY = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=2, test_identities=3,
                 val_identities=2, p_identities=5, k_images=4, steps_per_epoch=3, seed=2)


def test_maps_hold_seen_and_unseen_identities_but_metrics_only_unseen(run_root):
    run, trainer = train_run(TINY, store=RunStore(run_root))
    history = probe_history(RunStore(run_root).load(run.id))
    seen = seen_mask(history)
    assert history.embeddings.shape[:2] == (3, len(history.labels))  # epochs 0, 1, 2
    train_ids = set(trainer.split.train)
    assert seen.any() and set(history.labels[seen]) <= train_ids
    assert not set(history.labels[~seen]) & train_ids
    assert not (history.is_test & seen).any()
    result = verification_at(history, history.rounds - 1, TINY.energy, TINY.seed)
    _, counts = np.unique(history.labels[history.is_test], return_counts=True)
    assert len(result.genuine_energies) == int(np.sum(counts * (counts - 1) // 2))


# --- issue 15 ---------------------------------------------------------------------------


def test_two_runs_of_one_name_get_labels_that_tell_them_apart():
    from lab.learn.runs import RunInfo
    from lab.views.run_view import run_labels, run_names

    infos = [RunInfo(id=f"20260101-00000{k}-abc00{k}", name=name, status="done", path=Path("."))
             for k, name in enumerate(["same", "same", "other"])]
    names = run_names(infos)
    assert names[infos[0].id] == f"same · {infos[0].id}" and names[infos[2].id] == "other"
    assert len(set(run_labels(infos).values())) == 3


def test_the_runs_table_says_paused_for_the_run_a_paused_job_holds():
    from lab.learn.runs import RunInfo
    from lab.views.run_view import runs_table

    infos = [RunInfo(id=f"20260101-00000{k}-abc00{k}", name=f"run {k}", status="running",
                     path=Path(".")) for k in range(2)]
    rows = runs_table(infos, live={infos[0].id: "paused"})
    assert [r["status"] for r in rows] == ["paused", "running"]
    assert [r["status"] for r in runs_table(infos)] == ["running", "running"]


def test_default_names_carry_the_loss_the_margin_and_the_time():
    from lab.core.config import RunConfig
    from lab.learn.runs import default_name

    when = time.mktime((2026, 1, 2, 10, 11, 12, 0, 0, -1))
    assert default_name(RunConfig(margin=0.5), when) == "contrastive m=0.5 on synthetic · 10:11:12"
    assert default_name(RunConfig(loss="chopra"), when) == "chopra on synthetic · 10:11:12"


def test_time_left_leaves_the_pauses_out():
    from lab.learn.train import EpochReport
    from lab.views.run_view import eta_seconds, training_seconds

    # Two epochs of 2 s each, with a 60 s pause between them (elapsed counts it).
    common = dict(epochs=4, loss=1.0, images_per_second=1.0, active_fraction=0.5,
                  mean_genuine=0.1, mean_impostor=1.0, probe_embeddings=None)
    reports = [EpochReport(epoch=1, step=1, seconds=2.0, elapsed=2.0, **common),
               EpochReport(epoch=2, step=2, seconds=2.0, elapsed=64.0, **common)]
    assert training_seconds(reports) == 4.0
    assert eta_seconds(reports) == 4.0  # 2 epochs left at 2 s each, not at 32 s


def test_short_numbers_fit_a_card():
    from lab.views.run_view import short_number

    assert short_number(136591.25) == "1.37e5"
    assert short_number(0.12345) == "0.1235"
    assert short_number(1.27) == "1.27"
    assert short_number(float("nan")) == "n/a" and short_number(None) == "n/a"
