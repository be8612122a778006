"""Faults a classroom server meets: a killed process mid-training, a full or read-only disk, a
diverging run, a GPU out of memory. Each must end politely: nothing complete is lost, the user
reads what happened and what to change, and the app keeps serving."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lab.core import limits
from lab.core.config import RunConfig
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = RunConfig(dataset="synthetic", num_identities=20, images_per_identity=4, image_size=16,
                 network="mlp", embedding_dim=8, val_identities=2, test_identities=4, epochs=2,
                 p_identities=8, k_images=2)


def finished_job(config: RunConfig, store: RunStore, timeout: float = 120) -> TrainingJob:
    job = TrainingJob(config, store=store, limiter=TrainingLimiter(1)).start()
    assert job.wait(timeout), f"job still {job.status} after {timeout} s"
    return job


def train_page_with(job: TrainingJob):
    """The Train page in AppTest, showing this (finished) job as the session's own."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/train.py")
    at.session_state["training_job"] = job
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at) -> str:
    return "\n".join([e.value for e in at.error] + [w.value for w in at.warning]
                     + [i.value for i in at.info] + [m.value for m in at.markdown]
                     + [s.value for s in at.subheader])


# ---------------------------------------------------------------- killed mid-training


@pytest.mark.slow
def test_process_killed_mid_training_leaves_an_interrupted_run_with_its_checkpoint(run_root):
    store = RunStore(run_root)
    complete = finished_job(TINY, store)
    assert complete.status == "done"
    complete_files = {p.name: p.read_bytes() for p in (run_root / complete.run_id).iterdir()}
    command = [sys.executable, "-m", "lab", "train", "--dataset", "synthetic",
               "--num-identities", "40", "--images-per-identity", "10", "--image-size", "32",
               "--network", "cnn", "--epochs", str(limits.MAX_EPOCHS), "--runs", str(run_root),
               "--quiet", "--name", "killed"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    folder = None
    try:
        while time.monotonic() < deadline and process.poll() is None:
            folders = [p for p in run_root.iterdir() if p.name != complete.run_id
                       and not p.name.startswith(".")]
            folder = folders[0] if folders else None
            history = folder / "history.jsonl" if folder else None
            if (history and history.exists() and history.read_text().strip()
                    and (folder / "model.safetensors").exists()):
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert folder is not None, "no epoch saved in time"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
    assert process.returncode == -signal.SIGKILL

    restarted = RunStore(run_root)  # a fresh server process reads the same folder
    infos = {info.id: info for info in restarted.list()}
    assert set(infos) == {complete.run_id, folder.name}
    assert infos[complete.run_id].status == "done"
    assert {p.name: p.read_bytes() for p in (run_root / complete.run_id).iterdir()} \
        == complete_files  # nothing else lost or touched
    killed = infos[folder.name]
    assert killed.status == "interrupted" and "stopped before it finished" in killed.message
    assert killed.name == "killed" and 1 <= killed.epochs_done < limits.MAX_EPOCHS
    model = restarted.load(folder.name).load_model()  # the last good checkpoint
    assert all(torch.isfinite(p).all() for p in model.parameters())
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, RunConfig().embedding_dim) and torch.isfinite(out).all()


# ---------------------------------------------------------------- disk full, read-only


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_training_goes_on_in_memory_and_the_page_says_so(run_root, monkeypatch):
    import lab.learn.runs

    monkeypatch.setattr(lab.learn.runs, "_atomic_write", _disk_full)
    monkeypatch.setattr(lab.learn.runs, "save_file", _disk_full)
    store = RunStore(run_root)
    job = finished_job(TINY, store)
    assert job.status == "done", job.message
    assert not job.saved and job.run_id is None
    assert "Could not save this run (disk full or read-only" in job.message
    assert "No space left on device" in job.message and "kept in memory" in job.message
    assert len(job.reports) == TINY.epochs and job.run.model is not None
    assert job.run.metrics.get("test", {}).get("eer") is not None
    assert store.list() == [] and list(run_root.iterdir()) == []  # no half-made folder
    monkeypatch.undo()
    at = train_page_with(job)
    text = shown(at)
    assert "Could not save this run" in text and "Free some disk space" in text
    assert "Verification of people never seen in training" in text  # the result is still shown


