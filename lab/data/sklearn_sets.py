"""Datasets that come through scikit-learn: digits (offline), Olivetti and LFW (download once).

Downloads are cached under ``<data root>/cache/sklearn``; when the machine is offline, or
downloads are not allowed, a clear DatasetError says what to do instead of a stack trace.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import torch

from lab.data.errors import DatasetError
from lab.data.faceset import DataSource, FaceSet, LoadReport
from lab.data.images import to_square

DIGITS_SOURCE = DataSource(
    name="Hand-written digits (UCI)",
    citation="E. Alpaydin and C. Kaynak, 'Optical Recognition of Handwritten Digits', UCI Machine "
    "Learning Repository, 1998; shipped with scikit-learn (load_digits).",
    licence="CC BY 4.0",
    offline=True,
    url="https://archive.ics.uci.edu/dataset/80",
)

OLIVETTI_SOURCE = DataSource(
    name="Olivetti faces (AT&T / ORL via scikit-learn)",
    citation="F. Samaria and A. Harter, 1994; AT&T Laboratories Cambridge. The 40 x 10 ORL faces "
    "at 64x64, as distributed by scikit-learn (fetch_olivetti_faces).",
    licence="Free for research use; credit AT&T Laboratories Cambridge.",
    offline=False,
    url="https://cam-orl.co.uk/facedatabase.html",
)

LFW_SOURCE = DataSource(
    name="Labeled Faces in the Wild (people)",
    citation="G. B. Huang, M. Ramesh, T. Berg and E. Learned-Miller, 'Labeled Faces in the Wild: "
    "A Database for Studying Face Recognition in Unconstrained Environments', UMass Amherst "
    "TR 07-49, 2007; via scikit-learn (fetch_lfw_people).",
    licence="Research use; the photos are news images collected from the web, copyright of "
    "their owners.",
    offline=False,
    url="http://vis-www.cs.umass.edu/lfw/",
)

DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, TimeoutError, ConnectionError)


def olivetti_cached(cache: Path) -> bool:
    return (cache / "olivetti_py3.pkz").exists() or (cache / "olivetti.pkz").exists()


def lfw_cached(cache: Path) -> bool:
    return (cache / "lfw_home" / "lfw_funneled").is_dir()


def _offline_error(what: str, cache: Path, download: bool, err: Exception | None) -> DatasetError:
    if not download:
        why = "downloads are turned off (METRIC_LAB_OFFLINE or download=False)"
    else:
        why = f"the download failed ({type(err).__name__}: {err})"
    return DatasetError(f"{what} is not cached in {cache} and {why}. Connect to the internet "
                        f"once to download it, or choose an offline dataset (synthetic, digits, "
                        f"or att with a local ORL folder).")


def _from_arrays(images: np.ndarray, targets: np.ndarray, names: list[str], image_size: int | None,
                 source: DataSource, report: LoadReport | None = None) -> FaceSet:
    """Float images [N, H, W] (or [N, H, W, 3]) in [0, 1] -> FaceSet resized to image_size."""
    images = np.asarray(images, dtype=np.float32)
    if images.max(initial=0.0) > 1.0:
        images = images / 255.0
    if image_size is None:
        arr = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    else:
        as_uint8 = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
        channels = 1 if images.ndim == 3 else 3
        arr = np.stack([to_square(a, image_size, channels) for a in as_uint8])
    return FaceSet(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)),
                   torch.as_tensor(np.asarray(targets), dtype=torch.long), names, source,
                   report or LoadReport())


def load_digits(*, image_size: int | None = 32) -> FaceSet:
    """The 1,797 8x8 hand-written digits shipped with scikit-learn; identity = digit."""
    from sklearn import datasets

    bunch = datasets.load_digits()
    images = bunch.images / 16.0
    names = [str(d) for d in range(10)]
    return _from_arrays(images, bunch.target, names, image_size, DIGITS_SOURCE)


def load_olivetti(cache: Path, *, image_size: int | None = 32, download: bool = True) -> FaceSet:
    """The AT&T faces (40 people x 10 images, 64x64) through scikit-learn, cached once."""
    from sklearn import datasets

    if not download and not olivetti_cached(cache):
        raise _offline_error("Olivetti faces", cache, download, None)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        bunch = datasets.fetch_olivetti_faces(data_home=str(cache), shuffle=False,
                                              download_if_missing=download)
    except DOWNLOAD_ERRORS as err:
        raise _offline_error("Olivetti faces", cache, download, err) from err
    names = [f"s{k + 1}" for k in range(int(bunch.target.max()) + 1)]
    return _from_arrays(bunch.images, bunch.target, names, image_size, OLIVETTI_SOURCE)


def load_lfw(cache: Path, *, image_size: int | None = 32, min_faces_per_person: int = 20,
             download: bool = True, color: bool = False) -> FaceSet:
    """LFW people with at least min_faces_per_person images each, cached once (about 200 MB)."""
    from sklearn import datasets

    if min_faces_per_person < 2:
        raise DatasetError("LFW: min_faces_per_person must be at least 2 (a genuine pair)")
    if not download and not lfw_cached(cache):
        raise _offline_error("LFW", cache, download, None)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        bunch = datasets.fetch_lfw_people(data_home=str(cache), min_faces_per_person=
                                          min_faces_per_person, color=color,
                                          download_if_missing=download)
    except DOWNLOAD_ERRORS as err:
        raise _offline_error("LFW", cache, download, err) from err
    names = [str(n) for n in bunch.target_names]
    if len(names) < 2:
        raise DatasetError(f"LFW: only {len(names)} people have {min_faces_per_person} images or "
                           "more; lower min_faces_per_person")
    report = LoadReport(notes=[f"people with at least {min_faces_per_person} images each"])
    return _from_arrays(bunch.images, bunch.target, names, image_size, LFW_SOURCE, report)
