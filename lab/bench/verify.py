"""`python -m lab bench verify`: end-to-end time (and accuracy) of one verification, student
and reference model."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lab.bench.common import machine, register
from lab.core import settings
from lab.core.config import RunConfig
from lab.data.splits import split_for_config
from lab.faces.photos import (
    choose_face,
    crop_face,
    detect_faces,
    load_photo,
    to_model_input,
    whole_image_crop,
)
from lab.faces.reference import ReferenceModel, shared_reference
from lab.learn.models import build_model
from lab.learn.runs import RunStore
from lab.measure.evaluate import evaluate_embeddings, verification_pairs
from lab.metric.energy import pairwise_energy_np
from lab.views.verify import (
    DEFAULT_FAR,
    EmbedFn,
    _aspect,
    embedder_for_run,
    input_shape_for_run,
    threshold_for_run,
    verify_pair,
)


# -- verify ---------------------------------------------------------------------------------
def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    bench_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no accuracy run")


@register("verify", "end-to-end time of one verification (student and reference model)",
          _verify_arguments)
def verify_bench(args: argparse.Namespace) -> dict:
    if args.quick:
        args.repeats, args.accuracy = min(args.repeats, 3), False
    return {"bench": "verify", **bench_run(args)}



# ---------------------------------------------------------------- benchmark


def _png_bytes(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _webcam_photo(face: Image.Image, seed: int = 0) -> bytes:
    """A 640x480 JPEG with the face at webcam size, to time a realistic upload."""
    rng = np.random.default_rng(seed)
    background = (rng.random((480, 640, 3)) * 40 + 100).astype(np.uint8)
    canvas = Image.fromarray(background)
    big = face.convert("RGB").resize((face.width * 3, face.height * 3), Image.Resampling.BICUBIC)
    canvas.paste(big, ((640 - big.width) // 2, (480 - big.height) // 2))
    return _png_bytes(canvas, "JPEG", quality=90)


def _median_timings(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}


def _timed(function: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Stage timings of one call plus its process CPU seconds: on a shared machine the wall
    time includes waiting for other processes, the CPU time does not."""
    cpu = time.process_time()
    timings = dict(function())
    timings["cpu_seconds"] = time.process_time() - cpu
    return timings