def test_disk_fills_up_mid_run_keeps_what_was_saved(run_root, monkeypatch):
    import lab.learn.runs

    real = lab.learn.runs._atomic_write
    calls = {"n": 0}

    def fills_up(path, data):
        calls["n"] += 1
        if path.name == "probes.safetensors" and calls["n"] > 4:
            _disk_full()
        real(path, data)

    monkeypatch.setattr(lab.learn.runs, "_atomic_write", fills_up)
    store = RunStore(run_root)
    job = finished_job(TINY.replace(epochs=3), store)
    assert job.status == "done" and not job.saved, job.message
    assert len(job.reports) == 3
    monkeypatch.undo()
    [info] = store.list()  # the folder holds what was written before the disk filled
    assert info.status == "interrupted" and "could not save the rest" in info.message
    assert store.load(info.id).config == TINY.replace(epochs=3)


def test_read_only_data_folder_lists_nothing_and_trains_in_memory(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")  # even root cannot mkdir here
    store = RunStore(blocker / "runs")
    assert store.list() == []
    job = finished_job(TINY.replace(epochs=1), store)
    assert job.status == "done" and not job.saved
    assert "Could not save this run" in job.message


# ---------------------------------------------------------------- divergence


def test_diverging_run_stops_with_a_plain_reason_and_the_page_says_what_to_change(run_root):
    config = TINY.replace(loss="naive", normalize=False, energy="sqeuclidean", lr=10.0,
                          optimizer="sgd", network="linear", epochs=3, steps_per_epoch=40)
    job = finished_job(config, RunStore(run_root))
    assert job.status == "diverged", (job.status, job.message)
    assert "the loss became" in job.message and "contrastive loss" in job.message
    [info] = RunStore(run_root).list()
    assert info.status == "diverged"
    model = RunStore(run_root).load(info.id).load_model()  # last good weights, finite
    assert all(torch.isfinite(p).all() for p in model.parameters())
    text = shown(train_page_with(job))
    assert "The run diverged." in text and "use the contrastive loss" in text


def test_too_high_learning_rate_message_names_a_smaller_one():
    from lab.learn.train import Trainer

    trainer = Trainer.__new__(Trainer)
    trainer.config = TINY.replace(lr=10.0)
    message = trainer._divergence_message(2, 5, "NaN")
    assert "learning rate 10" in message and "try 1" in message


# ---------------------------------------------------------------- GPU out of memory


def _oom_when_batch_over(limit: int | None, monkeypatch) -> list[int]:
    from lab.learn.models import EmbeddingNet

    real = EmbeddingNet.__call__
    sizes: list[int] = []

    def forward(self, images, *args, **kwargs):
        if self.training:
            sizes.append(len(images))
            if limit is None or len(images) > limit:
                raise torch.cuda.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total)")
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(EmbeddingNet, "__call__", forward)
    return sizes


def test_gpu_out_of_memory_is_retried_on_half_the_batch(run_root, monkeypatch):
    sizes = _oom_when_batch_over(TINY.p_identities // 2 * TINY.k_images, monkeypatch)
    store = RunStore(run_root)
    job = finished_job(TINY, store)
    assert job.status == "done", job.message
    assert job.config.p_identities == TINY.p_identities // 2
    assert "ran out of memory" in job.message and f"P = {TINY.p_identities // 2}" in job.message
    assert max(sizes) == TINY.p_identities * TINY.k_images  # the first try was the full batch
    [info] = store.list()  # the failed attempt's folder is gone, the retry is saved
    assert info.status == "done" and info.config.p_identities == TINY.p_identities // 2


def test_gpu_out_of_memory_twice_is_reported_and_the_server_keeps_serving(run_root,
                                                                          monkeypatch):
    _oom_when_batch_over(None, monkeypatch)
    limiter = TrainingLimiter(1)
    store = RunStore(run_root)
    job = TrainingJob(TINY, store=store, limiter=limiter).start()
    assert job.wait(120)
    assert job.status == "failed"
    assert job.message.startswith("The GPU ran out of memory. Try a smaller batch")
    assert "Traceback" not in job.message
    assert limiter.running == 0 and limiter.waiting == 0  # the slot was given back
    assert [i.status for i in store.list()] == ["interrupted"]
    monkeypatch.undo()
    after = TrainingJob(TINY.replace(epochs=1), store=store, limiter=limiter).start()
    assert after.wait(120) and after.status == "done"  # the next student trains as usual


def test_no_full_garbage_collection_after_every_rerun():
    """A class of live pages reruns the script every second per student: Streamlit's post-run
    gc.collect() (~0.25 s with torch loaded) must stay off (see benchmarks/README, classroom)."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml")
                           .read_text())
    assert config["runner"]["postScriptGC"] is False
