"""Download-backed datasets, exercised on fake caches the tests write (never the internet), the
offline messages, the registry and ``data list``."""

from __future__ import annotations

import argparse
import io
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from lab.core.config import RunConfig
from lab.data import (
    AVAILABILITY,
    DATASET_NAMES,
    DatasetError,
    cache_dir,
    data_root,
    dataset_status,
    list_datasets,
    load_dataset,
    load_for_config,
)


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """An empty data root; downloads allowed unless a test turns them off."""
    monkeypatch.setenv("METRIC_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("METRIC_LAB_OFFLINE", raising=False)
    return tmp_path / "data"


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


# --- digits ----------------------------------------------------------------------------------

def test_digits_load_offline():
    faces = load_dataset("digits", image_size=16)
    assert faces.images.shape == (1797, 1, 16, 16)
    assert faces.num_identities == 10 and faces.source.offline
    native = load_dataset("digits", image_size=None)
    assert native.images.shape[2:] == (8, 8)
    assert float(native.images.max()) == 1.0


# --- olivetti --------------------------------------------------------------------------------

def _fake_olivetti(cache: Path) -> None:
    import joblib

    cache.mkdir(parents=True, exist_ok=True)
    faces = np.random.default_rng(0).random((400, 4096)).astype(np.float32)
    joblib.dump(faces, cache / "olivetti_py3.pkz", compress=6)


def test_olivetti_from_cache_without_network(data_home, monkeypatch):
    _fake_olivetti(cache_dir("sklearn"))
    monkeypatch.setattr("sklearn.datasets._base._fetch_remote", _no_network)
    assert dataset_status("olivetti").availability == "cached"
    faces = load_dataset("olivetti", image_size=32, download=False)
    assert faces.images.shape == (400, 1, 32, 32)
    assert faces.names[:2] == ["s1", "s2"] and faces.num_identities == 40
    assert faces.labels[:10].tolist() == [0] * 10


def test_olivetti_offline_gives_clear_error(data_home, monkeypatch):
    assert dataset_status("olivetti").availability == "needs download"
    with pytest.raises(DatasetError, match="not cached.*downloads are turned off"):
        load_dataset("olivetti", download=False)
    monkeypatch.setattr("sklearn.datasets.fetch_olivetti_faces", _no_network)
    with pytest.raises(DatasetError, match="download failed.*URLError"):
        load_dataset("olivetti")
    monkeypatch.setenv("METRIC_LAB_OFFLINE", "1")
    assert dataset_status("olivetti").availability == "unavailable"
    with pytest.raises(DatasetError, match="offline dataset"):
        load_dataset("olivetti")


@pytest.mark.filterwarnings("ignore:Retry downloading")
def test_olivetti_real_sklearn_download_path_fails_cleanly(data_home, monkeypatch):
    """The real fetcher runs; only its network call is replaced by a failure."""
    monkeypatch.setattr("sklearn.datasets._base.urlretrieve", _no_network)
    monkeypatch.setattr("time.sleep", lambda _: None)
    with pytest.raises(DatasetError, match="download failed"):
        load_dataset("olivetti", download=True)


# --- LFW -------------------------------------------------------------------------------------

def _fake_lfw_fetch(calls: list):
    from sklearn.utils import Bunch

    def fetch(data_home, min_faces_per_person, color, download_if_missing, **kwargs):
        calls.append((data_home, min_faces_per_person, download_if_missing))
        rng = np.random.default_rng(1)
        target = np.repeat(np.arange(3), 4)
        images = rng.random((12, 62, 47)).astype(np.float32) * 255.0  # sklearn gives 0..255
        return Bunch(images=images, target=target,
                     target_names=np.array(["Ada Lovelace", "Alan Turing", "Grace Hopper"]))

    return fetch


def test_lfw_loads_through_the_fetcher(data_home, monkeypatch):
    calls: list = []
    monkeypatch.setattr("sklearn.datasets.fetch_lfw_people", _fake_lfw_fetch(calls))
    faces = load_dataset("lfw", image_size=24, min_faces_per_person=4)
    assert faces.images.shape == (12, 1, 24, 24)
    assert faces.names == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert float(faces.images.max()) <= 1.0
    assert calls == [(str(cache_dir("sklearn")), 4, True)]


def test_lfw_offline_and_bad_options(data_home, monkeypatch):
    with pytest.raises(DatasetError, match="LFW is not cached"):
        load_dataset("lfw", download=False)
    monkeypatch.setattr("sklearn.datasets.fetch_lfw_people", _no_network)
    with pytest.raises(DatasetError, match="download failed"):
        load_dataset("lfw")
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset("lfw", min_faces_per_person=1)


# --- MNIST / Fashion-MNIST -------------------------------------------------------------------

def _write_idx(raw: Path, count_per_class: int = 5) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(10, dtype=np.uint8), count_per_class)
    images = np.random.default_rng(2).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    header = struct.pack(">IIII", 2051, len(labels), 28, 28)
    for part in ("train", "t10k"):  # torchvision checks that both splits are there
        (raw / f"{part}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (raw / f"{part}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labels))
                                                        + labels.tobytes())


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_sets_from_cache(data_home, name, folder):
    assert dataset_status(name).availability == "needs download"
    _write_idx(cache_dir("torchvision") / folder / "raw")
    assert dataset_status(name).availability == "cached"
    faces = load_dataset(name, image_size=16, download=False, per_identity=3, seed=1)
    assert faces.images.shape == (30, 1, 16, 16)
    assert faces.num_identities == 10
    assert np.bincount(faces.labels.numpy()).tolist() == [3] * 10
    again = load_dataset(name, image_size=16, download=False, per_identity=3, seed=1)
    assert faces.images.equal(again.images)
    assert any("kept 30 of 50" in note for note in faces.report.notes)


