"""Verify a pair: two photos in, "same person?" out, with every reason shown.

The decision is the one the papers make: embed both faces, take the energy E between the two
embeddings, and call them the same identity when E <= threshold. The threshold is a choice,
not a property of the network: here it is the energy at which the run's *validation*
identities give the requested false accept rate (FAR: the share of impostor pairs accepted).
Lower FAR, stricter threshold, more genuine pairs rejected.

Photos are processed in memory only (bytes -> PIL image -> tensor); nothing here writes a
file, so a student's face never lands on the server's disk.

The reference model (lab.faces.reference, dlib's ResNet trained on ~3 million faces) can answer the
same question on the same photos with its own threshold, to show why a model trained on 40
people fails in the wild while one trained on millions does not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lab.core import settings
from lab.core.limits import MAX_UPLOAD_BYTES
from lab.faces.facepipe import face_input, parse_pipeline, tensor_to_display
from lab.faces.photos import (
    FaceBox,
    Faces,
    NoFaceError,
    PhotoError,
    TinyFaceError,
    choose_face,
    crop_face,
    detect_faces,
    load_photo,
    to_model_input,
    whole_image_crop,
)

EmbedFn = Callable[[torch.Tensor], np.ndarray]  # [N, C, H, W] in [0, 1] -> [N, D]
DEFAULT_FAR = 0.01
PHOTO_NAMES = ("photo A", "photo B")

__all__ = [
    "DEFAULT_FAR", "EmbedFn", "GalleryMatch", "NoFaceError", "PhotoError", "PreparedPhoto",
    "RunEnergies", "TinyFaceError", "VerifyResult", "add_parser", "bench_verify",
    "embedder_for_run", "gallery_name", "input_shape_for_run", "prepare_photo",
    "reference_for_pair", "run_energies", "search_gallery", "threshold_at_far",
    "threshold_for_run", "verify_pair",
]


@dataclass
class VerifyResult:
    """Everything the page and the CLI show about one verification."""

    energy: float  # E between the two embeddings (the run's energy kind)
    energy_kind: str
    threshold: float  # accept as "same" when energy <= threshold
    same: bool
    detector: str
    faces: tuple[list[FaceBox], list[FaceBox]]  # every face found, largest first
    chosen: tuple[int | None, int | None]  # index into faces; None = the whole image was used
    crops: tuple[np.ndarray, np.ndarray]  # what the network saw, 8-bit, for display
    photo_sizes: tuple[tuple[int, int], tuple[int, int]]  # (width, height) after EXIF rotation
    timings: dict[str, float]  # seconds per stage: decode, detect, crop, embed, decide, ...
    reference: Any = None  # lab.faces.reference.ReferenceVerdict when asked and available
    reference_note: str = ""  # why there is no reference verdict, when asked
    notes: list[str] = field(default_factory=list)
    pipeline: str = "none"  # the run's face pipeline (lab.faces.facepipe), applied to both photos
    # [2, D], for lab.measure.trust's out-of-distribution check
    embeddings: np.ndarray | None = None
    inputs: torch.Tensor | None = None  # [2, C, H, W], the network inputs themselves

    @property
    def verdict(self) -> str:
        return "same" if self.same else "different"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (crops left out: they are images)."""
        out: dict[str, Any] = {
            "verdict": self.verdict, "same": self.same, "energy": self.energy,
            "energy_kind": self.energy_kind, "threshold": self.threshold,
            "detector": self.detector, "pipeline": self.pipeline,
            "faces": {name.split()[1]: [box.to_dict() for box in boxes]
                      for name, boxes in zip(PHOTO_NAMES, self.faces, strict=True)},
            "chosen": {"A": self.chosen[0], "B": self.chosen[1]},
            "whole_image": {"A": self.chosen[0] is None, "B": self.chosen[1] is None},
            "photo_sizes": {"A": list(self.photo_sizes[0]), "B": list(self.photo_sizes[1])},
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "notes": list(self.notes),
        }
        if self.reference is not None:
            out["reference"] = self.reference.to_dict()
        elif self.reference_note:
            out["reference"] = {"available": False, "reason": self.reference_note}
        return out