def att_reference_embeddings(att_dir: Path, identities: list[int] | None = None
                             ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Reference descriptors of AT&T images (s1..s40): detector first, whole image if none.

    Returns (embeddings [N, 128], labels [N] = identity index 0..39, counts of how each face
    was found).
    """

    model = shared_reference()
    if model is None:
        raise RuntimeError("the reference model is not installed")
    wanted = range(40) if identities is None else identities
    embeddings, labels, counts = [], [], {"detected": 0, "whole_image": 0}
    for identity in wanted:
        folder = Path(att_dir) / f"s{identity + 1}"
        for file in sorted(folder.glob("*.pgm"), key=lambda p: int(p.stem)):
            image = load_photo(file.read_bytes())
            faces = detect_faces(image)
            if faces and not faces[0].tiny:
                embeddings.append(model.embed(image, faces[0]))
                counts["detected"] += 1
            else:
                embeddings.append(model.embed(image, None))
                counts["whole_image"] += 1
            labels.append(identity)
    return np.stack(embeddings), np.asarray(labels), counts


def att_student_embeddings(att_dir: Path, identities: list[int], embed_fn: EmbedFn,
                           channels: int, image_size: int | tuple[int, int],
                           whole_image: bool) -> tuple[np.ndarray, np.ndarray]:
    """A student run's embeddings of AT&T photos through the verify pipeline: either the
    whole image (as the run saw its training images) or the detected, aligned face crop."""
    aspect = _aspect(image_size)
    inputs, labels = [], []
    for identity in identities:
        folder = Path(att_dir) / f"s{identity + 1}"
        for file in sorted(folder.glob("*.pgm"), key=lambda p: int(p.stem)):
            image = load_photo(file.read_bytes())
            faces = [] if whole_image else detect_faces(image)
            crop = (crop_face(image, faces[0], aspect=aspect) if faces and not faces[0].tiny
                    else whole_image_crop(image, aspect))
            inputs.append(to_model_input(crop, channels, image_size))
            labels.append(identity)
    return np.asarray(embed_fn(torch.cat(inputs))), np.asarray(labels)


def bench_verify(out_json: str | Path | None = None, *, run_id: str | None = None,
                 runs_root: str | Path | None = None, att_dir: str | Path | None = None,
                 repeats: int = 7, accuracy: bool = True) -> dict[str, Any]:
    """End-to-end time of one verification (decode, detect, crop, embed both, decide) for the
    student model and the reference model, and the reference model's verification accuracy
    on AT&T identities (the 10 unseen test identities of the default AT&T split, and all 40:
    it never trained on any of them). Writes `out_json` when given; returns the same dict.
    """


    att = Path(att_dir or settings.att_override() or settings.shared_att())
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    result: dict[str, Any] = {"cpu": platform.processor() or platform.machine(),
                              "threads": torch.get_num_threads(), "repeats": repeats,
                              "load_average": list(os.getloadavg()),
                              "note": "seconds are medians over the repeats after one warm-up "
                                      "call; cpu_seconds is the process CPU time of one call"}
    if not (att / "s1").is_dir():
        raise FileNotFoundError(f"AT&T faces not found at {att} (set METRIC_LAB_ATT)")
    face_a = Image.open(att / "s1" / "1.pgm")
    face_b = Image.open(att / "s1" / "2.pgm")
    photos = {"att_pgm": (_png_bytes(face_a, "PPM"), _png_bytes(face_b, "PPM")),
              "webcam_jpeg_640x480": (_webcam_photo(face_a, 0), _webcam_photo(face_b, 1))}

    if run_id:
        run = RunStore(runs_root).load(run_id)
        channels, image_size = input_shape_for_run(run)
        embed_fn, energy = embedder_for_run(run), run.config.energy
        threshold = threshold_for_run(run, DEFAULT_FAR)
        result["student"] = {"run": run.id, "network": run.config.network}
    else:
        config = RunConfig(dataset="att", network="cnn", image_size=32)
        model = build_model(config, 1, 32).eval()
        channels, image_size, energy, threshold = 1, 32, config.energy, 1.0

        def embed_fn(images: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return model(images).numpy()

        result["student"] = {"run": None, "network": "cnn (untrained, same cost as trained)"}

    for label, (photo_a, photo_b) in photos.items():
        runs = []
        detector = ""
        for _ in range(repeats + 1):
            def once(photo_a=photo_a, photo_b=photo_b) -> dict[str, float]:
                nonlocal detector
                out = verify_pair(photo_a, photo_b, embed_fn, channels=channels,
                                  image_size=image_size, energy=energy, threshold=threshold)
                detector = out.detector
                return out.timings

            runs.append(_timed(once))
        result["student"][label] = _median_timings(runs[1:])  # first call warms caches
        result["student"]["detector"] = detector

    ok, why = ReferenceModel.available()
    result["reference"] = {"available": ok, "reason": why, "threshold": ReferenceModel.threshold}
    if ok:
        model = shared_reference()
        for label, (photo_a, photo_b) in photos.items():
            runs = []
            for _ in range(repeats + 1):
                def once(photo_a=photo_a, photo_b=photo_b) -> dict[str, float]:
                    start = time.perf_counter()
                    images = [load_photo(photo_a), load_photo(photo_b)]
                    decoded = time.perf_counter()
                    boxes = [choose_face(detect_faces(image)) for image in images]
                    detected = time.perf_counter()
                    model.verify(images[0], boxes[0], images[1], boxes[1])
                    done = time.perf_counter()
                    return {"decode": decoded - start, "detect": detected - decoded,
                            "embed_and_decide": done - detected, "total": done - start}

                runs.append(_timed(once))
            result["reference"][label] = _median_timings(runs[1:])
        if accuracy:
            start = time.perf_counter()
            embeddings, labels, counts = att_reference_embeddings(att)
            seconds = time.perf_counter() - start
            split_config = (run.config if run_id and run.config.dataset == "att"
                            else RunConfig(dataset="att", data_dir=str(att)))
            split = split_for_config(split_config, 40)
            test = np.isin(labels, list(split.test))
            val = np.isin(labels, list(split.val))
            unseen = evaluate_embeddings(embeddings[test], labels[test], "l2",
                                         embeddings[val], labels[val])
            every = evaluate_embeddings(embeddings, labels, "l2")
            fixed = _accuracy_at(embeddings[test], labels[test], ReferenceModel.threshold)
            result["reference"]["att"] = {
                "images": int(len(labels)), "faces": counts,
                "seconds_per_image": round(seconds / len(labels), 4),
                "unseen_test_identities": sorted(int(k) + 1 for k in split.test),
                "test_10": {**unseen.summary(), "accuracy_at_0.6": fixed},
                "all_40": every.summary(),
            }
    if accuracy and run_id and run.config.dataset == "att":
        split = split_for_config(run.config, 40)
        figures = {}
        for how, whole in (("whole_image", True), ("detected_crop", False)):
            emb, lab = att_student_embeddings(att, list(split.test), embed_fn, channels,
                                              image_size, whole)
            val_emb, val_lab = att_student_embeddings(att, list(split.val), embed_fn, channels,
                                                      image_size, whole)
            figures[how] = evaluate_embeddings(emb, lab, energy, val_emb, val_lab).summary()
        result["student"]["att_test"] = {"identities": sorted(int(k) + 1 for k in split.test),
                                         **figures}
    if out_json:
        Path(out_json).write_text(json.dumps(result, indent=2, default=float))
    return result


BENCH_HELP = ("end-to-end time of one verification (student and reference model) and the "
              "reference model's EER/AUC on AT&T identities")


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m lab bench verify` (lab.bench registers it)."""
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--run", default=None,
                        help="time this run's network (default: an untrained AT&T-sized CNN)")
    parser.add_argument("--runs-root", default=None, help="run store folder")
    parser.add_argument("--att-dir", default=None, help="AT&T faces (s1..s40 folders)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median)")
    parser.add_argument("--no-accuracy", dest="accuracy", action="store_false",
                        help="timings only (skip the 400-image reference accuracy run)")


def bench_run(args: argparse.Namespace) -> dict[str, Any]:
    """lab.bench's runner shape: args -> dict (lab.bench writes --json itself)."""

    result = bench_verify(None, run_id=args.run, runs_root=args.runs_root,
                          att_dir=args.att_dir, repeats=args.repeats, accuracy=args.accuracy)
    return {"machine": machine(), **result}


def _accuracy_at(embeddings: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Genuine accept and impostor reject rates at a fixed threshold (dlib's 0.6)."""

    i, j, same = verification_pairs(labels, max_impostor=10**9)
    energies = pairwise_energy_np(embeddings[i], embeddings[j], "l2")
    accept = energies <= threshold
    return {"genuine_accepted": float(accept[same].mean()),
            "impostor_rejected": float((~accept[~same]).mean())}
