"""Faces in uploaded photos: decode safely, detect, align, crop, and turn into a network input.

The verify page and `python -m lab verify` hand us raw bytes from a student's phone or webcam.
Everything here works on those bytes in memory (never on disk), refuses what could take a shared
server down (huge files, decompression bombs) with a message a student can act on, and turns the
face into exactly the input the chosen run was trained on: a square crop, `image_size` pixels,
1 or 3 channels, values in [0, 1].

Detectors, best first: dlib's HOG + linear SVM frontal face detector (Dalal & Triggs 2005, as
shipped in `dlib-bin`) with its 5-point landmark predictor for alignment, then OpenCV's bundled
Haar cascade (Viola & Jones 2001), which always ships with `opencv-python-headless`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lab.core.limits import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, MIN_FACE_PIXELS

try:  # HEIC/HEIF (iPhone photos) only when pillow-heif is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF_AVAILABLE = False

Image.init()
# Formats a phone, a webcam or a dataset hands us. MPO is the JPEG variant of some cameras.
PHOTO_FORMATS = tuple(
    name for name in ("JPEG", "MPO", "PNG", "WEBP", "BMP", "PPM", "TIFF", "GIF", "HEIF")
    if name in Image.OPEN
)
DETECTORS = ("dlib-hog", "opencv-haar")
DETECT_SIDE = 1024  # the detector sees the photo scaled to about this long side
MAX_UPSCALE = 4.0  # small photos (AT&T's 92x112) are enlarged at most this much for detection

# What a file that is not a photo usually is, by its first bytes: named in the error message.
_MAGIC = (
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a zip archive (or a Word/Excel document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"GIF8", "a GIF animation"),
    (b"ftypqt", "a video"),
    (b"ftypmp4", "a video"),
    (b"ftypisom", "a video"),
    (b"RIFF", "a RIFF file (video or sound?)"),
    (b"ID3", "a sound file"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML or SVG file"),
    (b"<!DOCTYPE html", "a web page"),
    (b"<html", "a web page"),
)


class PhotoError(ValueError):
    """A photo we cannot use, with a message a student can act on (never a traceback)."""


class NoFaceError(PhotoError):
    """No face found: the caller may offer to use the whole image (a centred square crop)."""

    offer_whole_image = True


class TinyFaceError(PhotoError):
    """The face is too small on its short side to say anything trustworthy about it."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: box in photo pixels, the detector's confidence, optional landmarks.

    landmarks: dlib's 5 points ((x, y) pairs: two corners of each eye, then below the nose),
    in photo pixels, when the 5-point predictor is installed.
    """

    x: int
    y: int
    w: int
    h: int
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def short_side(self) -> int:
        return min(self.w, self.h)

    @property
    def tiny(self) -> bool:
        return self.short_side < MIN_FACE_PIXELS

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["landmarks"] = [list(p) for p in self.landmarks] if self.landmarks else None
        return out


class Faces(list):
    """`list[FaceBox]`, largest first, that also says which detector found them."""

    def __init__(self, boxes: list[FaceBox] = (), detector: str = "") -> None:
        super().__init__(boxes)
        self.detector = detector


def _human_bytes(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def _what_is_it(head: bytes) -> str:
    stripped = head.lstrip()
    for magic, name in _MAGIC:
        if stripped.startswith(magic) or magic in head[:16]:
            return name
    if b"ftypheic" in head[:16] or b"ftypmif1" in head[:16]:
        return "an iPhone HEIC photo (install pillow-heif to read it)"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return ""


def _not_an_image(head: bytes) -> PhotoError:
    kind = _what_is_it(head)
    got = f" (got {kind}?)" if kind else ""
    formats = ", ".join(f.replace("PPM", "PGM/PPM") for f in PHOTO_FORMATS if f != "MPO")
    return PhotoError(f"This file is not an image we can read{got}. Use a photo: {formats}.")


def _too_many_pixels(width: int, height: int) -> PhotoError:
    return PhotoError(
        f"The photo is {width}×{height} pixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} "
        "megapixels. Shrink it (a face needs far fewer pixels) and try again."
    )


def load_photo(data: bytes) -> Image.Image:
    """Decode an uploaded photo from memory into an upright 8-bit "RGB" or "L" image.

    Size is checked on the bytes before decoding and the pixel count on the header before the
    pixels are loaded, so neither a huge file nor a decompression bomb costs memory. EXIF
    orientation is applied (phones store portraits sideways); transparency is flattened on
    white; palette, CMYK and 16-bit images become ordinary 8-bit RGB or grayscale.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise PhotoError(f"Expected the photo's bytes, got {type(data).__name__}.")
    if not data:
        raise PhotoError("The file is empty (0 bytes). Choose a photo and try again.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PhotoError(
            f"The file is {_human_bytes(len(data))}; the limit is "
            f"{_human_bytes(MAX_UPLOAD_BYTES)}. Use a smaller photo (a phone photo is 2-5 MB)."
        )
    try:
        image = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)
    except UnidentifiedImageError:
        raise _not_an_image(data[:64]) from None
    except Image.DecompressionBombError as err:
        size = _header_size(data)
        if size is not None:
            raise _too_many_pixels(*size) from None
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise PhotoError(
            f"The photo has {pixels}; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. "
            "Shrink it and try again."
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(
            f"This file looks like an image but its header is broken ({err})."
        ) from None

    width, height = image.size
    if width < 1 or height < 1:
        raise PhotoError(f"The photo is {width}×{height} pixels: there is nothing to see.")
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_many_pixels(width, height)
    fmt = image.format or ""
    if fmt in ("JPEG", "MPO") and max(width, height) > 2 * DETECT_SIDE:
        # Decode a 12-megapixel phone photo at 1/2 scale (or less): faster, same faces.
        keep = 1.5 * DETECT_SIDE / max(width, height)
        wanted = (round(width * keep), round(height * keep))
        image.draft("RGB" if image.mode != "L" else "L", wanted)
    try:
        image.load()
    except Image.DecompressionBombError:  # pragma: no cover - caught by the check above
        raise _too_many_pixels(width, height) from None
    except (OSError, SyntaxError, ValueError, MemoryError) as err:
        raise PhotoError(
            f"This {fmt or 'image'} file is broken or cut off (the upload may not have finished): "
            f"{err}. Try saving or sending it again."
        ) from None
    with contextlib.suppress(Exception):  # a broken EXIF block must not cost the photo
        image = ImageOps.exif_transpose(image) or image
    image = _to_8bit(image)
    image.info["format"] = fmt
    return image


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone, past Pillow's own bomb check (which refuses
    to say them): the format plugins read only the header when constructed."""
    prefix = data[:16]
    for name in PHOTO_FORMATS:
        factory, accept = Image.OPEN[name]
        try:
            if accept is None or accept(prefix):
                return tuple(factory(io.BytesIO(data), "").size)  # type: ignore[return-value]
        except Exception:  # noqa: BLE001, S112 - try the next format
            continue
    return None


def _to_8bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB" or "L", 8 bits per channel."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":  # 16-bit PNG/TIFF/PGM, 32-bit int or float
        values = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16") or values.max(initial=0) > 255:
            top = 65535.0 if values.max(initial=0) <= 65535 else values.max()
            values = values / top * 255.0
        elif mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, rgba)
        return flat.convert("L" if mode in ("LA", "La") else "RGB")
    if mode == "P":
        converted = image.convert("RGB")
        return converted
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, I;16 RGB variants


# ---------------------------------------------------------------- detection


@cache
def dlib_model_path(name: str) -> Path | None:
    """Path of one of face_recognition_models' .dat files, found without importing it.

    Its __init__ imports pkg_resources, which current setuptools no longer has, so we look the
    package up with importlib and read its models/ folder directly.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    return None


