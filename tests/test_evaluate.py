"""Verification metrics against scikit-learn and distributions whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lab.measure.evaluate import (
    baseline_embeddings,
    embed,
    equal_error_rate,
    evaluate_embeddings,
    verification_pairs,
)


def clusters(identities: int, per: int, spread: float, dim: int = 8, seed: int = 0):
    """Gaussian blobs, one per identity: spread 0 = perfectly separated."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim)) * 10
    labels = np.repeat(np.arange(identities), per)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), \
        labels


def test_pairs_are_all_genuine_and_sampled_impostors():
    labels = np.array([0, 0, 1, 1, 1, 2])
    i, j, same = verification_pairs(labels)
    assert same.sum() == 1 + 3  # C(2,2) + C(3,2)
    assert (~same).sum() == 15 - 4
    assert np.all(i < j) and np.array_equal(same, labels[i] == labels[j])
    i2, j2, same2 = verification_pairs(labels, max_impostor=5, seed=3)
    assert same2.sum() == 4 and (~same2).sum() == 5
    assert np.array_equal(i2, verification_pairs(labels, max_impostor=5, seed=3)[0])


def test_perfect_separation_gives_eer_zero():
    emb, labels = clusters(6, 5, spread=0.0)
    result = evaluate_embeddings(emb, labels, "l2")
    assert result.eer == 0.0 and result.auc == 1.0 and result.rank1 == 1.0
    assert result.dprime > 3


def test_identical_distributions_give_eer_half():
    rng = np.random.default_rng(0)
    fpr = np.linspace(0, 1, 101)
    eer, _ = equal_error_rate(fpr, fpr.copy(), -np.linspace(0, 1, 101))
    assert eer == pytest.approx(0.5)
    # random embeddings: genuine and impostor energies from one distribution
    emb = rng.normal(size=(400, 4)).astype(np.float32)
    labels = rng.integers(0, 20, size=400)
    result = evaluate_embeddings(emb, labels, "l2")
    assert result.eer == pytest.approx(0.5, abs=0.03)
    assert result.auc == pytest.approx(0.5, abs=0.03)


def test_auc_matches_sklearn_and_eer_is_where_rates_cross():
    emb, labels = clusters(8, 6, spread=6.0)
    result = evaluate_embeddings(emb, labels, "l1")
    energies = np.concatenate([result.genuine_energies, result.impostor_energies])
    same = np.r_[np.ones(len(result.genuine_energies)), np.zeros(len(result.impostor_energies))]
    assert result.auc == pytest.approx(roc_auc_score(same, -energies), abs=1e-6)
    far = (result.impostor_energies <= result.eer_threshold).mean()
    frr = (result.genuine_energies > result.eer_threshold).mean()
    assert 0 < result.eer < 0.5
    assert far == pytest.approx(result.eer, abs=0.03) and frr == pytest.approx(result.eer,
                                                                                abs=0.03)
    g, i = result.genuine_energies, result.impostor_energies
    expected = abs(g.mean() - i.mean()) / np.sqrt((g.var() + i.var()) / 2)
    assert result.dprime == pytest.approx(expected, rel=1e-5)


def test_tar_at_far_is_none_with_too_few_impostors():
    emb, labels = clusters(4, 5, spread=3.0)  # 150 impostor pairs
    result = evaluate_embeddings(emb, labels, "l2")
    assert result.tar_at_far[0.1] is not None
    assert result.tar_at_far[0.01] is None and result.tar_at_far[0.001] is None
    assert any("FAR=0.01" in note for note in result.notes)


def test_threshold_comes_from_validation_identities():
    """1-D embeddings with known energies: validation genuine pairs at E = 1 and impostors at
    E >= 9 put the best validation threshold at exactly 1; test genuine pairs at E = 2 and
    impostors at E >= 18 put the test EER threshold at exactly 2. The run must use 1 (and then
    reject every test genuine pair: balanced accuracy 0.5), and say where it came from."""
    val = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
    val_labels = np.array([0, 0, 1, 1])
    test = np.array([[0.0], [2.0], [20.0], [22.0]], dtype=np.float32)
    test_labels = np.array([2, 2, 3, 3])
    result = evaluate_embeddings(test, test_labels, "l2", val, val_labels)
    assert result.threshold == pytest.approx(1.0)
    assert result.test_accuracy == pytest.approx(0.5)
    assert result.threshold_source == "validation identities" and not result.threshold_from_test
    alone = evaluate_embeddings(test, test_labels, "l2")
    assert alone.threshold == pytest.approx(2.0)
    assert alone.test_accuracy == pytest.approx(1.0)
    assert alone.threshold_from_test and "test" in alone.summary()["threshold_source"]
    one_person = evaluate_embeddings(test, test_labels, "l2", val[:2], val_labels[:2])
    assert one_person.threshold == pytest.approx(2.0) and one_person.threshold_from_test


def test_rank1_leave_one_out():
    emb = np.array([[0.0], [0.1], [5.0], [5.1], [0.2]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 1])  # the last image sits among identity 0
    result = evaluate_embeddings(emb, labels, "l2")
    assert result.rank1 == pytest.approx(4 / 5)


def test_baselines_shapes_and_fisherfaces_separate_blobs():
    rng = np.random.default_rng(0)
    train, train_labels = clusters(6, 6, spread=1.0, dim=30, seed=3)
    images = torch.as_tensor(train).reshape(-1, 1, 5, 6)
    assert baseline_embeddings("pixels", images, train_labels, images).shape == (36, 30)
    assert baseline_embeddings("eigenfaces", images, train_labels, images).shape == (36, 30)
    fisher = baseline_embeddings("fisherfaces", images, train_labels, images)
    assert fisher.shape == (36, 5)
    assert evaluate_embeddings(fisher, train_labels, "l2").eer < 0.05
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_embeddings("deepface", images, train_labels, rng.normal(size=(2, 30)))


def test_embed_batches_and_keeps_training_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(4))
    model.train()
    out = embed(model, torch.rand(10, 1, 2, 2), batch_size=3)
    assert out.shape == (10, 4) and out.dtype == np.float32 and model.training
