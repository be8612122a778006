import inspect
import math
import re

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers
from pytorch_metric_learning.distances import LpDistance

from lab.core.config import RunConfig
from lab.learn.criterion import build_criterion, chopra_q_for
from lab.metric.loss_specs import LOSSES
from lab.metric.losses import (
    LossOutput,
    arcface_loss,
    chopra_genuine,
    chopra_impostor,
    chopra_loss,
    contrastive_genuine,
    contrastive_impostor,
    contrastive_loss,
    cosface_loss,
    naive_genuine,
    naive_impostor,
    naive_loss,
    softmax_loss,
    triplet_loss,
)
from lab.metric.mining import all_pairs, all_triplets, random_pairs


def _batch(seed=0, n_identities=3, per_identity=3, dim=5, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_identities).repeat_interleave(per_identity)
    embeddings = torch.randn(labels.shape[0], dim, generator=generator, dtype=dtype)
    return embeddings, labels


# --- tiny hand-computed cases: points on a line, energies read off by eye --------------------
# embeddings 0, 1 (identity 0) and 3 (identity 1): genuine (0,1) E=1; impostors (0,2) E=3,
# (1,2) E=2.
LINE = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
LINE_LABELS = torch.tensor([0, 0, 1])


def test_partial_terms_accept_torch_numpy_and_floats():
    def float(value):  # noqa: A001 - a float(), for floats, numpy arrays and tensors alike
        return np.asarray(value, dtype=np.float64).reshape(-1)[0].item()

    for E in (2.0, np.array([2.0]), torch.tensor([2.0])):
        assert float(contrastive_genuine(E)) == 2.0
        assert float(contrastive_impostor(E, 3.0)) == 0.5
        assert float(contrastive_impostor(E, 1.0)) == 0.0
        assert float(chopra_genuine(E, 4.0)) == 2.0
        assert float(chopra_impostor(E, 4.0)) == pytest.approx(8 * math.exp(-2.77 / 2))
        assert float(naive_genuine(E)) == 2.0 and float(naive_impostor(E)) == -2.0
    assert isinstance(contrastive_impostor(np.array([0.5, 2.0]), 1.0), np.ndarray)


def test_contrastive_by_hand():
    out = contrastive_loss(LINE, LINE_LABELS, energy="l1", margin=2.5)
    # genuine ½·1² = 0.5; impostors ½·max(0, 2.5-3)² = 0 and ½·0.5² = 0.125; mean over 3 pairs
    assert out.loss.item() == pytest.approx((0.5 + 0.0 + 0.125) / 3)
    assert out.active_fraction.item() == pytest.approx(2 / 3)
    assert out.mean_genuine.item() == pytest.approx(1.0)
    assert out.mean_impostor.item() == pytest.approx(2.5)


def test_chopra_by_hand():
    q = 4.0
    out = chopra_loss(LINE, LINE_LABELS, energy="l1", q=q)
    expected = (2 / q * 1.0 + 2 * q * math.exp(-2.77 * 3 / q) + 2 * q * math.exp(-2.77 * 2 / q))
    assert out.loss.item() == pytest.approx(expected / 3)
    assert out.active_fraction.item() == 1.0  # the exponential never reaches zero
    # default Q: bound of the L1 energy for unit vectors in D = 1 dimension = 2
    default = chopra_loss(LINE, LINE_LABELS, energy="l1")
    assert default.loss.item() == pytest.approx(chopra_loss(LINE, LINE_LABELS, q=2.0).loss.item())


def test_naive_by_hand_and_unbounded():
    out = naive_loss(LINE, LINE_LABELS, energy="l1")
    assert out.loss.item() == pytest.approx((1 - 3 - 2) / 3)
    assert out.active_fraction.item() == 1.0
    scaled = naive_loss(10 * LINE, LINE_LABELS, energy="l1")
    assert scaled.loss.item() == pytest.approx(10 * out.loss.item())  # blowing up pays


