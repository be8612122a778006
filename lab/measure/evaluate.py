"""Open-world evaluation: embeddings of identities never seen in training -> verification figures.

Verification pairs are all genuine pairs and all (or a fixed-seed sample of) impostor pairs among
the test identities. The energy E of each pair is the score (low E = same identity), so the ROC
is drawn with -E as the score of "genuine". Figures:

- AUC and ROC (scikit-learn ``roc_curve`` / ``roc_auc_score``);
- EER: where the false accept rate (FAR = FPR) crosses the false reject rate (FRR = 1 - TPR),
  interpolated linearly between the two ROC points that bracket the crossing;
- TAR at FAR = 1e-1, 1e-2, 1e-3: the best TPR whose FPR <= FAR. A value needs about 10 / FAR
  impostor pairs to mean anything; with fewer it is None and a note says so;
- d′ (decidability, Daugman): |μ_genuine - μ_impostor| / sqrt((σ_genuine² + σ_impostor²) / 2);
- rank-1 identification: each test image's nearest other test image (leave-one-out) has the
  same identity;
- the decision threshold is chosen on validation identities (the energy that maximises balanced
  accuracy, i.e. the mean of genuine and impostor accuracy, = Youden's J) and the balanced
  accuracy it gives on the test identities is reported. Balanced, because impostor pairs
  outnumber genuine ones about 10 to 1 and plain accuracy would favour rejecting everyone.

Baselines evaluated the same way: raw pixels, eigenfaces (PCA, Turk & Pentland 1991) and
Fisherfaces (PCA then LDA, Belhumeur et al. 1997), all fitted on training identities only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from lab.metric.energy import energy_matrix_np, pairwise_energy_np

FARS = (1e-1, 1e-2, 1e-3)
THRESHOLD_FROM_VALIDATION = "validation identities"
THRESHOLD_FROM_TEST = "the test identities' EER (no validation pairs: optimistic)"
MIN_PAIRS_PER_FAR = 10  # a TAR at FAR f needs >= 10 / f impostor pairs to be meaningful


@dataclass
class Verification:
    auc: float
    eer: float
    eer_threshold: float  # energy at the equal error rate
    tar_at_far: dict[float, float | None]
    dprime: float
    rank1: float | None
    threshold: float  # energy threshold used for test_accuracy (chosen on validation)
    test_accuracy: float  # balanced accuracy on these pairs at `threshold`
    fpr: np.ndarray
    tpr: np.ndarray
    genuine_energies: np.ndarray
    impostor_energies: np.ndarray
    notes: list[str] = field(default_factory=list)
    # Where `threshold` comes from, in words: THRESHOLD_FROM_VALIDATION, or a sentence saying it
    # was taken on the test identities (optimistic). Every page showing the threshold shows it.
    threshold_source: str = "validation identities"

    @property
    def threshold_from_test(self) -> bool:
        return self.threshold_source != THRESHOLD_FROM_VALIDATION

    def summary(self) -> dict:
        """The scalar figures, JSON-ready (no arrays)."""
        return {
            "auc": self.auc, "eer": self.eer, "eer_threshold": self.eer_threshold,
            "tar_at_far": {str(k): v for k, v in self.tar_at_far.items()},
            "dprime": self.dprime, "rank1": self.rank1, "threshold": self.threshold,
            "test_accuracy": self.test_accuracy,
            "threshold_source": self.threshold_source,
            "genuine_pairs": int(len(self.genuine_energies)),
            "impostor_pairs": int(len(self.impostor_energies)), "notes": list(self.notes),
        }


@torch.no_grad()
def embed(model: torch.nn.Module, images: torch.Tensor, device: torch.device | str | None = None,
          batch_size: int = 256) -> np.ndarray:
    """Embeddings [N, D] float32 of ``images`` in eval mode (batch norm uses running stats)."""
    if device is None:
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        chunks = [model(images[i:i + batch_size].to(device, non_blocking=True)).float().cpu()
                  for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, getattr(model, "embedding_dim", 0)), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


def verification_pairs(labels, max_impostor: int = 20000, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All genuine pairs i < j and all impostor pairs (or ``max_impostor`` of them, seeded).

    Returns (i, j, same): index arrays and a boolean array, genuine pairs first.
    """
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    impostor = np.flatnonzero(~same)
    if len(impostor) > max_impostor:
        rng = np.random.default_rng(seed)
        impostor = np.sort(rng.choice(impostor, size=max_impostor, replace=False))
    keep = np.concatenate([np.flatnonzero(same), impostor])
    return i[keep], j[keep], same[keep]


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray
                     ) -> tuple[float, float]:
    """(EER, score threshold) where FPR crosses FNR = 1 - TPR, linearly interpolated."""
    fnr = 1.0 - tpr
    diff = fpr - fnr  # rises from -1 (accept nobody) to +1 (accept everyone)
    k = int(np.argmax(diff >= 0))
    if k == 0:
        return float(fpr[0]), float(thresholds[0])
    d0, d1 = diff[k - 1], diff[k]
    t = d0 / (d0 - d1) if d1 != d0 else 0.0
    eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
    th0, th1 = thresholds[k - 1], thresholds[k]
    if not np.isfinite(th0):  # roc_curve's first threshold is +inf
        th0 = th1
    return float(eer), float(th0 + t * (th1 - th0))


