"""RunStore: runs survive a round trip, broken folders never break the list, zips are guarded."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from lab.core.config import RunConfig
from lab.learn.models import build_model
from lab.learn.runs import KNOWN_FILES, RunError, RunStore, sanitize_name
from lab.measure.evaluate import embed

CONFIG = RunConfig(network="cnn", embedding_dim=8, image_size=16, extra={"width": 4})


def saved_run(store: RunStore, name: str = "first"):
    torch.manual_seed(0)
    model = build_model(CONFIG, 1, 16)
    run = store.create(CONFIG, name=name)
    run.set_shape(1, 16, num_classes=5)
    run.append_history({"epoch": 1, "loss": 0.5})
    run.append_history({"epoch": 2, "loss": float("nan")})
    run.save_model(model)
    run.save_probes([np.zeros((3, 8)), np.ones((3, 8))], [0, 0, 1], [False, True, True], [0, 1])
    run.save_metrics({"test": {"eer": 0.1, "auc": 0.95}})
    run.set_status("done", "trained 2 epochs")
    return run, model


def test_root_from_environment(run_root):
    assert RunStore().root == run_root


def test_save_and_load_give_identical_embeddings(run_root):
    store = RunStore()
    run, model = saved_run(store)
    assert run.id[8] == "-" and set(p.name for p in run.path.iterdir()) == set(KNOWN_FILES)
    loaded = store.load(run.id)
    assert loaded.config == CONFIG and loaded.status == "done" and loaded.name == "first"
    assert [h["loss"] for h in loaded.history] == [0.5, None]  # NaN stored as null
    assert loaded.metrics["test"]["eer"] == 0.1
    images = torch.rand(5, 1, 16, 16)
    assert np.array_equal(embed(model, images), embed(loaded.model, images))
    probes = loaded.probes()
    assert probes["embeddings"].shape == (2, 3, 8) and probes["is_test"].tolist() == [0, 1, 1]
    assert not any(p.name.endswith(".tmp") for p in run.path.iterdir())


def test_corrupt_folder_is_reported_not_fatal(run_root):
    store = RunStore()
    good, _ = saved_run(store)
    broken = run_root / "20200101-000000-abcdef"
    broken.mkdir()
    (broken / "run.json").write_text("{half a json")
    (run_root / "not-a-run").mkdir()  # ignored
    infos = {info.id: info for info in store.list()}
    assert infos[good.id].status == "done" and infos[good.id].metrics["test"]["auc"] == 0.95
    assert infos[broken.name].status == "corrupt" and "JSON" in infos[broken.name].message
    with pytest.raises(RunError, match="corrupt"):
        store.load(broken.name)


def test_run_left_running_by_dead_process_is_interrupted(run_root):
    store = RunStore()
    run = store.create(CONFIG)
    run.meta["pid"] = 2 ** 22 + 12345  # no such process
    run._write_meta()
    assert store.list()[0].status == "interrupted"


def test_rename_delete_and_bad_ids(run_root):
    store = RunStore()
    run, _ = saved_run(store)
    info = store.rename(run.id, "  my\x00 best/run  ")
    assert info.name == "my best run" and info.id == run.id
    assert len(sanitize_name("x" * 500)) == 80
    for bad in ("../etc", "20200101-000000-ABCDEF", ""):
        with pytest.raises(RunError):
            store.load(bad)
    store.delete(run.id)
    assert store.list() == []


def test_export_import_round_trip(run_root, tmp_path):
    store = RunStore()
    run, model = saved_run(store)
    data = store.export_zip(run.id)
    other = RunStore(tmp_path / "other")
    info = other.import_zip(data)
    assert info.id != "" and info.status == "done" and info.name == "first"
    images = torch.rand(4, 1, 16, 16)
    assert np.array_equal(embed(model, images), embed(other.load(info.id).model, images))


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_import_refuses_bad_archives(run_root):
    store = RunStore()
    run, _ = saved_run(store)
    with zipfile.ZipFile(io.BytesIO(store.export_zip(run.id))) as archive:
        good = {name: archive.read(name) for name in archive.namelist()}
    without_history = {k: v for k, v in good.items() if k != "history.jsonl"}
    cases = {
        "unexpected file": {**without_history, "../evil.py": b"x"},
        "no run.json": {k: v for k, v in good.items() if k != "run.json"},
        "not a valid run": {**good, "model.safetensors": b"\x80\x04pickle"},
        "at most": {**good, "a": b"", "b": b""},
    }
    for message, files in cases.items():
        with pytest.raises(RunError, match=message):
            store.import_zip(_zip(files))
    with pytest.raises(RunError, match="not a zip"):
        store.import_zip(b"plain bytes")
    assert len(store.list()) == 1