def test_torchvision_offline_gives_clear_error(data_home, monkeypatch):
    with pytest.raises(DatasetError, match="MNIST is not cached"):
        load_dataset("mnist", download=False)
    import torchvision

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", _no_network)
    with pytest.raises(DatasetError, match="download failed"):
        load_dataset("mnist", download=True)
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download",
                        lambda self: (_ for _ in ()).throw(OSError("network is unreachable")))
    with pytest.raises(DatasetError, match="download failed"):
        load_dataset("fashion-mnist")


# --- registry, options and CLI ---------------------------------------------------------------

def test_list_datasets_covers_every_name_with_a_reason(data_home):
    infos = list_datasets()
    assert [i.name for i in infos] == list(DATASET_NAMES)
    for info in infos:
        assert info.availability in AVAILABILITY
        assert info.reason and info.size and info.title and info.source.citation
    by_name = {i.name: i for i in infos}
    assert by_name["synthetic"].availability == "offline"
    assert by_name["digits"].availability == "offline"


def test_data_root_and_cache_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("METRIC_LAB_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert cache_dir("sklearn") == tmp_path / "cache" / "sklearn"
    monkeypatch.delenv("METRIC_LAB_DATA")
    assert data_root().name == "data" and (data_root().parent / "lab").is_dir()


def test_unknown_names_and_options_are_refused():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="unknown dataset"):
        dataset_status("imagenet")
    with pytest.raises(DatasetError, match="does not take"):
        load_dataset("digits", num_identities=3)


def test_load_for_config_maps_fields(data_home, monkeypatch):
    _write_idx(cache_dir("torchvision") / "MNIST" / "raw")
    config = RunConfig(dataset="mnist", image_size=20, extra={"per_identity": 2,
                                                             "download": False})
    faces = load_for_config(config)
    assert faces.images.shape == (20, 1, 20, 20)
    digits = load_for_config(RunConfig(dataset="digits", image_size=12))
    assert digits.images.shape[2:] == (12, 12)


def test_data_list_command_prints_every_dataset(data_home):
    from lab.cli.data import add_parser, run_list

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "list"])
    out = io.StringIO()
    assert args.func is run_list
    assert run_list(args, out=out) == 0
    text = out.getvalue()
    for name in DATASET_NAMES:
        assert name in text
    assert "needs download" in text and "offline" in text and "size:" in text


def test_load_for_config_ignores_extra_keys_of_other_modules():
    config = RunConfig(num_identities=3, images_per_identity=2, extra={"width": 64,
                                                                      "per_identity": 9,
                                                                      "channels": 1})
    assert load_for_config(config).images.shape == (6, 1, 32, 32)
