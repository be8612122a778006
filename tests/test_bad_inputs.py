"""Every bad input the app can receive, in one table: one test each.

Each row builds one bad input, feeds it to what the page calls (or to the page itself through
AppTest, for links), and returns the sentence the user sees. The test checks that sentence, that
no traceback text leaks into it, and that nothing was written or lost: the run store (holding one
saved run) and this test's temp folder are listed before and after. Limits come from
lab.core.limits, never literals.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.core import limits
from lab.core.config import RunConfig
from lab.learn.models import build_model
from lab.learn.runs import KNOWN_FILES, RunError, RunStore

ROOT = Path(__file__).resolve().parents[1]
ATT_DIR = Path(os.environ.get("METRIC_LAB_ATT", ROOT.parent / "shared" / "data" / "att_faces"))
CONFIG = RunConfig(dataset="synthetic", num_identities=12, images_per_identity=4, image_size=16,
                   network="linear", embedding_dim=8, val_identities=4, test_identities=4,
                   epochs=1)


@dataclass
class Ctx:
    store: RunStore
    run_id: str  # the saved run that must never be lost
    tmp: Path
    monkeypatch: pytest.MonkeyPatch


# ---------------------------------------------------------------- makers


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int = 120, height: int = 90) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height with almost no pixel data (a bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def face_zip(extra: dict[str, bytes] | None = None, people=("alice", "bob", "carol")) -> bytes:
    rng = np.random.default_rng(1)
    files = {f"{person}/{k}.png": encode(Image.fromarray(
        rng.integers(0, 256, (24, 20), dtype=np.uint8), mode="L"))
        for person in people for k in range(3)}
    return zip_bytes({**files, **(extra or {})})


def exported(ctx: Ctx) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(ctx.store.export_zip(ctx.run_id))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# ---------------------------------------------------------------- what the pages call


def verify_upload(data: bytes, other: bytes | None = None, **options) -> str:
    """The Verify page: prepare_photo shows .error; verify_pair raises PhotoError."""
    from lab.faces.photos import PhotoError
    from lab.views import verify

    prepared = verify.prepare_photo(data, "photo A")
    if not prepared.ok:
        return prepared.error
    try:
        verify.verify_pair(prepared, other if other is not None else data,
                           lambda x: x.flatten(1).numpy(), channels=1, image_size=16,
                           energy="l2", threshold=0.5, **options)
    except PhotoError as error:
        return str(error)
    return "accepted"


def dataset_zip(data: bytes) -> str:
    from lab.data import DatasetError
    from lab.data.folder import load_image_folder

    try:
        load_image_folder(data, image_size=16)
    except DatasetError as error:
        return str(error)
    return "accepted"


def import_run(ctx: Ctx, data: bytes) -> str:
    """The Train page's import: "Not imported: <reason>"."""
    try:
        info = ctx.store.import_zip(data)
    except RunError as error:
        return f"Not imported: {error}"
    return f"Imported run {info.name}."


_APP_WARMED = False


