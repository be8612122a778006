"""lab.views.verify: the pair decision, the run's FAR threshold, the CLI, and privacy (nothing on
disk).

The embedder in most tests is a stand-in (mean-pooled pixels): what is tested here is the
pipeline around it, not a network. AT&T photos are used when present."""

from __future__ import annotations

import builtins
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.bench import verify as verify_bench
from lab.cli import verify as verify_cli
from lab.faces.photos import NoFaceError, PhotoError, TinyFaceError
from lab.faces.reference import ReferenceModel
from lab.views import verify
from lab.views.verify import threshold_at_far, verify_pair

REFERENCE_OK, REFERENCE_WHY = ReferenceModel.available()


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


class PoolEmbedder:
    """embed_fn stand-in: 4x4 average-pooled pixels; records what it was given."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.calls.append(images)
        return torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1).numpy()


def photo(att_dir: Path, person: int, shot: int, fmt: str = "PNG", mode: str = "L") -> bytes:
    return encode(Image.open(att_dir / f"s{person}" / f"{shot}.pgm").convert(mode), fmt)


def flat_photo() -> bytes:
    return encode(Image.new("RGB", (200, 160), (120, 120, 120)), "JPEG")


def run_verify(a: bytes, b: bytes, embedder=None, **options):
    defaults = dict(channels=1, image_size=32, energy="l2", threshold=0.5)
    return verify_pair(a, b, embedder or PoolEmbedder(), **{**defaults, **options})


# ---------------------------------------------------------------- the decision


def test_threshold_at_far_accepts_at_most_that_share_of_impostors():
    genuine = np.array([0.1, 0.2, 0.3])
    impostor = np.linspace(0.25, 1.24, 100)
    for far in (0.0, 0.01, 0.05, 0.5, 1.0):
        threshold = threshold_at_far(genuine, impostor, far)
        accepted = np.mean(impostor <= threshold)
        assert accepted <= far + 1e-9
        above = np.concatenate([genuine, impostor])
        above = above[above > threshold]
        if above.size:  # the next energy up would accept too many: it is the largest one
            assert np.mean(impostor <= above.min()) > far
    assert threshold_at_far(genuine, impostor, 0.0) < 0.25
    with pytest.raises(ValueError, match="FAR"):
        threshold_at_far(genuine, impostor, 1.5)


def test_same_photo_twice_is_the_same_person(att_dir):
    a = photo(att_dir, 1, 1)
    result = run_verify(a, a, threshold=1e-6)
    assert result.energy == pytest.approx(0.0, abs=1e-6) and result.same
    assert result.verdict == "same" and result.detector in ("dlib-hog", "opencv-haar")
    assert result.chosen == (0, 0) and len(result.faces[0]) == 1
    assert set(result.timings) >= {"decode", "detect", "crop", "embed", "decide", "total"}
    out = json.loads(json.dumps(result.to_dict()))
    assert out["verdict"] == "same" and out["faces"]["A"][0]["w"] > 0


def test_threshold_decides_the_verdict(att_dir):
    a, b = photo(att_dir, 1, 1), photo(att_dir, 2, 1)
    energy = run_verify(a, b).energy
    assert energy > 0
    assert run_verify(a, b, threshold=energy * 1.01).same
    assert not run_verify(a, b, threshold=energy * 0.99).same


@pytest.mark.parametrize("photo_mode, channels", [("L", 3), ("RGB", 1), ("RGB", 3), ("L", 1)])
def test_grayscale_photo_for_rgb_run_and_the_reverse(att_dir, photo_mode, channels):
    embedder = PoolEmbedder()
    result = run_verify(photo(att_dir, 1, 1, "JPEG", photo_mode), photo(att_dir, 1, 2),
                        embedder, channels=channels, image_size=(28, 24))
    batch = embedder.calls[0]
    assert batch.shape == (2, channels, 28, 24) and batch.dtype == torch.float32
    assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    assert np.isfinite(result.energy)


def test_no_face_names_the_photo_and_whole_image_is_the_way_out(att_dir):
    with pytest.raises(NoFaceError, match="photo B") as caught:
        run_verify(photo(att_dir, 1, 1), flat_photo())
    assert caught.value.offer_whole_image
    result = run_verify(photo(att_dir, 1, 1), flat_photo(), use_whole_image=(False, True))
    assert result.chosen == (0, None) and result.faces[1] == []
    assert result.crops[1].shape == (160, 160, 3)  # centred square of the 200x160 photo
    both = run_verify(flat_photo(), flat_photo(), use_whole_image=True)
    assert both.detector.startswith("none") and both.energy == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad, words", [
    (b"%PDF-1.4 not a photo", ["Photo A", "PDF"]),
    (b"\xff\xd8\xff" + bytes(50 * 1024 * 1024), ["Photo A", "50 MB"]),
])
def test_bad_photo_is_named(bad, words):
    with pytest.raises(PhotoError) as caught:
        run_verify(bad, flat_photo())
    for word in words:
        assert word in str(caught.value)
    assert caught.value.photo == "photo A"


def test_three_faces_let_the_user_choose(att_dir):
    people = [Image.open(att_dir / f"s{k}" / "1.pgm") for k in (1, 2, 3)]
    canvas = Image.new("L", (700, 270), 128)
    x = 10
    for person, scale in zip(people, (2.2, 1.6, 1.1), strict=True):
        big = person.resize((round(92 * scale), round(112 * scale)))
        canvas.paste(big, (x, 10))
        x += big.width + 20
    group = encode(canvas)
    single = photo(att_dir, 2, 1)
    largest = run_verify(group, single)
    second = run_verify(group, single, face_choice=(1, 0))
    assert len(largest.faces[0]) == 3 and second.chosen == (1, 0)
    assert second.energy < largest.energy  # face 2 of the group is person 2, like photo B
    assert any("3 faces" in note for note in largest.notes)
    with pytest.raises(PhotoError, match="face number 4"):
        run_verify(group, single, face_choice=(3, 0))


def test_tiny_face_is_refused_with_a_reason(att_dir):
    canvas = Image.new("L", (160, 160), 128)
    canvas.paste(Image.open(att_dir / "s1" / "1.pgm").resize((20, 24)), (70, 70))
    with pytest.raises(TinyFaceError, match="photo A"):
        run_verify(encode(canvas), photo(att_dir, 1, 2))


def test_embedder_must_return_two_rows(att_dir):
    a = photo(att_dir, 1, 1)
    with pytest.raises(ValueError, match=r"\[2, D\]"):
        run_verify(a, a, lambda images: np.zeros((3, 4)))


@pytest.mark.skipif(not REFERENCE_OK, reason=f"reference model missing: {REFERENCE_WHY}")
def test_reference_verdict_beside_the_students(att_dir):
    same = run_verify(photo(att_dir, 1, 1), photo(att_dir, 1, 2), reference=True)
    assert same.reference.same and same.reference.threshold == 0.6
    assert "reference" in same.timings and same.to_dict()["reference"]["verdict"] == "same"
    other = run_verify(photo(att_dir, 1, 1), photo(att_dir, 7, 1), reference=True)
    assert not other.reference.same


def test_reference_missing_is_said_and_the_rest_works(att_dir, monkeypatch):
    from lab.faces import reference

    monkeypatch.setattr(reference, "shared_reference", lambda: None)
    monkeypatch.setattr(verify, "shared_reference", lambda: None)
    monkeypatch.setattr(ReferenceModel, "available", staticmethod(lambda: (False, "no dlib")))
    result = run_verify(photo(att_dir, 1, 1), photo(att_dir, 1, 2), reference=True)
    assert result.reference is None and result.reference_note == "no dlib"
    assert result.to_dict()["reference"] == {"available": False, "reason": "no dlib"}


def test_gallery_ranks_known_people_and_skips_bad_photos(att_dir):
    gallery = [(f"person {k}", photo(att_dir, k, shot)) for k in (1, 2, 3) for shot in (2, 3)]
    gallery.append(("broken", b"%PDF-1.4"))
    probe = photo(att_dir, 2, 1)
    crop, matches, skipped = verify.search_gallery(
        probe, gallery, PoolEmbedder(), channels=1, image_size=32, energy="l2", threshold=0.5,
        top=3)
    assert crop.ndim == 2 and len(matches) == 3
    assert [m.energy for m in matches] == sorted(m.energy for m in matches)
    assert {m.name for m in matches} == {"person 1", "person 2", "person 3"}
    assert len(skipped) == 1 and skipped[0].startswith("broken: ")
    with pytest.raises(NoFaceError, match="probe"):
        verify.search_gallery(flat_photo(), gallery, PoolEmbedder(), channels=1, image_size=32,
                              energy="l2", threshold=0.5)


# ---------------------------------------------------------------- privacy


def _listing(*folders: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder in folders:
        if folder.is_dir():
            for path in folder.rglob("*"):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                out[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_photos_never_touch_the_disk(att_dir, run_root, monkeypatch, tmp_path):
    """A whole verification (reference model included) opens no file for writing and leaves
    the temp folder and the run store exactly as they were."""
    a, b = photo(att_dir, 1, 1, "JPEG"), photo(att_dir, 3, 2, "JPEG")
    run_verify(a, b, reference=True)  # warm up: models load once per process (read-only)
    # The machine's /tmp is shared with other processes: give this one a temp folder of its own.
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(own_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    watched = [own_tmp, run_root]
    before = _listing(*watched)
    writes: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def watch_open(file, mode="r", *args, **kwargs):
        if any(flag in str(mode) for flag in "wax+"):
            writes.append(f"open({file!r}, {mode!r})")
        return real_open(file, mode, *args, **kwargs)

    def watch_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
            writes.append(f"os.open({path!r})")
        return real_os_open(path, flags, *args, **kwargs)

    def no_temp_files(*args, **kwargs):
        writes.append("tempfile")
        raise AssertionError("a verification must not create temp files")

    monkeypatch.setattr(builtins, "open", watch_open)
    monkeypatch.setattr(io, "open", watch_open)
    monkeypatch.setattr(os, "open", watch_os_open)
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile",
                 "SpooledTemporaryFile", "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, no_temp_files)
    result = run_verify(a, b, reference=True)
    after = _listing(*watched)
    monkeypatch.undo()
    assert writes == []
    assert after == before
    assert np.isfinite(result.energy)


# ---------------------------------------------------------------- runs and the command line


@pytest.fixture
def tiny_run(run_root):
    """A saved run (untrained weights) on a small synthetic set, in a throw-away store."""
    from lab.core.config import RunConfig
    from lab.learn.models import build_model
    from lab.learn.runs import RunStore

    config = RunConfig(dataset="synthetic", num_identities=12, images_per_identity=4,
                       image_size=16, network="linear", embedding_dim=8, val_identities=4,
                       test_identities=4, epochs=1)
    store = RunStore(run_root)
    run = store.create(config, name="tiny")
    run.set_shape(3, 16, 4)
    run.save_model(build_model(config, 3, 16))
    run.set_status("done")
    return store, store.load(run.id)


def test_embedder_and_shape_for_run(tiny_run):
    _, run = tiny_run
    assert verify.input_shape_for_run(run) == (3, 16)
    vectors = verify.embedder_for_run(run)(torch.rand(2, 3, 16, 16))
    assert vectors.shape == (2, 8) and isinstance(vectors, np.ndarray)


def test_threshold_for_run_computed_from_validation_identities(tiny_run):
    _, run = tiny_run
    verify._ENERGY_CACHE.clear()
    energies = verify.run_energies(run)
    assert "validation" in energies.source
    assert len(energies.genuine) == 4 * 6 and len(energies.impostor) == 16 * 6
    strict, loose = verify.threshold_for_run(run, 0.01), verify.threshold_for_run(run, 0.5)
    assert strict <= loose
    assert verify.run_energies(run) is energies  # cached


def _cli(args, capsys) -> tuple[int, str, str]:
    code = verify_cli.main(["verify", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_one_json_object_whatever_the_verdict(att_dir, tiny_run, tmp_path, capsys):
    store, run = tiny_run
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    a.write_bytes(photo(att_dir, 1, 1, "JPEG", "RGB"))
    b.write_bytes(photo(att_dir, 5, 1))
    for threshold in ("0", "100"):
        code, out, err = _cli([a, b, "--run", run.id, "--runs-root", store.root,
                               "--threshold", threshold], capsys)
        assert code == 0, err
        result = json.loads(out)
        assert result["verdict"] == ("different" if threshold == "0" else "same")
        assert result["run"] == run.id and "A" in result["faces"]


def test_cli_bad_input_is_one_line_and_non_zero(att_dir, tiny_run, tmp_path, capsys):
    store, run = tiny_run
    good, text = tmp_path / "a.png", tmp_path / "notes.txt"
    good.write_bytes(photo(att_dir, 1, 1))
    text.write_text("not a photo")
    cases = [
        ([good, text, "--run", run.id, "--runs-root", store.root], "Photo B"),
        ([good, tmp_path / "missing.jpg", "--run", run.id], "no such file"),
        ([good, good, "--run", "20990101-000000-abcdef", "--runs-root", store.root], "no run"),
        ([good, good], "--run"),
        ([good, good, "--run", run.id, "--far", "5"], "--far"),
    ]
    for args, words in cases:
        code, out, err = _cli(args, capsys)
        assert code == 2 and out == ""
        assert err.startswith("error: ") and words in err and err.count("\n") == 1


@pytest.mark.skipif(not REFERENCE_OK, reason=f"reference model missing: {REFERENCE_WHY}")
def test_cli_reference_only(att_dir, tmp_path, capsys):
    a, b = tmp_path / "a.pgm", tmp_path / "b.pgm"
    a.write_bytes((att_dir / "s1" / "1.pgm").read_bytes())
    b.write_bytes((att_dir / "s1" / "3.pgm").read_bytes())
    code, out, err = _cli([a, b, "--reference"], capsys)
    assert code == 0, err
    assert json.loads(out)["reference"]["verdict"] == "same"


@pytest.mark.slow
def test_bench_verify_timings(att_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = verify_bench.bench_verify(out, att_dir=att_dir, repeats=1, accuracy=False)
    assert json.loads(out.read_text())["student"]["att_pgm"]["total"] > 0
    assert set(result["student"]["webcam_jpeg_640x480"]) >= {"decode", "detect", "embed",
                                                                "total", "cpu_seconds"}
    if REFERENCE_OK:
        assert result["reference"]["att_pgm"]["total"] > 0
