"""Decoding one image file into a clean uint8 array, whatever mode it came in.

Real folders of faces hold phone photos rotated by EXIF, PNGs with transparency, palette GIFs,
CMYK JPEGs from print workflows and 16-bit scans. Each is turned into 8-bit grey or RGB here, so
the rest of the lab sees one shape. A file that cannot be decoded raises UnreadableImageError with a
short reason; the loaders skip it and name it in the LoadReport instead of failing the dataset.

Choices, and why:
- transparency is composited on black (a face cut-out then sits on a dark background, like the
  AT&T photos) rather than on white;
- 16-bit images are scaled by 255/65535 (PIL's own convert would clip everything above 255 to
  white);
- resizing to a square keeps the aspect ratio by centre-cropping the longer side (faces are
  centred in most datasets; padding would waste pixels on borders the network must learn to
  ignore).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from lab.core import limits

Image.MAX_IMAGE_PIXELS = limits.MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pbm", ".bmp", ".webp", ".tif", ".tiff",
                  ".gif")


class UnreadableImageError(Exception):
    """This file is not a usable image; the message is the reason shown to the user."""


def _to_8bit(img: Image.Image) -> Image.Image:
    """Any PIL mode -> "L" or "RGB" (8 bits per channel)."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            arr = np.nan_to_num(arr)
            low, high = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
            if low >= 0.0 and high <= 1.0:
                arr = arr * 255.0  # already in [0, 1]
            elif high > low:
                arr = (arr - low) / (high - low) * 255.0
        elif mode == "I" and arr.max(initial=0) > 65535:
            arr = arr / arr.max() * 255.0
        else:
            arr = arr * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:4] / 255.0)  # composite on black
        out = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mode="RGB")
        return out.convert("L") if mode in ("LA", "La") else out
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def decode_image(data: bytes) -> np.ndarray:
    """Bytes of an image file -> uint8 array [H, W] (grey) or [H, W, 3] (RGB), upright.

    Raises UnreadableImageError for non-images, truncated or corrupt files and decompression bombs.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > limits.MAX_IMAGE_PIXELS:
                    raise UnreadableImageError(f"too large ({width}x{height} pixels, limit "
                                          f"{limits.MAX_IMAGE_PIXELS:,})")
                if width < 1 or height < 1:
                    raise UnreadableImageError("empty image")
                img.load()
                img = ImageOps.exif_transpose(img) or img
                img = _to_8bit(img)
                return np.array(img, dtype=np.uint8)
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableImageError(f"refused as a decompression bomb ({err})") from err
    except Image.UnidentifiedImageError as err:
        raise UnreadableImageError("not an image") from err
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, TypeError) as err:
        text = str(err).lower()
        reason = "truncated" if "truncated" in text else "corrupt"
        raise UnreadableImageError(f"{reason} image ({err})") from err


def to_square(arr: np.ndarray, size: int | None, channels: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] -> float32 [channels, S, S] in [0, 1] (centre crop, resize).

    size None keeps the native size (no crop).
    """
    img = Image.fromarray(arr)
    if channels == 1 and img.mode != "L":
        img = img.convert("L")
    elif channels == 3 and img.mode != "RGB":
        img = img.convert("RGB")
    if size is not None:
        width, height = img.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != size:
            img = img.resize((size, size), Image.Resampling.LANCZOS if side > size
                             else Image.Resampling.BILINEAR)
    out = np.asarray(img, dtype=np.float32) / 255.0
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
