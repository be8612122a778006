"""The registry of losses: one :class:`LossSpec` per loss, which every other place reads.

The formulas live in :mod:`lab.metric.losses`; this module says, once per loss, what the rest of
Metric Lab needs to know of it: its title, formula and citation, what its margin is, the energy and
margin it comes with, how the criterion calls it and, for a pair loss, its terms and slopes for the
geometry page. RunConfig's choices and the field table (:mod:`lab.core.fields`), the criterion
(:mod:`lab.learn.criterion`), the geometry and Energies pages, the Train page, the CLI and the
benchmarks all derive from :data:`LOSSES`, and the views of it below are live, so a loss registered
later (a student's own, a test's toy loss) is a choice everywhere at once. docs/ARCHITECTURE.md,
"Add a loss", is the recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.metric.losses import (
    LossOutput,
    PairLossTerms,
    arcface_loss,
    chopra_loss,
    chopra_q,
    chopra_terms,
    contrastive_loss,
    contrastive_terms,
    cosface_loss,
    naive_loss,
    naive_terms,
    softmax_loss,
    triplet_loss,
)

# --- the registry: one spec per loss, which every other place reads --------------------------

KINDS = ("pair", "triplet", "classifier")
# What a loss's margin is. "energy" and "gap" margins are drawn on the Energies page (on the
# energy axis, on the d(a,n) − d(a,p) histogram) and the health monitor counts what lies inside.
MARGIN_KINDS = {
    "energy": "a threshold on the energy E of an impostor pair",
    "gap": "a gap between E(a,n) and E(a,p) of a triplet",
    "angle": "an angle (radians) added to the true identity's angle",
    "cosine": "a cosine subtracted from the true identity's cosine",
}
HEADS = ("affine", "normalised")  # classifier heads: w·x + b (softmax) or cosines (ArcFace)


@dataclass(frozen=True)
class LossSpec:
    """One loss: everything the app, the trainer, the CLI and the benchmarks know of it.

    - ``name``, ``title``, ``latex``, ``source``, ``param_help``: what pages, reports and the
      CLI's help show; ``params``: the RunConfig fields it reads (the Train page shows these).
    - ``kind``: "pair" (the miner gives it pairs), "triplet" (triplets) or "classifier" (no
      mining; the criterion holds a ``head`` of weights, one row per training identity).
    - ``default_energy``, ``default_margin``: what choosing it brings, everywhere (RunConfig,
      URL, CLI, Train page). For a loss without a margin, the margin is the semi-hard miner's
      window (pair losses) and the geometry page's starting half-plane.
    - ``margin_kind``: what its margin is (:data:`MARGIN_KINDS`), None when it has none;
      ``margin_range``: the margin's (low, high, step) when it is not an energy (an angle
      beyond 1.5 rad, 86°, leaves no room on the sphere for a second class).
    - ``arguments(settings)``: the keyword arguments of ``function`` taken from a run's
      settings (a RunConfig, or anything with its attributes); the criterion adds the mined
      ``indices`` (pair, triplet) or the head's ``weight`` (and ``bias``, affine head).
    - ``pair_terms(loss_margin=, q=)``: a pair loss's L_G, L_I and slopes for the geometry
      page (:class:`PairLossTerms`); None for the others.
    """

    name: str
    title: str
    kind: str
    params: tuple[str, ...]
    param_help: dict[str, str]
    default_energy: str
    default_margin: float
    latex: str
    source: str
    function: Callable[..., LossOutput] = field(compare=False)
    arguments: Callable[[Any], dict[str, Any]] = field(compare=False)
    margin_kind: str | None = None
    margin_range: tuple[float, float, float] | None = None
    head: str | None = None
    pair_terms: Callable[..., PairLossTerms] | None = field(default=None, compare=False)


LOSSES: dict[str, LossSpec] = {}


def register(spec: LossSpec) -> LossSpec:
    """Add a loss to the registry (every choice list, default and page reads it from here)."""
    problems = []
    if not spec.name.isidentifier() or spec.name in LOSSES:
        problems.append(f"name {spec.name!r} must be a new identifier")
    if spec.kind not in KINDS:
        problems.append(f"kind must be one of {', '.join(KINDS)}")
    if spec.margin_kind is not None and spec.margin_kind not in MARGIN_KINDS:
        problems.append(f"margin_kind must be None or one of {', '.join(MARGIN_KINDS)}")
    if (spec.kind == "classifier") != (spec.head in HEADS):
        problems.append("a classifier loss needs a head (affine or normalised), others none")
    if (spec.kind == "pair") != (spec.pair_terms is not None):
        problems.append("a pair loss, and only a pair loss, gives its pair_terms")
    if problems:
        raise ValueError(f"cannot register loss {spec.name!r}: " + "; ".join(problems))
    LOSSES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a loss (tests register toy losses and take them out again)."""
    LOSSES.pop(name, None)


