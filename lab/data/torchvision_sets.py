"""MNIST and Fashion-MNIST through torchvision, downloaded once into ``<data root>/cache``.

Ten classes play the part of ten identities. Sixty thousand images is more than a lesson needs
on a CPU, so a seeded, class-balanced subset of ``per_identity`` images per class is kept (the
report says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.data.errors import DatasetError
from lab.data.faceset import DataSource, FaceSet, LoadReport
from lab.data.sklearn_sets import DOWNLOAD_ERRORS, _from_arrays, _offline_error

MNIST_SOURCE = DataSource(
    name="MNIST",
    citation="Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, 'Gradient-based learning applied to "
    "document recognition', Proc. IEEE 86(11), 1998; via torchvision.",
    licence="CC BY-SA 3.0",
    offline=False,
    url="http://yann.lecun.com/exdb/mnist/",
)

FASHION_SOURCE = DataSource(
    name="Fashion-MNIST",
    citation="H. Xiao, K. Rasul and R. Vollgraf, 'Fashion-MNIST: a Novel Image Dataset for "
    "Benchmarking Machine Learning Algorithms', arXiv:1708.07747, 2017; via torchvision.",
    licence="MIT",
    offline=False,
    url="https://github.com/zalandoresearch/fashion-mnist",
)

_CLASSES = {
    "mnist": ("MNIST", MNIST_SOURCE, [str(d) for d in range(10)]),
    "fashion-mnist": ("FashionMNIST", FASHION_SOURCE, [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
        "Bag", "Ankle boot"]),
}


def torchvision_cached(name: str, cache: Path) -> bool:
    """True when the raw files torchvision checks for are already in the cache."""
    folder, _, _ = _CLASSES[name]
    raw = cache / folder / "raw"
    return all((raw / f"{part}-idx{dims}-ubyte").exists()
               for part, dims in (("train-images", 3), ("train-labels", 1),
                                  ("t10k-images", 3), ("t10k-labels", 1)))


def load_torchvision(name: str, cache: Path, *, image_size: int | None = 32,
                     download: bool = True, per_identity: int = 500, seed: int = 0) -> FaceSet:
    """name: "mnist" or "fashion-mnist"; keeps per_identity training images per class."""
    import torchvision

    folder, source, names = _CLASSES[name]
    if per_identity < 2:
        raise DatasetError(f"{name}: per_identity must be at least 2, got {per_identity}")
    if not download and not torchvision_cached(name, cache):
        raise _offline_error(source.name, cache, download, None)
    dataset_class = getattr(torchvision.datasets, folder)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        dataset = dataset_class(root=str(cache), train=True, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True"
        raise _offline_error(source.name, cache, download, err) from err
    except DOWNLOAD_ERRORS as err:
        raise _offline_error(source.name, cache, download, err) from err
    images = dataset.data.numpy() if torch.is_tensor(dataset.data) else np.asarray(dataset.data)
    targets = np.asarray(dataset.targets)
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(targets):
        where = np.flatnonzero(targets == label)
        keep.append(np.sort(rng.choice(where, size=min(per_identity, len(where)), replace=False)))
    index = np.concatenate(keep)
    report = LoadReport(notes=[f"kept {len(index):,} of {len(targets):,} training images "
                               f"(up to {per_identity} per class, seed {seed})"])
    return _from_arrays(images[index].astype(np.float32) / 255.0, targets[index],
                        names[: int(targets.max()) + 1], image_size, source, report)
