"""The reference model: a face embedder trained on millions of faces, beside the student's.

dlib's ResNet face descriptor (`dlib_face_recognition_resnet_model_v1`, D. King, 2017): a
29-layer ResNet trained with a pair-wise hinge loss on about 3 million faces of 7485 people,
mapping a face aligned by dlib's 5-point landmarks to a 128-d vector; two faces are the same
person when the Euclidean distance is below 0.6 (99.38 % on LFW). Weights are released into the
public domain (CC0) and ship on PyPI in `face_recognition_models`; the network runs in
`dlib-bin`. Both install offline from the registry, so the lab can show a model trained on 40
people next to one trained on millions, on the same photos, with the same verdict logic.

When either package is missing, `ReferenceModel.available()` says why and the rest of the lab
works without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from lab.faces.photos import FaceBox, _dlib, _shape_predictor, dlib_model_path

THRESHOLD = 0.6  # dlib's documented Euclidean threshold for "same person"
DESCRIPTOR_DIM = 128
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
CITATION = ("D. E. King, dlib face recognition ResNet model v1 (2017), dlib.net; "
            "99.38 % on LFW. Weights: CC0, from the face_recognition_models package.")
INSTALL_HINT = "pip install dlib-bin face_recognition_models"


@dataclass(frozen=True)
class ReferenceVerdict:
    """The reference model's answer for one pair: distance, its own threshold, verdict."""

    distance: float
    threshold: float
    same: bool

    @property
    def verdict(self) -> str:
        return "same" if self.same else "different"

    def to_dict(self) -> dict[str, Any]:
        return {"distance": self.distance, "threshold": self.threshold, "same": self.same,
                "verdict": self.verdict}


@cache
def _resnet() -> Any:
    dlib = _dlib()
    path = dlib_model_path(RESNET_FILE)
    if dlib is None or path is None:
        return None
    return dlib.face_recognition_model_v1(str(path))


class ReferenceModel:
    """dlib's 128-d ResNet face descriptor with its 5-point alignment and 0.6 threshold."""

    name = "dlib ResNet (face_recognition_models)"
    threshold = THRESHOLD
    citation = CITATION

    @staticmethod
    def available() -> tuple[bool, str]:
        """(True, "") when dlib and the model files are installed, else (False, why)."""
        if _dlib() is None:
            return False, f"dlib is not installed ({INSTALL_HINT})."
        for name in (RESNET_FILE, LANDMARKS_FILE):
            if dlib_model_path(name) is None:
                return False, (f"The reference model's file {name} was not found: "
                               f"face_recognition_models is not installed ({INSTALL_HINT}).")
        return True, ""

    def __init__(self) -> None:
        ok, why = self.available()
        if not ok:
            raise RuntimeError(why)
        self._resnet = _resnet()
        self._landmarks = _shape_predictor()

    def embed(self, image: Image.Image, box: FaceBox | None = None) -> np.ndarray:
        """128-d descriptor of the face in `box` (None: the whole image is taken as the face).

        The 5 landmarks are predicted inside the box, the face is aligned and cut to dlib's
        150x150 chip with 25 % padding, and the ResNet maps it to a unit-scale 128-d vector.
        """
        dlib = _dlib()
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        if box is None:
            rect = dlib.rectangle(0, 0, image.width - 1, image.height - 1)
        else:
            rect = dlib.rectangle(int(box.x), int(box.y), int(box.x + box.w - 1),
                                  int(box.y + box.h - 1))
        shape = self._landmarks(pixels, rect)
        descriptor = self._resnet.compute_face_descriptor(pixels, shape)
        return np.asarray(descriptor, dtype=np.float32)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance: the energy the reference model was trained with."""
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

    def decide(self, distance: float, threshold: float | None = None) -> ReferenceVerdict:
        threshold = self.threshold if threshold is None else float(threshold)
        return ReferenceVerdict(float(distance), threshold, bool(distance <= threshold))

    def verify(self, image_a: Image.Image, box_a: FaceBox | None, image_b: Image.Image,
               box_b: FaceBox | None, threshold: float | None = None) -> ReferenceVerdict:
        """Same person? Distance between the two descriptors against the threshold."""
        return self.decide(self.distance(self.embed(image_a, box_a), self.embed(image_b, box_b)),
                           threshold)


@cache
def shared_reference() -> ReferenceModel | None:
    """One loaded reference model per process (loading the 22 MB ResNet takes ~0.3 s)."""
    ok, _ = ReferenceModel.available()
    return ReferenceModel() if ok else None


# The datasets of photographed faces, where a face model's answer means something (digits,
# MNIST and the synthetic faces are not faces to a model trained on photos).
FACE_DATASETS = ("att", "olivetti", "lfw", "folder")
# The reference sees a run's images at this side (the largest a dataset loads; dlib aligns each
# to its 150x150 chip), the same centre crop as the student's, not the student's few pixels.
REFERENCE_IMAGE_SIZE = 128


def describe_images(model: ReferenceModel, images: np.ndarray) -> np.ndarray:
    """[N, 128] descriptors of [N, C, H, W] images in [0, 1], each whole image taken as the face
    (the face sets are face crops already, and the student saw the same whole image)."""
    out = np.zeros((len(images), DESCRIPTOR_DIM), dtype=np.float32)
    for k, pixels in enumerate(np.asarray(images, dtype=np.float32)):
        grey = pixels.shape[0] == 1
        array = np.clip(np.moveaxis(pixels, 0, -1) * 255 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(array[..., 0] if grey else array)
        out[k] = model.embed(image, None)
    return out
