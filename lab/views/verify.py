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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lab.data import load_for_config
from lab.data.splits import split_for_config
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
from lab.faces.reference import ReferenceModel, shared_reference
from lab.measure.evaluate import embed, verification_pairs
from lab.metric.energy import energy_matrix_np, pairwise_energy_np

EmbedFn = Callable[[torch.Tensor], np.ndarray]  # [N, C, H, W] in [0, 1] -> [N, D]
DEFAULT_FAR = 0.01
PHOTO_NAMES = ("photo A", "photo B")

__all__ = [
    "DEFAULT_FAR", "EmbedFn", "GalleryMatch", "NoFaceError", "PhotoError", "PreparedPhoto",
    "RunEnergies", "TinyFaceError", "VerifyResult",
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