def test_triplet_by_hand():
    # triplets: (0,1,2) E_ap=1 E_an=3; (1,0,2) E_ap=1 E_an=2; with α=1.5: 0 and 0.5
    out = triplet_loss(LINE, LINE_LABELS, energy="l1", margin=1.5)
    assert out.loss.item() == pytest.approx(0.25)
    assert out.active_fraction.item() == pytest.approx(0.5)
    assert out.mean_genuine.item() == pytest.approx(1.0)
    assert out.mean_impostor.item() == pytest.approx(2.5)
    squared = triplet_loss(LINE, LINE_LABELS, margin=0.5)  # E_ap=1, E_an=9 and 4: all easy
    assert squared.loss.item() == 0.0 and squared.active_fraction.item() == 0.0


def test_classifier_losses_by_hand():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # both embeddings sit on their identity's weight: θ_y = 0, the other angle is π/2
    s, m = 4.0, 0.5
    target = s * math.cos(m)
    expected = -math.log(math.exp(target) / (math.exp(target) + math.exp(0.0)))
    out = arcface_loss(embeddings, labels, weight=weight, scale=s, margin=m)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    target = s * (1 - 0.35)
    expected = -math.log(math.exp(target) / (math.exp(target) + 1.0))
    out = cosface_loss(embeddings, labels, weight=weight, scale=s, margin=0.35)
    assert out.loss.item() == pytest.approx(expected)
    bias = torch.tensor([0.0, 1.0], dtype=torch.float64)
    out = softmax_loss(embeddings, labels, weight=weight, bias=bias)
    first = -math.log(math.exp(1) / (math.exp(1) + math.exp(1)))
    second = -math.log(math.exp(3) / (math.exp(0) + math.exp(3)))
    assert out.loss.item() == pytest.approx((first + second) / 2)
    assert out.active_fraction.item() == pytest.approx(0.0)  # argmax ties go to class 0 = right


def test_empty_mining_gives_a_differentiable_zero():
    embeddings, labels = _batch()
    embeddings.requires_grad_(True)
    empty = torch.zeros(0, dtype=torch.long)
    out = contrastive_loss(embeddings, labels, indices=(empty,) * 4)
    out.loss.backward()
    assert out.loss.item() == 0.0 and out.active_fraction.item() == 0.0
    assert math.isnan(out.mean_genuine.item()) and math.isnan(out.mean_impostor.item())
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


# --- against pytorch-metric-learning 2.9 ------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("margin", [0.5, 3.0])
def test_contrastive_matches_pml(seed, margin):
    """PML's ContrastiveLoss(pos_margin=0, neg_margin=m) on the L2 energy gives per-pair
    max(0, E) and max(0, m − E) (no ½, no square); squaring and halving them, then averaging
    over all pairs, must give our loss on the same index tuple."""
    embeddings, labels = _batch(seed)
    indices = all_pairs(labels)
    pml = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=margin,
                                     distance=LpDistance(normalize_embeddings=False, p=2),
                                     reducer=reducers.DoNothingReducer())
    per_pair = pml(embeddings, labels, indices)
    genuine, impostor = per_pair["pos_loss"]["losses"], per_pair["neg_loss"]["losses"]
    expected = (0.5 * genuine**2).sum() + (0.5 * impostor**2).sum()
    expected = expected / (genuine.numel() + impostor.numel())
    ours = contrastive_loss(embeddings, labels, energy="l2", margin=margin, indices=indices)
    assert ours.loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_contrastive_hinge_matches_pml_with_mean_reducer():
    """With power 1 the comparison is direct: PML reduces genuine and impostor pairs each by
    their mean (MeanReducer) and adds the two; do the same with our partial terms."""
    embeddings, labels = _batch(2)
    pml = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.5,
                                     distance=LpDistance(normalize_embeddings=False),
                                     reducer=reducers.MeanReducer())
    indices = all_pairs(labels)
    ours_g = contrastive_loss(embeddings, labels, margin=1.5, indices=indices[:2] + (
        torch.zeros(0, dtype=torch.long),) * 2)
    assert ours_g.mean_genuine.item() > 0
    anchor_i, other_i = indices[2], indices[3]
    e_i = (embeddings[anchor_i] - embeddings[other_i]).norm(dim=1)
    expected = ours_g.mean_genuine + torch.relu(1.5 - e_i).mean()
    assert pml(embeddings, labels, indices).item() == pytest.approx(expected.item(), rel=1e-9)


