"""lab.faces.photos: every bad photo gets a clear PhotoError; faces are found, aligned, cropped and
turned into the run's input. Photos are made by the tests (AT&T faces when present)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from lab.core.limits import MAX_UPLOAD_BYTES, MIN_FACE_PIXELS
from lab.faces import photos as faces
from lab.faces.photos import (
    FaceBox,
    NoFaceError,
    PhotoError,
    TinyFaceError,
    choose_face,
    crop_face,
    detect_faces,
    load_photo,
    to_model_input,
    whole_image_crop,
)

needs_dlib = pytest.mark.skipif(faces._dlib() is None, reason="dlib is not installed")
needs_landmarks = pytest.mark.skipif(not faces.has_landmarks(),
                                     reason="dlib's 5-point predictor is not installed")


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with almost no pixel data: the cheapest
    decompression bomb (the check must fire before any pixel is decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def noise(width: int = 120, height: int = 90, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


@pytest.fixture
def att_face(att_dir) -> Image.Image:
    return Image.open(att_dir / "s1" / "1.pgm").convert("L")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("data, words", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >>", ["not an image", "PDF"]),
    (b"Dear teacher, here is my photo.\n", ["not an image", "text file"]),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", ["not an image", "zip"]),
    (b"<!DOCTYPE html><html><body>hi</body></html>", ["not an image", "web page"]),
    (b"\x00\x01\x02\x03\xff\xfe\xfd" * 10, ["not an image"]),
])
def test_not_an_image_says_what_it_got(data, words):
    with pytest.raises(PhotoError) as caught:
        load_photo(data)
    for word in words:
        assert word in str(caught.value)
    assert "JPEG" in str(caught.value)  # and what would work


def test_empty_file_and_wrong_type():
    with pytest.raises(PhotoError, match="empty"):
        load_photo(b"")
    with pytest.raises(PhotoError, match="bytes"):
        load_photo("photo.jpg")  # type: ignore[arg-type]


def test_truncated_jpeg_is_refused_clearly():
    data = encode(noise(300, 200), "JPEG", quality=90)
    with pytest.raises(PhotoError, match="broken or cut off") as caught:
        load_photo(data[: len(data) // 2])
    assert "JPEG" in str(caught.value)


def test_broken_header_is_refused_clearly():
    data = png_header(100, 100)
    corrupt = data[:16] + b"\xff\xff\xff\xff" + data[20:]  # IHDR with a wrong width and CRC
    with pytest.raises(PhotoError):
        load_photo(corrupt)


@pytest.mark.parametrize("side", [20000, 7000])
def test_decompression_bomb_refused_before_decoding(side):
    data = png_header(side, side)
    assert len(data) < 200
    with pytest.raises(PhotoError) as caught:
        load_photo(data)
    message = str(caught.value)
    assert f"{side}×{side} pixels" in message and "limit is 40 megapixels" in message


def test_file_over_the_upload_limit_refused_on_its_length():
    data = b"\xff\xd8\xff" + bytes(50 * 1024 * 1024)
    assert len(data) > MAX_UPLOAD_BYTES
    with pytest.raises(PhotoError) as caught:
        load_photo(data)
    assert "50 MB" in str(caught.value) and "limit is 20 MB" in str(caught.value)


# ---------------------------------------------------------------- formats and modes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_common_formats_load_as_8bit_rgb(fmt):
    image = load_photo(encode(noise(64, 48), fmt))
    assert image.mode == "RGB" and image.size == (64, 48)
    assert image.info["format"] == fmt


def test_pgm_loads_as_grayscale():
    image = load_photo(encode(noise(92, 112, "L"), "PPM"))
    assert image.mode == "L" and image.size == (92, 112)


@pytest.mark.skipif(not faces.HEIF_AVAILABLE, reason="pillow-heif is not installed")
def test_heic_loads_when_pillow_heif_is_installed():
    image = load_photo(encode(Image.new("RGB", (64, 48), (200, 30, 30)), "HEIF"))
    assert image.mode == "RGB" and image.size == (64, 48)
    assert abs(int(np.asarray(image)[24, 32, 0]) - 200) < 20


def test_exif_orientation_is_applied():
    # A landscape picture stored with "rotate 90° clockwise to view" (orientation 6), as a
    # phone stores a portrait: it must come out portrait, the red half on top.
    stored = Image.new("RGB", (60, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 30, 40))  # red on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_photo(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert image.size == (40, 60)
    pixels = np.asarray(image).astype(int)
    assert pixels[5, 20, 0] > 200 and pixels[5, 20, 2] < 60  # top is red
    assert pixels[55, 20, 2] > 200  # bottom is blue


def test_transparency_is_flattened_on_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.paste((0, 255, 0, 255), (0, 0, 10, 20))
    image = load_photo(encode(rgba))
    assert image.mode == "RGB"
    assert tuple(np.asarray(image)[10, 15]) == (255, 255, 255)
    assert tuple(np.asarray(image)[10, 5]) == (0, 255, 0)
    gray_alpha = load_photo(encode(Image.new("LA", (8, 8), (10, 0))))
    assert gray_alpha.mode == "L" and np.asarray(gray_alpha)[0, 0] == 255


def test_palette_cmyk_1bit_and_16bit_become_8bit():
    palette = load_photo(encode(noise(32, 32).convert("P", palette=Image.Palette.ADAPTIVE)))
    assert palette.mode == "RGB"
    cmyk = load_photo(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    assert cmyk.mode == "RGB" and np.asarray(cmyk)[8, 8, 0] > 200  # red stays red
    one_bit = load_photo(encode(Image.new("1", (16, 16), 1)))
    assert one_bit.mode == "L" and np.asarray(one_bit)[0, 0] == 255
    sixteen = Image.fromarray(np.full((16, 16), 65535 // 2, dtype=np.uint16))
    deep = load_photo(encode(sixteen))
    assert deep.mode == "L" and abs(int(np.asarray(deep)[0, 0]) - 127) <= 1


# ---------------------------------------------------------------- detection


def test_no_face_in_a_flat_image_offers_the_whole_image():
    photo = load_photo(encode(Image.new("RGB", (320, 240), (128, 128, 128)), "JPEG"))
    found = detect_faces(photo)
    assert found == [] and found.detector in faces.DETECTORS
    with pytest.raises(NoFaceError, match="whole image") as caught:
        choose_face(found, photo="photo A")
    assert caught.value.offer_whole_image and "photo A" in str(caught.value)
    crop = whole_image_crop(photo)
    assert crop.size == (240, 240)


@pytest.mark.parametrize("detector", faces.available_detectors())
def test_detects_the_face_of_an_att_photo(att_face, detector):
    found = detect_faces(load_photo(encode(att_face, "PPM")), detector)
    assert len(found) == 1 and found.detector == detector
    box = found[0]
    assert 40 <= box.w <= 110 and box.x >= 0 and box.x + box.w <= 100
    if detector == "dlib-hog" and faces.has_landmarks():
        assert box.landmarks is not None and len(box.landmarks) == 5


def three_faces(att_dir) -> Image.Image:
    """Three AT&T people side by side at three sizes (largest on the left)."""
    people = [Image.open(att_dir / f"s{k}" / "1.pgm").convert("L") for k in (1, 2, 3)]
    canvas = Image.new("L", (700, 270), 128)
    x = 10
    for person, scale in zip(people, (2.2, 1.6, 1.1), strict=True):
        big = person.resize((round(92 * scale), round(112 * scale)), Image.Resampling.BICUBIC)
        canvas.paste(big, (x, 10))
        x += big.width + 20
    return canvas


@pytest.mark.parametrize("detector", faces.available_detectors())
def test_three_faces_are_all_returned_largest_first(att_dir, detector):
    photo = load_photo(encode(three_faces(att_dir), "PNG"))
    found = detect_faces(photo, detector)
    assert len(found) == 3
    assert [b.area for b in found] == sorted((b.area for b in found), reverse=True)
    assert found[0].x < found[1].x < found[2].x  # largest is the leftmost, by construction
    assert choose_face(found, 2) is found[2]
    with pytest.raises(PhotoError, match="3 face"):
        choose_face(found, 3, photo="photo B")


def test_tiny_face_gets_a_clear_message(att_face):
    canvas = Image.new("L", (160, 160), 128)
    canvas.paste(att_face.resize((20, 24), Image.Resampling.BICUBIC), (70, 70))
    found = detect_faces(load_photo(encode(canvas)))
    assert found, "the detector should still find a 20-pixel face in a small photo"
    with pytest.raises(TinyFaceError, match=f"at least {MIN_FACE_PIXELS} pixels"):
        choose_face(found, photo="photo A")


def test_tiny_box_is_refused_whatever_the_detector():
    with pytest.raises(TinyFaceError, match="Move closer"):
        choose_face([FaceBox(0, 0, MIN_FACE_PIXELS - 1, 40, 1.0)])
    assert choose_face([FaceBox(0, 0, MIN_FACE_PIXELS, 40, 1.0)]).w == MIN_FACE_PIXELS


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="unknown detector"):
        detect_faces(Image.new("L", (10, 10)), "yolo")


# ---------------------------------------------------------------- cropping and network input


def test_crop_face_is_square_with_margin_and_capped():
    photo = noise(400, 300)
    crop = crop_face(photo, FaceBox(100, 100, 100, 100, 1.0), margin=0.25)
    assert crop.size == (150, 150) and crop.mode == "RGB"
    crop = crop_face(photo, FaceBox(0, 0, 300, 300, 1.0), margin=0.5)  # beyond the edges
    assert crop.size == (512, 512)
    tall = crop_face(photo, FaceBox(100, 100, 100, 100, 1.0), margin=0.0, aspect=112 / 92)
    assert tall.size == (100, 122)


@needs_landmarks
def test_alignment_levels_the_eyes(att_face):
    tilted = att_face.rotate(20, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=128)
    tilted = tilted.resize((tilted.width * 2, tilted.height * 2), Image.Resampling.BICUBIC)
    box = detect_faces(tilted)[0]
    assert abs(faces._eye_angle(box.landmarks)) > 10
    aligned = crop_face(tilted, box, align=True)
    again = detect_faces(aligned)[0]
    assert abs(faces._eye_angle(again.landmarks)) < 5


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_model_input_both_ways(channels, mode):
    """A grayscale photo for an RGB run and a colour photo for a grayscale run both work."""
    crop = noise(50, 50, mode)
    x = to_model_input(crop, channels, 32)
    assert x.shape == (1, channels, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    if mode == "L" and channels == 3:
        assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])
    assert to_model_input(crop, channels, (28, 24)).shape == (1, channels, 28, 24)
    with pytest.raises(ValueError, match="channels"):
        to_model_input(crop, 2, 32)


def test_whole_image_crop_is_centred():
    image = Image.new("L", (300, 100), 0)
    image.paste(255, (100, 0, 200, 100))
    crop = whole_image_crop(image)
    assert crop.size == (100, 100) and np.asarray(crop).min() == 255
    assert whole_image_crop(image, aspect=112 / 92).size == (82, 100)


def test_face_box_to_dict_is_json_ready():
    import json

    box = FaceBox(1, 2, 30, 40, 0.5, ((1.0, 2.0),) * 5)
    assert json.loads(json.dumps(box.to_dict()))["landmarks"][0] == [1.0, 2.0]
    assert not box.tiny and box.short_side == 30


@needs_dlib
def test_models_located_without_importing_face_recognition_models():
    import sys

    if "face_recognition_models" in sys.modules:
        pytest.skip("face_recognition_models was imported by something else in this process")
    faces.dlib_model_path.cache_clear()
    path = faces.dlib_model_path("shape_predictor_5_face_landmarks.dat")
    if path is None:
        pytest.skip("face_recognition_models is not installed")
    assert path.is_file() and path.parent.name == "models"
    assert "face_recognition_models" not in sys.modules


def test_an_image_too_small_to_hold_a_face_is_refused_with_the_reason():
    """A 1×1 upload got a verdict through "Use the whole image" (issue 15)."""
    from lab.core.limits import MIN_FACE_PIXELS
    from lab.faces.photos import TinyFaceError, too_small_for_a_face

    tiny = Image.new("L", (1, 1))
    assert too_small_for_a_face(Image.new("L", (MIN_FACE_PIXELS, 40))) is None
    with pytest.raises(TinyFaceError, match="only 1×1 pixels: too small to hold a face"):
        whole_image_crop(tiny)
