"""Cross-dataset evaluation: a run judged on another face set, beside its own test people.

A run's test EER is measured on unseen people *of its own dataset*: same camera, light and
framing as its training images. On another dataset every person is unseen and so is the
kind of photo: that gap is domain shift, and the ROC of the two side by side shows it.

The other dataset is loaded through the run's own face pipeline (RunConfig.pipeline) at the
run's input size, and turned into the run's channels (grey runs get the luminance of colour
images, colour runs get grey images copied into three channels), so the network sees what it
would be shown by Verify. Every genuine pair and up to 20000 impostor pairs of all its people
are scored; the run's own threshold (FAR 1 % on its validation people) gives the FAR and FRR
it would really have there.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch

from lab.data import DatasetError, load_for_config
from lab.measure.evaluate import embed, evaluate_embeddings
from lab.views.verify import input_shape_for_run, threshold_for_run

THRESHOLD_FAR = 0.01


def _channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 1:  # ITU-R BT.601 luminance, as PIL's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    return images.expand(-1, 3, -1, -1).contiguous()


def cross_dataset(run: Any, dataset: str, data_dir: str | None = None,
                  far: float = THRESHOLD_FAR) -> dict[str, Any]:
    """The run on another dataset: its Verification, and the FAR / FRR at its own threshold."""

    channels, size = input_shape_for_run(run)
    side = size if np.isscalar(size) else size[0]
    other = run.config.replace(dataset=dataset, data_dir=data_dir, image_size=int(side),
                               extra={k: v for k, v in run.config.extra.items()
                                      if k not in ("channels",)})
    faceset = load_for_config(other)
    images = _channels(faceset.images.float(), channels)
    if not np.isscalar(size) and tuple(images.shape[-2:]) != tuple(size):
        raise ValueError(f"the run takes {size[0]}x{size[1]} images; the other dataset loads "
                         f"at {images.shape[-2]}x{images.shape[-1]}")
    model = run.model if hasattr(run, "model") else run.load_model("cpu")
    embeddings = embed(model, images, device="cpu")
    labels = faceset.labels.numpy()
    result = evaluate_embeddings(embeddings, labels, run.config.energy,
                                 seed=run.config.data_seed)
    threshold = threshold_for_run(run, far)
    notes = list(faceset.report.notes)
    same_data = (dataset == run.config.dataset
                 and (data_dir or None) == (run.config.data_dir or None))
    if same_data:
        notes.append("this is the run's own dataset: its training people are included, so "
                     "the figures are optimistic")
    return {
        "run": getattr(run, "id", None), "dataset": dataset, "data_dir": data_dir,
        "people": int(faceset.num_identities), "images": int(len(labels)),
        "pipeline": run.config.pipeline, "summary": result.summary(),
        "threshold": threshold, "threshold_far": far,
        "far_at_threshold": float(np.mean(result.impostor_energies <= threshold)),
        "frr_at_threshold": float(np.mean(result.genuine_energies > threshold)),
        "notes": notes, "verification": result,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options `python -m lab evaluate` gains (lab.cli registers the subcommand)."""
    parser.add_argument("--run", dest="run_option", default=None,
                        help="run id (the same as the positional RUN)")
    parser.add_argument("--dataset", default=None,
                        help="evaluate on this other dataset instead (att, olivetti, lfw, "
                             "folder, ...): every person in it is unseen")
    parser.add_argument("--data-dir", default=None,
                        help="folder or .zip for --dataset folder (or an ORL folder for att)")


def cli(args: argparse.Namespace, run: Any) -> int:
    """Print the cross-dataset figures (JSON with --json); 2 with a message on bad input."""

    try:
        found = cross_dataset(run, args.dataset, args.data_dir)
    except (DatasetError, ValueError, OSError) as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    found.pop("verification")
    if getattr(args, "json", False):
        print(json.dumps(found, default=float))
        return 0
    s = found["summary"]
    print(f"run {found['run']} on {found['dataset']} ({found['people']} people, "
          f"{found['images']} images, pipeline {found['pipeline']}): EER {s['eer']:.4f} "
          f"AUC {s['auc']:.4f}; at the run's own threshold {found['threshold']:.4f} "
          f"(FAR {found['threshold_far']:g} on its validation people): FAR "
          f"{found['far_at_threshold']:.4f} FRR {found['frr_at_threshold']:.4f}")
    for note in found["notes"]:
        print(f"note: {note}")
    return 0