@pytest.mark.parametrize("energy,power", [("sqeuclidean", 2), ("l2", 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_triplet_matches_pml(energy, power, seed):
    embeddings, labels = _batch(seed)
    indices = all_triplets(labels)
    pml = pml_losses.TripletMarginLoss(
        margin=0.7, distance=LpDistance(normalize_embeddings=False, power=power),
        reducer=reducers.MeanReducer())
    ours = triplet_loss(embeddings, labels, energy=energy, margin=0.7, indices=indices)
    assert ours.loss.item() == pytest.approx(pml(embeddings, labels, indices).item(), rel=1e-9)
    assert ours.loss.item() == pytest.approx(triplet_loss(embeddings, labels, energy=energy,
                                                          margin=0.7).loss.item())


@pytest.mark.parametrize("seed", [0, 1])
def test_arcface_and_cosface_match_pml(seed):
    embeddings, labels = _batch(seed, n_identities=4, dim=6)
    generator = torch.Generator().manual_seed(10 + seed)
    weight = torch.randn(4, 6, generator=generator, dtype=torch.float64)  # [C, D]
    margin_radians, scale = 0.3, 8.0
    pml = pml_losses.ArcFaceLoss(num_classes=4, embedding_size=6,
                                 margin=math.degrees(margin_radians), scale=scale)
    pml.W.data = weight.T.clone()  # PML stores [D, C]
    ours = arcface_loss(embeddings, labels, weight=weight, scale=scale, margin=margin_radians)
    assert ours.loss.item() == pytest.approx(pml(embeddings, labels).item(), rel=1e-5)
    pml = pml_losses.CosFaceLoss(num_classes=4, embedding_size=6, margin=0.35, scale=scale)
    pml.W.data = weight.T.clone()
    ours = cosface_loss(embeddings, labels, weight=weight, scale=scale, margin=0.35)
    assert ours.loss.item() == pytest.approx(pml(embeddings, labels).item(), rel=1e-6)


def test_arcface_past_pi_minus_m_stays_monotonic():
    """An embedding opposite its identity (θ_y = π) takes the cos θ − m sin m branch."""
    embeddings = torch.tensor([[-1.0, 0.0]], dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    pml = pml_losses.ArcFaceLoss(num_classes=2, embedding_size=2, margin=math.degrees(0.5),
                                 scale=4.0)
    pml.W.data = weight.T.clone()
    ours = arcface_loss(embeddings, torch.tensor([0]), weight=weight, scale=4.0, margin=0.5)
    assert ours.loss.item() == pytest.approx(pml(embeddings, torch.tensor([0])).item(), rel=1e-5)


# --- registry and criterion ------------------------------------------------------------------

def test_registry_is_complete_and_readable():
    from lab.core.config import LOSSES as CONFIG_LOSSES
    from lab.core.config import RunConfig as Config

    assert set(LOSSES) == set(CONFIG_LOSSES)
    fields = set(Config.__dataclass_fields__)
    for name, spec in LOSSES.items():
        assert spec.name == name and spec.kind in ("pair", "triplet", "classifier")
        assert set(spec.params) <= fields and set(spec.param_help) == set(spec.params)
        assert spec.latex and spec.source and spec.title
        # the function's docstring cites the paper the registry names (its first author)
        surname = re.search(r"[A-Z]\. ([A-Z][A-Za-z]+)", spec.source).group(1)
        assert spec.function.__doc__ and surname in spec.function.__doc__, (name, surname)
        assert inspect.signature(spec.function).parameters, name


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("miner", ["all", "random", "semihard", "batchhard"])
def test_criterion_runs_every_loss_and_miner(loss, miner):
    torch.manual_seed(0)
    config = RunConfig(loss=loss, miner=miner, embedding_dim=5, margin=LOSSES[loss].default_margin,
                       energy=LOSSES[loss].default_energy)
    criterion = build_criterion(config, num_classes=3)
    embeddings, labels = _batch(dtype=torch.float32)
    embeddings = torch.nn.functional.normalize(embeddings, dim=1).requires_grad_(True)
    out = criterion(embeddings, labels, torch.Generator().manual_seed(0))
    assert isinstance(out, LossOutput)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(embeddings.grad).all()
    assert 0.0 <= out.active_fraction.item() <= 1.0
    has_head = LOSSES[loss].kind == "classifier"
    assert (len(list(criterion.parameters())) > 0) == has_head


def test_criterion_head_is_seeded_and_checks_labels():
    config = RunConfig(loss="arcface", embedding_dim=4)
    torch.manual_seed(5)
    first = build_criterion(config, 3).weight.detach().clone()
    torch.manual_seed(5)
    assert torch.equal(first, build_criterion(config, 3).weight.detach())
    with pytest.raises(ValueError, match="labels must lie"):
        build_criterion(config, 3)(torch.randn(2, 4), torch.tensor([0, 3]))


def test_criterion_pair_loss_uses_config_and_mining():
    embeddings, labels = _batch(dtype=torch.float32)
    config = RunConfig(loss="contrastive", energy="l1", margin=2.0, miner="all",
                       embedding_dim=5)
    out = build_criterion(config, 3)(embeddings, labels)
    direct = contrastive_loss(embeddings, labels, energy="l1", margin=2.0)
    assert out.loss.item() == pytest.approx(direct.loss.item())
    config = config.replace(miner="random")
    out = build_criterion(config, 3)(embeddings, labels, torch.Generator().manual_seed(4))
    indices = random_pairs(labels, torch.Generator().manual_seed(4))
    direct = contrastive_loss(embeddings, labels, energy="l1", margin=2.0, indices=indices)
    assert out.loss.item() == pytest.approx(direct.loss.item())


def test_chopra_q_for():
    config = RunConfig(loss="chopra", energy="l1", embedding_dim=16)
    assert chopra_q_for(config) == pytest.approx(8.0)  # 2 √16
    assert chopra_q_for(config.replace(energy="l2")) == 2.0
    assert chopra_q_for(config.replace(energy="cosine")) == 2.0
    assert chopra_q_for(config.replace(chopra_q=3.5)) == 3.5
    with pytest.raises(ValueError, match="chopra_q"):
        chopra_q_for(config.replace(chopra_q=0.0))
    criterion = build_criterion(config, 3)
    assert criterion.spec.arguments(criterion.config)["q"] == pytest.approx(8.0)


@pytest.mark.parametrize("loss", list(LOSSES))
def test_no_nan_when_embeddings_coincide(loss):
    """A collapsed network (every embedding equal) must still give finite gradients."""
    torch.manual_seed(0)
    config = RunConfig(loss=loss, embedding_dim=4, energy="l2", miner="all")
    criterion = build_criterion(config, num_classes=2)
    embeddings = torch.ones(6, 4, requires_grad=True)
    out = criterion(embeddings, torch.tensor([0, 0, 0, 1, 1, 1]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize("loss", ["contrastive", "chopra", "triplet", "arcface"])
def test_descending_the_loss_separates_identities(loss):
    """A few optimiser steps on free embeddings lower the loss: gradients point the right way."""
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(4)
    config = RunConfig(loss=loss, embedding_dim=8, energy=LOSSES[loss].default_energy,
                       margin=LOSSES[loss].default_margin, miner="all")
    criterion = build_criterion(config, num_classes=4)
    raw = torch.randn(16, 8, requires_grad=True)
    optimiser = torch.optim.Adam([raw, *criterion.parameters()], lr=0.1)
    first = None
    for _ in range(25):
        out = criterion(torch.nn.functional.normalize(raw, dim=1), labels)
        first = out.loss.item() if first is None else first
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
    assert out.loss.item() < 0.5 * first
    assert out.mean_genuine.item() < out.mean_impostor.item()
