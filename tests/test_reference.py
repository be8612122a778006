"""lab.faces.reference: dlib's ResNet descriptor, and a lab that says so and carries on without
it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lab.faces import reference
from lab.faces.photos import detect_faces
from lab.faces.reference import ReferenceModel, ReferenceVerdict

AVAILABLE, WHY = ReferenceModel.available()
needs_reference = pytest.mark.skipif(not AVAILABLE, reason=f"reference model missing: {WHY}")


@pytest.fixture(scope="module")
def model() -> ReferenceModel:
    if not AVAILABLE:
        pytest.skip(f"reference model missing: {WHY}")
    return reference.shared_reference()


def att(att_dir, person: int, shot: int) -> Image.Image:
    return Image.open(att_dir / f"s{person}" / f"{shot}.pgm").convert("L")


def test_available_is_a_bool_and_a_reason():
    ok, why = ReferenceModel.available()
    assert isinstance(ok, bool) and isinstance(why, str)
    assert ok == (why == "")


def test_missing_dlib_is_said_not_raised(monkeypatch):
    monkeypatch.setattr(reference, "_dlib", lambda: None)
    ok, why = ReferenceModel.available()
    assert not ok and "dlib" in why and "pip install" in why
    with pytest.raises(RuntimeError, match="dlib"):
        ReferenceModel()


def test_missing_model_files_are_said(monkeypatch):
    monkeypatch.setattr(reference, "dlib_model_path", lambda name: None)
    if reference._dlib() is None:
        pytest.skip("dlib is not installed")
    ok, why = ReferenceModel.available()
    assert not ok and "face_recognition_models" in why


def test_decide_uses_the_standard_threshold():
    decide = ReferenceModel.decide.__get__(object.__new__(ReferenceModel))
    assert ReferenceModel.threshold == 0.6
    assert decide(0.59) == ReferenceVerdict(0.59, 0.6, True)
    assert decide(0.61).verdict == "different"
    assert decide(0.61, threshold=0.7).same
    assert decide(0.5).to_dict() == {"distance": 0.5, "threshold": 0.6, "same": True,
                                     "verdict": "same"}


@needs_reference
def test_embedding_is_128d_and_tells_people_apart(model, att_dir):
    images = [att(att_dir, 1, 1), att(att_dir, 1, 5), att(att_dir, 7, 1)]
    boxes = [detect_faces(image)[0] for image in images]
    vectors = [model.embed(image, box) for image, box in zip(images, boxes, strict=True)]
    assert all(v.shape == (128,) and v.dtype == np.float32 for v in vectors)
    same = model.distance(vectors[0], vectors[1])
    different = model.distance(vectors[0], vectors[2])
    assert same < ReferenceModel.threshold < different
    verdict = model.verify(images[0], boxes[0], images[1], boxes[1])
    assert verdict.same and verdict.distance == pytest.approx(same, abs=1e-5)


@needs_reference
def test_whole_image_and_rgb_work(model, att_dir):
    gray = att(att_dir, 1, 1)
    vector = model.embed(gray.convert("RGB"), None)
    assert vector.shape == (128,) and np.isfinite(vector).all()
    assert model.distance(vector, model.embed(gray, None)) < 1e-5