def train_page_link(**query: str) -> str:
    """Open /train?<query> in AppTest; the warnings and errors the page shows, joined."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for name, value in query.items():
        at.query_params[name] = value
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [w.value for w in at.warning] + [e.value for e in at.error]
    config = at.session_state["train_config"]
    assert not __import__("lab.core.config", fromlist=["problems"]).problems(config)
    assert config.data_dir is None
    return "\n".join(shown)


# ---------------------------------------------------------------- the rows


def _no_face(ctx: Ctx) -> str:
    flat = encode(Image.new("RGB", (200, 160), (120, 120, 120)), "JPEG")
    return verify_upload(flat)


def _tiny_face(ctx: Ctx) -> str:
    from lab.faces.photos import FaceBox, PhotoError, choose_face

    if (ATT_DIR / "s1").is_dir():
        canvas = Image.new("L", (160, 160), 128)
        canvas.paste(Image.open(ATT_DIR / "s1" / "1.pgm").resize((20, 24)), (70, 70))
        return verify_upload(encode(canvas))
    try:  # no AT&T faces here: the same rule, on a detected box just under the limit
        choose_face([FaceBox(0, 0, limits.MIN_FACE_PIXELS - 1, 40, 1.0)], photo="photo A")
    except PhotoError as error:
        return str(error)
    return "accepted"


def _verify_leaves_no_trace(ctx: Ctx) -> str:
    """A full verification with its own watched temp folder: no file created anywhere."""
    own_tmp = ctx.tmp / "tmp"
    ctx.monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    data = encode(noise(200, 160), "JPEG")
    result = verify_upload(data, data, use_whole_image=True)
    assert not any(own_tmp.iterdir())
    data_dir = ROOT / "data"
    recent = [p for p in data_dir.rglob("*") if p.is_file()
              and p.stat().st_mtime > ctx.started and "runs" not in p.parts
              and "cache" not in p.parts] if data_dir.is_dir() else []
    assert recent == [], recent
    return result


def _zip_bomb(ctx: Ctx) -> str:
    ctx.monkeypatch.setattr(limits, "MAX_ARCHIVE_EXPANDED_BYTES", 64 * 1024)
    return dataset_zip(face_zip({"alice/zeros.png": bytes(limits.MAX_ARCHIVE_EXPANDED_BYTES + 1)}))


def _tampered(ctx: Ctx) -> str:
    files = exported(ctx)
    weights = bytearray(files["model.safetensors"])
    weights[8:40] = b"{" * 32  # the JSON header of the safetensors file, garbled
    return import_run(ctx, zip_bytes({**files, "model.safetensors": bytes(weights)}))


def _pickle_inside(ctx: Ctx) -> str:
    evil = pickle.dumps({"weights": [1, 2, 3]})
    return import_run(ctx, zip_bytes({**exported(ctx), "model.pt": evil}))


def _pickle_as_safetensors(ctx: Ctx) -> str:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    return import_run(ctx, zip_bytes({**exported(ctx), "model.safetensors": buffer.getvalue()}))


def _oversize_run_zip(ctx: Ctx) -> str:
    data = zip_bytes(exported(ctx))
    ctx.monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", len(data) - 1)
    return import_run(ctx, data)


def _bad_config_import(ctx: Ctx) -> str:
    files = exported(ctx)
    config = json.loads(files["config.json"])
    config.update(epochs="lots", loss="<script>", surprise=1)
    return import_run(ctx, zip_bytes({**files, "config.json": json.dumps(config).encode()}))


def _bad_config_folder(ctx: Ctx) -> str:
    """A run folder whose config.json has unknown fields and wrong types: listed as corrupt
    with the reason (the Train page shows it in the table), never a crash."""
    path = ctx.store.root / ctx.run_id / "config.json"
    ctx.original_config = path.read_bytes()
    config = json.loads(ctx.original_config)
    config.update(network=["cnn"], lr="fast", bogus={"a": 1})
    path.write_text(json.dumps(config))
    ctx.expect_changed = {str(path)}
    info = next(i for i in ctx.store.list() if i.id == ctx.run_id)
    assert info.status == "corrupt"
    try:
        ctx.store.load(ctx.run_id)
    except RunError as error:
        return f"{info.message} / {error}"
    return "accepted"


def _rename(name: str) -> Callable[[Ctx], str]:
    def rename(ctx: Ctx) -> str:
        ctx.expect_changed = {str(ctx.store.root / ctx.run_id / "run.json")}
        info = ctx.store.rename(ctx.run_id, name)
        assert info.id == ctx.run_id and info.path == ctx.store.root / ctx.run_id
        assert not any(ch in info.name for ch in "/\\<>"), info.name
        return info.name
    return rename


def _bad_run_id(ctx: Ctx) -> str:
    try:
        ctx.store.load("../../etc")
    except RunError as error:
        return str(error)
    return "accepted"


NOT_IMAGE = ("not an image", "JPEG")
CASES = [
    # -- verify uploads ------------------------------------------------------------------------
    pytest.param(lambda c: verify_upload(b"%PDF-1.4 not a photo"), NOT_IMAGE + ("PDF",),
                 id="verify-not-an-image"),
    pytest.param(lambda c: verify_upload(encode(noise(300, 200), "JPEG")[:1500]),
                 ("broken or cut off",), id="verify-truncated-jpeg"),
    pytest.param(lambda c: verify_upload(png_header(20000, 20000)),
                 ("20000×20000 pixels", f"{limits.MAX_IMAGE_PIXELS // 1_000_000} megapixels"),
                 id="verify-decompression-bomb"),
    pytest.param(lambda c: verify_upload(b"\xff\xd8\xff" + bytes(50 * 1024 * 1024)),
                 ("50 MB", f"limit is {limits.MAX_UPLOAD_BYTES // (1024 * 1024)} MB"),
                 id="verify-50MB-file"),
    pytest.param(lambda c: verify_upload(b""), ("empty",), id="verify-empty-file"),
    pytest.param(_no_face, ("No face found", "whole image"), id="verify-no-face"),
    pytest.param(_tiny_face, (f"at least {limits.MIN_FACE_PIXELS} pixels",),
                 id="verify-tiny-face"),
    pytest.param(_verify_leaves_no_trace, ("accepted",), id="verify-photos-never-touch-disk"),
    # -- dataset zips ----------------------------------------------------------------------------
    pytest.param(lambda c: dataset_zip(face_zip({"../evil.png": b"x"})), ("zip refused",
                 "../evil.png"), id="dataset-zip-traversal"),
    pytest.param(lambda c: dataset_zip(face_zip({"/etc/evil.png": b"x"})), ("zip refused",
                 "/etc/evil.png"), id="dataset-zip-absolute-path"),
    pytest.param(_zip_bomb, ("expand",), id="dataset-zip-bomb"),
    pytest.param(lambda c: dataset_zip(b"PK\x03\x04" + bytes(100)), ("not a readable zip",),
                 id="dataset-zip-corrupt"),
    pytest.param(lambda c: dataset_zip(face_zip(people=("alice",))), ("identit",),
                 id="dataset-zip-one-identity"),
    pytest.param(lambda c: dataset_zip(zip_bytes({"alice/a.txt": b"hello", "bob/b.pdf": b"%PDF"})),
                 ("image",), id="dataset-zip-no-images"),
    # -- links (query parameters on the Train page) ------------------------------------------------
    pytest.param(lambda c: train_page_link(margin="-5"), ("Ignored margin='-5'", "between"),
                 id="link-negative-margin"),
    pytest.param(lambda c: train_page_link(loss="magic"), ("Ignored loss='magic'", "one of"),
                 id="link-unknown-loss"),
    pytest.param(lambda c: train_page_link(epochs=str(10**9)),
                 ("Ignored epochs", f"between 1 and {limits.MAX_EPOCHS}"),
                 id="link-huge-epochs"),
    pytest.param(lambda c: train_page_link(lr="nan"), ("Ignored lr='nan'", "finite number"),
                 id="link-nan-learning-rate"),
    pytest.param(lambda c: train_page_link(seed="<script>alert(1)</script>"),
                 ("Ignored seed=", "whole number"), id="link-script-injection"),
    pytest.param(lambda c: train_page_link(data_dir="/etc"),
                 ("Ignored data_dir", "cannot choose a folder"), id="link-data-dir-etc"),
    pytest.param(lambda c: train_page_link(embedding_dim="1e9", num_identities="-3"),
                 ("Ignored num_identities", "Ignored embedding_dim"), id="link-huge-and-negative"),
    # -- imported run zips ----------------------------------------------------------------
    pytest.param(lambda c: import_run(c, zip_bytes({"weights.bin": b"x", "notes.txt": b"y"})),
                 ("Not imported", "unexpected file"), id="run-zip-wrong-file-names"),
    pytest.param(_tampered, ("Not imported", "not a valid run"), id="run-zip-tampered-weights"),
    pytest.param(lambda c: import_run(c, zip_bytes({**exported(c), "../../evil.json": b"{}"})),
                 ("Not imported", "unexpected file"), id="run-zip-path-traversal"),
    pytest.param(_pickle_inside, ("Not imported", "model.pt"), id="run-zip-pickle-pt-file"),
    pytest.param(_pickle_as_safetensors, ("Not imported", "not a valid run"),
                 id="run-zip-pickle-named-safetensors"),
    pytest.param(_oversize_run_zip, ("Not imported", "MB allowed"), id="run-zip-oversize"),
    pytest.param(lambda c: import_run(c, b"this is not a zip"), ("Not imported", "not a zip"),
                 id="run-zip-not-a-zip"),
    pytest.param(_bad_config_import, ("Not imported", "config.json"),
                 id="run-zip-config-wrong-types"),
    # -- run names and run folders --------------------------------------------------------
    pytest.param(_rename("<script>alert('x')</script>"), ("script",), id="rename-script-tag"),
    pytest.param(_rename("../../etc/passwd"), ("etc passwd",), id="rename-path-traversal"),
    pytest.param(_rename("x" * 500), ("x" * limits.MAX_RUN_NAME_CHARS,), id="rename-too-long"),
    pytest.param(_bad_run_id, ("not a run id",), id="run-id-traversal"),
    pytest.param(_bad_config_folder, ("config.json",), id="run-folder-config-wrong-types"),
]


# ---------------------------------------------------------------- the test


def _listing(*folders: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                stat = path.stat()
                out[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture
def ctx(run_root, tmp_path, monkeypatch) -> Ctx:
    import time

    store = RunStore(run_root)
    run = store.create(CONFIG, name="keep me")
    run.set_shape(3, 16, 4)
    run.save_model(build_model(CONFIG, 3, 16))
    run.append_history({"epoch": 1, "loss": 0.5})
    run.save_metrics({"test": {"eer": 0.2, "auc": 0.9}})
    run.set_status("done", "trained 1 epoch")
    (tmp_path / "tmp").mkdir()
    context = Ctx(store, run.id, tmp_path, monkeypatch)
    context.expect_changed = set()
    context.started = time.time()
    return context


@pytest.mark.parametrize("case, words", CASES)
def test_bad_input(case, words, ctx):
    watched = (ctx.store.root, ctx.tmp / "tmp")
    before = _listing(*watched)
    ids_before = [i.id for i in ctx.store.list()]
    message = case(ctx)
    for word in words:
        assert word in message, f"{word!r} not in the message: {message!r}"
    assert "Traceback" not in message and "<script>" not in message
    after = _listing(*watched)
    assert [i.id for i in ctx.store.list()] == ids_before  # nothing added, nothing lost
    assert set(after) == set(before)  # no file created, none removed
    changed = {path for path in before if before[path] != after[path]}
    assert changed <= ctx.expect_changed
    run = ctx.store.load(ctx.run_id) if not hasattr(ctx, "original_config") else None
    if run is not None:  # the saved run still opens, with its weights
        assert run.name and run.load_model() is not None


def test_table_is_big_enough():
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)
    assert set(KNOWN_FILES) >= {"model.safetensors", "config.json"}


# ---------------------------------------------------------------- security by construction

UNPICKLING = (
    (r"torch\.load\((?![^)]*weights_only\s*=\s*True)", "torch.load without weights_only=True"),
    (r"\bpickle\.loads?\(", "pickle.load"),
    (r"\b(c|_)?[Pp]ickle\.Unpickler\(", "an Unpickler"),
    (r"allow_pickle\s*=\s*True", "numpy allow_pickle=True"),
    (r"\bjoblib\.load\(", "joblib.load"),
    (r"\bdill\.loads?\(", "dill.load"),
)


def test_weights_are_never_unpickled():
    """Only safetensors load weights: no code path in the app can unpickle a file."""
    import re

    sources = [ROOT / "app.py", *(ROOT / "lab").rglob("*.py"), *(ROOT / "app_pages").rglob("*.py"),
               *(ROOT / "ui").rglob("*.py")]
    found = []
    for path in sources:
        text = path.read_text()
        for pattern, what in UNPICKLING:
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert found == []


def test_the_unpickling_check_catches_what_it_should():
    import re

    load = "torch." + "load("  # spelt apart so the repository's own grep does not flag it
    bad = [load + "path)", load + "f, map_location='cpu')", "pickle.loads(data)",
           "np.load(p, allow_pickle=True)"]
    good = [load + "path, weights_only=True)", "load_file(path)"]
    for text in bad:
        assert any(re.search(p, text) for p, _ in UNPICKLING), text
    for text in good:
        assert not any(re.search(p, text) for p, _ in UNPICKLING), text


def test_server_binds_to_localhost_by_default_and_keeps_xsrf_and_cors_on():
    import re
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config.get("server", {})
    assert server.get("address") == "127.0.0.1"
    assert server.get("enableXsrfProtection", True) is True
    assert server.get("enableCORS", True) is True
    assert server.get("maxUploadSize", 200) * 1024 * 1024 >= limits.MAX_UPLOAD_BYTES
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^HOST \?= 127\.0\.0\.1$", makefile, re.M)
    run = makefile[makefile.index("\nrun:"):].split("\n\n")[0]
    assert "--server.address $(HOST)" in run and "0.0.0.0" not in run
