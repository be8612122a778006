"""Energies: the distance E between two embeddings that every loss pushes up or down.

In the energy-based view of Chopra, Hadsell and LeCun (2005) a siamese machine outputs one
number per pair, E_W(X1, X2) = ||G_W(X1) - G_W(X2)||: low for a genuine pair (same identity),
high for an impostor pair. This module is the single place where E is computed, so a loss never
hard-codes its distance (as in pytorch-metric-learning, where the distance is passed in).

Kinds:
- ``"l1"``: sum |a - b| (Chopra 2005 uses it: its gradient does not vanish near zero);
- ``"l2"``: ||a - b||_2 (Hadsell 2006);
- ``"sqeuclidean"``: ||a - b||_2^2 (FaceNet's triplet energy);
- ``"cosine"``: 1 - cos(a, b) (angular energy, in [0, 2]).

Every function has a torch form (for training, differentiable) and a numpy twin (for evaluation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.distance import cdist

ENERGIES = ("l1", "l2", "sqeuclidean", "cosine")

# Rows of x handled at once by the broadcast in energy_matrix: keeps [rows, M, D] under ~16M floats.
_CHUNK_ELEMENTS = 1 << 24
_COSINE_EPS = 1e-12


def _check_kind(kind: str) -> None:
    if kind not in ENERGIES:
        raise ValueError(f"unknown energy {kind!r}; expected one of {', '.join(ENERGIES)}")


def safe_sqrt(squared: torch.Tensor) -> torch.Tensor:
    """sqrt that is exactly 0 with a zero gradient at 0 (plain sqrt gives an infinite/NaN one).

    Two embeddings that coincide (a collapsed network, or an image paired with itself) would
    otherwise poison every weight with NaN on the first backward pass.
    """
    positive = squared > 0
    safe = torch.where(positive, squared, torch.ones_like(squared))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(squared))


def _difference_energy(diff: torch.Tensor, kind: str) -> torch.Tensor:
    """Energy of difference vectors along the last axis."""
    if kind == "l1":
        return diff.abs().sum(dim=-1)
    squared = (diff * diff).sum(dim=-1)
    if kind == "sqeuclidean":
        return squared
    return safe_sqrt(squared)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=_COSINE_EPS)


def pairwise_energy(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """E(a_i, b_i) for each row i: [N, D], [N, D] -> [N]. Differentiable, NaN-free at a == b."""
    _check_kind(kind)
    if a.shape != b.shape:
        raise ValueError(f"pairwise_energy needs equal shapes, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if kind == "cosine":
        return 1.0 - (_unit(a) * _unit(b)).sum(dim=-1)
    return _difference_energy(a - b, kind)


def energy_matrix(x: torch.Tensor, kind: str, y: torch.Tensor | None = None) -> torch.Tensor:
    """All energies E(x_i, y_j): [N, D], [M, D] -> [N, M] (y defaults to x).

    Computed from explicit differences (in row chunks), not from ||x||^2 + ||y||^2 - 2 x.y, so a
    pair that coincides gets exactly 0 and a safe gradient: mining and losses agree to the bit.
    """
    _check_kind(kind)
    y = x if y is None else y
    if kind == "cosine":
        return 1.0 - _unit(x) @ _unit(y).T
    rows = max(1, _CHUNK_ELEMENTS // max(1, y.shape[0] * max(1, x.shape[1])))
    parts = [
        _difference_energy(x[start:start + rows, None, :] - y[None, :, :], kind)
        for start in range(0, x.shape[0], rows)
    ]
    if not parts:
        return x.new_zeros((0, y.shape[0]))
    return torch.cat(parts, dim=0)


def pairwise_energy_np(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """Numpy twin of :func:`pairwise_energy` for evaluation: [N, D], [N, D] -> [N]."""
    _check_kind(kind)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if kind == "cosine":
        unit_a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _COSINE_EPS)
        unit_b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _COSINE_EPS)
        return 1.0 - (unit_a * unit_b).sum(axis=-1)
    diff = a - b
    if kind == "l1":
        return np.abs(diff).sum(axis=-1)
    squared = (diff * diff).sum(axis=-1)
    return squared if kind == "sqeuclidean" else np.sqrt(squared)


def energy_matrix_np(x: np.ndarray, kind: str, y: np.ndarray | None = None) -> np.ndarray:
    """Numpy twin of :func:`energy_matrix`: [N, D], [M, D] -> [N, M] float64 (scipy's cdist)."""
    _check_kind(kind)
    x = np.asarray(x, dtype=np.float64)
    y = x if y is None else np.asarray(y, dtype=np.float64)
    if kind == "cosine":
        unit_x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _COSINE_EPS)
        unit_y = y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), _COSINE_EPS)
        return 1.0 - unit_x @ unit_y.T
    metric = {"l1": "cityblock", "l2": "euclidean", "sqeuclidean": "sqeuclidean"}[kind]
    return cdist(x, y, metric=metric)


def energy_bound(kind: str, dim: int) -> float:
    """Largest energy between two embeddings of norm <= 1 in dimension ``dim``.

    ||a - b||_2 <= 2, so sqeuclidean <= 4, and ||a - b||_1 <= sqrt(D) ||a - b||_2 <= 2 sqrt(D)
    (reached by a = -b = (1, ..., 1) / sqrt(D)); cosine energy 1 - cos <= 2. This is the
    upper bound Q of Chopra 2005 when embeddings are L2-normalised.
    """
    _check_kind(kind)
    if dim < 1:
        raise ValueError(f"embedding dimension must be >= 1, got {dim}")
    return {"l1": 2.0 * math.sqrt(dim), "l2": 2.0, "sqeuclidean": 4.0, "cosine": 2.0}[kind]
