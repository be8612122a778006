"""How far to trust a verdict: where its threshold came from, and whether a photo is like the
run's training images at all.

A threshold at FAR 1 % means "1 % of impostor pairs accepted" only for photos like the
validation people's. A photo unlike anything the run trained on (another camera, light, a
drawing) lands somewhere in the embedding space nobody measured, and the FAR promise says
nothing about it. So each photo of a pair is checked against the run's own validation faces,
two ways, each calibrated on those faces (unseen people, like an upload, but from the run's
dataset):

- embedding: E to the nearest training face. An unseen person's face is never as close as a
  training image of themselves, but the validation faces show how far an in-domain unseen face
  gets: the limit is the largest nearest-training E of any validation face;
- image statistics: the network input's mean and standard deviation (brightness and contrast as
  the run sees them), outside the range of the validation inputs widened by a quarter of it.

A photo beyond either limit is "unlike the training images": the run's verdict is then
marked uncalibrated for it. The run's dataset also says whether it ever saw a real face
(``REAL_FACE_DATASETS``) and which saved run suits photos best (``photo_order``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab.data import load_for_config
from lab.data.splits import split_for_config
from lab.measure.evaluate import embed
from lab.metric.energy import energy_matrix_np

REAL_FACE_DATASETS = ("att", "olivetti", "lfw", "folder")  # photos of people
DATASET_WORDS = {"synthetic": "synthetic cartoon faces", "digits": "hand-written digits",
                 "mnist": "MNIST digits", "fashion-mnist": "Fashion-MNIST clothes",
                 "att": "AT&T / ORL face photos", "olivetti": "Olivetti (AT&T) face photos",
                 "lfw": "Labeled Faces in the Wild photos", "folder": "your own images"}
TRAIN_CAP = 2000  # training images embedded for the nearest-face distance
STAT_SLACK = 0.25  # image statistics: the validation range widened by this share of itself


def saw_real_faces(config) -> bool:
    return getattr(config, "dataset", "") in REAL_FACE_DATASETS


def dataset_words(config) -> str:
    return DATASET_WORDS.get(config.dataset, config.dataset)


def photo_order(infos: list) -> list:
    """Runs best suited to photos first: finished, trained on real faces, then the lowest
    validation EER (test EER when there is none); the rest keep their order (newest first)."""
    def key(item: tuple[int, Any]) -> tuple:
        index, info = item
        metrics = info.metrics or {}
        eer = (metrics.get("val") or {}).get("eer")
        if eer is None:
            eer = (metrics.get("test") or {}).get("eer")
        real = info.config is not None and saw_real_faces(info.config)
        return (info.status != "done", not real, float("inf") if eer is None else eer, index)

    return [info for _, info in sorted(enumerate(infos), key=key)]


def input_stats(batch: torch.Tensor) -> np.ndarray:
    """[N, 2]: mean and standard deviation of each network input."""
    flat = batch.detach().float().flatten(1)
    return torch.stack([flat.mean(1), flat.std(1)], dim=1).cpu().numpy().astype(np.float64)


@dataclass
class Calibration:
    """What a run's validation faces say about in-domain inputs (see the module docstring)."""

    train_embeddings: np.ndarray
    energy: str
    distance_limit: float  # the largest nearest-training E of a validation face
    stats_low: np.ndarray  # [2] mean, std lower limits
    stats_high: np.ndarray
    validation_people: int
    validation_images: int
    dataset: str

    def nearest(self, embeddings: np.ndarray) -> np.ndarray:
        matrix = energy_matrix_np(np.asarray(embeddings, np.float64), self.energy,
                                  self.train_embeddings)
        return matrix.min(axis=1)

    def check(self, embeddings: np.ndarray, batch: torch.Tensor) -> list[dict]:
        """Per input: its nearest-training E, the limit, its statistics, and the verdict."""
        distances = self.nearest(embeddings)
        stats = input_stats(batch)
        out = []
        for distance, (mean, std) in zip(distances, stats, strict=True):
            reasons = []
            if distance > self.distance_limit:
                reasons.append(f"its embedding is farther from every training face (E = "
                               f"{distance:.3f}) than any of the run's "
                               f"{self.validation_images} validation faces ever is "
                               f"(at most {self.distance_limit:.3f})")
            for value, what, k in ((mean, "brightness", 0), (std, "contrast", 1)):
                if not self.stats_low[k] <= value <= self.stats_high[k]:
                    reasons.append(f"its {what} as the run sees it ({value:.2f}) is outside "
                                   f"that of the validation faces ({self.stats_low[k]:.2f}-"
                                   f"{self.stats_high[k]:.2f})")
            out.append({"nearest_training_energy": float(distance),
                        "limit": float(self.distance_limit), "mean": float(mean),
                        "std": float(std), "unusual": bool(reasons), "reasons": reasons})
        return out