@cache
def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        return None
    return dlib


@cache
def _hog_detector() -> Any:
    dlib = _dlib()
    return dlib.get_frontal_face_detector() if dlib is not None else None


@cache
def _shape_predictor() -> Any:
    dlib = _dlib()
    path = dlib_model_path("shape_predictor_5_face_landmarks.dat")
    if dlib is None or path is None:
        return None
    return dlib.shape_predictor(str(path))


@cache
def _haar_cascade() -> Any:
    import cv2

    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():  # pragma: no cover - a broken OpenCV install
        raise RuntimeError(f"OpenCV's face cascade could not be loaded from {path}")
    return cascade


def available_detectors() -> list[str]:
    """Detectors installed here, best first."""
    return (["dlib-hog"] if _dlib() is not None else []) + ["opencv-haar"]


def best_detector() -> str:
    return available_detectors()[0]


def has_landmarks() -> bool:
    """True when dlib's 5-point predictor is installed, so crops can be aligned."""
    return _shape_predictor() is not None


def _gray_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _detect_at(gray: np.ndarray, scale: float, detector: str) -> list[FaceBox]:
    """Run one detector on `gray` resized by `scale`; boxes come back in `gray`'s pixels."""
    import cv2

    if scale != 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        work = cv2.resize(gray, size, interpolation=interp)
    else:
        work = gray
    boxes: list[FaceBox] = []
    if detector == "dlib-hog":
        rects, scores, _ = _hog_detector().run(work, 0, 0.0)
        for rect, score in zip(rects, scores, strict=True):
            left, top = max(rect.left(), 0), max(rect.top(), 0)
            right = min(rect.right(), work.shape[1] - 1)
            bottom = min(rect.bottom(), work.shape[0] - 1)
            if right <= left or bottom <= top:
                continue
            boxes.append(FaceBox(
                round(left / scale), round(top / scale),
                round((right - left + 1) / scale), round((bottom - top + 1) / scale),
                float(score),
            ))
    else:
        equalised = cv2.equalizeHist(work)
        found = _haar_cascade().detectMultiScale3(
            equalised, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24),
            outputRejectLevels=True,
        )
        rects, _, weights = found
        for (x, y, w, h), weight in zip(rects, np.ravel(weights), strict=True):
            boxes.append(FaceBox(
                round(x / scale), round(y / scale), round(w / scale), round(h / scale),
                float(weight),
            ))
    return boxes