def _best_threshold(energies: np.ndarray, same: np.ndarray) -> float:
    """The energy threshold (accept when E <= threshold) that maximises balanced accuracy."""
    fpr, tpr, thresholds = roc_curve(same, -energies)
    k = int(np.argmax(tpr - fpr))
    score = thresholds[k]
    return float(-score) if np.isfinite(score) else float(energies.min() - 1e-6)


def _balanced_accuracy(energies: np.ndarray, same: np.ndarray, threshold: float) -> float:
    accept = energies <= threshold
    genuine_acc = accept[same].mean() if same.any() else np.nan
    impostor_acc = (~accept[~same]).mean() if (~same).any() else np.nan
    return float(np.nanmean([genuine_acc, impostor_acc]))


def _rank1(matrix: np.ndarray, labels: np.ndarray) -> tuple[float | None, int]:
    """Leave-one-out nearest neighbour accuracy over images whose identity has >= 2 images."""
    matrix = matrix.astype(np.float64, copy=True)
    np.fill_diagonal(matrix, np.inf)
    _, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    usable = counts[inverse] >= 2
    if not usable.any():
        return None, 0
    nearest = np.argmin(matrix, axis=1)
    return float((labels[nearest] == labels)[usable].mean()), int(usable.sum())


def _pair_energies(embeddings: np.ndarray, i: np.ndarray, j: np.ndarray, energy: str
                   ) -> np.ndarray:
    return np.asarray(pairwise_energy_np(embeddings[i], embeddings[j], energy), dtype=np.float64)