_CALIBRATIONS: dict[tuple, Calibration] = {}


def calibrate(run: Any, faceset=None) -> Calibration:
    """The run's calibration, computed once per weights file (in memory): embeds up to
    TRAIN_CAP training images and every validation image (test ones when it has none)."""

    weights = Path(getattr(run, "path", ".")) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    key = (str(getattr(run, "path", id(run))), stamp)
    if faceset is None and key in _CALIBRATIONS:
        return _CALIBRATIONS[key]
    config = run.config
    faceset = faceset if faceset is not None else load_for_config(config)
    split = split_for_config(config, faceset.num_identities)
    people = list(split.val) if len(split.val) >= 2 else list(split.test)
    labels = faceset.labels
    train_index = torch.nonzero(torch.isin(labels, torch.as_tensor(split.train))).flatten()
    if len(train_index) > TRAIN_CAP:
        gen = torch.Generator().manual_seed(config.data_seed)
        train_index = train_index[torch.randperm(len(train_index), generator=gen)[:TRAIN_CAP]]
    val_index = torch.nonzero(torch.isin(labels, torch.as_tensor(people))).flatten()
    model = run.model if hasattr(run, "model") else run.load_model("cpu")
    images = faceset.images.float()
    train_emb = embed(model, images[train_index], device="cpu").astype(np.float64)
    val_emb = embed(model, images[val_index], device="cpu").astype(np.float64)
    partial = Calibration(train_emb, config.energy, 0.0, np.zeros(2), np.zeros(2),
                          len(people), len(val_index), dataset_words(config))
    partial.distance_limit = float(partial.nearest(val_emb).max())
    stats = input_stats(images[val_index])
    low, high = stats.min(axis=0), stats.max(axis=0)
    slack = STAT_SLACK * (high - low)
    partial.stats_low, partial.stats_high = low - slack, high + slack
    _CALIBRATIONS[key] = partial
    return partial


def threshold_source(run: Any, far: float, calibration: Calibration | None) -> dict:
    """Where the threshold came from, as data and as a sentence."""
    config = run.config
    people = calibration.validation_people if calibration is not None else None
    words = dataset_words(config)
    who = f"{people} validation people" if people else "the run's validation people"
    return {"dataset": config.dataset, "dataset_words": words, "validation_people": people,
            "far": far, "text": f"threshold set at FAR {100 * far:g} % on {who} of {words} "
                                "(never trained on)"}


def assess(run: Any, result: Any, far: float, calibration: Calibration | None) -> dict:
    """The trust fields of one verification: threshold source, each photo checked against the
    training images, whether the student verdict is calibrated here, agreement with the
    reference model, and whether the run ever saw a real face."""
    real = saw_real_faces(run.config)
    photos = (calibration.check(result.embeddings, result.inputs)
              if calibration is not None and result.embeddings is not None else [])
    unusual = [name for name, check in zip("AB", photos, strict=True) if check["unusual"]]
    calibrated = real and not unusual
    out = {"threshold_source": threshold_source(run, far, calibration),
           "out_of_distribution": dict(zip("AB", photos, strict=True)),
           "student_calibrated": calibrated,
           "trained_on_real_faces": real, "dataset_words": dataset_words(run.config)}
    reference = getattr(result, "reference", None)
    if reference is not None:
        out["models_agree"] = bool(reference.same == result.same)
    notes = []
    if not real:
        notes.append(f"this run never saw a real face: it learnt from "
                     f"{dataset_words(run.config)}")
    for name in unusual:
        notes.append(f"photo {name} is unlike the run's training images: "
                     + "; ".join(out["out_of_distribution"][name]["reasons"]))
    out["notes"] = notes
    out["verdict"] = verdict_words(result.same, calibrated, real,
                                   None if reference is None else reference.same)
    return out


def verdict_words(same: bool, calibrated: bool, real: bool, reference_same: bool | None) -> str:
    """The student verdict in one line, with how far to trust it in the line itself."""
    words = "same person" if same else "different people"
    caveat = verdict_caveat(same, calibrated, real, reference_same)
    return f"{words} {caveat}" if caveat else words


def verdict_caveat(same: bool, calibrated: bool, real: bool, reference_same: bool | None) -> str:
    """What the verdict line adds after "same person" / "different people" (may be empty)."""
    parts = []
    if not real:
        parts.append("(uncalibrated here: the run never saw a real face)")
    elif not calibrated:
        parts.append("(uncalibrated here: a photo is unlike the run's training images)")
    if reference_same is not None and reference_same != same:
        parts.append("— the reference model disagrees: it says "
                     + ("same person" if reference_same else "different people"))
    return " ".join(parts)