LOSS_NAMES = LOSSES.keys()  # a live view: a loss registered later is a choice everywhere


def loss_defaults(loss: str) -> dict[str, Any]:
    """The fields a loss brings with it (energy, margin); the contrastive loss's for an unknown
    name (the config check reports the name itself)."""
    spec = LOSSES.get(loss) or LOSSES["contrastive"]
    return {"energy": spec.default_energy, "margin": spec.default_margin}


class _Defaults(Mapping):
    """{loss: {"energy": ..., "margin": ...}} of every registered loss, read live."""

    def __getitem__(self, loss: str) -> dict[str, Any]:
        if loss not in LOSSES:
            raise KeyError(loss)
        return loss_defaults(loss)

    def __iter__(self) -> Iterator[str]:
        return iter(LOSSES)

    def __len__(self) -> int:
        return len(LOSSES)


class _MarginRanges(Mapping):
    """{loss: (low, high, step)} of the losses whose margin has its own range, read live."""

    def _names(self) -> list[str]:
        return [n for n, s in LOSSES.items() if s.margin_range is not None]

    def __getitem__(self, loss: str) -> tuple[float, float, float]:
        spec = LOSSES.get(loss)
        if spec is None or spec.margin_range is None:
            raise KeyError(loss)
        return spec.margin_range

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


LOSS_DEFAULTS: Mapping[str, dict[str, Any]] = _Defaults()
MARGIN_RANGES: Mapping[str, tuple[float, float, float]] = _MarginRanges()


def uses_margin(loss: str, miner: str) -> bool:
    """Whether a run with this loss and miner reads ``config.margin``: the losses whose margin
    it is, and the semi-hard miner of the pair losses (its window E_ap < E_an < E_ap + m)."""
    spec = LOSSES.get(loss)
    if spec is None:
        return False
    return spec.margin_kind is not None or (miner == "semihard" and spec.kind == "pair")


def margin_on_energy_axis(loss: str) -> bool:
    """Whether the loss's margin is an energy, to be drawn on the energy axis."""
    spec = LOSSES.get(loss)
    return spec is not None and spec.margin_kind == "energy"


_ENERGY_HELP = "Energy E between two embeddings: L1, L2, squared L2 or cosine (1 − cos)."
_MINER_HELP = "Which pairs or triplets of the batch the loss sees: all, random, semi-hard, " \
              "batch-hard."
_ANGULAR_RANGE = (0.0, 1.5, 0.05)