def _detection_scales(long_side: int) -> list[float]:
    """Scales to try, cheapest first. dlib's HOG window is 80 pixels (Haar's 24), so a face
    is found when it is at least that big at the scale tried:

    - large photos: long side DETECT_SIDE, then twice that for faces further away;
    - ordinary photos (webcam 640x480): as they are, then enlarged to DETECT_SIDE;
    - small photos (AT&T's 92x112): enlarged to DETECT_SIDE, at most MAX_UPSCALE times.
    """
    if long_side > DETECT_SIDE:
        return [DETECT_SIDE / long_side, min(2 * DETECT_SIDE / long_side, 1.0)]
    if long_side >= DETECT_SIDE / 2:
        return [1.0, DETECT_SIDE / long_side]
    return [min(DETECT_SIDE / long_side, MAX_UPSCALE)]


def _landmarks(gray: np.ndarray, box: FaceBox) -> tuple[tuple[float, float], ...] | None:
    predictor = _shape_predictor()
    if predictor is None:
        return None
    dlib = _dlib()
    rect = dlib.rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
    shape = predictor(gray, rect)
    return tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(shape.num_parts))


def detect_faces(image: Image.Image, detector: str = "auto") -> Faces:
    """Every face in the photo, largest first, with 5-point landmarks when dlib has them.

    Cheap pass first, then a finer one only when nothing was found (see _detection_scales):
    a webcam selfie costs one pass at its own size. The result's `.detector` names the
    detector that ran.
    """
    if detector == "auto":
        detector = best_detector()
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose from {', '.join(DETECTORS)}")
    if detector == "dlib-hog" and _dlib() is None:
        raise ValueError("dlib is not installed: use 'opencv-haar' or pip install dlib-bin")
    gray = _gray_array(image)
    boxes: list[FaceBox] = []
    for scale in _detection_scales(max(gray.shape)):
        boxes = _detect_at(gray, scale, detector)
        if boxes:
            break
    boxes.sort(key=lambda b: (-b.area, -b.score))
    if detector == "dlib-hog" and has_landmarks():
        boxes = [FaceBox(b.x, b.y, b.w, b.h, b.score, _landmarks(gray, b)) for b in boxes]
    return Faces(boxes, detector)


def choose_face(faces: list[FaceBox], index: int = 0, *, photo: str = "the photo") -> FaceBox:
    """The face the user picked (0 = the largest), or a clear error: none, tiny, bad index."""
    if not faces:
        raise NoFaceError(
            f"No face found in {photo}. Use a well-lit, front-facing photo, or use the whole "
            "image instead (a centred square crop)."
        )
    if not 0 <= index < len(faces):
        raise PhotoError(
            f"{photo[0].upper() + photo[1:]} has {len(faces)} face(s); "
            f"face number {index + 1} does not exist."
        )
    box = faces[index]
    if box.tiny:
        raise TinyFaceError(
            f"The face in {photo} is only {box.w}×{box.h} pixels; at least {MIN_FACE_PIXELS} "
            "pixels across is needed to compare faces. Move closer or crop the photo around the "
            "face."
        )
    return box


