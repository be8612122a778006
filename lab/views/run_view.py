"""What the pages show, computed from a saved run: the math lives here, the pages only draw.

Every epoch of a run keeps the embeddings of a fixed probe set (validation and test identities,
never trained on), so the epoch sliders of the Embeddings and Energies pages need no model and
no dataset: energies, ROC and maps are all computed from those saved embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lab.data import load_for_config
from lab.data.splits import split_for_config
from lab.measure.evaluate import (
    Verification,
    baseline_embeddings,
    evaluate_embeddings,
    verification_pairs,
)
from lab.measure.project import align_to, project
from lab.metric.energy import energy_matrix_np, pairwise_energy_np


@dataclass
class ProbeHistory:
    """Per-epoch embeddings of the probe images. embeddings[r] is the map after epochs[r]."""

    embeddings: np.ndarray  # [R, P, D]
    labels: np.ndarray  # [P] identity index
    is_test: np.ndarray  # [P] True = test identity (never seen), False = validation identity
    epochs: np.ndarray  # [R]
    indices: np.ndarray | None  # [P] index of each probe image in the dataset
    is_seen: np.ndarray | None = None  # [P] True = a training identity (absent in old runs)

    @property
    def rounds(self) -> int:
        return len(self.epochs)

    def at(self, round_index: int) -> np.ndarray:
        return self.embeddings[round_index]


def probe_history(run) -> ProbeHistory | None:
    """The run's probe embeddings, or None when it saved none (it never finished an epoch)."""
    tensors = run.probes()
    if not tensors:
        return None
    embeddings = tensors["embeddings"].numpy()
    labels = tensors["labels"].numpy()
    is_test = tensors["is_test"].numpy().astype(bool)
    indices = tensors["indices"].numpy() if "indices" in tensors else None
    if "seen_embeddings" not in tensors:
        return ProbeHistory(embeddings, labels, is_test, tensors["epochs"].numpy(), indices)
    # The few training identities kept for the maps go after the never-seen ones.
    seen_labels = tensors["seen_labels"].numpy()
    count = len(seen_labels)
    return ProbeHistory(
        embeddings=np.concatenate([embeddings, tensors["seen_embeddings"].numpy()], axis=1),
        labels=np.concatenate([labels, seen_labels]),
        is_test=np.concatenate([is_test, np.zeros(count, dtype=bool)]),
        epochs=tensors["epochs"].numpy(),
        indices=None if indices is None
        else np.concatenate([indices, tensors["seen_indices"].numpy()]),
        is_seen=np.concatenate([np.zeros(len(labels), dtype=bool), np.ones(count, dtype=bool)]),
    )


