"""Quick checks of how hard a dataset is: the raw-pixel verification error on unseen identities.

A metric is only worth learning when the plain Euclidean distance between raw pixels verifies
poorly; this measures that baseline EER so the claim is a number, not a hope.
"""

from __future__ import annotations

import numpy as np

from lab.data.faceset import FaceSet


def equal_error_rate(energies: np.ndarray, same: np.ndarray) -> float:
    """EER of a verifier that accepts a pair when its energy is low (same=True is genuine)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(same, dtype=bool), -np.asarray(energies, dtype=float))
    fnr = 1.0 - tpr
    k = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[k] + fnr[k]) / 2.0)


def raw_pixel_eer(faceset: FaceSet, num_identities: int = 10, seed: int = 0) -> float:
    """EER of L2 distance between raw pixels over all pairs of num_identities random identities.

    Genuine pairs: every pair of images of one identity; impostor pairs: every pair across them.
    """
    rng = np.random.default_rng(seed)
    labels = faceset.labels.numpy()
    present = np.unique(labels)
    chosen = rng.choice(present, size=min(num_identities, len(present)), replace=False)
    mask = np.isin(labels, chosen)
    x = faceset.images[mask].reshape(int(mask.sum()), -1).double().numpy()
    y = labels[mask]
    sq = (x * x).sum(1)
    energy = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    i, j = np.triu_indices(len(y), k=1)
    return equal_error_rate(energy[i, j], y[i] == y[j])
