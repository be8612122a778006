"""Trainer: learns something that transfers to unseen identities, reproducibly, and fails safely."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lab.core.config import RunConfig
from lab.learn.devices import pick_device
from lab.learn.train import EpochReport, Trainer, augment_batch

# An MLP: on 8x8 digits a random conv net is already a strong feature extractor for unseen
# digits, so the lesson "training transfers to unseen identities" shows best with an MLP.
DIGITS = RunConfig(dataset="digits", image_size=8, val_identities=1, test_identities=3,
                   network="mlp", embedding_dim=16, epochs=2, seed=1, device="cpu",
                   extra={"width": 64})


@pytest.fixture(autouse=True)
def one_thread():
    """The box has 2 shared cores: one intra-op thread is faster than two fighting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    from lab.data import load_for_config

    return load_for_config(DIGITS)


def test_pick_device_prefers_what_exists(monkeypatch):
    """CUDA when usable, else MPS, else the CPU; a missing explicit choice falls back to the
    CPU and says so. The devices are faked, so every branch runs on any machine."""
    from lab.learn import devices

    mps = getattr(torch.backends, "mps", None)
    monkeypatch.setattr(devices, "_cuda_choice", lambda: None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == "cpu" and pick_device("cuda").type == "cpu"
    assert "No CUDA device here" in devices.choose_device("cuda").reason
    card = devices.DeviceChoice(torch.device("cuda", 0), "bfloat16", "a fake card")
    monkeypatch.setattr(devices, "_cuda_choice", lambda: card)
    assert devices.choose_device("auto") is card and pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cpu").type == "cpu"  # an explicit CPU wins over a card


def test_training_improves_unseen_digits_and_reports(digits):
    trainer = Trainer(DIGITS, digits)
    assert set(trainer.split.test).isdisjoint(trainer.split.train)
    before = trainer.evaluate()["test"]["auc"]
    reports = list(trainer.fit())
    assert [r.epoch for r in reports] == [1, 2]
    assert all(isinstance(r, EpochReport) for r in reports)
    last = reports[-1]
    assert last.status == "done" and last.metrics is not None
    assert all(math.isfinite(r.loss) and r.images_per_second > 0 for r in reports)
    assert 0 <= last.active_fraction <= 1 and last.mean_genuine < last.mean_impostor
    probes = last.probe_embeddings
    assert probes.shape == (len(trainer.probe_indices), 16)
    assert set(trainer.probe_labels.tolist()) <= set(trainer.split.test) | set(trainer.split.val)
    after = last.metrics["test"]["auc"]
    assert after > before + 0.05, (before, after)


def test_same_config_twice_gives_same_metrics(digits):
    config = DIGITS.replace(epochs=1, steps_per_epoch=6, augment=True, loss="triplet",
                            energy="sqeuclidean", margin=0.2, miner="semihard")
    runs = []
    for _ in range(2):
        trainer = Trainer(config, digits)
        reports = list(trainer.fit())
        runs.append((reports[-1].loss, reports[-1].metrics["test"]["eer"],
                     reports[-1].probe_embeddings))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert np.array_equal(runs[0][2], runs[1][2])


def test_split_seed_retrains_the_same_people_from_other_weights(digits):
    config = DIGITS.replace(epochs=0, seed=3, split_seed=0)
    a, b = Trainer(config, digits), Trainer(config.replace(seed=4), digits)
    assert a.split == b.split and torch.equal(a.probe_indices, b.probe_indices)
    assert a.split == Trainer(config.replace(seed=0, split_seed=None), digits).split
    assert not torch.equal(a.model.head.weight, b.model.head.weight)


def test_naive_loss_with_huge_lr_diverges_and_keeps_finite_weights(digits):
    # Without a margin or unit norm, E_genuine - E_impostor falls without bound: with the
    # squared energy its gradient grows with the weights, so SGD blows up in a few steps.
    config = DIGITS.replace(loss="naive", normalize=False, energy="sqeuclidean", lr=10.0,
                            optimizer="sgd", epochs=3, steps_per_epoch=40, network="linear")
    trainer = Trainer(config, digits, probes=False)
    reports = list(trainer.fit())
    last = reports[-1]
    assert last.status == "diverged" and trainer.status == "diverged"
    assert "epoch" in last.message and "margin" in last.message
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert last.metrics is not None  # evaluated on the restored weights


def test_stop_keeps_what_was_learnt(digits):
    trainer = Trainer(DIGITS.replace(epochs=50), digits, probes=False, report_every=3)
    reports = []
    for report in trainer.fit():
        reports.append(report)
        if report.step >= 6:
            trainer.stop()
    assert reports[-1].status == "stopped" and reports[-1].step <= 7
    assert reports[-1].metrics["test"]["auc"] > 0.5


def test_time_budget_stops_cleanly(digits):
    trainer = Trainer(DIGITS.replace(epochs=500), digits, probes=False, time_budget=0.5)
    reports = list(trainer.fit())
    assert reports[-1].status == "done" and "time budget" in reports[-1].message
    assert reports[-1].epoch < 500


def test_classifier_loss_and_baselines(digits):
    config = DIGITS.replace(loss="arcface", energy="cosine", margin=0.5, epochs=1,
                            steps_per_epoch=5, network="cnn", extra={"width": 8})
    trainer = Trainer(config, digits, probes=False)
    assert list(trainer.fit())[-1].status == "done"
    baselines = trainer.baselines(("pixels", "eigenfaces", "fisherfaces"))
    assert set(baselines) == {"pixels", "eigenfaces", "fisherfaces"}
    # raw 8x8 digit pixels already tell unseen digits apart far better than chance (EER 0.5)
    assert all(0 < b["eer"] < 0.4 for b in baselines.values()), baselines


def test_augment_batch_is_seeded_and_keeps_shape():
    images = torch.rand(6, 3, 20, 16)
    a = augment_batch(images, torch.Generator().manual_seed(0))
    b = augment_batch(images, torch.Generator().manual_seed(0))
    assert a.shape == images.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, images)