def pair_energies(embeddings: np.ndarray, labels: np.ndarray, energy: str,
                  max_impostor: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor energies among these images (all genuine pairs, sampled impostors)."""
    i, j, same = verification_pairs(labels, max_impostor=max_impostor, seed=seed)
    energies = pairwise_energy_np(embeddings[i], embeddings[j], energy)
    return energies[same], energies[~same]


def verification_of(embeddings: np.ndarray, labels: np.ndarray, is_test: np.ndarray,
                    energy: str, seed: int = 0,
                    is_seen: np.ndarray | None = None) -> Verification | None:
    """Open-world figures of one set of probe embeddings: the threshold is chosen on the
    validation identities and scored on the test identities; seen identities are left out."""
    unseen = np.ones(len(labels), dtype=bool) if is_seen is None else ~is_seen
    test, val = is_test & unseen, ~is_test & unseen
    if len(np.unique(labels[test])) < 2:
        return None
    val_emb = embeddings[val] if len(np.unique(labels[val])) >= 2 else None
    val_labels = labels[val] if val_emb is not None else None
    return evaluate_embeddings(embeddings[test], labels[test], energy, val_emb, val_labels,
                               seed=seed)


def verification_at(history: ProbeHistory, round_index: int, energy: str,
                    seed: int = 0) -> Verification | None:
    """Open-world figures after epoch ``history.epochs[round_index]``."""
    return verification_of(history.at(round_index), history.labels, history.is_test, energy,
                           seed, history.is_seen)


def run_label(info) -> str:
    """How a run is named in pickers: its name, loss and margin, and test EER when known."""
    config = info.config
    eer = (info.metrics or {}).get("test", {}).get("eer")
    parts = [info.name]
    if config is not None:
        parts.append(f"{config.loss}, m={config.margin:g}, {config.dataset}")
    if eer is not None:
        parts.append(f"EER {100 * eer:.1f}%")
    if info.status not in ("done",):
        parts.append(info.status)
    return " · ".join(parts)


def run_labels(infos) -> dict[str, str]:
    """run id -> its picker label (:func:`run_label`), made unique: runs whose labels would read
    the same get their id appended. Streamlit's pickers match options by their label, so two
    runs labelled alike were one option: picking one dropped the other from the comparison."""
    return _unique({info.id: run_label(info) for info in infos})


def run_names(infos) -> dict[str, str]:
    """run id -> its name, with the id appended where two runs share a name (legends, tables)."""
    return _unique({info.id: info.name for info in infos})


def _unique(labels: dict[str, str]) -> dict[str, str]:
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {run_id: f"{label} · {run_id}" if counts[label] > 1 else label
            for run_id, label in labels.items()}


def runs_table(infos, live: dict[str, str] | None = None) -> list[dict]:
    """One row per run for the runs table and the comparison table. ``live`` maps a run id to
    the status of the job training it now (a paused job's run is "running" in the store, which
    only the training loop writes; the table says "paused", as the Train page does)."""
    rows = []
    live = live or {}
    names = run_names(infos)
    for info in infos:
        config, test = info.config, (info.metrics or {}).get("test", {})
        tar = test.get("tar_at_far", {})
        rows.append({
            "id": info.id,
            "name": names[info.id],
            "status": live.get(info.id, info.status),
            "dataset": config.dataset if config else "?",
            "loss": config.loss if config else "?",
            "margin": config.margin if config else None,
            "energy": config.energy if config else "?",
            "epochs": info.epochs_done,
            "EER %": _percent(test.get("eer")),
            "AUC": _round(test.get("auc"), 4),
            "TAR@1e-1 %": _percent(tar.get("0.1")),
            "TAR@1e-2 %": _percent(tar.get("0.01")),
            "TAR@1e-3 %": _percent(tar.get("0.001")),
            "rank-1 %": _percent(test.get("rank1")),
            "train s": _round((info.metrics or {}).get("train_seconds"), 1),
            "message": info.message,
        })
    return rows


def config_differences(configs: list) -> list[str]:
    """The RunConfig fields that differ between the given runs (what the comparison varies)."""
    dicts = [c.to_dict() for c in configs if c is not None]
    if len(dicts) < 2:
        return []
    return sorted(k for k in dicts[0] if k != "extra" and len({repr(d[k]) for d in dicts}) > 1)


def _percent(value) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def _round(value, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def live_map(embeddings: np.ndarray, previous: np.ndarray | None = None,
             seed: int = 0) -> np.ndarray:
    """A quick 2-D map for the live view: PCA, turned to match the previous frame so points do
    not jump from one epoch to the next."""

    points = project(embeddings, "pca", seed=seed)
    if previous is not None and previous.shape == points.shape:
        points = align_to(previous, points)
    return points


def training_seconds(reports) -> float:
    """Seconds spent training so far, pauses left out: each report's ``seconds`` runs from the
    end of the previous report, which is when a paused job resumes (``elapsed`` counts the
    pause too)."""
    return float(sum(r.seconds for r in reports))


def eta_seconds(reports) -> float | None:
    """Seconds left, from the mean training time of the epochs done so far (pauses left out:
    after a pause "about N s left" used to count the paused time as training)."""
    if not reports:
        return None
    last = reports[-1]
    done = max(last.epoch, 1)
    return max(0.0, (last.epochs - last.epoch) * training_seconds(reports) / done)


def short_number(value) -> str:
    """A number that fits a metric card: 4 significant digits, powers of ten past 10⁴ (a
    diverging loss read "136591…", cut)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if number != 0 and (abs(number) >= 1e4 or abs(number) < 1e-3):
        mantissa, exponent = f"{number:.3e}".split("e")
        return f"{float(mantissa):.3g}e{int(exponent)}"
    return f"{number:.4g}"


def nearest_neighbours(embeddings: np.ndarray, index: int, energy: str,
                       k: int = 5) -> list[tuple[int, float]]:
    """The k probe images closest to image ``index`` (itself excluded), with their energies."""

    row = energy_matrix_np(embeddings[index:index + 1], energy, embeddings)[0]
    row[index] = np.inf
    order = np.argsort(row)[:k]
    return [(int(i), float(row[i])) for i in order if np.isfinite(row[i])]


def seen_mask(history: ProbeHistory) -> np.ndarray:
    """True for probe images of identities seen in training (drawn differently on maps)."""
    return np.zeros(len(history.labels), dtype=bool) if history.is_seen is None \
        else history.is_seen


def baseline_verification(config, kind: str, faceset=None) -> Verification:
    """A linear baseline (raw pixels, eigenfaces, Fisherfaces) on the same split as a run:
    fitted on its training identities, threshold from validation, scored on test."""

    faces = faceset if faceset is not None else load_for_config(config)
    split = split_for_config(config, faces.num_identities)
    labels = faces.labels.numpy()
    images = faces.images.numpy()

    def rows(identities) -> np.ndarray:
        return np.isin(labels, list(identities))

    train, val, test = rows(split.train), rows(split.val), rows(split.test)
    fit_images, fit_labels = images[train], labels[train]
    test_emb = baseline_embeddings(kind, fit_images, fit_labels, images[test])
    val_emb = val_labels = None
    if len(np.unique(labels[val])) >= 2:
        val_emb = baseline_embeddings(kind, fit_images, fit_labels, images[val])
        val_labels = labels[val]
    energy = "l2"
    return evaluate_embeddings(test_emb, labels[test], energy, val_emb, val_labels,
                               seed=config.seed)


def sweep_rows(infos, sweep: str) -> list[dict]:
    """(loss, margin, EER, AUC) of the finished runs of one sweep, for the sweep plot."""
    rows = []
    for info in infos:
        config, test = info.config, (info.metrics or {}).get("test", {})
        if config is None or config.extra.get("sweep") != sweep or "eer" not in test:
            continue
        rows.append({"loss": config.loss, "margin": config.margin, "eer": test["eer"],
                     "auc": test.get("auc")})
    return sorted(rows, key=lambda r: (r["loss"], r["margin"]))
