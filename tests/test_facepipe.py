"""lab.faces.facepipe + lab.data.aligned: one face pipeline for training and Verify, cached.

The claims under test: a photo reaches the network as the same tensor whether it comes in as a
training image or as an upload to Verify; the cache of a pipelined dataset is rebuilt whenever
a setting it depends on changes; Tan & Triggs removes a light gradient that raw pixels keep."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.data import DatasetError, aligned
from lab.data.aligned import load_through_pipeline
from lab.faces import facepipe
from lab.views import verify


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("METRIC_LAB_DATA", str(root))
    return root


@pytest.fixture
def small_att(att_dir, tmp_path) -> Path:
    """3 AT&T people x 3 photos, copied into a folder dataset (nothing committed)."""
    folder = tmp_path / "faces"
    for person in ("s1", "s2", "s3"):
        (folder / person).mkdir(parents=True)
        for k in (1, 2, 3):
            shutil.copy(att_dir / person / f"{k}.pgm", folder / person / f"{k}.pgm")
    return folder


class Recorder:
    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.batches.append(images.clone())
        return images.flatten(1).numpy()


@pytest.mark.parametrize("pipeline", ["aligned", "aligned+tantriggs"])
def test_training_and_verify_see_identical_tensors(small_att, data_root, pipeline):
    faceset = load_through_pipeline(small_att, pipeline=pipeline, image_size=32, channels=1)
    cached = load_through_pipeline(small_att, pipeline=pipeline, image_size=32, channels=1)
    assert torch.equal(faceset.images, cached.images)  # the cache gives back what was built
    photo_a = (small_att / "s2" / "1.pgm").read_bytes()
    photo_b = (small_att / "s3" / "2.pgm").read_bytes()
    recorder = Recorder()
    result = verify.verify_pair(photo_a, photo_b, recorder, channels=1, image_size=32,
                                energy="l2", threshold=1.0, pipeline=pipeline)
    batch = recorder.batches[0]
    # s2/1.pgm is image 3 (identities s1, s2, s3 in order, 3 photos each), s3/2.pgm image 7.
    assert torch.equal(batch[0], faceset.images[3])
    assert torch.equal(batch[1], faceset.images[7])
    assert result.pipeline == pipeline
    assert result.crops[0].shape == (32, 32)  # the crop shown is the input itself
    assert np.array_equal(result.crops[0], facepipe.tensor_to_display(batch[0]))


def test_cache_is_rebuilt_when_a_setting_changes(small_att, data_root, monkeypatch):
    builds: list[tuple] = []
    real_build = aligned._build

    def counting(listing, report, pipeline, image_size, channels, *rest):
        builds.append((pipeline, image_size, channels))
        return real_build(listing, report, pipeline, image_size, channels, *rest)

    monkeypatch.setattr(aligned, "_build", counting)
    first = load_through_pipeline(small_att, pipeline="aligned", image_size=32, channels=1)
    load_through_pipeline(small_att, pipeline="aligned", image_size=32, channels=1)
    assert len(builds) == 1  # same settings: read from the cache
    clahe = load_through_pipeline(small_att, pipeline="aligned+clahe", image_size=32,
                                  channels=1)
    assert len(builds) == 2 and not torch.equal(first.images, clahe.images)
    bigger = load_through_pipeline(small_att, pipeline="aligned", image_size=40, channels=1)
    assert len(builds) == 3 and bigger.images.shape[-1] == 40
    colour = load_through_pipeline(small_att, pipeline="aligned", image_size=32, channels=3)
    assert len(builds) == 4 and colour.images.shape[1] == 3
    # A changed file changes the key too: the mirrored photo must come back mirrored.
    photo = small_att / "s1" / "1.pgm"
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo)
    changed = load_through_pipeline(small_att, pipeline="aligned", image_size=32, channels=1)
    assert len(builds) == 5 and not torch.equal(changed.images[0], first.images[0])
    assert torch.equal(changed.images[1:], first.images[1:])
    monkeypatch.setattr(facepipe, "VERSION", facepipe.VERSION + 1)
    load_through_pipeline(small_att, pipeline="aligned", image_size=32, channels=1)
    assert len(builds) == 6


def test_tan_triggs_removes_a_light_gradient(att_dir):
    """A face lit from the left (brightness x0.25 .. x1 across it) against the same face: the
    Tan & Triggs outputs correlate far better than the raw pixels do."""
    face = np.asarray(Image.open(att_dir / "s5" / "1.pgm").resize((96, 96)), dtype=np.float64)
    ramp = np.linspace(0.25, 1.0, 96)[None, :]
    lit = np.clip(face * ramp, 0, 255).astype(np.uint8)
    plain = face.astype(np.uint8)

    def corr(a, b):
        return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])

    raw = corr(plain, lit)
    normalised = corr(facepipe.tan_triggs(plain), facepipe.tan_triggs(lit))
    assert normalised > 0.9 and normalised > raw + 0.1, (raw, normalised)


def test_whole_image_fallback_is_the_same_function():
    image = Image.fromarray((np.arange(80 * 60) % 251).reshape(80, 60).astype(np.uint8))
    tensor = facepipe.face_input(image, None, "aligned", 1, 24)
    square = image.crop((0, 10, 60, 70)).resize((96, 96), Image.Resampling.BILINEAR)
    expected = facepipe.face_input(square, None, "aligned", 1, 24)
    assert tensor.shape == (1, 1, 24, 24) and torch.allclose(tensor, expected, atol=1e-6)


def test_a_folder_without_faces_is_refused_before_training(tmp_path, data_root):
    rng = np.random.default_rng(0)
    for person in ("a", "b", "c"):
        (tmp_path / "noise" / person).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(
                tmp_path / "noise" / person / f"{k}.png")
    with pytest.raises(DatasetError, match="no face found in 6 of 6 images"):
        load_through_pipeline(tmp_path / "noise", pipeline="aligned", image_size=32)


def test_mixed_colour_and_grey_folder_trains_in_colour_and_says_so(small_att, data_root):
    grey = Image.open(small_att / "s1" / "1.pgm")
    tinted = Image.merge("RGB", [grey.point(lambda v: min(255, v + 40)), grey,
                                 grey.point(lambda v: v // 2)])
    tinted.save(small_att / "s1" / "4.png")
    faceset = load_through_pipeline(small_att, pipeline="aligned", image_size=32)
    assert faceset.images.shape[1] == 3
    assert any("1 colour, 9 grey" in note and "trained in colour" in note
               for note in faceset.report.notes), faceset.report.notes


def test_unknown_pipeline_is_refused():
    with pytest.raises(ValueError, match="unknown face pipeline"):
        facepipe.parse_pipeline("aligned+sunglasses")
