"""A face dataset loaded through the face pipeline (lab.faces.facepipe): detect, align, crop, light.

Detection costs about 0.07 s per AT&T image on one core (dlib HOG at 4x upscale), so the
result is computed once per dataset and settings and cached under ``data/cache/pipeline`` as
an .npz (no pickle: ``np.load(allow_pickle=False)``). The cache key hashes everything the
output depends on: the pipeline, the input size and channels, the detector, whether landmarks
are installed, ``lab.faces.facepipe.VERSION`` and the dataset's files (path, size, modification
time), so changing any of them rebuilds the cache instead of serving a stale one.

Images where no face is found are kept, cut as the whole image (the same fallback Verify uses
when asked), and named in the load report. When most images have no face the dataset is not
a face dataset for this pipeline, and loading stops with a message before any training.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lab.core import limits
from lab.core.settings import cache_dir
from lab.data.errors import DatasetError
from lab.data.faceset import FaceSet, LoadReport
from lab.data.folder import FOLDER_SOURCE, _ByteBudget, _is_colour, _iter_identities, _open_members
from lab.data.images import IMAGE_SUFFIXES, UnreadableImageError
from lab.faces import facepipe
from lab.faces import photos as faces
from lab.faces.facepipe import face_input, first_usable_face
from lab.faces.photos import PhotoError, detect_faces, load_photo

MOSTLY_NO_FACE = 0.5  # more than this share of images without a face: refuse, say why


def _member_listing(source: Any) -> tuple[list[tuple[str, str, Any]], str, LoadReport]:
    """(identity, file name, bytes reader) of every image of a folder or zip, in order, and a
    fingerprint of the files (names, sizes, times) for the cache key."""

    budget = _ByteBudget(limits.MAX_ARCHIVE_EXPANDED_BYTES, "dataset")
    members, archive, label = _open_members(source, budget)
    report = LoadReport()
    listing, digest = [], hashlib.sha256(label.encode())
    if isinstance(source, bytes | bytearray):
        digest.update(hashlib.sha256(bytes(source)).digest())
    for name, group in _iter_identities(members, report):
        for member in group:
            if member.path.suffix.lower() not in IMAGE_SUFFIXES:
                report.skipped.append((str(member.path), "not an image file"))
                continue
            listing.append((name, str(member.path), member.read))
            stamp = ""
            if archive is None:
                with_root = Path(source).expanduser() / member.path
                stamp = str(with_root.stat().st_mtime_ns) if with_root.exists() else ""
            digest.update(f"{member.path}|{member.size}|{stamp}\n".encode())
    return listing, digest.hexdigest(), report


def cache_key(fingerprint: str, pipeline: str, image_size: int, channels: int | None) -> str:
    """Hash of everything the pipeline's output depends on (see the module docstring)."""

    settings = {"files": fingerprint, "pipeline": pipeline, "image_size": int(image_size),
                "channels": channels, "detector": faces.best_detector(),
                "landmarks": faces.has_landmarks(), "version": facepipe.VERSION,
                "work_side": facepipe.WORK_SIDE, "padding": facepipe.PADDING}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def pipeline_cache_dir() -> Path:
    return cache_dir("pipeline")


def load_through_pipeline(source: Any, *, pipeline: str, image_size: int,
                          channels: int | None = None, data_source=None,
                          use_cache: bool = True) -> FaceSet:
    """A folder / zip / AT&T folder as a FaceSet whose images went through `face_input`.

    channels None: 3 when any image has colour, else 1 (said in the report when mixed).
    """

    facepipe.parse_pipeline(pipeline)
    data_source = data_source or FOLDER_SOURCE
    listing, fingerprint, report = _member_listing(source)
    key = cache_key(fingerprint, pipeline, image_size, channels)
    cache = pipeline_cache_dir() / f"{key}.npz"
    if use_cache and cache.is_file():
        try:
            return _read_cache(cache, data_source, report)
        except (OSError, ValueError, KeyError):
            cache.unlink(missing_ok=True)  # a broken cache is rebuilt, never trusted
    faceset, stats = _build(listing, report, pipeline, image_size, channels, data_source,
                            fingerprint if use_cache else "")
    if use_cache:
        _write_cache(cache, faceset, stats)
    return faceset


def _decode(read) -> Image.Image:
    try:
        return load_photo(read())
    except PhotoError as error:
        raise UnreadableImageError(str(error).split(". ")[0]) from None


