"""The losses: the lesson of this lab, written to be read next to the papers.

Convention: a boolean ``same`` (True = genuine pair, same identity; False = impostor pair) and an
energy E = distance between two embeddings (:mod:`lab.energy`). Chopra 2005 writes Y = 0 for
genuine and Y = 1 for impostor; many tutorials flip it. Here no label arithmetic appears at all:
each loss is a genuine term L_G(E) plus an impostor term L_I(E), the H(E_G, E_I) = L_G + L_I of
the paper's conditions (see :mod:`lab.geometry`).

Every batch loss has one call shape, ``loss(embeddings, labels, *, ..., indices=None)``, where
``indices`` are mined pairs or triplets (:mod:`lab.mining`, all of them by default): index
tuples, or the masked energies of :func:`lab.mining.mine_batch` that training uses (fixed
shapes: a mean is a masked sum over a count, so no step waits for a GPU). It returns a
:class:`LossOutput` with the numbers a live dashboard plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lab.config import RunConfig
from lab.energy import energy_bound, pairwise_energy, safe_sqrt
from lab.fields import LOSS_DEFAULTS
from lab.layout import LayoutCache, layout_of
from lab.mining import MinedPairs, MinedTriplets, mine_batch

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

def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l2",
                     margin: float = 1.0, indices=None) -> LossOutput:
    """Contrastive loss, Hadsell, Chopra & LeCun (2006), "Dimensionality Reduction by Learning
    an Invariant Mapping".

        L = mean over mined pairs of  ½ E²  (genuine)  or  ½ max(0, m − E)²  (impostor)

    Why the margin: impostors farther than m cost nothing, so the loss cannot be lowered by
    blowing the embedding up; it has to cluster genuine pairs instead.
    """
    pairs = _pair_energies(embeddings, labels, energy, indices)
    return _pair_output(pairs, contrastive_genuine(pairs.genuine),
                        contrastive_impostor(pairs.impostor, margin), embeddings)


def chopra_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l1",
                q: float | None = None, indices=None) -> LossOutput:
    """Energy loss of Chopra, Hadsell & LeCun (2005), "Learning a Similarity Metric
    Discriminatively, with Application to Face Verification", eq. 7.

        L = mean over mined pairs of  (2/Q) E²  (genuine)  or  2Q exp(−2.77 E / Q)  (impostor)

    Q is the upper bound of the energy; ``q=None`` takes the bound for embeddings of norm <= 1
    (:func:`lab.energy.energy_bound`: 2√D for L1, 2 for L2). The paper uses the L1 energy: its
    gradient does not vanish at E = 0, so impostors sitting on top of each other still move.
    """
    q = energy_bound(energy, embeddings.shape[1]) if q is None else q
    pairs = _pair_energies(embeddings, labels, energy, indices)
    return _pair_output(pairs, chopra_genuine(pairs.genuine, q),
                        chopra_impostor(pairs.impostor, q), embeddings)


def naive_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l2",
               indices=None) -> LossOutput:
    """The margin-free loss E_genuine − E_impostor (a counter-example, not a paper's loss).

        L = mean over mined pairs of  E  (genuine)  or  −E  (impostor)

    Without normalisation it is unbounded below: scaling every embedding up raises impostor
    energies faster than genuine ones and lowers the loss for ever (it does not collapse: a
    collapse, all energies 0, gives L = 0, which any spread beats). With L2-normalised
    embeddings the energy is bounded and the minimum is E_G = 0, E_I = E_max, as for Chopra's
    loss (lab.geometry has the derivation). The trainer stops it when the loss stops being a
    finite number.
    """
    pairs = _pair_energies(embeddings, labels, energy, indices)
    return _pair_output(pairs, naive_genuine(pairs.genuine), naive_impostor(pairs.impostor),
                        embeddings)


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


# --- the registry the app and the trainer read --------------------------------------------

@dataclass(frozen=True)
class LossSpec:
    """What the app shows about a loss and which RunConfig fields matter for it.

    default_margin: the loss's margin (contrastive m, triplet α, ArcFace m in radians, CosFace
    m); for losses without one, the margin m the geometry page starts its half-plane from.
    """

    name: str
    title: str
    kind: str  # "pair" | "triplet" | "classifier"
    params: tuple[str, ...]
    param_help: dict[str, str]
    default_energy: str
    default_margin: float
    latex: str
    source: str
    function: Callable[..., LossOutput] = field(compare=False)


_ENERGY_HELP = "Energy E between two embeddings: L1, L2, squared L2 or cosine (1 − cos)."
_MINER_HELP = "Which pairs or triplets of the batch the loss sees: all, random, semi-hard, " \
              "batch-hard."

LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in (
        LossSpec(
            name="contrastive",
            title="Contrastive (Hadsell 2006)",
            kind="pair",
            params=("energy", "margin", "miner"),
            param_help={
                "energy": _ENERGY_HELP,
                "margin": "m: impostor pairs farther apart than m no longer cost anything.",
                "miner": _MINER_HELP,
            },
            default_energy=LOSS_DEFAULTS["contrastive"]["energy"],
            default_margin=LOSS_DEFAULTS["contrastive"]["margin"],
            latex=r"L = \begin{cases} \tfrac12 E^2 & \text{genuine} \\ "
                  r"\tfrac12 \max(0,\, m - E)^2 & \text{impostor} \end{cases}",
            source="R. Hadsell, S. Chopra, Y. LeCun. Dimensionality Reduction by Learning an "
                   "Invariant Mapping. CVPR 2006.",
            function=contrastive_loss,
        ),
        LossSpec(
            name="chopra",
            title="Energy loss (Chopra 2005)",
            kind="pair",
            params=("energy", "chopra_q", "miner"),
            param_help={
                "energy": _ENERGY_HELP + " The paper uses L1.",
                "chopra_q": "Q: upper bound of the energy; empty = the bound for unit-norm "
                            "embeddings (2√D for L1, 2 for L2, 4 for squared L2, 2 for cosine).",
                "miner": _MINER_HELP,
            },
            default_energy=LOSS_DEFAULTS["chopra"]["energy"],
            default_margin=LOSS_DEFAULTS["chopra"]["margin"],
            latex=r"L_G = \frac{2}{Q} E^2, \qquad L_I = 2Q\, e^{-2.77\, E / Q}",
            source="S. Chopra, R. Hadsell, Y. LeCun. Learning a Similarity Metric "
                   "Discriminatively, with Application to Face Verification. CVPR 2005.",
            function=chopra_loss,
        ),
        LossSpec(
            name="naive",
            title="Naive, no margin (E_G − E_I)",
            kind="pair",
            params=("energy", "miner"),
            param_help={"energy": _ENERGY_HELP, "miner": _MINER_HELP},
            default_energy=LOSS_DEFAULTS["naive"]["energy"],
            default_margin=LOSS_DEFAULTS["naive"]["margin"],
            latex=r"L_G = E, \qquad L_I = -E",
            source="Counter-example discussed in S. Chopra, R. Hadsell, Y. LeCun, CVPR 2005 "
                   "(why conditions 1-3 require a margin).",
            function=naive_loss,
        ),
        LossSpec(
            name="triplet",
            title="Triplet (FaceNet 2015)",
            kind="triplet",
            params=("energy", "margin", "miner"),
            param_help={
                "energy": _ENERGY_HELP + " FaceNet uses squared L2.",
                "margin": "α: the negative must be farther than the positive by at least α.",
                "miner": _MINER_HELP,
            },
            default_energy=LOSS_DEFAULTS["triplet"]["energy"],
            default_margin=LOSS_DEFAULTS["triplet"]["margin"],
            latex=r"L = \max\big(0,\; E(a,p) - E(a,n) + \alpha\big)",
            source="F. Schroff, D. Kalenichenko, J. Philbin. FaceNet: A Unified Embedding for "
                   "Face Recognition and Clustering. CVPR 2015.",
            function=triplet_loss,
        ),
        LossSpec(
            name="arcface",
            title="ArcFace (2019)",
            kind="classifier",
            params=("scale", "margin"),
            param_help={
                "scale": "s: radius of the hypersphere the logits live on.",
                "margin": "m (radians): angle added to the true identity's angle.",
            },
            default_energy=LOSS_DEFAULTS["arcface"]["energy"],
            default_margin=LOSS_DEFAULTS["arcface"]["margin"],
            latex=r"L = -\log \frac{e^{s\cos(\theta_y + m)}}{e^{s\cos(\theta_y + m)} + "
                  r"\sum_{j \neq y} e^{s \cos\theta_j}}",
            source="J. Deng, J. Guo, N. Xue, S. Zafeiriou. ArcFace: Additive Angular Margin Loss "
                   "for Deep Face Recognition. CVPR 2019.",
            function=arcface_loss,
        ),
        LossSpec(
            name="cosface",
            title="CosFace (2018)",
            kind="classifier",
            params=("scale", "margin"),
            param_help={
                "scale": "s: radius of the hypersphere the logits live on.",
                "margin": "m: cosine subtracted from the true identity's cosine.",
            },
            default_energy=LOSS_DEFAULTS["cosface"]["energy"],
            default_margin=LOSS_DEFAULTS["cosface"]["margin"],
            latex=r"L = -\log \frac{e^{s(\cos\theta_y - m)}}{e^{s(\cos\theta_y - m)} + "
                  r"\sum_{j \neq y} e^{s \cos\theta_j}}",
            source="H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu. CosFace: "
                   "Large Margin Cosine Loss for Deep Face Recognition. CVPR 2018.",
            function=cosface_loss,
        ),
        LossSpec(
            name="softmax",
            title="Softmax classifier (DeepFace-style baseline)",
            kind="classifier",
            params=(),
            param_help={},
            default_energy=LOSS_DEFAULTS["softmax"]["energy"],
            default_margin=LOSS_DEFAULTS["softmax"]["margin"],
            latex=r"L = -\log \frac{e^{w_y^\top x + b_y}}{\sum_j e^{w_j^\top x + b_j}}",
            source="Y. Taigman, M. Yang, M. Ranzato, L. Wolf. DeepFace: Closing the Gap to "
                   "Human-Level Performance in Face Verification. CVPR 2014.",
            function=softmax_loss,
        ),
    )
}


def chopra_q_for(config: RunConfig) -> float:
    """Q of the Chopra loss for a run: ``config.chopra_q`` when set, else the energy's bound.

    Q must be an upper bound of the energy (the paper's eq. 7 assumes E <= Q). With
    L2-normalised embeddings (``config.normalize``) every embedding has norm 1, so
    Q = 2√D (L1), 2 (L2), 4 (squared L2) or 2 (cosine) bounds the energy exactly
    (:func:`lab.energy.energy_bound`). Without normalisation nothing bounds the energy; the same
    value is then used as the default, which is the bound for embeddings inside the unit ball;
    larger energies still train (L_I just flattens), and ``chopra_q`` overrides it.
    """
    if config.chopra_q is not None:
        if not config.chopra_q > 0:
            raise ValueError(f"chopra_q must be > 0 (an upper bound of the energy), "
                             f"got {config.chopra_q}")
        return float(config.chopra_q)
    return energy_bound(config.energy, config.embedding_dim)


class Criterion(nn.Module):
    """The loss of a run as a module: mining per ``config.miner``, then the loss.

    Classifier losses (ArcFace, CosFace, softmax) hold their head here as parameters (one row
    per training identity), so the optimiser must see ``criterion.parameters()`` too; their
    labels must be 0..num_classes-1. Pair losses mine pairs and triplet losses mine triplets
    (see :func:`lab.mining.mine`: "semihard"/"batchhard" give pair losses the pairs of the
    semi-hard / batch-hard triplets).
    """

    def __init__(self, config: RunConfig, num_classes: int):
        super().__init__()
        if config.loss not in LOSSES:
            raise ValueError(f"unknown loss {config.loss!r}; expected one of "
                             f"{', '.join(LOSSES)}")
        self.config = config
        self.spec = LOSSES[config.loss]
        self.num_classes = num_classes
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if self.spec.kind == "classifier":
            if num_classes < 2:
                raise ValueError(f"a classifier loss needs at least 2 identities, "
                                 f"got {num_classes}")
            # Drawn from torch's global RNG, so the run's seed fixes the head like the network.
            self.weight = nn.Parameter(torch.empty(num_classes, config.embedding_dim))
            if config.loss == "softmax":
                nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
                self.bias = nn.Parameter(torch.zeros(num_classes))
            else:
                nn.init.xavier_normal_(self.weight)
        self.q = chopra_q_for(config) if config.loss == "chopra" else None
        self.layouts = LayoutCache()  # the layouts of the batches seen, by label pattern

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None = None, layout=None) -> LossOutput:
        """The loss of one batch. ``layout``: the batch's :class:`lab.layout.BatchLayout` on the
        embeddings' device (the trainer passes it, computed on the host once per trainer);
        without it the layout comes from the labels (on a GPU, reading them waits once per
        new label pattern: the cache keeps the few last). ``generator``: the random miner's,
        on the same device, so its draws never leave it."""
        config, kind = self.config, self.spec.kind
        if kind == "classifier":
            # Checked where it is free: on a GPU reading min/max would wait for the device every
            # step, and the Trainer (which passes a layout) remapped its labels to 0..C-1 on the
            # host before they moved.
            if layout is None and labels.device.type == "cpu" and labels.numel() and (
                    int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"classifier labels must lie in 0..{self.num_classes - 1}")
            if config.loss == "softmax":
                return softmax_loss(embeddings, labels, weight=self.weight, bias=self.bias,
                                    energy=config.energy)
            return self.spec.function(embeddings, labels, weight=self.weight, scale=config.scale,
                                      margin=config.margin, energy=config.energy)
        if layout is None:
            layout = self.layouts.get(labels, embeddings.device)
        indices = mine_batch(config.miner, kind, embeddings, config.energy, layout,
                             config.margin, generator)
        if config.loss == "chopra":
            return chopra_loss(embeddings, labels, energy=config.energy, q=self.q,
                               indices=indices)
        if config.loss == "naive":
            return naive_loss(embeddings, labels, energy=config.energy, indices=indices)
        return self.spec.function(embeddings, labels, energy=config.energy, margin=config.margin,
                                  indices=indices)


def build_criterion(config: RunConfig, num_classes: int) -> Criterion:
    """The criterion of a run (``num_classes`` = training identities, used by classifier heads)."""
    return Criterion(config, num_classes)
