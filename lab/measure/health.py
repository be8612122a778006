"""Health monitor: what a teacher would otherwise have to diagnose by eye, in one line each.

Two pure steps, both outside the trainer's per-step loop:

1. :func:`epoch_statistics` measures, once per report, a few numbers on embeddings the trainer
   already computed for the maps: the probe images (people never trained on, validation and
   test) and a few training identities' images ("seen"). No extra forward pass.
2. :func:`diagnose` reads the history records (one dict per report, as saved in
   ``history.jsonl``) and returns :class:`Finding` objects: what went wrong, why, and the fix.

The cases, and why each rule is what it is:

- **diverged**: the trainer already stops on a NaN/inf loss (``status == "diverged"``); the
  finding repeats its message with the fix.
- **collapse**: every embedding at the same point, so every energy is the same and nothing can
  be told apart. Measured as the spread of the probe embeddings (mean distance to their centroid)
  relative to their mean norm, falling below ``COLLAPSE_SPREAD``. Relative, so it is the same for
  unit-norm embeddings and for un-normalised ones shrinking to 0.
- **stuck at the margin**: every impostor pair inside the margin (contrastive m, triplet α: the
  share of training-identity impostor pairs / triplets still paying a loss is ``>= STUCK_SHARE``)
  and the loss no longer falling, or at once when the margin is beyond the energy's bound. The
  classic symptoms: a margin larger than any energy the embedding can reach (unit-norm L2
  energies never exceed 2), or a triplet loss sitting at α because d(a,p) = d(a,n) everywhere.
- **no active pairs**: nothing left in the impostor term (contrastive: no impostor inside m) or
  no triplet with a loss (triplet: the batches' active fraction, as the trainer measured it)
  at ``<= IDLE_SHARE``: the margin is too small or the miner too easy, so the network stops
  learning to separate people.
- **exploding energies**: un-normalised embeddings whose mean norm grew by ``EXPLODE_FACTOR``
  since the first report: the naive loss E_G - E_I is unbounded below, so it is lowered by
  blowing the embedding up rather than by separating people (Chopra et al. 2005, conditions).
- **over-fitting**: validation EER up by ``OVERFIT_RISE`` or more from its best epoch while the
  training identities' EER went on falling. Both EERs are on the embeddings the maps show
  (training identities: up to 160 images of 8 people; validation: the probe images of the
  validation people), so both are averaged over ``OVERFIT_WINDOW`` reports and the rise must
  hold for two successive averages, to stand above the noise of a few people. The common form
  in metric learning is a stall rather than a rise (measured: the training people reach 0 % EER
  while validation stays flat at 26 %), so a validation EER that has not improved for
  ``OVERFIT_STALL`` reports, ``OVERFIT_GAP`` above a still-falling training EER, counts too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lab.measure.evaluate import equal_error_rate, verification_pairs
from lab.metric.energy import energy_bound, energy_matrix_np, pairwise_energy_np
from lab.metric.loss_specs import LOSSES

COLLAPSE_SPREAD = 0.03  # spread / norm below this: all embeddings in one point
STUCK_SHARE = 0.98  # share of impostors (triplets) inside the margin, at or above: stuck
STUCK_DROP = 0.02  # loss fell less than this share over the last reports: not falling
IDLE_SHARE = 0.05  # share of impostors (triplets) still paying a loss, at or below: idle
EXPLODE_FACTOR = 10.0  # mean embedding norm grew this many times since the first report
OVERFIT_RISE = 0.05  # smoothed validation EER this far above its best (5 points)
OVERFIT_WINDOW = 3  # reports averaged before comparing EERs
OVERFIT_STALL = 4  # ... or no better validation EER for this many reports,
OVERFIT_GAP = 0.15  # while it is this far above the training EER (15 points)
MAX_IMPOSTORS = 20000  # impostor pairs sampled for the statistics
MAX_TRIPLETS = 20000  # triplets sampled for the triplet statistics



def _margin_kind(loss: str) -> str | None:
    """"energy" (impostor pairs inside m), "gap" (triplets inside α) or None: the margins whose
    inside the monitor counts (lab.metric.loss_specs.MARGIN_KINDS)."""
    spec = LOSSES.get(loss)
    return spec.margin_kind if spec is not None and spec.margin_kind in ("energy", "gap") else None


@dataclass(frozen=True)
class Finding:
    """One diagnosis: ``kind`` (a stable id), a one-line ``message`` and its likely ``fix``."""

    kind: str
    epoch: int
    message: str
    fix: str
    severity: str = "warning"  # "error" (the run is lost) | "warning"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def text(self) -> str:
        return f"{self.message} Fix: {self.fix}"


# --- statistics, once per report ---------------------------------------------------------------

def _eer(embeddings: np.ndarray, labels: np.ndarray, energy: str, seed: int) -> float | None:
    """Equal error rate of all genuine pairs vs sampled impostor pairs among these images."""
    from sklearn.metrics import roc_curve


    if len(np.unique(labels)) < 2:
        return None
    i, j, same = verification_pairs(labels, max_impostor=MAX_IMPOSTORS, seed=seed)
    if not same.any() or same.all():
        return None
    energies = pairwise_energy_np(embeddings[i], embeddings[j], energy)
    if not np.isfinite(energies).all():
        return None
    fpr, tpr, thresholds = roc_curve(same, -energies)
    return equal_error_rate(fpr, tpr, thresholds)[0]


def _spread(embeddings: np.ndarray) -> tuple[float, float]:
    """(mean distance to the centroid / mean norm, mean norm)."""
    x = np.asarray(embeddings, dtype=np.float64)
    norm = float(np.linalg.norm(x, axis=1).mean())
    spread = float(np.linalg.norm(x - x.mean(axis=0), axis=1).mean())
    return (spread / norm if norm > 0 else 0.0), norm


def inside_margin_share(embeddings: np.ndarray, labels: np.ndarray, loss: str, energy: str,
                        margin: float, seed: int = 0) -> float | None:
    """Share of impostor pairs (contrastive: E < m) or triplets (triplet: E(a,n) < E(a,p) + α)
    that still pay a loss among these images; None for losses without such a margin."""

    labels = np.asarray(labels)
    if _margin_kind(loss) is None or len(np.unique(labels)) < 2:
        return None
    if _margin_kind(loss) == "energy":
        i, j, same = verification_pairs(labels, max_impostor=MAX_IMPOSTORS, seed=seed)
        e = pairwise_energy_np(embeddings[i[~same]], embeddings[j[~same]], energy)
        return float(np.mean(e < margin)) if e.size else None
    matrix = energy_matrix_np(embeddings, energy)
    same = labels[:, None] == labels[None, :]
    anchor, positive = np.nonzero(same & ~np.eye(len(labels), dtype=bool))
    if anchor.size == 0:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, anchor.size, size=MAX_TRIPLETS)
    a, p = anchor[pick], positive[pick]
    # a negative for each (a, p): uniformly among the other identities' images
    negatives = [np.flatnonzero(labels != labels[k]) for k in range(len(labels))]
    n = np.array([negatives[k][rng.integers(0, len(negatives[k]))] for k in a])
    return float(np.mean(matrix[a, n] < matrix[a, p] + margin))


def epoch_statistics(config, probe_embeddings: np.ndarray | None, probe_labels: np.ndarray,
                     probe_is_test: np.ndarray, seen_embeddings: np.ndarray | None = None,
                     seen_labels: np.ndarray | None = None) -> dict:
    """The numbers :func:`diagnose` reads, for one report (JSON-ready; missing ones omitted).

    spread, norm: of the probe embeddings (see :func:`_spread`); inside_margin: of the training
    identities' images (what the loss sees); train_eer: EER among the training identities'
    images; val_eer: among the validation identities' probe images.
    """
    out: dict = {}
    if probe_embeddings is None or not np.isfinite(probe_embeddings).all():
        return out
    out["spread"], out["norm"] = _spread(probe_embeddings)
    labels, is_test = np.asarray(probe_labels), np.asarray(probe_is_test, dtype=bool)
    val = _eer(probe_embeddings[~is_test], labels[~is_test], config.energy, config.data_seed)
    if val is not None:
        out["val_eer"] = val
    if seen_embeddings is not None and seen_labels is not None and len(seen_labels):
        if not np.isfinite(seen_embeddings).all():
            return out
        train = _eer(seen_embeddings, np.asarray(seen_labels), config.energy, config.data_seed)
        if train is not None:
            out["train_eer"] = train
        share = inside_margin_share(seen_embeddings, seen_labels, config.loss, config.energy,
                                    config.margin, config.data_seed)
        if share is not None:
            out["inside_margin"] = share
    return out


# --- diagnosis, from the records -----------------------------------------------------------------

def _value(record: dict, name: str) -> float | None:
    value = record.get(name, (record.get("health") or {}).get(name))
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(records: Sequence[dict], name: str) -> list[tuple[int, float]]:
    return [(int(r.get("epoch", k)), v) for k, r in enumerate(records)
            if (v := _value(r, name)) is not None]


def _margin_of(config, records: Sequence[dict]) -> float:
    """The margin in force at the last report (a change mid-run is recorded in the history)."""
    margin = float(config.margin)
    for record in records:
        margin = float((record.get("changes") or {}).get("margin", margin))
    return margin


def diagnose(records: Sequence[dict], config) -> list[Finding]:
    """Every finding the history so far supports, most severe first (see the module doc)."""
    records = [r for r in records if r]
    if not records:
        return []
    found: list[Finding] = []
    last = records[-1]
    epoch = int(last.get("epoch", 0))
    if last.get("status") == "diverged":
        message = last.get("message") or "the loss stopped being a finite number"
        found.append(Finding(
            "diverged", epoch, f"Diverged: {message[:1].upper()}{message[1:]}.",
            "lower the learning rate (10 times smaller)" + (
                ", or use a loss with a margin (contrastive) or L2-normalise the embeddings"
                if config.loss == "naive" else ""), "error"))

    spread = _value(last, "spread")
    if spread is not None and spread < COLLAPSE_SPREAD:
        found.append(Finding(
            "collapse", epoch,
            f"Collapse: every embedding sits in the same place (spread {spread:.1%} of their "
            "norm), so all energies are equal and no two people can be told apart.",
            _collapse_fix(config, records)))

    norms = _series(records, "norm")
    if not config.normalize and len(norms) >= 2 and norms[0][1] > 0 \
            and norms[-1][1] >= EXPLODE_FACTOR * norms[0][1] and norms[-1][1] > norms[-2][1]:
        found.append(Finding(
            "exploding", epoch,
            f"Exploding energies: the embeddings grew {norms[-1][1] / norms[0][1]:.0f}× since "
            f"epoch {norms[0][0]} and still grow; the loss falls by blowing the embedding up, "
            "not by separating people.",
            "L2-normalise the embeddings, or use a loss with a margin (contrastive, triplet)"))

    margin = _margin_of(config, records)
    inside = _series(records, "inside_margin")
    losses = [(int(r.get("epoch", 0)), float(r["loss"])) for r in records
              if r.get("loss") is not None and math.isfinite(float(r["loss"]))]
    if _margin_kind(config.loss) and inside and inside[-1][1] >= STUCK_SHARE and (
            _beyond_reach(config, margin) or (len(losses) >= 2 and not _falling(losses))):
        what = "impostor pairs" if _margin_kind(config.loss) == "energy" else "triplets"
        why = ("which none can ever leave" if _beyond_reach(config, margin)
               else f"and the loss ({losses[-1][1]:.3g}) no longer falls")
        found.append(Finding(
            "stuck", epoch,
            f"Loss stuck at the margin: {inside[-1][1]:.0%} of the training {what} are still "
            f"inside the margin {margin:g}, {why}.", _stuck_fix(config, margin)))

    idle = _idle_share(config, records)
    if idle is not None and idle <= IDLE_SHARE and not any(f.kind == "collapse" for f in found):
        found.append(Finding(
            "no_active", epoch,
            f"No active pairs: {idle:.1%} of the "
            + ("impostor pairs are inside the margin" if config.loss == "contrastive"
               else "triplets of the batches pay a loss")
            + ", so there is nothing left to learn from the impostors.",
            f"raise the margin (now {margin:g})"
            + (" or use a harder miner (semihard, batchhard)" if config.miner in ("all", "random")
               else "")))

    overfit = _overfitting(records)
    if overfit is not None:
        found.append(Finding("overfitting", epoch, overfit,
                             "stop earlier (fewer epochs), augment the faces, or train on more "
                             "people"))
    return found


def _falling(losses: list[tuple[int, float]], window: int = 3) -> bool:
    """True while the loss still falls by STUCK_DROP (relative) over the last reports."""
    recent = [v for _, v in losses[-window:]]
    first, last = recent[0], recent[-1]
    return last < first - STUCK_DROP * max(abs(first), 1e-12)


def _idle_share(config, records: Sequence[dict]) -> float | None:
    """Share of the impostor term still active at the last report, for margin losses."""
    last = records[-1]
    if config.loss == "contrastive":
        return _value(last, "inside_margin")
    if config.loss == "triplet":
        return _value(last, "active_fraction")
    return None


def _collapse_fix(config, records: Sequence[dict]) -> str:
    if config.loss == "contrastive" and _margin_of(config, records) <= 0.05:
        return ("raise the margin: with m near 0 nothing pushes impostors apart, only genuine "
                "pairs are pulled together")
    if config.loss == "triplet" and config.miner == "batchhard":
        return "use semi-hard mining, and a lower learning rate"
    return "lower the learning rate, use semi-hard mining, or raise the margin"


def _beyond_reach(config, margin: float) -> bool:
    """A margin no pair can ever leave: unit-norm embeddings are never farther apart than the
    energy's bound (lab.metric.energy.energy_bound), so with m >= bound every impostor pair (every
    triplet: E(a,n) - E(a,p) <= bound too) pays a loss forever; no plateau needs waiting for."""

    return bool(config.normalize) and margin >= energy_bound(config.energy,
                                                             config.embedding_dim)


def _stuck_fix(config, margin: float) -> str:
    if config.normalize:
        # contrastive: E <= bound; triplet: E(a,n) - E(a,p) <= bound as well
        bound = energy_bound(config.energy, config.embedding_dim)
        if margin >= bound:
            return (f"lower the margin below {bound:g}: on the unit sphere no two embeddings are "
                    f"farther apart than that ({config.energy} energy), so no impostor ever "
                    "leaves the margin")
    return "lower the margin, or the learning rate; semi-hard mining avoids the collapsed start"


def _smooth(values: list[float], window: int) -> list[float]:
    """Running mean over ``window`` reports (the first window - 1 reports are dropped)."""
    return [float(np.mean(values[k - window + 1:k + 1])) for k in range(window - 1, len(values))]


def _overfitting(records: Sequence[dict], window: int = OVERFIT_WINDOW) -> str | None:
    """A sentence when the validation EER rose from its best while the training EER fell.

    Both series are smoothed over ``window`` reports first: with a handful of validation people
    the EER moves by several points from one epoch to the next by chance alone (measured: up to
    9 points on 5 synthetic validation identities), and a single bad epoch is not over-fitting.
    """
    both = [(int(r.get("epoch", 0)), v, t) for r in records
            if (v := _value(r, "val_eer")) is not None
            and (t := _value(r, "train_eer")) is not None]
    if len(both) < window + 2:
        return None
    epochs = [e for e, _, _ in both][window - 1:]
    val = _smooth([v for _, v, _ in both], window)
    train = _smooth([t for _, _, t in both], window)
    best = int(np.argmin(val))
    if best >= len(val) - 2 or not train[-1] < train[best]:
        return None
    rising = all(v >= val[best] + OVERFIT_RISE for v in val[-2:])
    stalled = best <= len(val) - 1 - OVERFIT_STALL and val[-1] - train[-1] >= OVERFIT_GAP
    if not (rising or stalled):
        return None
    what = "rose" if rising else "has not improved"
    return (f"Over-fitting: validation EER {what} since epoch {epochs[best]} "
            f"({val[best]:.1%} then, {val[-1]:.1%} now) while the training identities' EER fell "
            f"from {train[best]:.1%} to {train[-1]:.1%}: the network learns these people, "
            "not faces.")