# ---------------------------------------------------------------- cropping


def _eye_angle(landmarks: tuple[tuple[float, float], ...]) -> float | None:
    """Angle in degrees of the line from one eye centre to the other (dlib's 5-point order)."""
    if not landmarks or len(landmarks) < 4:
        return None
    points = np.asarray(landmarks, dtype=np.float64)
    first, second = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    left, right = (first, second) if first[0] < second[0] else (second, first)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def crop_face(
    image: Image.Image, box: FaceBox, margin: float = 0.25, align: bool = True,
    aspect: float = 1.0,
) -> Image.Image:
    """A square crop around the face, `margin` of the face size added on each side.

    `aspect` (height / width) other than 1 gives a taller or wider crop of the same width, for
    runs trained on non-square images (AT&T at its native 112x92).

    With landmarks and `align`, the photo is rotated about the face centre so the eyes are
    level first (what dlib and FaceNet do before embedding: the network then need not learn
    in-plane rotation from 40 people). Pixels beyond the photo's edge repeat the edge.
    """
    import cv2

    if not 0.1 <= aspect <= 10:
        raise ValueError(f"aspect must be between 0.1 and 10, got {aspect}")
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    centre_x, centre_y = box.x + box.w / 2.0, box.y + box.h / 2.0
    angle = _eye_angle(box.landmarks) if align else None
    out = min(max(1, round(side)), 512)  # for display and a <=128 px input: cap its size
    zoom = out / side
    out_h = max(1, round(out * aspect))
    # Affine map: rotate by `angle` about the face centre, scale, move the centre to the middle.
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), angle or 0.0, zoom)
    matrix[0, 2] += out / 2.0 - centre_x
    matrix[1, 2] += out_h / 2.0 - centre_y
    pixels = np.asarray(image)
    interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    cropped = cv2.warpAffine(pixels, matrix, (out, out_h), flags=interp,
                             borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(cropped, mode=image.mode)


def too_small_for_a_face(image: Image.Image) -> str | None:
    """Why a whole image cannot be compared as a face, or None. A 1×1 upload got a verdict:
    an image smaller than the smallest face the detector path accepts (MIN_FACE_PIXELS on its
    short side) holds no face to compare."""
    if min(image.width, image.height) >= MIN_FACE_PIXELS:
        return None
    return (f"The photo is only {image.width}×{image.height} pixels: too small to hold a face "
            f"(a face needs at least {MIN_FACE_PIXELS} pixels on its short side).")


def whole_image_crop(image: Image.Image, aspect: float = 1.0) -> Image.Image:
    """The largest centred square (or `aspect` = height / width rectangle): the fallback when
    no face is found, or when the photo is already a face crop (AT&T, Olivetti). It is the
    crop lab.data makes of dataset images, so such a photo reaches the network as in training."""
    if not 0.1 <= aspect <= 10:
        raise ValueError(f"aspect must be between 0.1 and 10, got {aspect}")
    problem = too_small_for_a_face(image)
    if problem:
        raise TinyFaceError(problem)
    width = min(image.width, image.height / aspect)
    height = width * aspect
    left = int(image.width - width) // 2  # as lab.data's centre crop
    top = int(image.height - height) // 2
    return image.crop((left, top, left + max(1, round(width)), top + max(1, round(height))))


def to_model_input(crop: Image.Image, channels: int,
                   image_size: int | tuple[int, int]) -> torch.Tensor:
    """[1, C, H, W] float32 in [0, 1], as the run's FaceSet images were.

    image_size: the side of the square input, or (height, width) for non-square runs.

    Grayscale runs (AT&T, Olivetti) get the luminance of a colour photo; colour runs get a
    grayscale photo copied into all three channels, so either photo works with either run.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    if not (1 <= int(height) <= 1024 and 1 <= int(width) <= 1024):
        raise ValueError(f"image_size must be between 1 and 1024, got {image_size}")
    mode = "L" if channels == 1 else "RGB"
    converted = crop.convert(mode)
    # The same resampling as lab.data's loaders, so a photo looks like a training image.
    shrink = converted.width > width or converted.height > height
    resized = converted.resize((int(width), int(height)), Image.Resampling.LANCZOS if shrink
                               else Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(0)


def crop_to_array(crop: Image.Image) -> np.ndarray:
    """The crop as an 8-bit numpy array for display (H, W) or (H, W, 3)."""
    return np.asarray(crop).copy()
