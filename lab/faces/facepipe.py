"""One face pipeline for training and verifying: align, crop, resize, normalise the light.

A network learns the kind of input it is trained on. When a run learns from AT&T's tight grey
crops but Verify hands it a face cut out of a webcam photo, the two differ in framing, scale,
rotation and light, and the run's threshold (set on AT&T validation people) no longer means
what it says. So a run records one pipeline (``RunConfig.pipeline``) and *the same function*,
:func:`face_input`, turns a photo into a network input both when the dataset is loaded for
training (lab.data.aligned) and when Verify is asked about two photos (lab.views.verify).

Pipelines (``PIPELINES``):

- ``none``: today's behaviour. Training images are centre-cropped and resized by lab.data;
  Verify crops the detected face (lab.faces.photos.crop_face). Kept so old runs verify as before.
- ``aligned``: the face is found (dlib HOG, lab.faces.photos.detect_faces), aligned on its 5
  landmarks with dlib's own face-chip geometry (``dlib.get_face_chip_details``: the similarity
  transform that maps the landmarks onto dlib's mean face; King 2009, as used before its ResNet)
  and cut as a square chip with ``PADDING`` of the face size around it, resized to
  ``WORK_SIDE`` pixels. Pixels beyond the photo's edge repeat the edge (AT&T's photos are
  tight crops, so a padded chip reaches past them).
- ``aligned+hist`` / ``aligned+clahe``: then histogram equalisation, global or contrast-limited
  adaptive (CLAHE, Zuiderveld 1994), on the luminance.
- ``aligned+tantriggs``: then the Tan & Triggs (2010) illumination normalisation chain:
  gamma correction (I ** 0.2), difference of Gaussians (sigma 1 and 2 px), and two-stage
  contrast equalisation, I / mean(|I|^a)^(1/a), then I / mean(min(tau, |I|)^a)^(1/a) with
  a = 0.1, tau = 10, and tau * tanh(I / tau); rescaled to [0, 1] by its own min and max.
  X. Tan and B. Triggs, "Enhanced local texture feature sets for face recognition under
  difficult lighting conditions", IEEE Trans. Image Processing 19(6), 2010.

Every photometric step runs on the fixed-size chip (``WORK_SIDE``), never on the photo: a face
300 pixels wide in a phone photo and one 92 pixels wide in AT&T are then normalised at the same
scale, with the paper's sigmas meaning the same thing, and only afterwards shrunk to the run's
input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from lab.core.config import PIPELINES  # one source of truth: RunConfig's choices
from lab.faces.photos import FaceBox, whole_image_crop
from lab.faces.photos import _dlib as find

__all__ = ["PIPELINES", "Pipeline", "face_input", "parse_pipeline", "tan_triggs"]

PHOTOMETRIC = ("none", "hist", "clahe", "tantriggs")
WORK_SIDE = 96  # pixels of the aligned chip every photometric step runs on
# Chip border, as a fraction of the face size (dlib's padding). Small: AT&T's photos end just
# below the chin, and every pixel past a photo's edge is a repeated edge, not a face.
PADDING = 0.1
# Bump when the pipeline's output changes, so cached datasets are rebuilt (lab.data.aligned).
VERSION = 1


@dataclass(frozen=True)
class Pipeline:
    """A parsed pipeline name: whether faces are aligned and which light normalisation."""

    name: str
    align: bool
    photometric: str

    @property
    def describe(self) -> str:
        if not self.align:
            return "none (whole image, centre crop)"
        light = {"none": "no light normalisation", "hist": "histogram equalisation",
                 "clahe": "CLAHE", "tantriggs": "Tan & Triggs light normalisation"}
        return f"detect, 5-point align, crop; {light[self.photometric]}"


def parse_pipeline(name: str | None) -> Pipeline:
    """"aligned+clahe" -> Pipeline(align=True, photometric="clahe"); ValueError when unknown."""
    name = (name or "none").strip().lower()
    if name not in PIPELINES:
        raise ValueError(f"unknown face pipeline {name!r}; choose one of {', '.join(PIPELINES)}")
    if name == "none":
        return Pipeline(name, False, "none")
    _, _, light = name.partition("+")
    return Pipeline(name, True, light or "none")


# ---------------------------------------------------------------- geometry


def aligned_chip(image: Image.Image, box: FaceBox, side: int = WORK_SIDE,
                 padding: float = PADDING) -> Image.Image:
    """The face as a `side` x `side` chip, eyes and nose where dlib's mean face has them.

    dlib computes the chip (a rotated rectangle in the photo) from the 5 landmarks; the warp is
    done here with OpenCV so that pixels past the photo's edge repeat the edge instead of going
    black. Without landmarks (Haar detector) the box itself, padded, is the chip.
    """
    import cv2

    pixels = np.asarray(image)
    corners = _chip_corners(box, padding)
    chip_side = int(min(512, max(side, round(math.dist(corners[0], corners[1])))))
    target = np.float32([[0, 0], [chip_side - 1, 0], [0, chip_side - 1]])
    matrix = cv2.getAffineTransform(np.float32(corners), target)
    chip = cv2.warpAffine(pixels, matrix, (chip_side, chip_side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if chip_side != side:  # area averaging: a big face shrinks without aliasing
        chip = cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA)
    return Image.fromarray(chip, mode=image.mode)


def _chip_corners(box: FaceBox, padding: float) -> list[tuple[float, float]]:
    """Photo coordinates of the chip's top-left, top-right and bottom-left corners."""
    dlib = _dlib()
    if box.landmarks and dlib is not None:
        rect = dlib.rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
        points = [dlib.point(round(x), round(y)) for x, y in box.landmarks]
        details = dlib.get_face_chip_details(dlib.full_object_detection(rect, points),
                                             WORK_SIDE, padding)
        r, angle = details.rect, details.angle
        cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
        half_w, half_h = (r.width() - 1) / 2.0, (r.height() - 1) / 2.0
    else:
        side = max(box.w, box.h) * (1.0 + 2.0 * padding)
        cx, cy, angle = box.x + box.w / 2.0, box.y + box.h / 2.0, 0.0
        half_w = half_h = (side - 1) / 2.0
    cos, sin = math.cos(angle), math.sin(angle)

    def point(u: float, v: float) -> tuple[float, float]:  # u, v in [-1, 1] across the chip
        x, y = u * half_w, v * half_h
        return cx + x * cos - y * sin, cy + x * sin + y * cos

    return [point(-1, -1), point(1, -1), point(-1, 1)]


