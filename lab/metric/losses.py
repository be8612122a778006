"""The losses: the lesson of this lab, written to be read next to the papers.

Convention: a boolean ``same`` (True = genuine pair, same identity; False = impostor pair) and an
energy E = distance between two embeddings (:mod:`lab.metric.energy`). Chopra 2005 writes Y = 0 for
genuine and Y = 1 for impostor; many tutorials flip it. Here no label arithmetic appears at all:
each loss is a genuine term L_G(E) plus an impostor term L_I(E), the H(E_G, E_I) = L_G + L_I of
the paper's conditions (see :mod:`lab.metric.geometry`).

Each loss is one :class:`LossSpec` in :data:`LOSSES` (the end of this file): its formula and
citation, what its margin is, its defaults, how the criterion calls it and, for a pair loss, its
terms and their slopes for the geometry page. Every other place (RunConfig's choices, the
field table, the criterion, the geometry page, the Train page, the CLI, the benchmarks) reads
that registry; docs/ARCHITECTURE.md, "Add a loss", is the recipe.

Every batch loss has one call shape, ``loss(embeddings, labels, *, ..., indices=None)``, where
``indices`` are mined pairs or triplets (:mod:`lab.metric.mining`, all of them by default): index
tuples, or the masked energies of :func:`lab.metric.mining.mine_batch` that training uses (fixed
shapes: a mean is a masked sum over a count, so no step waits for a GPU). It returns a
:class:`LossOutput` with the numbers a live dashboard plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lab.metric.energy import energy_bound, pairwise_energy, safe_sqrt
from lab.metric.layout import layout_of
from lab.metric.mining import MinedPairs, MinedTriplets, mine_batch

Energy = Any  # a torch.Tensor, a numpy array or a float: the partial terms accept all three

CHOPRA_RATE = 2.77  # the constant of Chopra et al. 2005, eq. 7: L_I = 2Q exp(-2.77 E / Q)


@dataclass(frozen=True)
class LossOutput:
    """One batch: the loss to minimise, and what the dashboard plots.

    active_fraction: share of mined pairs/triplets with a non-zero loss (for classifier losses:
    share of images whose margin-adjusted logit does not yet rank the true identity first).
    mean_genuine / mean_impostor: mean energy of genuine / impostor pairs (nan when none).
    """

    loss: torch.Tensor
    active_fraction: torch.Tensor
    mean_genuine: torch.Tensor
    mean_impostor: torch.Tensor


# --- partial loss terms: L_G(E) and L_I(E), for torch tensors, numpy arrays and floats ---------

def _relu(x: Energy) -> Energy:
    return torch.clamp(x, min=0.0) if isinstance(x, torch.Tensor) else np.maximum(x, 0.0)


def _exp(x: Energy) -> Energy:
    return torch.exp(x) if isinstance(x, torch.Tensor) else np.exp(x)


def contrastive_genuine(E: Energy) -> Energy:
    """Hadsell 2006 genuine term: L_G = ½ E² (pull same-identity pairs together)."""
    return 0.5 * E**2


def contrastive_impostor(E: Energy, margin: float) -> Energy:
    """Hadsell 2006 impostor term: L_I = ½ max(0, m − E)² (push apart only until m)."""
    return 0.5 * _relu(margin - E) ** 2


def chopra_genuine(E: Energy, q: float) -> Energy:
    """Chopra 2005 genuine term: L_G = (2/Q) E², Q the upper bound of the energy."""
    return (2.0 / q) * E**2


def chopra_impostor(E: Energy, q: float) -> Energy:
    """Chopra 2005 impostor term: L_I = 2Q exp(−2.77 E / Q), decreasing, never exactly zero."""
    return 2.0 * q * _exp(-CHOPRA_RATE * E / q)


def naive_genuine(E: Energy) -> Energy:
    """Margin-free genuine term: L_G = E."""
    return E


def naive_impostor(E: Energy) -> Energy:
    """Margin-free impostor term: L_I = −E, unbounded below: the reason a margin exists."""
    return -E


# --- helpers shared by the batch losses ------------------------------------------------------

def _masked_sum(values: torch.Tensor, mask: torch.Tensor | None):
    """(sum, count) of the values the mask keeps (all when None); a masked sum, not a
    gather, so its shape never depends on the data."""
    if mask is None:
        return values.sum(), values.numel()
    return torch.where(mask, values, 0.0).sum(), mask.sum()


def _mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the kept values, NaN when none is kept (0 / 0), without leaving the device."""
    total, count = _masked_sum(values.detach(), mask)
    return total / count


