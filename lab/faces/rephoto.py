"""Re-photograph a dataset face: the same person as an upload would show them.

AT&T's photos are tight, evenly lit grey crops. An upload is a wider photo: a face somewhere in
a room, at some size, under a lamp or a window, with a camera's colour cast and JPEG artefacts.
`rephotograph` makes such a photo from a dataset face, so a model's domain shift can be
measured on people it never saw without collecting new photos (lab.bench.crossdomain). Each draw,
from its own seeded generator:

- canvas 320-480 px wide, 4:3, a background of two or three smooth colour gradients with large
  soft blobs (walls, furniture) and sensor noise;
- the face scaled so its photo is 40-75 % of the canvas height, at a random position, pasted
  with a feathered edge (the AT&T photo's own dark background stays around the head);
- skin tone: the grey face tinted towards a random warm colour;
- directional light over the whole scene: brightness times
  ambient + (1 - ambient) * clip(0.5 + k (x cos t + y sin t)), ambient 0.35-0.8, k 0.6-1.6, x
  and y measured across the face (a lamp at one side, so one cheek is brighter than the other:
  a different family from the training augmentation's linear gradient, lab.learn.lighting);
- a colour cast (each channel times 0.8-1.2) and JPEG compression at quality 35-90.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs, ys = xs / width, ys / height
    out = np.zeros((height, width, 3), np.float32)
    for _ in range(int(rng.integers(2, 4))):
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (xs * math.cos(angle) + ys * math.sin(angle))
        colour_a, colour_b = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        out += colour_a * (1 - ramp[..., None]) + colour_b * ramp[..., None]
    out /= out.max() / rng.uniform(150, 240)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.08, 0.35)
        blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius ** 2))
        out = out * (1 - 0.6 * blob[..., None]) + 0.6 * blob[..., None] * rng.uniform(20, 235, 3)
    return out + rng.normal(0, 3, out.shape)


def rephotograph(face: Image.Image, seed: int) -> bytes:
    """A JPEG photo (bytes, as an upload) holding `face`, re-photographed (module docstring)."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(320, 481))
    height = width * 3 // 4
    canvas = _background(rng, width, height)

    grey = face.convert("L")
    face_h = int(height * rng.uniform(0.4, 0.75))
    face_w = max(8, round(face_h * grey.width / grey.height))
    scaled = np.asarray(grey.resize((face_w, face_h), Image.Resampling.BICUBIC), np.float32)
    skin = rng.uniform([0.95, 0.75, 0.6], [1.1, 0.95, 0.85])
    tinted = scaled[..., None] * skin
    left = int(rng.integers(0, max(1, width - face_w)))
    top = int(rng.integers(0, max(1, height - face_h)))
    feather = Image.new("L", (face_w, face_h), 0)
    inset = max(2, face_w // 14)
    feather.paste(255, (inset, inset, face_w - inset, face_h - inset))
    mask = np.asarray(feather.filter(ImageFilter.GaussianBlur(inset * 0.6)), np.float32) / 255
    region = canvas[top:top + face_h, left:left + face_w]
    h, w = region.shape[:2]
    region[:] = region * (1 - mask[:h, :w, None]) + tinted[:h, :w] * mask[:h, :w, None]

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = left + face_w / 2, top + face_h / 2
    angle = rng.uniform(0, 2 * math.pi)
    k = rng.uniform(0.6, 1.6)
    ambient = rng.uniform(0.35, 0.8)
    along = ((xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)) / (face_w / 2)
    light = ambient + (1 - ambient) * np.clip(0.5 + k * along, 0, 1)
    canvas = canvas * light[..., None] * rng.uniform(0.8, 1.2, 3)
    canvas *= rng.uniform(0.9, 1.4)  # exposure: the lamp may be bright
    photo = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=int(rng.integers(35, 91)))
    return buffer.getvalue()