def _labelled(error: PhotoError, photo: str) -> PhotoError:
    """The same error class, its message starting with which photo it is about."""
    message = str(error)
    if photo.lower() not in message.lower():
        message = f"{photo[0].upper() + photo[1:]}: {message}"
    labelled = type(error)(message)
    labelled.photo = photo  # type: ignore[attr-defined]
    return labelled


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected one value per photo (2), got {len(value)}")
        return value[0], value[1]
    return value, value


def _aspect(image_size: int | tuple[int, int]) -> float:
    if np.isscalar(image_size):
        return 1.0
    height, width = image_size
    return float(height) / float(width)


@dataclass
class PreparedPhoto:
    """One photo decoded and searched for faces once. The page keeps one per upload so that
    moving a slider (FAR, face choice) never decodes or detects again; `verify_pair` accepts it
    in place of the bytes. error: why the photo cannot be used at all (not an image, too big,
    broken), already naming the photo; image is None then."""

    image: Image.Image | None
    faces: Faces
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.image is not None


def prepare_photo(data: bytes, name: str = "the photo") -> PreparedPhoto:
    """Decode (with every guard of `load_photo`) and detect faces; never raises PhotoError."""
    try:
        image = load_photo(data)
    except PhotoError as error:
        return PreparedPhoto(None, Faces([], ""), str(_labelled(error, name)))
    return PreparedPhoto(image, detect_faces(image))