def _pair_energies(embeddings: torch.Tensor, labels: torch.Tensor, energy: str,
                   indices) -> MinedPairs:
    """Mined pairs as energies and masks: as given (mine_batch), from index tuples, or all
    pairs i < j (None) with genuine/impostor masks computed on the labels' device."""
    if isinstance(indices, MinedPairs):
        return indices
    if indices is None:
        n = labels.shape[0]
        first, second = torch.triu_indices(n, n, offset=1, device=embeddings.device)
        e = pairwise_energy(embeddings[first], embeddings[second], energy)
        genuine = labels[first] == labels[second]
        return MinedPairs(e, e, genuine, ~genuine)
    anchor_g, other_g, anchor_i, other_i = indices
    return MinedPairs(pairwise_energy(embeddings[anchor_g], embeddings[other_g], energy),
                      pairwise_energy(embeddings[anchor_i], embeddings[other_i], energy))


def _output(terms, embeddings: torch.Tensor, genuine, impostor) -> LossOutput:
    """Mean over the mined items of ``terms`` [(losses, mask), ...]; with nothing mined the
    loss is a differentiable zero. ``genuine``/``impostor``: (energies, mask) to average."""
    total = count = active = 0
    for losses, mask in terms:
        part, n = _masked_sum(losses, mask)
        nonzero, _ = _masked_sum((losses.detach() != 0).to(embeddings.dtype), mask)
        total, count, active = total + part, count + n, active + nonzero
    if isinstance(count, torch.Tensor):
        count = count.clamp(min=1)
    else:
        count = max(count, 1)
    return LossOutput(total / count, active / count, _mean(*genuine), _mean(*impostor))


def _pair_output(mined: MinedPairs, genuine_losses: torch.Tensor,
                 impostor_losses: torch.Tensor, embeddings: torch.Tensor) -> LossOutput:
    return _output([(genuine_losses, mined.genuine_mask), (impostor_losses, mined.impostor_mask)],
                   embeddings, (mined.genuine, mined.genuine_mask),
                   (mined.impostor, mined.impostor_mask))


# --- pair and triplet losses ----------------------------------------------------------------

def pair_batch_loss(embeddings: torch.Tensor, labels: torch.Tensor, genuine: Callable,
                    impostor: Callable, *, energy: str, indices=None) -> LossOutput:
    """A pair loss from its two terms: the mean over the mined pairs of L_G(E) (genuine) or
    L_I(E) (impostor). Every pair loss below is this with its own terms; a new pair loss is
    too (docs/ARCHITECTURE.md, "Add a loss")."""
    pairs = _pair_energies(embeddings, labels, energy, indices)
    return _pair_output(pairs, genuine(pairs.genuine), impostor(pairs.impostor), embeddings)


def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l2",
                     margin: float = 1.0, indices=None) -> LossOutput:
    """Contrastive loss, Hadsell, Chopra & LeCun (2006), "Dimensionality Reduction by Learning
    an Invariant Mapping".

        L = mean over mined pairs of  ½ E²  (genuine)  or  ½ max(0, m − E)²  (impostor)

    Why the margin: impostors farther than m cost nothing, so the loss cannot be lowered by
    blowing the embedding up; it has to cluster genuine pairs instead.
    """
    return pair_batch_loss(embeddings, labels, contrastive_genuine,
                           lambda E: contrastive_impostor(E, margin), energy=energy,
                           indices=indices)


def chopra_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l1",
                q: float | None = None, indices=None) -> LossOutput:
    """Energy loss of Chopra, Hadsell & LeCun (2005), "Learning a Similarity Metric
    Discriminatively, with Application to Face Verification", eq. 7.

        L = mean over mined pairs of  (2/Q) E²  (genuine)  or  2Q exp(−2.77 E / Q)  (impostor)

    Q is the upper bound of the energy; ``q=None`` takes the bound for embeddings of norm <= 1
    (:func:`lab.metric.energy.energy_bound`: 2√D for L1, 2 for L2). The paper uses the L1 energy:
    its gradient does not vanish at E = 0, so impostors sitting on top of each other still move.
    """
    q = energy_bound(energy, embeddings.shape[1]) if q is None else q
    return pair_batch_loss(embeddings, labels, lambda E: chopra_genuine(E, q),
                           lambda E: chopra_impostor(E, q), energy=energy, indices=indices)