def _dlib():
    return find()


# ---------------------------------------------------------------- light


def equalise(chip: np.ndarray, adaptive: bool) -> np.ndarray:
    """Histogram equalisation (global, or CLAHE with clip 2 on 4 x 4 tiles) of the luminance;
    colour chips keep their hue (the L channel of CIELAB is equalised)."""
    import cv2

    def one(grey: np.ndarray) -> np.ndarray:
        if adaptive:
            return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey)
        return cv2.equalizeHist(grey)

    if chip.ndim == 2:
        return one(chip)
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)
    lab[..., 0] = one(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def tan_triggs(chip: np.ndarray, gamma: float = 0.2, sigma0: float = 1.0, sigma1: float = 2.0,
               alpha: float = 0.1, tau: float = 10.0) -> np.ndarray:
    """Tan & Triggs (2010) preprocessing of one grey or colour chip (uint8) -> float in [0, 1].

    Gamma compresses the dynamic range (shadows lifted, highlights flattened), the DoG band-pass
    removes the slow shading a directional light paints across a face (and the finest noise),
    and the two-stage contrast equalisation with a tanh squashes what is left into a fixed
    range, so a dim face and a bright one come out alike. Colour chips are processed per channel.
    """
    import cv2

    values = chip.astype(np.float32) / 255.0
    if values.ndim == 3:
        return np.stack([tan_triggs((values[..., c] * 255).astype(np.uint8), gamma, sigma0,
                                    sigma1, alpha, tau) for c in range(values.shape[2])], axis=-1)
    values = np.power(values + 1e-3, gamma)
    dog = (cv2.GaussianBlur(values, (0, 0), sigma0) - cv2.GaussianBlur(values, (0, 0), sigma1))
    dog = dog / (np.mean(np.abs(dog) ** alpha) ** (1.0 / alpha) + 1e-8)
    dog = dog / (np.mean(np.minimum(tau, np.abs(dog)) ** alpha) ** (1.0 / alpha) + 1e-8)
    dog = tau * np.tanh(dog / tau)
    low, high = float(dog.min()), float(dog.max())
    return (dog - low) / (high - low) if high > low else np.full_like(dog, 0.5)


def normalise_light(chip: np.ndarray, photometric: str) -> np.ndarray:
    """uint8 chip -> float32 in [0, 1] after the chosen photometric step."""
    if photometric == "none":
        return chip.astype(np.float32) / 255.0
    if photometric in ("hist", "clahe"):
        return equalise(chip, adaptive=photometric == "clahe").astype(np.float32) / 255.0
    if photometric == "tantriggs":
        return tan_triggs(chip).astype(np.float32)
    raise ValueError(f"unknown photometric step {photometric!r}; choose from "
                     f"{', '.join(PHOTOMETRIC)}")


# ---------------------------------------------------------------- the one function


def face_input(image: Image.Image, box: FaceBox | None, pipeline: str | Pipeline, channels: int,
               image_size: int) -> torch.Tensor:
    """THE pipeline: photo + detected face -> [1, C, S, S] float32 network input in [0, 1].

    box None: no face (or the user asked for the whole image): the photo's largest centred
    square is used instead, then the same resize and light normalisation. Used by the dataset
    loader (lab.data.aligned) and by Verify (lab.views.verify), so both see identical tensors.
    """
    import cv2

    spec = pipeline if isinstance(pipeline, Pipeline) else parse_pipeline(pipeline)
    if not spec.align:
        raise ValueError("pipeline 'none' has no face_input: lab.data and lab.faces.photos keep "
                         "their own crops for it")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if not np.isscalar(image_size):
        height, width = image_size
        if height != width:
            raise ValueError(f"aligned pipelines make square inputs, got {image_size}")
        image_size = height
    size = int(image_size)
    converted = image.convert("L" if channels == 1 else "RGB")
    if box is None:
        square = whole_image_crop(converted)
        interp = (Image.Resampling.LANCZOS if square.width > WORK_SIDE
                  else Image.Resampling.BILINEAR)
        chip = square.resize((WORK_SIDE, WORK_SIDE), interp)
    else:
        chip = aligned_chip(converted, box)
    values = normalise_light(np.asarray(chip), spec.photometric)
    if size != WORK_SIDE:
        interp = cv2.INTER_AREA if size < WORK_SIDE else cv2.INTER_LINEAR
        values = cv2.resize(values, (size, size), interpolation=interp)
    values = np.clip(values, 0.0, 1.0)
    array = values[None] if values.ndim == 2 else values.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0)


def first_usable_face(faces: list[FaceBox]) -> FaceBox | None:
    """The face a dataset image is cut around: the largest one, when it is not tiny."""
    return faces[0] if faces and not faces[0].tiny else None


def tensor_to_display(tensor: torch.Tensor) -> np.ndarray:
    """A [1, C, H, W] or [C, H, W] input in [0, 1] as the 8-bit picture the network saw."""
    values = tensor.detach().cpu().float()
    if values.ndim == 4:
        values = values[0]
    array = (values.clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