def verify_pair(
    photo_a: bytes | PreparedPhoto, photo_b: bytes | PreparedPhoto, embed_fn: EmbedFn, *,
    channels: int, image_size: int | tuple[int, int], energy: str, threshold: float,
    face_choice: tuple[int, int] = (0, 0), use_whole_image: bool | tuple[bool, bool] = False,
    reference: bool = False, margin: float = 0.25, align: bool = True, pipeline: str = "none",
) -> VerifyResult:
    """Are the faces in these two photos the same identity, by this embedding and threshold?

    embed_fn maps a [N, C, H, W] float tensor in [0, 1] to [N, D] embeddings (see
    `embedder_for_run`). face_choice picks a face per photo (0 = the largest);
    use_whole_image skips detection for one or both photos (a centred crop is used instead:
    what the UI offers after a NoFaceError, and right for already-cropped faces).
    pipeline: the run's face pipeline (RunConfig.pipeline); an aligned one turns each photo
    into the network input with lab.faces.facepipe.face_input, the function the run's training
    images went through, and the crops returned are those inputs as 8-bit pictures.
    Raises PhotoError (NoFaceError, TinyFaceError) with a message naming the photo.
    """
    from lab.metric.energy import pairwise_energy_np

    timings: dict[str, float] = {}
    notes: list[str] = []
    start = time.perf_counter()
    mark = start

    def lap(stage: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - mark
        mark = now

    whole = _pair(use_whole_image)
    choice = _pair(face_choice)
    images: list[Image.Image] = []
    prepared = [p if isinstance(p, PreparedPhoto) else None for p in (photo_a, photo_b)]
    for name, data in zip(PHOTO_NAMES, (photo_a, photo_b), strict=True):
        if isinstance(data, PreparedPhoto):
            if data.image is None:
                raise PhotoError(data.error)
            images.append(data.image)
            continue
        try:
            images.append(load_photo(data))
        except PhotoError as error:
            raise _labelled(error, name) from None
    lap("decode")

    found: list[Faces] = []
    boxes: list[FaceBox | None] = []
    detector = ""
    for name, image, skip, index, ready in zip(PHOTO_NAMES, images, whole, choice, prepared,
                                                strict=True):
        if skip:
            found.append(Faces([], "none (whole image)"))
            boxes.append(None)
            continue
        faces = ready.faces if ready is not None else detect_faces(image)
        detector = faces.detector
        found.append(faces)
        boxes.append(choose_face(faces, int(index), photo=name))
        if len(faces) > 1:
            notes.append(f"{name} has {len(faces)} faces; face {int(index) + 1} "
                         f"({'the largest' if index == 0 else 'chosen'}) was used")
    detector = detector or "none (whole image)"
    lap("detect")

    made = [photo_to_input(image, box, pipeline=pipeline, channels=channels,
                           image_size=image_size, margin=margin, align=align)
            for image, box in zip(images, boxes, strict=True)]
    batch = torch.cat([tensor for tensor, _ in made])
    shown = [picture for _, picture in made]
    crops = [whole_image_crop(image) if box is None else None  # for the reference model
             for image, box in zip(images, boxes, strict=True)]
    lap("crop")

    embeddings = np.asarray(embed_fn(batch), dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != 2:
        raise ValueError(f"embed_fn must return [2, D] embeddings, got {embeddings.shape}")
    lap("embed")

    pair_energy = float(pairwise_energy_np(embeddings[:1], embeddings[1:], energy)[0])
    if not np.isfinite(pair_energy):
        raise ValueError("the model produced a non-finite embedding (did the run diverge?)")
    same = bool(pair_energy <= threshold)
    lap("decide")

    ref_verdict, ref_note = None, ""
    if reference:
        from lab.faces.reference import ReferenceModel, shared_reference

        model = shared_reference()
        if model is None:
            ref_note = ReferenceModel.available()[1]
        else:
            inputs = [(crop, None) if box is None else (image, box)
                      for image, crop, box in zip(images, crops, boxes, strict=True)]
            ref_verdict = model.verify(inputs[0][0], inputs[0][1], inputs[1][0], inputs[1][1])
        lap("reference")
    timings["total"] = time.perf_counter() - start

    return VerifyResult(
        energy=pair_energy, energy_kind=energy, threshold=float(threshold), same=same,
        detector=detector, faces=(list(found[0]), list(found[1])),
        chosen=tuple(None if box is None else int(index)
                     for box, index in zip(boxes, choice, strict=True)),
        crops=tuple(shown), pipeline=parse_pipeline(pipeline).name,
        embeddings=embeddings, inputs=batch,
        photo_sizes=tuple(image.size for image in images), timings=timings,
        reference=ref_verdict, reference_note=ref_note, notes=notes,
    )


def photo_to_input(image: Image.Image, box: FaceBox | None, *, pipeline: str, channels: int,
                   image_size: int | tuple[int, int], margin: float = 0.25, align: bool = True
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """One photo and its chosen face (None: the whole image) -> ([1, C, H, W] network input,
    the 8-bit picture shown as "what the network sees").

    An aligned pipeline goes through lab.faces.facepipe.face_input, the function the run's training
    images went through, and the picture is the input itself; pipeline "none" keeps the crop
    Verify always made (lab.faces.photos.crop_face) for runs trained on whole images."""
    if parse_pipeline(pipeline).align:
        tensor = face_input(image, box, pipeline, channels, image_size)
        return tensor, tensor_to_display(tensor)
    aspect = _aspect(image_size)
    crop = (whole_image_crop(image, aspect) if box is None
            else crop_face(image, box, margin=margin, align=align, aspect=aspect))
    return to_model_input(crop, channels, image_size), np.asarray(crop).copy()


def reference_for_pair(
    photo_a: PreparedPhoto, photo_b: PreparedPhoto, *, face_choice: tuple[int, int] = (0, 0),
    use_whole_image: bool | tuple[bool, bool] = False,
) -> tuple[Any, str]:
    """The reference model's verdict alone (no student run needed): (ReferenceVerdict, "") or
    (None, why it is not available). Photo problems raise PhotoError as in `verify_pair`."""
    from lab.faces.reference import ReferenceModel, shared_reference

    model = shared_reference()
    if model is None:
        return None, ReferenceModel.available()[1]
    inputs = []
    for name, photo, skip, index in zip(PHOTO_NAMES, (photo_a, photo_b), _pair(use_whole_image),
                                        _pair(face_choice), strict=True):
        if photo.image is None:
            raise PhotoError(photo.error)
        if skip:
            inputs.append((whole_image_crop(photo.image), None))
        else:
            inputs.append((photo.image, choose_face(photo.faces, int(index), photo=name)))
    return model.verify(inputs[0][0], inputs[0][1], inputs[1][0], inputs[1][1]), ""


def gallery_name(file_name: str) -> str:
    """A known person's name from a gallery file name: "ada_lovelace-2.jpg" -> "ada lovelace".

    A trailing photo number is dropped so several photos of one person count as one person."""
    import re

    stem = Path(file_name).stem
    name = re.sub(r"(?:[\s_\-.]+\d+|\s*\(\d+\))$", "", stem) or stem
    return re.sub(r"[_\s]+", " ", name).strip() or stem


@dataclass
class GalleryMatch:
    """One known person's best photo against the probe: lower energy, better match."""

    name: str
    energy: float
    same: bool  # energy <= threshold
    crop: np.ndarray


def search_gallery(
    probe: bytes, gallery: list[tuple[str, bytes]], embed_fn: EmbedFn, *, channels: int,
    image_size: int | tuple[int, int], energy: str, threshold: float, top: int = 5,
    use_whole_image: bool = False, pipeline: str = "none",
) -> tuple[np.ndarray, list[GalleryMatch], list[str]]:
    """Gallery mode: one probe photo against named photos of known people, best first.

    gallery: (person name, photo bytes) pairs, several per person allowed; each person is
    scored by their closest photo. Returns (probe crop, top matches, skipped photos with the
    reason), so one unreadable gallery photo never stops the search. The probe's own errors
    are raised (PhotoError) as in `verify_pair`.
    """
    from lab.metric.energy import energy_matrix_np

    aspect = _aspect(image_size)

    aligned = parse_pipeline(pipeline).align

    def crop_of(data: bytes, name: str) -> Image.Image:
        image = load_photo(data)
        box = None if use_whole_image else choose_face(detect_faces(image), 0, photo=name)
        if aligned:  # the run's pipeline; the "crop" is the network input, as a picture
            tensor = face_input(image, box, pipeline, channels, image_size)
            return Image.fromarray(tensor_to_display(tensor))
        if box is None:
            return whole_image_crop(image, aspect)
        return crop_face(image, box, aspect=aspect)

    try:
        probe_crop = crop_of(probe, "the probe photo")
    except PhotoError as error:
        raise _labelled(error, "the probe photo") from None
    crops, names, skipped = [], [], []
    for name, data in gallery:
        try:
            crops.append(crop_of(data, f"{name}'s photo"))
            names.append(name)
        except PhotoError as error:
            skipped.append(f"{name}: {error}")
    if not crops:
        return np.asarray(probe_crop).copy(), [], skipped
    batch = torch.cat([to_model_input(c, channels, image_size) for c in [probe_crop, *crops]])
    embeddings = np.asarray(embed_fn(batch), dtype=np.float64)
    energies = energy_matrix_np(embeddings[:1], energy, embeddings[1:])[0]
    best: dict[str, int] = {}
    for k, name in enumerate(names):
        if name not in best or energies[k] < energies[best[name]]:
            best[name] = k
    ranked = sorted(best.items(), key=lambda item: energies[item[1]])[:max(1, top)]
    matches = [GalleryMatch(name, float(energies[k]), bool(energies[k] <= threshold),
                            np.asarray(crops[k]).copy()) for name, k in ranked]
    return np.asarray(probe_crop).copy(), matches, skipped


# ---------------------------------------------------------------- runs


def input_shape_for_run(run: Any) -> tuple[int, int | tuple[int, int]]:
    """(channels, image_size) the run's network was trained on, from its run.json."""
    meta = getattr(run, "meta", {}) or {}
    channels = meta.get("in_channels")
    size = meta.get("image_size")
    if channels is None or size is None:
        raise ValueError(f"run {getattr(run, 'id', '?')} does not record its input shape "
                         "(was it saved before training started?)")
    return int(channels), (tuple(int(v) for v in size) if isinstance(size, list) else int(size))


def embedder_for_run(run: Any, device: str | torch.device = "cpu") -> EmbedFn:
    """embed_fn for `verify_pair`: the run's network in eval mode, no gradients, numpy out."""
    from lab.measure.evaluate import embed

    model = run.load_model(device) if hasattr(run, "load_model") else run.model
    model.eval()

    def embed_fn(images: torch.Tensor) -> np.ndarray:
        return embed(model, images, device=device)

    return embed_fn


@dataclass(frozen=True)
class RunEnergies:
    """Genuine and impostor pair energies of a run's validation identities (for the histogram
    and the FAR threshold)."""

    genuine: np.ndarray
    impostor: np.ndarray
    source: str  # which identities they come from, in words


_ENERGY_CACHE: dict[tuple, RunEnergies] = {}


def run_energies(run: Any) -> RunEnergies:
    """The run's validation genuine / impostor energies, computed once per weights file.

    Reloads the run's dataset, embeds its validation identities (test identities when the run
    has fewer than two, and ``source`` then says so) and takes every genuine and up to 20000
    impostor pairs, sampled with the data seed. Cached in memory only.
    """
    weights = Path(getattr(run, "path", ".")) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    key = (str(getattr(run, "path", id(run))), stamp)
    if key in _ENERGY_CACHE:
        return _ENERGY_CACHE[key]
    result = _compute_run_energies(run)
    _ENERGY_CACHE[key] = result
    return result


def _compute_run_energies(run: Any) -> RunEnergies:
    from lab.data import load_for_config
    from lab.data.splits import split_for_config
    from lab.measure.evaluate import embed, verification_pairs
    from lab.metric.energy import pairwise_energy_np

    config = run.config
    faceset = load_for_config(config)
    split = split_for_config(config, faceset.num_identities)
    identities, source = list(split.val), "validation identities"
    if len(identities) < 2:
        identities, source = list(split.test), "test identities (the run has no validation set)"
    index = torch.isin(faceset.labels, torch.as_tensor(identities, dtype=torch.long))
    labels = faceset.labels[index].numpy()
    embeddings = embed(run.model, faceset.images[index].float(), device="cpu")
    i, j, same = verification_pairs(labels, max_impostor=20000, seed=config.data_seed)
    energies = pairwise_energy_np(embeddings[i], embeddings[j], config.energy)
    energies = np.nan_to_num(energies, nan=np.inf)
    return RunEnergies(energies[same], energies[~same], f"{len(identities)} {source}")


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """The largest energy threshold whose false accept rate on these pairs is <= far.

    Accept when E <= threshold; FAR = share of impostor pairs accepted (sklearn's ROC with -E
    as the genuine score). When even the smallest energy gives too many false accepts, the
    threshold sits just below every energy (accept nobody).
    """
    from sklearn.metrics import roc_curve

    if not 0.0 <= far <= 1.0:
        raise ValueError(f"FAR must be between 0 and 1, got {far}")
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    if len(impostor) == 0:
        raise ValueError("a FAR threshold needs impostor pairs")
    energies = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    if len(genuine) == 0:  # roc_curve needs both classes; one fake genuine far away does
        energies, same = np.append(energies, np.inf), np.append(same, True)
    fpr, _, scores = roc_curve(same, -energies, drop_intermediate=False)
    k = int(np.flatnonzero(fpr <= far + 1e-12).max())
    score = scores[k]
    finite = energies[np.isfinite(energies)]
    if not np.isfinite(score):
        return float(finite.min() - 1e-6) if finite.size else 0.0
    return float(-score)


def threshold_for_run(run: Any, far: float = DEFAULT_FAR) -> float:
    """The run's energy threshold at this FAR, chosen on its validation identities (on its test
    identities when it has fewer than two: `run_energies(run).source` says which), computed
    from `run_energies` (which reloads the dataset once and caches)."""
    energies = run_energies(run)
    return threshold_at_far(energies.genuine, energies.impostor, far)


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
    from lab.faces.reference import ReferenceModel, shared_reference

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
    from lab.measure import trust

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
            from lab.learn.runs import RunStore

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
    from lab.faces.reference import shared_reference

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
    import os
    import platform

    from lab.core.config import RunConfig
    from lab.faces.reference import ReferenceModel, shared_reference

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
        from lab.learn.runs import RunStore

        run = RunStore(runs_root).load(run_id)
        channels, image_size = input_shape_for_run(run)
        embed_fn, energy = embedder_for_run(run), run.config.energy
        threshold = threshold_for_run(run, DEFAULT_FAR)
        result["student"] = {"run": run.id, "network": run.config.network}
    else:
        from lab.learn.models import build_model

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
            from lab.data.splits import split_for_config
            from lab.measure.evaluate import evaluate_embeddings

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
        from lab.data.splits import split_for_config
        from lab.measure.evaluate import evaluate_embeddings

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
    from lab.bench import machine

    result = bench_verify(None, run_id=args.run, runs_root=args.runs_root,
                          att_dir=args.att_dir, repeats=args.repeats, accuracy=args.accuracy)
    return {"machine": machine(), **result}


def _accuracy_at(embeddings: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Genuine accept and impostor reject rates at a fixed threshold (dlib's 0.6)."""
    from lab.measure.evaluate import verification_pairs
    from lab.metric.energy import pairwise_energy_np

    i, j, same = verification_pairs(labels, max_impostor=10**9)
    energies = pairwise_energy_np(embeddings[i], embeddings[j], "l2")
    accept = energies <= threshold
    return {"genuine_accepted": float(accept[same].mean()),
            "impostor_rejected": float((~accept[~same]).mean())}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