def naive_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l2",
               indices=None) -> LossOutput:
    """The margin-free loss E_genuine − E_impostor (a counter-example, not a paper's loss).

        L = mean over mined pairs of  E  (genuine)  or  −E  (impostor)

    Without normalisation it is unbounded below: scaling every embedding up raises impostor
    energies faster than genuine ones and lowers the loss for ever (it does not collapse: a
    collapse, all energies 0, gives L = 0, which any spread beats). With L2-normalised
    embeddings the energy is bounded and the minimum is E_G = 0, E_I = E_max, as for Chopra's
    loss (lab.metric.geometry has the derivation). The trainer stops it when the loss stops being a
    finite number.
    """
    return pair_batch_loss(embeddings, labels, naive_genuine, naive_impostor, energy=energy,
                           indices=indices)


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "sqeuclidean",
                 margin: float = 0.2, indices=None) -> LossOutput:
    """Triplet loss, Schroff, Kalenichenko & Philbin (2015), "FaceNet".

        L = mean over mined triplets of  max(0, E(a,p) − E(a,n) + α)

    FaceNet uses the squared L2 energy on L2-normalised embeddings: an anchor's positive must be
    closer than its negative by α, relative to each other rather than to a fixed radius.
    """
    triplets = _triplet_energies(embeddings, labels, energy, indices)
    e_ap, e_an, mask = triplets.positive, triplets.negative, triplets.mask
    return _output([(_relu(e_ap - e_an + margin), mask)], embeddings, (e_ap, mask), (e_an, mask))


def _triplet_energies(embeddings: torch.Tensor, labels: torch.Tensor, energy: str,
                      indices) -> MinedTriplets:
    """Mined triplets as energies: as given (mine_batch), from an index tuple, or all of them
    (None: the batch layout is computed from the labels on the host)."""
    if isinstance(indices, MinedTriplets):
        return indices
    if indices is None:
        return mine_batch("all", "triplet", embeddings, energy, layout_of(labels, labels.device),
                          0.0)
    anchor, positive, negative = indices
    return MinedTriplets(pairwise_energy(embeddings[anchor], embeddings[positive], energy),
                         pairwise_energy(embeddings[anchor], embeddings[negative], energy))


# --- classifier losses (a head of weights W [C, D], one row per training identity) ----------

def _classifier_output(logits: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor,
                       energy: str) -> LossOutput:
    """Cross-entropy of the logits, plus pair statistics of the batch in ``energy``."""
    loss = F.cross_entropy(logits, labels)
    with torch.no_grad():
        active = (logits.argmax(dim=1) != labels).to(embeddings.dtype).mean()
        pairs = _pair_energies(embeddings.detach(), labels, energy, None)
    return LossOutput(loss, active, _mean(pairs.genuine, pairs.genuine_mask),
                      _mean(pairs.impostor, pairs.impostor_mask))


def _cosines(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """cos θ_j between each embedding and each identity's weight vector: [N, C]."""
    return F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T


def arcface_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, weight: torch.Tensor,
                 scale: float = 16.0, margin: float = 0.5, energy: str = "cosine") -> LossOutput:
    """ArcFace, Deng, Guo, Xue & Zafeiriou (2019), additive angular margin (m in radians).

        L = −log  e^{s cos(θ_y + m)} / (e^{s cos(θ_y + m)} + Σ_{j≠y} e^{s cos θ_j})

    θ_j is the angle between the embedding and identity j's weight vector. Past θ_y = π − m,
    cos(θ_y + m) would rise again, so (as in the authors' code) cos θ_y − m sin m is used there.
    ``energy`` only chooses the energy of the reported genuine/impostor means.
    """
    cosine = _cosines(embeddings, weight)
    cos_target = cosine.gather(1, labels[:, None]).squeeze(1)
    cos_target = cos_target.clamp(-1.0, 1.0)
    sin_target = safe_sqrt(1.0 - cos_target**2)  # sin θ_y >= 0 for θ_y in [0, π]
    cos_theta_plus_m = cos_target * math.cos(margin) - sin_target * math.sin(margin)
    # θ_y <= π − m  <=>  cos θ_y >= cos(π − m) = −cos m
    with_margin = torch.where(cos_target >= -math.cos(margin), cos_theta_plus_m,
                              cos_target - margin * math.sin(margin))
    logits = scale * cosine.scatter(1, labels[:, None], with_margin[:, None])
    return _classifier_output(logits, embeddings, labels, energy)


def cosface_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, weight: torch.Tensor,
                 scale: float = 16.0, margin: float = 0.35, energy: str = "cosine") -> LossOutput:
    """CosFace, Wang et al. (2018), large margin cosine loss (additive cosine margin m).

        L = −log  e^{s (cos θ_y − m)} / (e^{s (cos θ_y − m)} + Σ_{j≠y} e^{s cos θ_j})
    """
    cosine = _cosines(embeddings, weight)
    logits = scale * (cosine - margin * F.one_hot(labels, cosine.shape[1]).to(cosine.dtype))
    return _classifier_output(logits, embeddings, labels, energy)


def softmax_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, weight: torch.Tensor,
                 bias: torch.Tensor, energy: str = "cosine") -> LossOutput:
    """Softmax cross-entropy on a linear classifier head: the DeepFace-style baseline
    (Taigman, Yang, Ranzato & Wolf 2014).

        L = −log  e^{w_y·x + b_y} / Σ_j e^{w_j·x + b_j}

    The embedding x is the penultimate layer: the classifier only needs the identities to be
    linearly separable, not close together, which is what the open-world lesson measures.
    """
    return _classifier_output(embeddings @ weight.T + bias, embeddings, labels, energy)


