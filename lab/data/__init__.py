"""Datasets: every source the lab offers, turned into one FaceSet shape.

``load_dataset(name, ...)`` is the one entry point; ``list_datasets()`` says which are usable
right now (offline, cached, needs a download, or unavailable, with the reason), so the app and
``python -m lab data list`` can show it before anyone presses Train.

Caches live under ``<repo>/data/cache`` (``METRIC_LAB_DATA`` moves the whole data root).
Downloads are allowed unless ``METRIC_LAB_OFFLINE=1`` or ``download=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core import settings
from lab.core.settings import cache_dir, data_root, downloads_allowed
from lab.data import folder, sklearn_sets, synthetic, torchvision_sets
from lab.data.aligned import load_through_pipeline
from lab.data.errors import DatasetError
from lab.data.faceset import DataSource, FaceSet, LoadReport
from lab.data.folder import ATT_SOURCE, FOLDER_SOURCE, load_att, load_image_folder
from lab.data.sklearn_sets import load_digits, load_lfw, load_olivetti
from lab.data.synthetic import make_synthetic_faces
from lab.data.torchvision_sets import load_torchvision

__all__ = [
    "DatasetError", "DatasetInfo", "DataSource", "FaceSet", "LoadReport", "att_dir", "cache_dir",
    "data_root", "dataset_status", "downloads_allowed", "list_datasets", "load_dataset",
    "load_for_config",
]

AVAILABILITY = ("offline", "cached", "needs download", "unavailable")


@dataclass(frozen=True)
class DatasetInfo:
    """What the app shows about a dataset before loading it."""

    name: str
    title: str
    description: str
    size: str  # e.g. "40 people x 10 images, 112x92 grey"
    availability: str  # one of AVAILABILITY
    reason: str  # why, in words (where it is cached, what to do when unavailable)
    source: DataSource


def att_candidates() -> list[Path]:
    """Where an AT&T/ORL folder is looked for, in order."""
    found = []
    if settings.att_override() is not None:
        found.append(settings.att_override())
    found.append(data_root() / "att_faces")
    found.append(settings.shared_att())
    return found


def att_dir() -> Path | None:
    """The first AT&T folder that exists, or None."""
    return next((p for p in att_candidates() if p.is_dir()), None)


def _resolve_download(options: dict[str, Any]) -> bool:
    download = options.pop("download", None)
    return downloads_allowed() if download is None else bool(download)


def load_dataset(name: str, *, image_size: int | None = 32, seed: int = 0,
                 **options: Any) -> FaceSet:
    """Load a dataset by name into a FaceSet (images [N, C, S, S] in [0, 1]).

    Options per name: synthetic (num_identities, images_per_identity, difficulty, channels);
    att (data_dir); folder (data_dir: folder, .zip path or zip bytes; channels); lfw
    (min_faces_per_person, color); mnist / fashion-mnist (per_identity); any download-backed
    set takes download (None: allowed unless METRIC_LAB_OFFLINE).
    """
    options = dict(options)
    if name == "synthetic":
        return make_synthetic_faces(
            num_identities=int(options.pop("num_identities", 40)),
            images_per_identity=int(options.pop("images_per_identity", 10)),
            image_size=32 if image_size is None else int(image_size),
            difficulty=float(options.pop("difficulty", 1.0)),
            seed=seed, channels=int(options.pop("channels", 3)), **_no_more(name, options))
    if name == "digits":
        _no_more(name, options)
        return load_digits(image_size=image_size)
    if name == "att":
        data_dir = options.pop("data_dir", None)
        _no_more(name, options)
        if data_dir is None:
            data_dir = att_dir()
            if data_dir is None:
                places = ", ".join(str(p) for p in att_candidates())
                raise DatasetError(
                    "AT&T faces: no ORL folder found (looked in " + places + "). Put the "
                    "folder s1..s40 there or set METRIC_LAB_ATT, or use the 'olivetti' dataset "
                    "(the same faces, downloaded once by scikit-learn).")
        return load_att(data_dir, image_size=image_size)
    if name == "folder":
        data_dir = options.pop("data_dir", None)
        channels = options.pop("channels", None)
        _no_more(name, options)
        if data_dir is None:
            raise DatasetError("folder dataset: give data_dir, a folder (or .zip) with one "
                               "sub-folder of images per identity")
        return load_image_folder(data_dir, image_size=image_size, channels=channels)
    if name == "olivetti":
        download = _resolve_download(options)
        _no_more(name, options)
        return load_olivetti(cache_dir("sklearn"), image_size=image_size, download=download)
    if name == "lfw":
        download = _resolve_download(options)
        min_faces = int(options.pop("min_faces_per_person", 20))
        color = bool(options.pop("color", False))
        _no_more(name, options)
        return load_lfw(cache_dir("sklearn"), image_size=image_size, download=download,
                        min_faces_per_person=min_faces, color=color)
    if name in ("mnist", "fashion-mnist"):
        download = _resolve_download(options)
        per_identity = int(options.pop("per_identity", 500))
        _no_more(name, options)
        return load_torchvision(name, cache_dir("torchvision"), image_size=image_size,
                                download=download, per_identity=per_identity, seed=seed)
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def _no_more(name: str, options: dict[str, Any]) -> dict[str, Any]:
    if options:
        raise DatasetError(f"dataset {name!r} does not take option(s) {', '.join(sorted(options))}")
    return {}


# RunConfig.extra keys that reach the loader, per dataset (other keys belong to other modules).
_EXTRA_OPTIONS = {
    "synthetic": ("channels",), "folder": ("channels",), "lfw": ("min_faces_per_person",
                                                                   "color", "download"),
    "olivetti": ("download",), "mnist": ("per_identity", "download"),
    "fashion-mnist": ("per_identity", "download"),
}


def load_for_config(config) -> FaceSet:
    """The FaceSet a RunConfig asks for (lab.core.config.RunConfig fields mapped to options)."""
    if getattr(config, "pipeline", "none") != "none":
        return _load_through_pipeline(config)
    options: dict[str, Any] = {}
    if config.dataset == "synthetic":
        options.update(num_identities=config.num_identities,
                       images_per_identity=config.images_per_identity,
                       difficulty=config.difficulty)
    elif config.dataset in ("att", "folder"):
        options["data_dir"] = config.data_dir
    extra = getattr(config, "extra", None) or {}
    for key in _EXTRA_OPTIONS.get(config.dataset, ()):
        if key in extra:
            options[key] = extra[key]
    return load_dataset(config.dataset, image_size=config.image_size, seed=config.data_seed,
                        **options)


def _load_through_pipeline(config) -> FaceSet:
    """A photo dataset through the run's face pipeline (lab.data.aligned, cached)."""

    extra = getattr(config, "extra", None) or {}
    if config.dataset == "att":
        data_dir = config.data_dir or att_dir()
        if data_dir is None:
            load_dataset("att")  # raises the usual "no ORL folder" message
        return load_through_pipeline(data_dir, pipeline=config.pipeline,
                                     image_size=config.image_size, channels=1,
                                     data_source=ATT_SOURCE)
    if config.dataset == "folder":
        if config.data_dir is None:
            raise DatasetError("folder dataset: give data_dir, a folder (or .zip) with one "
                               "sub-folder of images per identity")
        return load_through_pipeline(config.data_dir, pipeline=config.pipeline,
                                     image_size=config.image_size,
                                     channels=extra.get("channels"), data_source=FOLDER_SOURCE)
    raise DatasetError(f"the face pipeline {config.pipeline!r} needs photos (the 'att' or "
                       f"'folder' dataset); {config.dataset!r} images are used whole: choose "
                       "pipeline 'none'")


