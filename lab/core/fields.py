"""One row per RunConfig field: its type, the values it may take, its widget, default and help.

Every boundary reads this table and nothing else: the URL parser (lab.views.urlstate), the CLI
(lab.cli), the Train page's widgets (app_pages/train.py), the run store's import check and the
lesson presets (tests/test_fields.py checks every preset lies inside it). One table is what
makes "every value a link may carry opens the page" true: a slider's comfortable range is
widened to hold any allowed value (:meth:`Field.slider`), so the config can never hold a
value the widget refuses (Streamlit raises ``StreamlitValueAboveMaxError`` when it does).

What belongs to a loss (the loss names, the energy and the margin each loss comes with, the
margin's range when it is an angle) is not written here: it is read, live, from the loss
registry (:mod:`lab.metric.loss_specs`), the one place :class:`lab.core.config.RunConfig`, the CLI,
the URL and the Train page take it from: choosing ArcFace anywhere gives m = 0.5 rad on the cosine
energy, never the contrastive loss's m = 1, and a loss registered later is a choice at once.

This module imports no Streamlit; it imports torch through the loss registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.core import limits
from lab.metric.loss_specs import (
    LOSS_DEFAULTS,
    LOSS_NAMES,
    MARGIN_RANGES,
    loss_defaults,
    uses_margin,
)

__all__ = ["CHOICES", "DATASETS", "DEVICES", "ENERGIES", "FIELDS", "LOSSES", "LOSS_DEFAULTS",
           "LR_SCHEDULES", "MINERS", "NETWORKS", "OPTIMIZERS", "PIPELINES", "RANGES",
           "URL_FIELDS", "Field", "loss_defaults", "problems_of", "uses_margin"]

DATASETS = ("synthetic", "digits", "att", "olivetti", "mnist", "fashion-mnist", "lfw", "folder")
NETWORKS = ("linear", "mlp", "cnn", "resnet")
ENERGIES = ("l1", "l2", "sqeuclidean", "cosine")
LOSSES = LOSS_NAMES  # the registered losses (a live view of lab.metric.loss_specs.LOSSES)
MINERS = ("all", "random", "semihard", "batchhard")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
PIPELINES = ("none", "aligned", "aligned+hist", "aligned+clahe", "aligned+tantriggs")

@dataclass(frozen=True)
class Field:
    """One RunConfig field.

    ``kind``: "str", "int", "float" or "bool". ``choices``: the allowed strings, or
    ``low``..``high``: the allowed range (inclusive) of a number. ``optional``: None is allowed
    (it means "automatic"; the help says what). ``widget``: the comfortable slider range
    (low, high, step) or the select-slider ``options``; both are widened to hold any allowed
    value. ``by_loss``: a loss-specific slider range (the margin of ArcFace is an angle).
    For ``by_loss`` losses that range is also the allowed one (an angular margin beyond
    1.5 rad, 86°, leaves no room on the sphere for a second class).
    ``url``: whether a link may set it (a link never names a folder on the server).
    """

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    optional: bool = False
    widget: tuple[float, float, float] | None = None
    options: tuple[float, ...] | None = None
    by_loss: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    url: bool = True

    def bounds(self, loss: str | None = None) -> tuple[float, float]:
        """The allowed range; with ``by_loss``, that loss's range (its slider's ends)."""
        if loss in self.by_loss:
            return self.by_loss[loss][0], self.by_loss[loss][1]
        return self.low, self.high

    def problem(self, value: Any, loss: str | None = None) -> str | None:
        """Why ``value`` is not allowed (for a run with ``loss``), in a sentence; None when it
        is."""
        if value is None:
            return None if self.optional else f"{self.name} must be set."
        if self.choices is not None:
            return None if value in self.choices else (
                f"{self.name} must be one of {', '.join(self.choices)}.")
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"{self.name} must be true or false."
        if self.kind in ("int", "float"):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if self.kind == "int" and not isinstance(value, int):
                number = number and float(value).is_integer()
            low, high = self.bounds(loss)
            if not number or not math.isfinite(value) or not (low <= value <= high):
                where = f" for the {loss} loss" if loss in self.by_loss else ""
                return f"{self.name} must be between {low:g} and {high:g}{where} (got {value!r})."
        return None

    def slider(self, value: Any, loss: str | None = None) -> tuple[Any, Any, Any]:
        """(min, max, step) of a slider that holds ``value`` (an allowed value): the comfortable
        range, widened to the value when a link or a preset carries one outside it."""
        low, high, step = self.by_loss.get(loss or "", self.widget)
        if value is not None:
            low, high = min(low, value), max(high, value)
        if self.kind == "int":
            return int(low), int(high), int(step)
        return float(low), float(high), float(step)

    def options_for(self, value: Any) -> list[Any]:
        """The select-slider's options, with ``value`` among them (kept sorted)."""
        options = list(self.options or ())
        if value is not None and value not in options:
            options = sorted([*options, value])
        return options

    def describe(self) -> str:
        """The allowed values in words (for the CLI's help and the warnings)."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.low is not None:
            text = f"{self.low:g} to {self.high:g}"
            return text + (" or none" if self.optional else "")
        return "a folder or zip path" if self.name == "data_dir" else "any"


_MAX_SEED = 2**31 - 1
_SEED_HELP = ("Fixes the initial weights, the batches and, unless People seed is set, which "
              "people are train, validation and test.")

FIELDS: dict[str, Field] = {f.name: f for f in (
    # data
    Field("dataset", "str", "Which images to learn from.", choices=DATASETS),
    Field("data_dir", "str", "Folder (or zip) of the att and folder datasets.", optional=True,
          url=False),
    Field("num_identities", "int", "How many different synthetic people.",
          low=limits.MIN_IDENTITIES, high=limits.MAX_IDENTITIES, widget=(10, 200, 5)),
    Field("images_per_identity", "int", "Synthetic images of each person.", low=2,
          high=limits.MAX_IMAGES_PER_IDENTITY, widget=(2, 50, 1)),
    Field("image_size", "int", "Side of the square network input, in pixels.", low=8,
          high=limits.MAX_IMAGE_SIZE, options=(16, 24, 32, 48, 64, 96)),
    Field("difficulty", "float", "Nuisance: pose, lighting, expression, glasses and noise.",
          low=0.0, high=3.0, widget=(0.0, 2.0, 0.25)),
    Field("val_identities", "int", "People held out to choose the decision threshold (never "
          "trained on, never tested on). At least 2, so that there are impostor pairs among "
          "them.", low=2, high=limits.MAX_IDENTITIES, widget=(2, 20, 1)),
    Field("test_identities", "int", "People never seen in training, on whom the ROC is "
          "measured.", low=2, high=limits.MAX_IDENTITIES, widget=(2, 40, 1)),
    Field("train_images_per_identity", "int", "Images of each training person the run learns "
          "from (empty: all); validation and test people keep all theirs.", low=1,
          high=limits.MAX_IMAGES_PER_IDENTITY, optional=True),
    Field("fold", "int", "Identity fold for cross-validation (empty: one seeded split).",
          low=0, high=19, optional=True),
    Field("folds", "int", "How many identity folds (with Fold set).", low=2, high=20,
          widget=(2, 10, 1)),
    Field("split_seed", "int", "Which people are train, validation and test (empty: follow "
          "Seed). Keep it and change Seed to retrain the same people from other initial "
          "weights: how much of a result is luck?", low=0, high=_MAX_SEED, optional=True),
    # network
    Field("network", "str", "linear = a learned Mahalanobis metric (M = WᵀW); mlp; cnn = "
          "Chopra-style LeNet; resnet = a small ResNet.", choices=NETWORKS),
    Field("embedding_dim", "int", "Size of the embedding G_W(X) the energy is measured in.",
          low=2, high=limits.MAX_EMBEDDING_DIM, options=(2, 4, 8, 16, 32, 64, 128, 256)),
    Field("normalize", "bool", "Put every embedding on the unit sphere (FaceNet)."),
    Field("width", "int", "Channels of the first layer (cnn, resnet) or hidden units (mlp); "
          "empty: 32, or 256 for the mlp.", low=2, high=limits.MAX_WIDTH, optional=True,
          widget=(4, 128, 4)),
    Field("init_scale", "float", "Multiplies the head's initial weights: a small value starts "
          "every embedding near 0, a collapsed start (empty: as initialised).", low=0.0,
          high=10.0, optional=True),
    # energy and loss
    Field("energy", "str", "Energy E between two embeddings: L1, L2, squared L2 or cosine "
          "(1 − cos). Classifier losses train without it; it still scores the verification "
          "pairs.", choices=ENERGIES),
    Field("loss", "str", "The loss the network is trained with.", choices=LOSSES),
    Field("margin", "float", "The loss's margin (contrastive m, triplet α, ArcFace m in "
          "radians, CosFace m); for Chopra and naive, the semi-hard miner's window.",
          low=0.0, high=10.0, widget=(0.0, 4.0, 0.05),
          by_loss=MARGIN_RANGES),
    Field("scale", "float", "ArcFace / CosFace s: radius of the hypersphere the logits live "
          "on.", low=1.0, high=128.0, widget=(1.0, 64.0, 1.0)),
    Field("chopra_q", "float", "Chopra's Q, the upper bound of the energy (empty: the bound "
          "the energy implies).", low=1e-3, high=1e4, optional=True),
    Field("miner", "str", "Which pairs or triplets of the batch the loss sees: all, random, "
          "semi-hard, batch-hard.", choices=MINERS),
    # optimisation
    Field("optimizer", "str", "Adam rescales each step; plain SGD follows the gradient's size "
          "(as the papers trained).", choices=OPTIMIZERS),
    Field("lr", "float", "The optimiser's step size. 10 makes most runs diverge: a lesson in "
          "itself.", low=1e-6, high=100.0,
          options=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.05, 0.1, 0.3, 1.0, 10.0)),
    Field("weight_decay", "float", "L2 penalty on the weights.", low=0.0, high=1.0),
    Field("epochs", "int", "Passes over the training identities.", low=1,
          high=limits.MAX_EPOCHS, widget=(1, 100, 1)),
    Field("p_identities", "int", "P identities per batch (P × K batches give every anchor a "
          "genuine pair).", low=2, high=256),
    Field("k_images", "int", "K images of each identity per batch.", low=2, high=64),
    Field("steps_per_epoch", "int", "Batches per epoch (empty: one pass over the training "
          "images). Fixes the number of steps when the data size changes.", low=1,
          high=100_000, optional=True),
    Field("augment", "bool", "Small crops, flips and brightness changes of the training "
          "faces."),
    Field("augment_scale", "float", "Smallest share of the image area an augmentation crop "
          "keeps.", low=0.1, high=1.0, widget=(0.3, 1.0, 0.05)),
    Field("augment_brightness", "float", "Brightness jitter of the augmentation (+/-).",
          low=0.0, high=1.0, widget=(0.0, 0.5, 0.05)),
    Field("lr_schedule", "str", "constant, or cosine: the learning rate falls to 0 along a half "
          "cosine over the epochs or the time budget, whichever ends first.",
          choices=LR_SCHEDULES),
    Field("pipeline", "str", "Face pipeline of every image, in training and in Verify: none "
          "(the whole image), aligned (detect, 5-point align, crop), then histogram "
          "equalisation, CLAHE or Tan & Triggs lighting normalisation.", choices=PIPELINES),
    Field("lighting", "bool", "Lighting augmentation: directional light, gamma, contrast and "
          "half-face shadows on the training images."),
    Field("flip_average", "bool", "Embed each face and its mirror image and average the two: "
          "the metric then ignores which way a face looks (faces only; digits are not "
          "symmetric)."),
    Field("seed", "int", _SEED_HELP, low=0, high=_MAX_SEED),
    Field("device", "str", "Where to train (auto: the GPU when there is one).", choices=DEVICES),
    Field("extra", "dict", "Extra options (e.g. width of the network).", url=False),
)}

CHOICES: dict[str, tuple[str, ...]] = {
    name: f.choices for name, f in FIELDS.items() if f.choices is not None}
RANGES: dict[str, tuple[float, float]] = {
    name: (f.low, f.high) for name, f in FIELDS.items() if f.low is not None}
URL_FIELDS: tuple[str, ...] = tuple(name for name, f in FIELDS.items() if f.url)


def problems_of(values: dict[str, Any]) -> list[str]:
    """Every field of ``values`` (RunConfig.to_dict()) outside the table, in sentences."""
    found = []
    for name, spec in FIELDS.items():
        if name in ("extra", "data_dir") or name not in values:
            continue
        wrong = spec.problem(values[name], values.get("loss"))
        if wrong:
            found.append(wrong)
    return found
