"""Miner inspector: the batch's mined items on the loss's margin plane, before and after one
Step taken on copies (the run itself is untouched), for every loss and miner; on the Train page
(a paused run) and the Energies page (a saved run)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch

from lab.core.config import MINERS, RunConfig
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.runs import RunStore
from lab.learn.train import Trainer
from lab.learn.training_run import train_run
from lab.metric.energy import pairwise_energy
from lab.metric.mining import mine
from lab.views.inspector import Inspection, boundary_for, inspect_trainer, regions_of
from lab.viz.planes import miner_plane

ROOT = Path(__file__).resolve().parents[1]
DIGITS = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=1, test_identities=3,
                   val_identities=2, p_identities=5, k_images=4, steps_per_epoch=4, seed=3)


@pytest.fixture(scope="module")
def digits():
    from lab.data import load_for_config

    return load_for_config(DIGITS)


def test_regions_follow_the_diagonal_and_the_margin_line():
    line = boundary_for(RunConfig(loss="triplet", margin=0.2))
    kinds = regions_of(np.array([0.5, 0.5, 0.5]), np.array([0.4, 0.6, 0.8]), line)
    assert list(kinds) == ["hard", "semi-hard", "easy"]
    # CosFace: cos θ_other = cos θ_own − m; at θ_own = π/3 (cos 0.5), m = 0.5: θ_other = π/2
    assert boundary_for(RunConfig(loss="cosface", margin=0.5))(np.pi / 3) == \
        pytest.approx(np.pi / 2)
    assert boundary_for(RunConfig(loss="arcface", margin=0.5))(1.0) == pytest.approx(1.5)


def test_the_thumbnails_take_the_hardest_item_of_each_anchor():
    # items (anchor, positive, negative); depth below the line y = x + 0.2: item 1 deepest
    before = np.array([[0.5, 0.3], [0.5, 0.1], [0.5, 0.2], [0.5, 0.6], [0.5, 0.65]])
    inspection = Inspection(
        loss="triplet", kind="triplet", miner="all", margin=0.2, x_label="", y_label="",
        before=before, after=before, items=np.array([[7, 1, 2], [7, 1, 3], [4, 5, 6],
                                                     [7, 1, 6], [9, 8, 2]]),
        images=np.zeros((10, 1, 2, 2)), labels=np.zeros(10, int), loss_before=0.0,
        loss_after=0.0, mined=5, candidates=5, boundary=boundary_for(
            RunConfig(loss="triplet", margin=0.2)))
    assert list(inspection.hardest(3)) == [1, 2, 0]  # anchor 7 twice
    assert list(inspection.hardest(3, one_per_anchor=True)) == [1, 2, 4]


def test_triplet_coordinates_are_the_energies_and_the_run_is_untouched(digits):
    config = DIGITS.replace(loss="triplet", energy="sqeuclidean", margin=0.2, miner="semihard")
    trainer = Trainer(config, digits, probes=False, evaluate=False)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    inspection = inspect_trainer(trainer, 1)
    assert all(torch.equal(weights[k], v) for k, v in trainer.model.state_dict().items())
    # the same batch, embedded and mined independently
    images = torch.as_tensor(inspection.images)
    labels = torch.as_tensor(inspection.labels)
    trainer.model.train()
    with torch.no_grad():
        emb = trainer.model(images)
    from lab.metric.energy import energy_matrix

    triplets = mine("semihard", "triplet", energy_matrix(emb, "sqeuclidean"), labels, 0.2)
    assert inspection.mined == len(triplets[0])
    a, p, n = (torch.as_tensor(inspection.items[:, k]) for k in range(3))
    np.testing.assert_allclose(inspection.before[:, 0],
                               pairwise_energy(emb[a], emb[p], "sqeuclidean"), rtol=1e-4)
    np.testing.assert_allclose(inspection.before[:, 1],
                               pairwise_energy(emb[a], emb[n], "sqeuclidean"), rtol=1e-4)
    # every semi-hard triplet is semi-hard on the plane, by construction of the miner
    assert inspection.shares()["semi-hard"] == pytest.approx(1.0)
    assert inspection.loss_after < inspection.loss_before  # one Step lowers this batch's loss


@pytest.mark.parametrize("loss", ["contrastive", "chopra", "naive", "triplet", "arcface",
                                  "cosface", "softmax"])
def test_every_loss_and_miner_gives_a_plane(digits, loss):
    miners = MINERS if loss in ("contrastive", "chopra", "naive", "triplet") else ("all",)
    for miner in miners:
        config = DIGITS.replace(loss=loss, miner=miner,
                                margin=0.5 if loss in ("arcface", "cosface") else 1.0)
        inspection = inspect_trainer(Trainer(config, digits, probes=False, evaluate=False), 1)
        assert inspection.before.shape == inspection.after.shape == (len(inspection.items), 2)
        assert np.isfinite(inspection.before).all() and np.isfinite(inspection.after).all()
        assert sum(inspection.shares().values()) == pytest.approx(1.0) or inspection.mined == 0
        if inspection.kind == "classifier":
            assert inspection.mined == len(inspection.labels) == 20
            assert (inspection.before <= math.pi + 1e-9).all()
        fig = miner_plane(inspection.before, inspection.after, inspection.boundary,
                                x_label="x", y_label="y", margin_label="line", arrows=[0])
        assert any(t.name == "line" for t in fig.data)


def test_the_plane_colours_each_region_and_draws_the_moves():
    before = np.array([[0.5, 0.3], [0.5, 0.6], [0.2, 1.5]])
    after = before + 0.1
    fig = miner_plane(before, after, lambda x: np.asarray(x) + 0.2, x_label="x",
                            y_label="y", margin_label="margin", arrows=[0, 2])
    names = [t.name for t in fig.data]
    assert "hard (33%)" in names and "semi-hard (33%)" in names and "easy (33%)" in names
    moves = next(t for t in fig.data if t.name == "one Step moves it")
    assert list(moves.x) == [0.5, 0.6, None, 0.2, pytest.approx(0.3), None]


# ---------------------------------------------------------------- pages


@pytest.fixture
def store(run_root) -> RunStore:
    st.cache_resource.clear()
    st.cache_data.clear()
    return RunStore(run_root)


@pytest.mark.slow
def test_train_page_inspects_the_next_batch_of_a_paused_run(store):
    from streamlit.testing.v1 import AppTest

    job = TrainingJob(DIGITS.replace(epochs=5, loss="triplet", margin=0.2), store=store,
                      limiter=TrainingLimiter(1), start_paused=True).start()
    deadline = time.monotonic() + 120
    while job.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.status == "paused" and job.paused_trainer is not None
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/train.py")
    at.session_state["training_job"] = job
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [m.label for m in at.metric]
    assert {"Mined", "Hard", "Semi-hard", "Easy"} <= set(labels), labels
    assert any("one Step of the optimiser" in c.value for c in at.caption)
    job.stop()
    job.wait(60)


@pytest.mark.slow
def test_energies_page_has_the_inspector_of_a_saved_run(store):
    from streamlit.testing.v1 import AppTest

    train_run(DIGITS.replace(epochs=2, loss="arcface", margin=0.5), store=store)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/energies.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Miner inspector" in s.value for s in at.subheader)
    assert any("centres estimated" in c.value for c in at.caption)
    assert "Mined" in [m.label for m in at.metric]


@pytest.mark.slow
def test_embeddings_page_draws_faces_on_the_map(store):
    import json

    from streamlit.testing.v1 import AppTest

    train_run(DIGITS, store=store)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/embeddings.py")
    at.run()
    at.radio(key="map_method").set_value("PCA").run()

    def map_images() -> int:
        charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        return max(len(c.get("layout", {}).get("images", [])) for c in charts)

    assert map_images() == 0
    at.toggle(key="map_images").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    from lab.views.run_view import probe_history

    points = len(probe_history(store.load(store.list()[0].id)).labels)
    assert map_images() == min(points, 400) > 0  # every point's face, up to the page's cap


def test_a_saved_run_is_inspected_with_the_margin_of_its_last_epoch(store, digits):
    from lab.views.inspector import inspect_saved_run

    config = DIGITS.replace(epochs=2, extra={"changes": [{"epoch": 2, "margin": 0.5}]})
    run, _ = train_run(config, store=store, faceset=digits)
    inspection = inspect_saved_run(store.load(run.id), digits)
    assert inspection.margin == pytest.approx(0.5) and run.config.margin == 1.0
