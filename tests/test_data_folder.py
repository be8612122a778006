"""Image folders and zips: layouts, every image mode, and every bad input named in issue 2."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.core import limits
from lab.data import DatasetError, att_candidates, dataset_status, load_dataset
from lab.data.checks import raw_pixel_eer
from lab.data.folder import load_att, load_image_folder
from lab.data.images import UnreadableImageError, decode_image


def _grey(value: int, size=(20, 24)) -> Image.Image:
    rng = np.random.default_rng(value)
    arr = np.clip(value + rng.integers(-20, 20, size[::-1]), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="L")


def _png_bytes(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _make_tree(root: Path, layout: dict[str, list[tuple[str, bytes]]]) -> Path:
    for identity, files in layout.items():
        folder = root / identity
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files:
            (folder / name).write_bytes(data)
    return root


def _simple_layout(people=("alice", "bob", "carol"), per_person=3) -> dict:
    return {person: [(f"{k}.png", _png_bytes(_grey(40 * i + 10 * k)))
                     for k in range(per_person)] for i, person in enumerate(people)}


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


# --- layouts ---------------------------------------------------------------------------------

def test_folder_loads_every_format_with_natural_order(tmp_path):
    formats = [("a.jpg", "JPEG"), ("b.jpeg", "JPEG"), ("c.png", "PNG"), ("d.pgm", "PPM"),
               ("e.bmp", "BMP"), ("f.webp", "WEBP"), ("g.tif", "TIFF")]
    layout = {name: [(fn, _png_bytes(_grey(30 * i + j), fmt))
                     for j, (fn, fmt) in enumerate(formats)]
              for i, name in enumerate(["s10", "s2", "s1"])}
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=16)
    assert faces.names == ["s1", "s2", "s10"]
    assert faces.images.shape == (21, 1, 16, 16)
    assert faces.labels.tolist() == [0] * 7 + [1] * 7 + [2] * 7
    assert faces.report.skipped == []
    assert faces.images.min() >= 0.0 and faces.images.max() <= 1.0


def test_colour_images_give_three_channels(tmp_path):
    layout = _simple_layout()
    layout["dave"] = [("x.png", _png_bytes(Image.new("RGB", (30, 30), (200, 30, 30)))),
                      ("y.png", _png_bytes(Image.new("RGB", (30, 30), (30, 30, 200))))]
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=8)
    assert faces.images.shape[1] == 3
    grey_only = load_image_folder(tmp_path, image_size=8, channels=1)
    assert grey_only.images.shape[1] == 1


def test_mixed_sizes_are_centre_cropped_to_square(tmp_path):
    wide = np.zeros((10, 30), dtype=np.uint8)
    wide[:, 10:20] = 255  # a white centre square in a black wide image
    layout = _simple_layout()
    layout["wide"] = [("w.png", _png_bytes(Image.fromarray(wide))),
                      ("tall.png", _png_bytes(_grey(90, size=(12, 40))))]
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=10)
    assert faces.images.shape[2:] == (10, 10)
    centre = faces.images[faces.labels == faces.names.index("wide")][1, 0]  # tall.png < w.png
    assert centre.min() > 0.95  # the crop kept the centre square only


def test_native_size_kept_when_all_agree_and_refused_when_mixed(tmp_path):
    _make_tree(tmp_path / "same", _simple_layout())
    assert load_image_folder(tmp_path / "same", image_size=None).images.shape[2:] == (24, 20)
    layout = _simple_layout()
    layout["odd"] = [("1.png", _png_bytes(_grey(5, size=(7, 9)))),
                     ("2.png", _png_bytes(_grey(5, size=(7, 9))))]
    with pytest.raises(DatasetError, match="different sizes"):
        load_image_folder(_make_tree(tmp_path / "mixed", layout), image_size=None)


def test_wrapper_folder_and_junk_files_are_looked_through(tmp_path):
    _make_tree(tmp_path / "faces", _simple_layout())
    (tmp_path / "faces" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "faces" / "alice" / "Thumbs.db").write_bytes(b"junk")
    (tmp_path / "faces" / "README.txt").write_text("my faces")
    faces = load_image_folder(tmp_path, image_size=8)
    assert faces.names == ["alice", "bob", "carol"]
    assert faces.report.skipped == []
    assert any("README.txt" in note for note in faces.report.notes)


def test_zip_path_and_zip_bytes_load_like_the_folder(tmp_path):
    files = {f"faces/{person}/{name}": data
             for person, items in _simple_layout().items() for name, data in items}
    files["__MACOSX/faces/._alice"] = b"resource fork"
    data = _zip_bytes(files)
    (tmp_path / "faces.zip").write_bytes(data)
    from_path = load_dataset("folder", data_dir=str(tmp_path / "faces.zip"), image_size=8)
    from_bytes = load_image_folder(data, image_size=8)
    assert from_path.names == ["alice", "bob", "carol"] == from_bytes.names
    assert torch.equal(from_path.images, from_bytes.images)
    assert from_path.images.shape == (9, 1, 8, 8)


# --- image modes -----------------------------------------------------------------------------

def test_rgba_is_composited_on_black():
    rgba = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    rgba.putpixel((0, 0), (255, 255, 255, 255))
    arr = decode_image(_png_bytes(rgba))
    assert arr.shape == (4, 4, 3)
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[1, 1].tolist() == [0, 0, 0]


def test_palette_and_palette_with_transparency():
    palette = Image.new("RGB", (6, 6), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert decode_image(_png_bytes(palette))[0, 0].tolist() == [10, 200, 30]
    gif = Image.new("P", (4, 4), 1)
    gif.putpalette([0, 0, 0, 250, 250, 250] + [0] * 762)
    gif.info["transparency"] = 1
    assert decode_image(_png_bytes(gif, "GIF", transparency=1)).max() == 0  # transparent: black


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in print colours
    arr = decode_image(_png_bytes(cmyk, "JPEG"))
    assert arr.shape == (8, 8, 3)
    assert arr[..., 0].mean() > 200 and arr[..., 1].mean() < 60


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)
    img = Image.fromarray(values)  # mode I;16
    assert img.mode.startswith("I;16")
    arr = decode_image(_png_bytes(img))
    assert arr.dtype == np.uint8
    assert arr.tolist() == [[0, 128], [255, 4]]


def test_exif_rotation_is_applied():
    arr = np.zeros((10, 20), dtype=np.uint8)
    arr[:, :5] = 255  # white band on the left as stored
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(_png_bytes(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.shape == (20, 10)
    assert decoded[:5].mean() > 200  # the band is now on top


def test_bilevel_and_float_modes():
    assert decode_image(_png_bytes(Image.new("1", (4, 4), 1))).max() == 255
    tiff = Image.fromarray(np.full((3, 3), 0.5, dtype=np.float32), mode="F")
    assert decode_image(_png_bytes(tiff, "TIFF"))[0, 0] == 128


# --- bad files inside a dataset --------------------------------------------------------------

def test_non_images_truncated_and_corrupt_files_are_skipped_and_named(tmp_path):
    layout = _simple_layout()
    good_jpeg = _png_bytes(_grey(100, size=(64, 64)), "JPEG")
    layout["alice"] += [("notes.txt", b"not a picture"),
                        ("half.jpg", good_jpeg[: len(good_jpeg) // 2]),
                        ("noise.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
                        ("empty.png", b"")]
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=8)
    skipped = dict(faces.report.skipped)
    assert set(skipped) == {"alice/notes.txt", "alice/half.jpg", "alice/noise.png",
                            "alice/empty.png"}
    assert skipped["alice/notes.txt"] == "not an image"
    assert "truncated" in skipped["alice/half.jpg"]
    assert len(faces) == 9
    assert "skipped 4 file(s)" in faces.report.summary()


def test_decompression_bomb_is_refused_per_file(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 500)
    layout = _simple_layout()  # 20x24 = 480 pixels: allowed
    layout["bob"].append(("huge.png", _png_bytes(_grey(1, size=(40, 40)))))
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=8)
    assert "too large" in dict(faces.report.skipped)["bob/huge.png"]
    with pytest.raises(UnreadableImageError, match="too large"):
        decode_image(_png_bytes(_grey(1, size=(40, 40))))


def test_image_outside_identity_folders_is_skipped(tmp_path):
    _make_tree(tmp_path, _simple_layout())
    (tmp_path / "stray.png").write_bytes(_png_bytes(_grey(3)))
    faces = load_image_folder(tmp_path, image_size=8)
    assert dict(faces.report.skipped)["stray.png"] == "image not inside an identity sub-folder"


# --- identities ------------------------------------------------------------------------------

def test_one_identity_is_refused(tmp_path):
    _make_tree(tmp_path, _simple_layout(people=("alice",)))
    with pytest.raises(DatasetError, match="need at least 2 identities"):
        load_image_folder(tmp_path)


def test_single_image_identity_kept_as_impostor_only(tmp_path):
    layout = _simple_layout()
    layout["dave"] = [("only.png", _png_bytes(_grey(7)))]
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=8)
    assert "dave" in faces.names and int((faces.labels == faces.names.index("dave")).sum()) == 1
    assert any("impostor-only" in note and "dave" in note for note in faces.report.notes)


def test_identity_without_readable_images_is_dropped(tmp_path):
    layout = _simple_layout()
    layout["erin"] = [("a.png", b"garbage"), ("b.jpg", b"more garbage")]
    faces = load_image_folder(_make_tree(tmp_path, layout), image_size=8)
    assert "erin" not in faces.names
    assert faces.report.dropped_identities == [("erin", "no readable images")]


def test_only_single_image_identities_is_refused(tmp_path):
    _make_tree(tmp_path, _simple_layout(per_person=1))
    with pytest.raises(DatasetError, match="no genuine"):
        load_image_folder(tmp_path)


def test_missing_path_and_plain_file_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("folder", data_dir=str(tmp_path / "nowhere"))
    (tmp_path / "photo.png").write_bytes(_png_bytes(_grey(1)))
    with pytest.raises(DatasetError, match="neither a folder nor a zip"):
        load_image_folder(tmp_path / "photo.png")
    with pytest.raises(DatasetError, match="data_dir"):
        load_dataset("folder")


# --- zip safety ------------------------------------------------------------------------------

def _with(extra: dict[str, bytes]) -> dict[str, bytes]:
    files = {f"{p}/{n}": d for p, items in _simple_layout().items() for n, d in items}
    return {**files, **extra}


@pytest.mark.parametrize("member", ["../evil.png", "alice/../../evil.png", "/etc/evil.png",
                                    "C:/evil.png", "..\\evil.png"])
def test_zip_with_escaping_member_is_refused(member):
    data = _zip_bytes(_with({member: _png_bytes(_grey(1))}))
    with pytest.raises(DatasetError, match="zip refused") as info:
        load_image_folder(data)
    assert member in str(info.value)


def test_zip_declaring_too_much_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARCHIVE_EXPANDED_BYTES", 20_000)
    data = _zip_bytes(_with({"alice/zeros.png": bytes(50_000)}))  # compresses to ~100 bytes
    assert len(data) < 20_000
    with pytest.raises(DatasetError, match="expanded"):
        load_image_folder(data)


def test_actual_bytes_are_counted_too(tmp_path, monkeypatch):
    _make_tree(tmp_path, _simple_layout())
    total = sum(f.stat().st_size for f in tmp_path.rglob("*.png"))
    monkeypatch.setattr(limits, "MAX_ARCHIVE_EXPANDED_BYTES", total - 1)
    with pytest.raises(DatasetError, match="expands past the limit"):
        load_image_folder(tmp_path)


def test_zip_with_too_many_members_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARCHIVE_MEMBERS", 5)
    with pytest.raises(DatasetError, match="members"):
        load_image_folder(_zip_bytes(_with({})))


def test_compressed_archive_over_size_limit_is_refused(tmp_path, monkeypatch):
    data = _zip_bytes(_with({}))
    monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", len(data) - 1)
    with pytest.raises(DatasetError, match="MAX_ARCHIVE_BYTES"):
        load_image_folder(data)
    (tmp_path / "big.zip").write_bytes(data)
    with pytest.raises(DatasetError, match="MAX_ARCHIVE_BYTES"):
        load_image_folder(tmp_path / "big.zip")


def test_corrupt_zip_is_refused(tmp_path):
    data = _zip_bytes(_with({}))
    with pytest.raises(DatasetError, match="not a readable zip"):
        load_image_folder(b"PK\x03\x04" + b"\x00" * 100)
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="not a readable zip"):
        load_image_folder(tmp_path / "cut.zip")


def test_corrupt_member_is_skipped_not_fatal():
    files = _with({})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    first = files["alice/0.png"]
    at = bytes(raw).index(first)
    raw[at + 40] ^= 0xFF  # flip a byte inside alice/0.png: its CRC no longer matches
    faces = load_image_folder(bytes(raw), image_size=8)
    assert "alice/0.png" in dict(faces.report.skipped)
    assert len(faces) == 8


# --- AT&T / ORL ------------------------------------------------------------------------------

def _fake_orl(root: Path, people: int = 3, per_person: int = 4) -> Path:
    for person in range(1, people + 1):
        folder = root / f"s{person}"
        folder.mkdir(parents=True)
        for k in range(1, per_person + 1):
            _grey(20 * person + k, size=(92, 112)).save(folder / f"{k}.pgm")
    return root


def test_att_loader_on_a_small_orl_folder(tmp_path, monkeypatch):
    _fake_orl(tmp_path / "orl")
    faces = load_dataset("att", data_dir=str(tmp_path / "orl"), image_size=None)
    assert faces.images.shape == (12, 1, 112, 92)
    assert faces.names == ["s1", "s2", "s3"]
    monkeypatch.setenv("METRIC_LAB_ATT", str(tmp_path / "orl"))
    assert load_dataset("att", image_size=16).images.shape == (12, 1, 16, 16)


def test_att_missing_folder_says_where_to_put_it(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="olivetti"):
        load_att(tmp_path / "nowhere")
    import lab.data

    monkeypatch.setattr(lab.data, "att_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(DatasetError, match="METRIC_LAB_ATT"):
        load_dataset("att")
    status = dataset_status("att")
    assert status.availability == "unavailable" and "att_faces" in status.reason


def test_att_candidates_order(tmp_path, monkeypatch):
    monkeypatch.setenv("METRIC_LAB_ATT", str(tmp_path / "env"))
    monkeypatch.setenv("METRIC_LAB_DATA", str(tmp_path / "data"))
    places = att_candidates()
    assert places[0] == tmp_path / "env"
    assert places[1] == tmp_path / "data" / "att_faces"
    assert places[2].parts[-3:] == ("shared", "data", "att_faces")


def test_real_att_faces_load_forty_by_ten(att_dir):
    faces = load_dataset("att", data_dir=str(att_dir), image_size=None)
    assert faces.images.shape == (400, 1, 112, 92)
    assert faces.num_identities == 40
    assert torch.bincount(faces.labels).tolist() == [10] * 40
    eer = raw_pixel_eer(faces, 10, seed=0)
    print(f"AT&T raw-pixel EER, 10 unseen identities: {eer:.3f}")
    assert 0.02 < eer < 0.4
