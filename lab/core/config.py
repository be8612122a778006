"""RunConfig: one frozen, JSON-serialisable description of a training run.

A run is reproducible from its config alone: the seed fixes the identity split, the batch
sampling and the initial weights. The app keeps a RunConfig in the URL, the CLI builds one from
its options, and the run store writes it to ``config.json`` beside the weights.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from lab.core.fields import (  # noqa: F401  (the choices are re-exported: lab.core.config.LOSSES ...)
    CHOICES,
    DATASETS,
    DEVICES,
    ENERGIES,
    LOSSES,
    MINERS,
    NETWORKS,
    OPTIMIZERS,
    PIPELINES,
    RANGES,
    loss_defaults,
    problems_of,
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a run learns. Defaults are the app's default lesson."""

    # data
    dataset: str = "synthetic"
    data_dir: str | None = None  # for "att" (ORL folder layout) and "folder" (folder or zip)
    num_identities: int = 40  # synthetic faces only
    images_per_identity: int = 10  # synthetic faces only
    image_size: int = 32  # synthetic faces render at this size; others are resized to it
    difficulty: float = 1.0  # synthetic faces: 0 = trivially easy, 1 = default, 2 = hard
    val_identities: int = 5
    test_identities: int = 10  # people never seen in training
    # Cut every training person to this many images (the few-images lesson); the validation and
    # test people keep all theirs, so runs with different cuts are judged on the same pairs.
    train_images_per_identity: int | None = None
    fold: int | None = None  # identity fold for cross-validation (None: one seeded split)
    folds: int = 4
    # Which people are train / val / test: None follows ``seed``. Set it to retrain the same
    # split with other initial weights (how much of a result is luck of the draw).
    split_seed: int | None = None
    # network
    network: str = "cnn"
    embedding_dim: int = 32
    normalize: bool = True  # L2-normalise embeddings (FaceNet)
    # channels of the first conv (cnn, resnet) or hidden units (mlp); None: 32, or 256 for mlp
    width: int | None = None
    # the head's initial weights times this (a collapsed start: lesson "plateau"); None: as drawn
    init_scale: float | None = None
    # energy and loss
    # energy and margin: None = the loss's own (lab.metric.loss_specs.LOSS_DEFAULTS), so
    # RunConfig(loss= "arcface") trains with m = 0.5 rad on the cosine energy, as the CLI, the URL
    # and the Train page do. They are filled in at construction and are never None afterwards.
    energy: str | None = None
    loss: str = "contrastive"
    margin: float | None = None  # contrastive m, triplet alpha, ArcFace/CosFace margin
    scale: float = 16.0  # ArcFace / CosFace s
    chopra_q: float | None = None  # Chopra Q; None = the bound implied by the energy (see losses)
    miner: str = "all"
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 10
    p_identities: int = 8  # P identities x K images per batch
    k_images: int = 4
    steps_per_epoch: int | None = None  # None: one pass over the training images
    augment: bool = False
    augment_scale: float = 0.85  # smallest share of the image area an augmentation crop keeps
    augment_brightness: float = 0.2  # brightness jitter of the augmentation (+/-)
    # "cosine": the learning rate falls to 0 along a half cosine over the epochs or the time
    # budget, whichever ends first (settles the weights at the end); "constant": it stays
    lr_schedule: str = "constant"
    # Face pipeline of every image, in training and in Verify (lab.faces.facepipe.PIPELINES): "none"
    # (whole image, as before), "aligned" (detect, 5-point align, crop), "aligned+tantriggs" ...
    pipeline: str = "none"
    # Lighting augmentation (lab.learn.lighting): directional light, gamma, contrast, half-face
    # shadow.
    lighting: bool = False
    # Embed each image and its mirror image, and average the two (faces are nearly symmetric, so
    # the metric should not care which way a face looks; about 1 point of EER on AT&T).
    flip_average: bool = False
    seed: int = 0
    device: str = "auto"
    # Run metadata and lesson inputs (a sweep's name, a geometry view's m ...), never a learning
    # setting: those are fields above.
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        for name, value in loss_defaults(self.loss).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        # Runs saved before these settings were fields kept them in ``extra``: such a key is the
        # setting itself, so an old config.json (or ``replace(extra={"width": 8})``) trains
        # exactly as it did.
        extra = self.extra if isinstance(self.extra, dict) else {}
        moved = [key for key in LEARNING_SETTINGS if key in extra]
        if moved:
            for key in moved:
                object.__setattr__(self, key, extra[key])
            object.__setattr__(self, "extra",
                               {k: v for k, v in extra.items() if k not in LEARNING_SETTINGS})

    @property
    def data_seed(self) -> int:
        """The seed of everything about the data (the people, their split, the sampled impostor
        pairs), as opposed to the weights and batches, which follow ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict, ignoring unknown keys so old run folders still load."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


LEARNING_SETTINGS = ("width", "init_scale", "augment_scale", "augment_brightness", "lr_schedule",
                     "train_images_per_identity")


# Allowed values, checked at every boundary (URL, CLI, imported run): lab.core.fields holds the
# table (CHOICES and RANGES above are views of it).


def problems(config: RunConfig) -> list[str]:
    """Everything wrong with a config, in sentences; empty when it can run."""
    return problems_of(config.to_dict())


def coerce(name: str, text: str) -> Any:
    """Turn a URL or CLI string into the type of RunConfig field ``name`` (ValueError if not)."""
    kinds = {f.name: f.type for f in fields(RunConfig)}
    kind = str(kinds[name])
    if text in ("", "None", "none", "null") and "None" in kind:
        return None
    if kind.startswith("bool"):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false (got {text!r})")
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("float"):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number (got {text!r})")
        return value
    return text