register(LossSpec(
    name="contrastive",
    title="Contrastive (Hadsell 2006)",
    kind="pair",
    params=("energy", "margin", "miner"),
    param_help={
        "energy": _ENERGY_HELP,
        "margin": "m: impostor pairs farther apart than m no longer cost anything.",
        "miner": _MINER_HELP,
    },
    default_energy="l2",
    default_margin=1.0,
    latex=r"L = \begin{cases} \tfrac12 E^2 & \text{genuine} \\ "
          r"\tfrac12 \max(0,\, m - E)^2 & \text{impostor} \end{cases}",
    source="R. Hadsell, S. Chopra, Y. LeCun. Dimensionality Reduction by Learning an "
           "Invariant Mapping. CVPR 2006.",
    function=contrastive_loss,
    arguments=lambda c: {"energy": c.energy, "margin": c.margin},
    margin_kind="energy",
    pair_terms=contrastive_terms,
))
register(LossSpec(
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
    default_energy="l1",
    default_margin=1.0,
    latex=r"L_G = \frac{2}{Q} E^2, \qquad L_I = 2Q\, e^{-2.77\, E / Q}",
    source="S. Chopra, R. Hadsell, Y. LeCun. Learning a Similarity Metric "
           "Discriminatively, with Application to Face Verification. CVPR 2005.",
    function=chopra_loss,
    arguments=lambda c: {"energy": c.energy,
                         "q": chopra_q(c.chopra_q, c.energy, c.embedding_dim)},
    pair_terms=chopra_terms,
))
register(LossSpec(
    name="naive",
    title="Naive, no margin (E_G − E_I)",
    kind="pair",
    params=("energy", "miner"),
    param_help={"energy": _ENERGY_HELP, "miner": _MINER_HELP},
    default_energy="l2",
    default_margin=1.0,
    latex=r"L_G = E, \qquad L_I = -E",
    source="Counter-example discussed in S. Chopra, R. Hadsell, Y. LeCun, CVPR 2005 "
           "(why conditions 1-3 require a margin).",
    function=naive_loss,
    arguments=lambda c: {"energy": c.energy},
    pair_terms=naive_terms,
))
register(LossSpec(
    name="triplet",
    title="Triplet (FaceNet 2015)",
    kind="triplet",
    params=("energy", "margin", "miner"),
    param_help={
        "energy": _ENERGY_HELP + " FaceNet uses squared L2.",
        "margin": "α: the negative must be farther than the positive by at least α.",
        "miner": _MINER_HELP,
    },
    default_energy="sqeuclidean",
    default_margin=0.2,
    latex=r"L = \max\big(0,\; E(a,p) - E(a,n) + \alpha\big)",
    source="F. Schroff, D. Kalenichenko, J. Philbin. FaceNet: A Unified Embedding for "
           "Face Recognition and Clustering. CVPR 2015.",
    function=triplet_loss,
    arguments=lambda c: {"energy": c.energy, "margin": c.margin},
    margin_kind="gap",
))
register(LossSpec(
    name="arcface",
    title="ArcFace (2019)",
    kind="classifier",
    params=("scale", "margin"),
    param_help={
        "scale": "s: radius of the hypersphere the logits live on.",
        "margin": "m (radians): angle added to the true identity's angle.",
    },
    default_energy="cosine",
    default_margin=0.5,
    latex=r"L = -\log \frac{e^{s\cos(\theta_y + m)}}{e^{s\cos(\theta_y + m)} + "
          r"\sum_{j \neq y} e^{s \cos\theta_j}}",
    source="J. Deng, J. Guo, N. Xue, S. Zafeiriou. ArcFace: Additive Angular Margin Loss "
           "for Deep Face Recognition. CVPR 2019.",
    function=arcface_loss,
    arguments=lambda c: {"energy": c.energy, "scale": c.scale, "margin": c.margin},
    margin_kind="angle",
    margin_range=_ANGULAR_RANGE,
    head="normalised",
))
register(LossSpec(
    name="cosface",
    title="CosFace (2018)",
    kind="classifier",
    params=("scale", "margin"),
    param_help={
        "scale": "s: radius of the hypersphere the logits live on.",
        "margin": "m: cosine subtracted from the true identity's cosine.",
    },
    default_energy="cosine",
    default_margin=0.35,
    latex=r"L = -\log \frac{e^{s(\cos\theta_y - m)}}{e^{s(\cos\theta_y - m)} + "
          r"\sum_{j \neq y} e^{s \cos\theta_j}}",
    source="H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu. CosFace: "
           "Large Margin Cosine Loss for Deep Face Recognition. CVPR 2018.",
    function=cosface_loss,
    arguments=lambda c: {"energy": c.energy, "scale": c.scale, "margin": c.margin},
    margin_kind="cosine",
    margin_range=_ANGULAR_RANGE,
    head="normalised",
))
register(LossSpec(
    name="softmax",
    title="Softmax classifier (DeepFace-style baseline)",
    kind="classifier",
    params=(),
    param_help={},
    default_energy="cosine",
    default_margin=1.0,
    latex=r"L = -\log \frac{e^{w_y^\top x + b_y}}{\sum_j e^{w_j^\top x + b_j}}",
    source="Y. Taigman, M. Yang, M. Ranzato, L. Wolf. DeepFace: Closing the Gap to "
           "Human-Level Performance in Face Verification. CVPR 2014.",
    function=softmax_loss,
    arguments=lambda c: {"energy": c.energy},
    head="affine",
))