def evaluate_embeddings(test_emb: np.ndarray, test_labels, energy: str,
                        val_emb: np.ndarray | None = None, val_labels=None, seed: int = 0,
                        max_impostor: int = 20000) -> Verification:
    """Every verification figure for the test embeddings, threshold chosen on validation."""

    test_emb = np.asarray(test_emb, dtype=np.float32)
    test_labels = np.asarray(test_labels)
    notes: list[str] = []
    if len(np.unique(test_labels)) < 2:
        raise ValueError("evaluation needs at least 2 test identities")
    i, j, same = verification_pairs(test_labels, max_impostor=max_impostor, seed=seed)
    if not same.any():
        raise ValueError("evaluation needs an identity with at least 2 test images")
    energies = _pair_energies(test_emb, i, j, energy)
    if not np.all(np.isfinite(energies)):
        notes.append("some energies were not finite (the network diverged); they count as "
                     "the largest energy")
        finite = energies[np.isfinite(energies)]
        energies = np.nan_to_num(energies, nan=np.inf)
        energies[~np.isfinite(energies)] = (finite.max() + 1.0) if finite.size else 1.0
    genuine, impostor = energies[same], energies[~same]
    fpr, tpr, thresholds = roc_curve(same, -energies)
    auc = float(roc_auc_score(same, -energies))
    eer, eer_score = equal_error_rate(fpr, tpr, thresholds)
    tar: dict[float, float | None] = {}
    for far in FARS:
        if len(impostor) < MIN_PAIRS_PER_FAR / far:
            tar[far] = None
            notes.append(f"TAR at FAR={far:g} needs about {int(MIN_PAIRS_PER_FAR / far)} impostor "
                         f"pairs, only {len(impostor)} here: not reported")
        else:
            tar[far] = float(tpr[fpr <= far].max())
    spread = np.sqrt((genuine.var() + impostor.var()) / 2.0)
    gap = abs(genuine.mean() - impostor.mean())
    dprime = float(gap / spread) if spread > 0 else (float("inf") if gap > 0 else 0.0)
    rank1, used = _rank1(np.asarray(energy_matrix_np(test_emb, energy)), test_labels)
    if rank1 is None:
        notes.append("rank-1 needs identities with at least 2 test images")
    source = THRESHOLD_FROM_VALIDATION
    if val_emb is not None and val_labels is not None and len(np.unique(val_labels)) >= 2:
        vi, vj, vsame = verification_pairs(np.asarray(val_labels), max_impostor, seed)
        val_energies = _pair_energies(np.asarray(val_emb, dtype=np.float32), vi, vj, energy)
        val_energies = np.nan_to_num(val_energies, nan=1e30, posinf=1e30)
        threshold = _best_threshold(val_energies, vsame) if vsame.any() else -eer_score
        if not vsame.any():
            source = THRESHOLD_FROM_TEST
            notes.append("validation has no genuine pair: threshold taken at the test EER")
    else:
        threshold, source = -eer_score, THRESHOLD_FROM_TEST
        notes.append("fewer than 2 validation identities: threshold taken at the test EER "
                     "(optimistic)")
    return Verification(
        auc=auc, eer=eer, eer_threshold=-eer_score, tar_at_far=tar, dprime=dprime, rank1=rank1,
        threshold=threshold, test_accuracy=_balanced_accuracy(energies, same, threshold),
        fpr=fpr, tpr=tpr, genuine_energies=genuine.astype(np.float32),
        impostor_energies=impostor.astype(np.float32), notes=notes, threshold_source=source,
    )


def _flat(images) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    return images.reshape(len(images), -1)


def baseline_embeddings(kind: str, train_images, train_labels, images) -> np.ndarray:
    """Linear baselines fitted on training identities only, then applied to ``images``.

    pixels: the raw image as a vector. eigenfaces: PCA keeping up to 100 components (or fewer
    than the training images). fisherfaces: PCA to N - c dimensions (so the within-class scatter
    is invertible), then LDA to c - 1 dimensions.
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x_test = _flat(images)
    if kind == "pixels":
        return x_test
    x_train = _flat(train_images)
    y_train = np.asarray(train_labels.cpu() if isinstance(train_labels, torch.Tensor)
                         else train_labels)
    classes = len(np.unique(y_train))
    if kind == "eigenfaces":
        pca = PCA(n_components=min(100, len(x_train) - 1, x_train.shape[1]), random_state=0)
        return pca.fit(x_train).transform(x_test).astype(np.float32)
    if kind == "fisherfaces":
        n_pca = max(1, min(len(x_train) - classes, x_train.shape[1]))
        pca = PCA(n_components=n_pca, random_state=0).fit(x_train)
        lda = LinearDiscriminantAnalysis(n_components=min(classes - 1, n_pca))
        lda.fit(pca.transform(x_train), y_train)
        return lda.transform(pca.transform(x_test)).astype(np.float32)
    raise ValueError(f"unknown baseline {kind!r}: choose pixels, eigenfaces or fisherfaces")
