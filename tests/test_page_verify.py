"""The verify page (issue 6): every bad input gets a clear message and never a traceback, the
FAR slider only redraws, photos never touch the disk, and in a real browser two AT&T photos of
one unseen person are "same" and two different people "different".

AppTest drives the uploaders here (st.file_uploader.set_value); tiny runs are trained in a few
seconds on synthetic faces (RGB) and digits (grayscale). AT&T photos are used where a real face
is needed, and those tests skip when the faces are absent.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import time
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from lab.core.config import RunConfig
from lab.core.limits import MIN_FACE_PIXELS
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run

ROOT = Path(__file__).resolve().parents[1]
PAGE = "app_pages/verify.py"
SHOTS = Path("/tmp/ml/shots")


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG header claiming width x height with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def flat(mode: str = "RGB", value: int = 120, size=(200, 160)) -> bytes:
    colour = value if mode == "L" else (value, value, value)
    return encode(Image.new(mode, size, colour), "PNG")


def three_faces(att_dir: Path) -> bytes:
    """Three AT&T people side by side at three sizes (largest on the left)."""
    people = [Image.open(att_dir / f"s{k}" / "1.pgm").convert("L") for k in (1, 2, 3)]
    canvas = Image.new("L", (700, 270), 128)
    x = 10
    for person, scale in zip(people, (2.2, 1.6, 1.1), strict=True):
        big = person.resize((round(92 * scale), round(112 * scale)), Image.Resampling.BICUBIC)
        canvas.paste(big, (x, 10))
        x += big.width + 20
    return encode(canvas)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """A store with two tiny runs: synthetic faces (RGB, 3 channels) and digits (grayscale)."""
    root = tmp_path_factory.mktemp("verify-runs")
    store = RunStore(root)
    torch.manual_seed(0)
    small = dict(image_size=16, epochs=1, network="mlp", embedding_dim=8, device="cpu")
    train_run(RunConfig(dataset="digits", **small), store, name="digits-gray")
    train_run(RunConfig(dataset="synthetic", num_identities=12, images_per_identity=4,
                        val_identities=3, test_identities=3, **small), store, name="faces-rgb")
    return root


def _use_store(root: Path, monkeypatch) -> None:
    import ui

    monkeypatch.setenv("METRIC_LAB_RUNS", str(root))
    assert ui.run_store().root == root  # one store per root: no cache to clear


@pytest.fixture
def with_runs(tiny_runs, monkeypatch) -> Path:
    _use_store(tiny_runs, monkeypatch)
    return tiny_runs


def _app(run_name: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page(PAGE)
    at.run()
    if run_name is not None:
        box = at.selectbox(key="verify_run")
        box.select_index(_option(box, run_name)).run()
    return at


def _option(box, text: str) -> int:
    return next(k for k, label in enumerate(box.options) if text in str(label))


def _upload(at: AppTest, slot: str, name: str, data: bytes) -> None:
    at.file_uploader(key=f"upload_{slot}").set_value((name, data, "application/octet-stream"))


def _whole_images(at: AppTest) -> None:
    """Tick "Use the whole image" in both slots (it appears once a photo is there)."""
    at.run()
    at.checkbox(key="whole_A").check()
    at.checkbox(key="whole_B").check()
    at.run()


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _verdicts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "Same person" in m.value
            or "Different people" in m.value]


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# ---------------------------------------------------------------- no run yet


def test_no_run_yet_says_so_and_links_to_train(run_root, monkeypatch):
    _use_store(run_root, monkeypatch)
    at = _app()
    _assert_clean(at)
    assert "No trained run yet" in _texts(at.info)
    assert "never written to disk" in _texts(at.caption)
    assert {u.key for u in at.file_uploader} >= {"upload_A", "upload_B"}
    # Two photos with no run: no student verdict, no error, the gallery asks for a run.
    _upload(at, "A", "a.png", flat())
    _upload(at, "B", "b.png", flat("L"))
    _whole_images(at)
    _assert_clean(at)
    assert "the reference model answers alone" in _texts(at.info)
    assert "The gallery search needs a trained run" in _texts(at.info)


# ---------------------------------------------------------------- bad input


def test_bad_files_get_a_clear_message_each(with_runs):
    at = _app("faces-rgb")
    _upload(at, "A", "notes.jpg", b"Dear teacher, here is my photo.\n")
    truncated = encode(Image.new("RGB", (300, 300), (90, 60, 30)), "JPEG", quality=95)
    _upload(at, "B", "cut.jpg", truncated[: len(truncated) // 2])
    at.run()
    _assert_clean(at)
    errors = _texts(at.error)
    assert "Photo A" in errors and "not an image" in errors and "text file" in errors
    assert "Photo B" in errors and "broken or cut off" in errors
    assert not _verdicts(at)

    _upload(at, "A", "bomb.png", png_bomb(20000, 20000))
    _upload(at, "B", "huge.jpg", b"\xff\xd8\xff\xe0" + bytes(50 * 1024 * 1024))
    at.run()
    _assert_clean(at)
    errors = _texts(at.error)
    assert "20000×20000" in errors and "megapixels" in errors
    assert "50 MB" in errors and "limit is 20 MB" in errors
    assert not _verdicts(at)


def test_no_face_offers_the_whole_image_then_verifies(with_runs):
    at = _app("faces-rgb")
    _upload(at, "A", "wall.png", flat(value=100))
    _upload(at, "B", "wall2.png", flat(value=140))
    at.run()
    _assert_clean(at)
    assert "No face found in photo A" in _texts(at.warning)
    assert "No face found in photo B" in _texts(at.warning)
    assert not _verdicts(at)  # nothing is decided before the user agrees
    assert at.checkbox(key="whole_A").label == "Use the whole image (centred crop)"
    _whole_images(at)
    _assert_clean(at)
    assert len(_verdicts(at)) >= 1
    labels = {m.label for m in at.metric}
    assert "Energy E (l2)" in labels and "Threshold at FAR 0.01" in labels
    assert at.get("plotly_chart"), "the genuine/impostor histogram is drawn"


def test_three_faces_let_the_user_choose(with_runs, att_dir):
    at = _app("faces-rgb")
    _upload(at, "A", "three.png", three_faces(att_dir))
    _upload(at, "B", "one.pgm", (att_dir / "s2" / "2.pgm").read_bytes())
    at.run()
    _assert_clean(at)
    choose = at.selectbox(key="face_A")
    assert choose.label == "3 faces found: which one?" and len(choose.options) == 3
    choose.select_index(1).run()
    _assert_clean(at)
    assert _verdicts(at)
    assert "face 2 (chosen) was used" in _texts(at.caption)


def test_tiny_face_says_so(with_runs, att_dir):
    face = Image.open(att_dir / "s1" / "1.pgm").convert("L")
    canvas = Image.new("L", (160, 160), 128)
    canvas.paste(face.resize((20, 24), Image.Resampling.BICUBIC), (70, 70))
    at = _app("faces-rgb")
    _upload(at, "A", "far-away.png", encode(canvas))
    at.run()
    _assert_clean(at)
    assert f"at least {MIN_FACE_PIXELS} pixels" in _texts(at.warning)


def test_grayscale_photo_for_rgb_run_and_the_reverse(with_runs):
    at = _app("faces-rgb")
    _upload(at, "A", "gray.png", flat("L"))
    _upload(at, "B", "colour.png", flat("RGB"))
    _whole_images(at)
    _assert_clean(at)
    assert "trained on colour images: the grayscale photo A" in _texts(at.info)
    assert _verdicts(at)

    box = at.selectbox(key="verify_run")
    box.select_index(_option(box, "digits-gray")).run()
    _assert_clean(at)
    assert "trained on grayscale images: the colour photo B" in _texts(at.info)
    assert _verdicts(at)


# ---------------------------------------------------------------- speed and privacy


def test_far_slider_only_redraws_and_nothing_touches_the_disk(with_runs, tmp_path,
                                                              monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(private_tmp))

    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in with_runs.rglob("*") if p.is_file()}

    at = _app("faces-rgb")
    before = snapshot()
    _upload(at, "A", "a.png", flat(value=90))
    _upload(at, "B", "b.png", flat("L", value=150))
    _whole_images(at)
    _assert_clean(at)
    energy = next(m.value for m in at.metric if m.label.startswith("Energy"))
    photos = dict(at.session_state["verify_photos"])
    results = dict(at.session_state["verify_results"])
    started = time.perf_counter()
    at.select_slider(key="verify_far").set_value(0.1).run()
    seconds = time.perf_counter() - started
    _assert_clean(at)
    assert any(m.label == "Threshold at FAR 0.1" for m in at.metric)
    assert next(m.value for m in at.metric if m.label.startswith("Energy")) == energy
    # Neither decoded, nor detected, nor embedded again: the same cached objects.
    assert at.session_state["verify_photos"] == photos
    assert at.session_state["verify_results"] == results
    assert seconds < 15, f"moving the FAR slider took {seconds:.1f} s"
    assert snapshot() == before, "the run store changed during a verification"
    assert list(private_tmp.iterdir()) == [], "a file was written to the temp folder"


# ---------------------------------------------------------------- gallery


def test_gallery_ranks_known_people_by_energy(with_runs):
    at = _app("faces-rgb")
    at.file_uploader(key="gallery_probe").set_value(("who.png", flat(value=60), "image/png"))
    at.file_uploader(key="gallery_people").set_value([
        ("dark_1.png", flat(value=62), "image/png"),
        ("dark_2.png", flat(value=58), "image/png"),
        ("light.png", flat(value=230), "image/png"),
        ("broken.png", b"not a photo", "image/png"),
    ])
    at.checkbox(key="gallery_whole").check()
    at.run()
    _assert_clean(at)
    assert "Skipped broken" in _texts(at.warning)
    # The probe is a dark grey square: the best match is "dark" (two photos, one person).
    assert "dark" in _texts(at.success) + _texts(at.warning)


# ---------------------------------------------------------------- in the browser


@pytest.fixture
def att_server(att_dir, tmp_path):
    """A streamlit server whose store holds one run trained on AT&T, its 10 test identities
    (seed 0: s2, s3, s4, s5, s12, s19, s24, s25, s28, s35) never seen in training."""
    from conftest import StreamlitServer

    from lab.data.splits import split_identities

    runs = tmp_path / "runs"
    runs.mkdir()
    config = RunConfig(dataset="att", data_dir=str(att_dir), network="cnn", epochs=12, seed=0,
                       device="cpu")
    assert {2, 3, 4, 5} <= {k + 1 for k in split_identities(40, 5, 10, 0).test}
    torch.manual_seed(0)
    # 12 seeded epochs (~30 s on an idle 2-core CPU; the 180 s budget only guards a loaded
    # box) give roughly 5-15 % EER on the unseen identities: far from perfect. The pair below
    # was chosen because it is clear-cut for such a run: s5's photos 1 and 2 sat well inside
    # the FAR-1 % threshold (E ~ 0.25 vs ~ 0.65 in a 17-epoch run) and s4 vs s5 far outside
    # it (E ~ 1.2); other pairs (s12's photos, for instance) were rejected by the same run.
    train_run(config, RunStore(runs), name="att-cnn", time_budget=180)
    server = StreamlitServer(runs, tmp_path / "streamlit.log")
    yield server
    server.stop()


def _shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
    except OSError:
        pass
    target = os.environ.get("METRIC_LAB_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def _wait_idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


@pytest.mark.slow
@pytest.mark.browser
def test_browser_same_person_then_different_people(att_server, page, att_dir, tmp_path):
    # Streamlit scrolls inside its own container, so a full-page screenshot is the viewport:
    # make it tall enough to hold the photos, crops, verdicts and histogram.
    page.set_viewport_size({"width": 1400, "height": 2400})
    page.goto(f"{att_server.url}/verify")
    _wait_idle(page)
    page.get_by_text("never written to disk").first.wait_for()
    upload_a = page.locator(".st-key-upload_A input[type=file]")
    upload_b = page.locator(".st-key-upload_B input[type=file]")
    upload_a.set_input_files(str(att_dir / "s5" / "1.pgm"))
    _wait_idle(page)
    upload_b.set_input_files(str(att_dir / "s5" / "2.pgm"))
    student = page.locator(".st-key-verify-student")
    student.get_by_text("✓ Same person").wait_for(timeout=180_000)
    _wait_idle(page)
    page.locator(".st-key-verify-hist .js-plotly-plot").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    assert page.locator('[data-testid="stException"]').count() == 0
    body = page.locator("section.main, [data-testid='stMain']").first.inner_text()
    assert "Energy E (l2)" in body and "Threshold at FAR 0.01" in body
    assert "as the network sees it" in body  # the two crops
    assert "Same person" in page.locator(".st-key-verify-reference").inner_text()  # dlib too
    _shoot(page, tmp_path, "verify-same")

    upload_b.set_input_files(str(att_dir / "s4" / "1.pgm"))
    student.get_by_text("✗ Different people").wait_for(timeout=180_000)
    _wait_idle(page)
    page.wait_for_timeout(1500)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Different people" in page.locator(".st-key-verify-reference").inner_text()
    _shoot(page, tmp_path, "verify-different")

    # A text file named like a photo: a clear message in its slot, no traceback, no verdict.
    upload_b.set_input_files({"name": "notes.jpg", "mimeType": "image/jpeg",
                              "buffer": b"Dear teacher, here is my photo.\n"})
    page.locator(".st-key-verify-student").wait_for(state="detached", timeout=120_000)
    _wait_idle(page)
    error = page.locator('[data-testid="stAlert"]', has_text="not an image").first
    error.wait_for(timeout=60_000)
    assert "Photo B" in error.inner_text() and "text file" in error.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    _shoot(page, tmp_path, "verify-bad-file")