DATASET_NAMES = ("synthetic", "digits", "att", "olivetti", "mnist", "fashion-mnist", "lfw",
                 "folder")


def dataset_status(name: str) -> DatasetInfo:
    """Whether a dataset can be loaded right now, and why (never downloads anything)."""

    online = downloads_allowed()
    need = "needs download" if online else "unavailable"
    offline_hint = "" if online else " and downloads are off (METRIC_LAB_OFFLINE)"
    if name == "synthetic":
        return DatasetInfo(name, "Synthetic faces", "Faces drawn by the lab: each identity a "
                           "random face geometry, each image under pose, lighting, expression "
                           "and glasses nuisance. The offline default.",
                           "10-10,000 people x 2-50 images (default 40 x 10), RGB",
                           "offline", "generated on the fly", synthetic.SOURCE)
    if name == "digits":
        return DatasetInfo(name, "Digits (scikit-learn)", "1,797 hand-written digits, 8x8 grey; "
                           "each digit plays an identity.", "10 classes x ~180 images, 8x8 grey",
                           "offline", "ships with scikit-learn", sklearn_sets.DIGITS_SOURCE)
    if name == "att":
        where = att_dir()
        if where is not None:
            availability, reason = "offline", f"ORL folder found at {where}"
        else:
            availability = "unavailable"
            reason = (f"no ORL folder: put s1..s40 in {data_root() / 'att_faces'} or set "
                      "METRIC_LAB_ATT; the 'olivetti' dataset downloads the same faces")
        return DatasetInfo(name, "AT&T / ORL faces", "The 40 people of Chopra, Hadsell & LeCun "
                           "2005, from a local ORL folder.", "40 people x 10 images, 112x92 grey",
                           availability, reason, folder.ATT_SOURCE)
    if name == "olivetti":
        cache = cache_dir("sklearn")
        cached = sklearn_sets.olivetti_cached(cache)
        return DatasetInfo(name, "Olivetti faces (AT&T via scikit-learn)", "The AT&T faces at "
                           "64x64, downloaded once by scikit-learn.",
                           "40 people x 10 images, 64x64 grey (download ~1.5 MB)",
                           "cached" if cached else need,
                           f"cached in {cache}" if cached else
                           f"not yet in {cache}; downloaded on first use" + offline_hint,
                           sklearn_sets.OLIVETTI_SOURCE)
    if name == "lfw":
        cache = cache_dir("sklearn")
        cached = sklearn_sets.lfw_cached(cache)
        return DatasetInfo(name, "Labeled Faces in the Wild", "News photos of public figures; "
                           "people with at least min_faces_per_person images.",
                           "62 people x >=20 images (min_faces_per_person=20), 62x47 grey "
                           "(download ~230 MB)", "cached" if cached else need,
                           f"cached in {cache}" if cached else
                           f"not yet in {cache}; downloaded on first use" + offline_hint,
                           sklearn_sets.LFW_SOURCE)
    if name in ("mnist", "fashion-mnist"):
        cache = cache_dir("torchvision")
        cached = torchvision_sets.torchvision_cached(name, cache)
        source = torchvision_sets.MNIST_SOURCE if name == "mnist" else \
            torchvision_sets.FASHION_SOURCE
        what = "hand-written digits" if name == "mnist" else "clothing items"
        return DatasetInfo(name, source.name, f"28x28 grey {what}; each class plays an identity "
                           "(500 images per class kept by default).",
                           "10 classes x 500 of 6,000 images, 28x28 grey (download ~30 MB)",
                           "cached" if cached else need,
                           f"cached in {cache}" if cached else
                           f"not yet in {cache}; downloaded on first use" + offline_hint, source)
    if name == "folder":
        return DatasetInfo(name, "Your own images", "A folder or .zip with one sub-folder of "
                           "images per person (jpg, png, pgm, bmp, webp, tif).",
                           "your choice (at least 2 people)", "offline",
                           "give a folder or zip path (data_dir)", folder.FOLDER_SOURCE)
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def list_datasets() -> list[DatasetInfo]:
    """Every dataset with its size and whether it can be loaded now."""
    return [dataset_status(name) for name in DATASET_NAMES]
