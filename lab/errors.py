"""Error gallery: the worst mistakes of a verifier at a threshold, among people never trained on.

A pair is accepted as the same person when E <= threshold (lab.plots.far_frr_at). The worst
false accept is the impostor pair with the lowest energy below the threshold (two people the
network finds most alike); the worst false reject the genuine pair with the highest energy
above it. All pairs of the test identities' probe images are searched (not the sampled
impostors of the ROC), so the gallery shows the true worst cases of this epoch, one per pair
of people (false accepts) or per person (false rejects).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.energy import energy_matrix_np


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
    keep = np.asarray(is_test, dtype=bool).copy()
    if is_seen is not None:
        keep &= ~np.asarray(is_seen, dtype=bool)
    index = np.flatnonzero(keep)
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
