"""Error gallery: the worst mistakes of a verifier at a threshold, among people never trained on.

A pair is accepted as the same person when E <= threshold (lab.viz.energies.far_frr_at). The worst
false accept is the impostor pair with the lowest energy below the threshold (two people the
network finds most alike); the worst false reject the genuine pair with the highest energy
above it. All pairs of the test identities' probe images are searched (not the sampled
impostors of the ROC), so the gallery shows the true worst cases of this epoch, one per pair
of people (false accepts) or per person (false rejects).

For face datasets the same pairs are also put to the reference model (lab.faces.reference, dlib's
ResNet trained on ~3 million faces, its own threshold 0.6): :func:`disagreements` lists the
pairs where exactly one of the two verdicts is right, so a student sees which mistakes a model
trained on millions of faces avoids, and which the small network gets right against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.metric.energy import energy_matrix_np


def _one_per_people(rows: np.ndarray, a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` rows with a pair of people not seen in an earlier row (the worst
    mistakes otherwise repeat one look-alike pair of people in every row)."""
    kept, seen = [], set()
    for r in rows:
        key = (min(a[r], b[r]), max(a[r], b[r]))
        if key not in seen:
            seen.add(key)
            kept.append(r)
            if len(kept) == count:
                break
    return np.asarray(kept, dtype=int)


@dataclass(frozen=True)
class PairError:
    first: int  # index into the probe history's arrays
    second: int
    energy: float
    kind: str  # "false accept" | "false reject"


def worst_errors(embeddings: np.ndarray, labels: np.ndarray, is_test: np.ndarray,
                 energy: str, threshold: float, count: int = 4,
                 is_seen: np.ndarray | None = None) -> tuple[list[PairError], list[PairError]]:
    """(worst false accepts, worst false rejects), at most ``count`` each, worst first."""
    index = unseen_test_index(is_test, is_seen)
    if len(index) < 2:
        return [], []
    matrix = energy_matrix_np(embeddings[index], energy)
    i, j = np.triu_indices(len(index), k=1)
    e = matrix[i, j]
    same = labels[index][i] == labels[index][j]
    people = labels[index]
    accepts = np.flatnonzero(~same & (e <= threshold))
    accepts = _one_per_people(accepts[np.argsort(e[accepts], kind="stable")],
                              people[i], people[j], count)
    rejects = np.flatnonzero(same & (e > threshold))
    rejects = _one_per_people(rejects[np.argsort(-e[rejects], kind="stable")],
                              people[i], people[j], count)

    def pairs(rows: np.ndarray, kind: str) -> list[PairError]:
        return [PairError(int(index[i[r]]), int(index[j[r]]), float(e[r]), kind) for r in rows]

    return pairs(accepts, "false accept"), pairs(rejects, "false reject")


def unseen_test_index(is_test: np.ndarray, is_seen: np.ndarray | None = None) -> np.ndarray:
    """Probe rows of test people that training never saw (the rows both galleries search)."""
    keep = np.asarray(is_test, dtype=bool).copy()
    if is_seen is not None:
        keep &= ~np.asarray(is_seen, dtype=bool)
    return np.flatnonzero(keep)


@dataclass(frozen=True)
class Disagreement:
    """A pair the student and the reference model answer differently (one of them is right)."""

    first: int  # index into the probe history's arrays
    second: int
    same: bool  # the truth: one person
    energy: float  # the student's E, accepted when <= its threshold
    distance: float  # the reference's distance, accepted when <= its own threshold
    student_right: bool


@dataclass(frozen=True)
class DisagreementCount:
    pairs: int  # all pairs of the unseen test images
    student_right: int
    reference_right: int


def disagreements(embeddings: np.ndarray, descriptors: np.ndarray, labels: np.ndarray,
                  index: np.ndarray, energy: str, threshold: float,
                  reference_threshold: float, count: int = 4
                  ) -> tuple[list[Disagreement], list[Disagreement], DisagreementCount]:
    """The pairs of the probe rows ``index`` where the student (E <= ``threshold``) and the
    reference (Euclidean distance of ``descriptors`` <= ``reference_threshold``) give different
    verdicts. Returns (the student wrong and the reference right, the student right and the
    reference wrong, the counts). Each list puts first the pairs its loser got most surely wrong
    (farthest on the wrong side of its own threshold), one per pair of people.

    ``descriptors`` are the reference's vectors of the rows ``index``, in that order.
    """
    index = np.asarray(index, dtype=int)
    if len(index) < 2:
        return [], [], DisagreementCount(0, 0, 0)
    student = energy_matrix_np(embeddings[index], energy)
    reference = energy_matrix_np(np.asarray(descriptors, dtype=np.float64), "l2")
    i, j = np.triu_indices(len(index), k=1)
    e, d = student[i, j], reference[i, j]
    people = labels[index]
    same = people[i] == people[j]
    student_ok = (e <= threshold) == same
    reference_ok = (d <= reference_threshold) == same
    split = student_ok != reference_ok
    # How surely the loser errs: its distance past its own threshold, on its own scale.
    student_miss = np.abs(e - threshold) / max(abs(threshold), 1e-12)
    reference_miss = np.abs(d - reference_threshold) / reference_threshold

    def rows(mask: np.ndarray, miss: np.ndarray, student_right: bool) -> list[Disagreement]:
        chosen = np.flatnonzero(mask)
        chosen = _one_per_people(chosen[np.argsort(-miss[chosen], kind="stable")],
                                 people[i], people[j], count)
        return [Disagreement(int(index[i[r]]), int(index[j[r]]), bool(same[r]), float(e[r]),
                             float(d[r]), student_right) for r in chosen]

    counted = DisagreementCount(len(e), int((split & student_ok).sum()),
                                int((split & reference_ok).sum()))
    return (rows(split & reference_ok, student_miss, False),
            rows(split & student_ok, reference_miss, True), counted)