# --- the terms of the pair losses, with their slopes: what the geometry page draws -----------

Curve = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairLossTerms:
    """L_G, L_I and their derivatives for one pair loss with its parameters fixed.

    minimisers(e_max): the analytic minimisers of H in the box [0, e_max]^2 (the end points when
    they form a segment). ``impostor_floor``: inf of L_I over [0, ∞) (−∞ when unbounded
    below); ``floor_reached_at``: the smallest E_I where L_I equals that floor, None when it is
    only approached as E_I → ∞. Together they decide condition 2 for unbounded energies
    (:mod:`lab.metric.geometry`).
    """

    name: str
    genuine: Curve
    impostor: Curve
    genuine_slope: Curve
    impostor_slope: Curve
    minimisers: Callable[[float], list[tuple[float, float]]]
    impostor_floor: float = 0.0
    floor_reached_at: float | None = None


def _array(E) -> np.ndarray:
    return np.asarray(E, dtype=float)


def contrastive_terms(*, loss_margin: float = 1.0, q: float = 2.0) -> PairLossTerms:
    """½E² and ½max(0, m_c − E)²: slopes E and −max(0, m_c − E); H = 0 exactly on the segment
    E_G = 0, E_I >= m_c."""
    def minimisers(e_max: float) -> list[tuple[float, float]]:
        if loss_margin >= e_max:
            return [(0.0, e_max)]
        return [(0.0, max(loss_margin, 0.0)), (0.0, e_max)]

    return PairLossTerms(
        name="contrastive",
        genuine=lambda E: contrastive_genuine(_array(E)),
        impostor=lambda E: contrastive_impostor(_array(E), loss_margin),
        genuine_slope=lambda E: _array(E),
        impostor_slope=lambda E: -np.maximum(loss_margin - _array(E), 0.0),
        minimisers=minimisers, impostor_floor=0.0, floor_reached_at=max(loss_margin, 0.0))


def chopra_terms(*, loss_margin: float = 1.0, q: float = 2.0) -> PairLossTerms:
    """(2/Q)E² and 2Q e^{−2.77 E/Q}: slopes 4E/Q and −5.54 e^{−2.77 E/Q}. L_G grows and L_I
    strictly decreases, so the minimum in a box is the corner E_G = 0, E_I = E_max; L_I > 0 for
    every finite E, so its floor 0 is never reached."""
    if not q > 0:
        raise ValueError(f"Chopra's Q must be > 0, got {q}")
    return PairLossTerms(
        name="chopra",
        genuine=lambda E: chopra_genuine(_array(E), q),
        impostor=lambda E: chopra_impostor(_array(E), q),
        genuine_slope=lambda E: 4.0 / q * _array(E),
        impostor_slope=lambda E: -2.0 * CHOPRA_RATE * np.exp(-CHOPRA_RATE * _array(E) / q),
        minimisers=lambda e_max: [(0.0, e_max)], impostor_floor=0.0, floor_reached_at=None)


def naive_terms(*, loss_margin: float = 1.0, q: float = 2.0) -> PairLossTerms:
    """E and −E: slopes 1 and −1. In a box H = E_G − E_I is smallest at the corner (0, E_max),
    like Chopra's; unbounded, −E → −∞ has no minimum."""
    return PairLossTerms(
        name="naive",
        genuine=lambda E: naive_genuine(_array(E)),
        impostor=lambda E: naive_impostor(_array(E)),
        genuine_slope=lambda E: np.ones_like(_array(E)),
        impostor_slope=lambda E: -np.ones_like(_array(E)),
        minimisers=lambda e_max: [(0.0, e_max)], impostor_floor=-np.inf, floor_reached_at=None)


def chopra_q(q: float | None, energy: str, embedding_dim: int) -> float:
    """Q of the Chopra loss: ``q`` when set, else the energy's bound.

    Q must be an upper bound of the energy (the paper's eq. 7 assumes E <= Q). With
    L2-normalised embeddings every embedding has norm 1, so Q = 2√D (L1), 2 (L2), 4 (squared
    L2) or 2 (cosine) bounds the energy exactly (:func:`lab.metric.energy.energy_bound`). Without
    normalisation nothing bounds the energy; the same value is then used as the default, which
    is the bound for embeddings inside the unit ball; larger energies still train (L_I just
    flattens), and ``chopra_q`` overrides it.
    """
    if q is not None:
        if not q > 0:
            raise ValueError(f"chopra_q must be > 0 (an upper bound of the energy), got {q}")
        return float(q)
    return energy_bound(energy, embedding_dim)
