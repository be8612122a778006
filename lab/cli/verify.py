"""`python -m lab verify PHOTO_A PHOTO_B --run RUN`: are two photos the same person? One
JSON object out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lab.core.limits import MAX_UPLOAD_BYTES
from lab.faces.photos import (
    PhotoError,
    choose_face,
    detect_faces,
    load_photo,
    whole_image_crop,
)
from lab.faces.reference import ReferenceModel, shared_reference
from lab.learn.runs import RunStore
from lab.measure import trust
from lab.views.verify import (
    DEFAULT_FAR,
    PHOTO_NAMES,
    VerifyResult,
    _labelled,
    embedder_for_run,
    input_shape_for_run,
    run_energies,
    threshold_for_run,
    verify_pair,
)

# ---------------------------------------------------------------- command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """`python -m lab verify PHOTO_A PHOTO_B --run RUN [--far 0.01] [--reference]`."""
    parser = subparsers.add_parser(
        "verify", help="are two photos the same person? (prints one JSON object)",
        description="Detect, crop and embed the face in each photo with a trained run, and "
                    "compare the energy with the run's threshold at the chosen FAR. Photos are "
                    "read into memory only. Exit status 0 whatever the verdict; 2 for bad input.",
    )
    parser.add_argument("photo_a", help="first photo (JPEG, PNG, WebP, BMP, PGM, HEIC)")
    parser.add_argument("photo_b", help="second photo")
    parser.add_argument("--run", help="run id (see `python -m lab runs`); optional with "
                                      "--reference")
    parser.add_argument("--far", type=float, default=DEFAULT_FAR,
                        help="false accept rate the threshold is chosen for (default 0.01)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="use this energy threshold instead of the one at --far")
    parser.add_argument("--reference", action="store_true",
                        help="also ask the pretrained reference model (dlib ResNet)")
    parser.add_argument("--whole-image", action="store_true",
                        help="skip face detection: use a centred crop of each photo")
    parser.add_argument("--face", default="1,1", metavar="A,B",
                        help="which face to use in each photo, 1 = largest (default 1,1)")
    parser.add_argument("--runs-root", default=None, help="run store folder "
                        "(default $METRIC_LAB_RUNS or data/runs)")
    parser.set_defaults(func=run_cli)
    return parser


def _read_photo_file(path: str) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise PhotoError(f"{path}: no such file")
    size = file.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise PhotoError(f"{path}: the file is {size / 1024 / 1024:.0f} MB; the limit is "
                         f"{MAX_UPLOAD_BYTES / 1024 / 1024:.0f} MB")
    return file.read_bytes()


def _parse_faces(text: str) -> tuple[int, int]:
    try:
        a, b = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--face wants two numbers like 1,2, got {text!r}") from None
    if a < 1 or b < 1:
        raise ValueError("--face numbers start at 1 (the largest face)")
    return a - 1, b - 1


def _reference_only(photo_a: bytes, photo_b: bytes, whole: bool) -> dict[str, Any]:
    """Reference model alone (no student run): same checks, same JSON shape where it can."""

    model = shared_reference()
    if model is None:
        raise RuntimeError(ReferenceModel.available()[1])
    start = time.perf_counter()
    images, inputs, faces_out, detector = [], [], {}, "none (whole image)"
    for name, data in zip(PHOTO_NAMES, (photo_a, photo_b), strict=True):
        try:
            image = load_photo(data)
        except PhotoError as error:
            raise _labelled(error, name) from None
        if whole:
            inputs.append((whole_image_crop(image), None))
            faces_out[name.split()[1]] = []
        else:
            faces = detect_faces(image)
            detector = faces.detector
            inputs.append((image, choose_face(faces, 0, photo=name)))
            faces_out[name.split()[1]] = [box.to_dict() for box in faces]
        images.append(image)
    verdict = model.verify(inputs[0][0], inputs[0][1], inputs[1][0], inputs[1][1])
    return {"verdict": verdict.verdict, "model": "reference", "detector": detector,
            "faces": faces_out,
            "reference": verdict.to_dict(),
            "timings": {"total": round(time.perf_counter() - start, 4)},
            "notes": ["no --run given: only the reference model answered"]}


def _trust(run: Any, result: VerifyResult, far: float) -> dict[str, Any]:
    """lab.measure.trust's fields; a run whose dataset cannot be reloaded here still verifies."""

    try:
        calibration = trust.calibrate(run)
    except (ValueError, RuntimeError, OSError) as error:
        calibration = None
        note = f"no out-of-distribution check: the run's dataset could not be loaded ({error})"
    else:
        note = ""
    found = trust.assess(run, result, far, calibration)
    if note:
        found["notes"].append(note)
    return found


def run_cli(args: argparse.Namespace) -> int:
    """Print one JSON object; 0 whatever the verdict, 2 with a one-line message on bad input."""
    try:
        photo_a, photo_b = _read_photo_file(args.photo_a), _read_photo_file(args.photo_b)
        faces = _parse_faces(args.face)
        if args.far is not None and not 0.0 < args.far < 1.0:
            raise ValueError(f"--far must be between 0 and 1 (e.g. 0.01), got {args.far}")
        if not args.run:
            if not args.reference:
                raise ValueError("say which trained run to use: --run RUN_ID (list them with "
                                 "`python -m lab runs`; train one with `python -m lab train`), "
                                 "or ask only the reference model with --reference")
            out = _reference_only(photo_a, photo_b, args.whole_image)
        else:
            run = RunStore(args.runs_root).load(args.run)
            channels, image_size = input_shape_for_run(run)
            if args.threshold is not None:
                threshold, source = float(args.threshold), "given with --threshold"
            else:
                threshold = threshold_for_run(run, args.far)
                source = f"FAR {args.far:g} on {run_energies(run).source}"
            result = verify_pair(
                photo_a, photo_b, embedder_for_run(run), channels=channels,
                image_size=image_size, energy=run.config.energy, threshold=threshold,
                face_choice=faces, use_whole_image=args.whole_image, reference=args.reference,
                pipeline=run.config.pipeline,
            )
            out = {"run": run.id, "far": None if args.threshold is not None else args.far,
                   "threshold_source": source, **result.to_dict(),
                   "trust": _trust(run, result, args.far)}
    except (ValueError, RuntimeError, OSError) as error:  # PhotoError, RunError, DatasetError
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=float))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