def _detections(fingerprint: str, images: list[Image.Image], detect) -> list:
    """The face each image is cut around (or None), cached per files and detector: every
    pipeline setting of one dataset shares one detection pass (0.07 s an AT&T image)."""

    key = hashlib.sha256(json.dumps({"files": fingerprint, "detector": faces.best_detector(),
                                     "landmarks": faces.has_landmarks(), "count": len(images)},
                                    sort_keys=True).encode()).hexdigest()[:24]
    path = pipeline_cache_dir() / f"faces-{key}.json"
    if path.is_file():
        try:
            return [None if b is None else faces.FaceBox(
                *b[:5], tuple(tuple(p) for p in b[5]) if b[5] else None)
                for b in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError, IndexError):
            path.unlink(missing_ok=True)
    boxes = [first_usable_face(detect(image)) for image in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps([None if b is None else [b.x, b.y, b.w, b.h, b.score,
                                                           b.landmarks] for b in boxes]))
    partial.replace(path)
    return boxes


def _build(listing, report: LoadReport, pipeline: str, image_size: int, channels: int | None,
           data_source, fingerprint: str = "") -> tuple[FaceSet, dict]:
    decoded: list[tuple[str, str, Image.Image]] = []
    for identity, file, read in listing:
        try:
            decoded.append((identity, file, _decode(read)))
        except UnreadableImageError as error:
            report.skipped.append((file, str(error)))
    if not decoded:
        raise DatasetError("no readable images in the dataset")
    colour = [_is_colour(np.asarray(image)) for _, _, image in decoded]
    if channels is None:
        channels = 3 if any(colour) else 1
        if any(colour) and not all(colour):
            report.notes.append(
                f"mixed colour and grey images ({sum(colour)} colour, "
                f"{len(colour) - sum(colour)} grey): trained in colour (3 channels), grey "
                "images copied into all three")
    inputs, identities, missing = [], [], []
    images = [image for _, _, image in decoded]
    boxes = (_detections(fingerprint, images, detect_faces) if fingerprint
             else [first_usable_face(detect_faces(image)) for image in images])
    for (identity, file, image), box in zip(decoded, boxes, strict=True):
        if box is None:
            missing.append(file)
        inputs.append(face_input(image, box, pipeline, channels, image_size)[0])
        identities.append(identity)
    if len(missing) > MOSTLY_NO_FACE * len(decoded):
        raise DatasetError(
            f"no face found in {len(missing)} of {len(decoded)} images (e.g. "
            f"{', '.join(missing[:3])}): this does not look like a set of face photos for the "
            f"'{pipeline}' pipeline. Train with pipeline 'none' (whole images) instead, or use "
            "photos where the face is visible and front-facing.")
    if missing:
        report.notes.append(f"no face found in {len(missing)} of {len(decoded)} images, whole "
                            "image used: " + ", ".join(missing[:8])
                            + (" ..." if len(missing) > 8 else ""))
    names = list(dict.fromkeys(identities))
    if len(names) < limits.MIN_IDENTITIES:
        raise DatasetError(f"need at least {limits.MIN_IDENTITIES} identities, found "
                           f"{len(names)}")
    index = {name: k for k, name in enumerate(names)}
    labels = torch.tensor([index[name] for name in identities], dtype=torch.long)
    faceset = FaceSet(torch.stack(inputs), labels, names, data_source, report)
    return faceset, {"missing": missing, "images": len(decoded)}


def _write_cache(path: Path, faceset: FaceSet, stats: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"notes": faceset.report.notes, "skipped": faceset.report.skipped,
            "missing": stats["missing"], "images": stats["images"]}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=faceset.images.numpy(), labels=faceset.labels.numpy(),
                        names=np.asarray(faceset.names, dtype=str),
                        meta=np.asarray(json.dumps(meta)))
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)  # atomic: a second process never reads half a file


def _read_cache(path: Path, data_source, report: LoadReport) -> FaceSet:
    with np.load(path, allow_pickle=False) as stored:
        images = torch.from_numpy(stored["images"].astype(np.float32))
        labels = torch.from_numpy(stored["labels"].astype(np.int64))
        names = [str(n) for n in stored["names"]]
        meta = json.loads(str(stored["meta"]))
    fresh = LoadReport(skipped=[tuple(s) for s in meta.get("skipped", [])],
                       dropped_identities=list(report.dropped_identities),
                       notes=list(meta.get("notes", [])))
    return FaceSet(images, labels, names, data_source, fresh)

