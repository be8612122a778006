"""The runner interface without Ray: the local runner is today's jobs, nothing imports Ray
unless asked, and the session driver (what a Ray actor runs) trains, checkpoints, is
interrupted and resumes, all in this process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.core.config import RunConfig
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.runs import RunStore
from lab.runners import select_runner
from lab.runners.checkpoint import CHECKPOINT_FILE, load_checkpoint
from lab.runners.driver import InProcessHandle, SessionJob, WorkerLostError
from lab.runners.local import LocalRunner

ROOT = str(Path(__file__).resolve().parents[1])
TINY = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=4, test_identities=3,
                 val_identities=2, p_identities=5, k_images=4, steps_per_epoch=3, seed=1)


def test_importing_the_runners_does_not_import_ray():
    code = ("import sys, os; os.environ.pop('METRIC_LAB_RAY_ADDRESS', None)\n"
            "import ui, lab.runners.local, lab.runners.driver\n"
            "from lab.runners import select_runner\n"
            "print(select_runner().kind, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["local", "False"]


@pytest.mark.slow
def test_without_the_variable_the_train_page_never_imports_ray():
    # A fresh interpreter: this test process may have imported Ray for the slow tests.
    code = ("import sys, os; os.environ.pop('METRIC_LAB_RAY_ADDRESS', None)\n"
            "from streamlit.testing.v1 import AppTest\n"
            "from lab.runners import select_runner\n"
            "runner = select_runner()\n"
            "at = AppTest.from_file('app_pages/train.py', default_timeout=60).run()\n"
            "assert not at.exception, at.exception\n"
            "print(runner.kind, runner.banner(), 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["local", "None", "False"]


def test_local_runner_makes_todays_jobs():
    job = LocalRunner().training_job(TINY)
    assert type(job) is TrainingJob


def test_an_address_without_a_cluster_falls_back_to_local_with_a_banner(monkeypatch):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = select_runner(f"127.0.0.1:{port}")
    assert runner.kind == "local"
    level, text = runner.banner()
    assert level == "warning" and f"127.0.0.1:{port}" in text and "this server" in text


def _figures(run) -> tuple[list, dict]:
    return [round(r["loss"], 6) for r in run.history], run.metrics["test"]


@pytest.mark.slow
def test_session_job_matches_the_local_job_for_the_same_seed(run_root):
    store = RunStore(run_root)
    # One after the other: two trainings at once in one process share torch's global state.
    local = TrainingJob(TINY, store=store, limiter=TrainingLimiter(1)).start()
    assert local.wait(120)
    session = SessionJob(TINY, store=store, limiter=TrainingLimiter(1)).start()
    assert session.wait(120)
    assert local.status == session.status == "done", (local.message, session.message)
    a, b = store.load(local.run_id), store.load(session.run_id)
    assert _figures(a) == _figures(b)
    assert load_checkpoint(b).epoch == TINY.epochs  # the last report brings a checkpoint
    assert a.probes()["embeddings"].shape == b.probes()["embeddings"].shape
    assert [r.epoch for r in session.snapshot()] == [1, 2, 3, 4]


class _DiesAfter(InProcessHandle):
    """A worker that dies during its ``n``-th ``next`` call."""

    def __init__(self, config, checkpoint, n, time_budget=None):
        super().__init__(config, checkpoint, time_budget)
        self.calls, self.n = 0, n

    def call(self, method, *args):
        if method == "next":
            self.calls += 1
            if self.calls == self.n:
                raise WorkerLostError("The Ray worker training this run stopped.")
        return super().call(method, *args)


class _Launcher:
    def __init__(self, n):
        self.n = n

    def launch(self, config, checkpoint, time_budget=None):
        return _DiesAfter(config, checkpoint, self.n, time_budget)


@pytest.mark.slow
def test_a_dead_worker_leaves_an_interrupted_run_that_resumes(run_root, monkeypatch):
    monkeypatch.setenv("METRIC_LAB_CHECKPOINT_EVERY", "2")
    store = RunStore(run_root)
    job = SessionJob(TINY, store=store, limiter=TrainingLimiter(1), launcher=_Launcher(4))
    assert job.start().wait(120)
    assert job.status == "interrupted"
    assert "epoch 2" in job.message and "Resume" in job.message
    run = store.load(job.run_id)
    assert run.status == "interrupted" and "epoch 2" in run.message
    assert (run.path / CHECKPOINT_FILE).exists()
    assert [r["epoch"] for r in run.history] == [1, 2, 3]  # epoch 3 reported, not checkpointed
    model = run.load_model()  # the checkpoint's weights load
    assert sum(p.numel() for p in model.parameters()) > 0

    resumed = LocalRunner().training_job(TINY, store=store, resume_id=job.run_id)
    assert resumed.start().wait(120)
    assert resumed.status == "done", resumed.message
    assert resumed.run_id == job.run_id
    run = store.load(job.run_id)
    assert run.status == "done"
    assert [r["epoch"] for r in run.history] == [1, 2, 3, 4]  # epoch 3 retrained from 2
    assert list(run.probes()["epochs"].numpy()) == [0, 1, 2, 3, 4]
    assert "test" in run.metrics


def _interrupted_and_resumed(store, config, keep_optimizer: bool = True):
    """A run whose worker dies in epoch 3 (checkpoint at 2), resumed here; its history."""
    cut = SessionJob(config, store=store, limiter=TrainingLimiter(1), launcher=_Launcher(3))
    assert cut.start().wait(120) and cut.status == "interrupted", cut.message
    if not keep_optimizer:  # a checkpoint of the weights alone, as before the optimiser's state
        from safetensors.torch import load_file, save_file

        path = store.load(cut.run_id).path / CHECKPOINT_FILE
        kept = {k: v for k, v in load_file(str(path)).items()
                if not k.startswith(("optimizer.", "rng."))}
        save_file(kept, str(path), metadata={"epoch": "2"})
    resumed = LocalRunner().training_job(config, store=store, resume_id=cut.run_id).start()
    assert resumed.wait(120) and resumed.status == "done", resumed.message
    return store.load(cut.run_id).history


@pytest.mark.slow
def test_a_resumed_run_replays_the_uninterrupted_one(run_root, monkeypatch):
    """The checkpoint carries the optimiser's state and the random streams besides the weights,
    so epochs 3-4 of a run resumed from epoch 2 are those of an uninterrupted run (same
    machine, same threads: bit for bit). Augmentation on, so the augmentation's random stream
    matters too. Without the optimiser's state (fresh Adam moments) the losses differ: the
    replay is the checkpoint's doing."""
    monkeypatch.setenv("METRIC_LAB_CHECKPOINT_EVERY", "2")
    store = RunStore(run_root)
    config = TINY.replace(augment=True)
    whole = SessionJob(config, store=store, limiter=TrainingLimiter(1)).start()
    assert whole.wait(120) and whole.status == "done"
    a = store.load(whole.run_id).history
    b = _interrupted_and_resumed(store, config)
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert [r["loss"] for r in b] == [r["loss"] for r in a]
    assert [r["mean_genuine"] for r in b] == [r["mean_genuine"] for r in a]
    fresh = _interrupted_and_resumed(store, config, keep_optimizer=False)
    assert [r["loss"] for r in fresh[:2]] == [r["loss"] for r in a[:2]]
    assert fresh[2]["loss"] != a[2]["loss"]  # fresh Adam moments, fresh random streams


@pytest.mark.slow
def test_pause_step_stop_drive_a_session_job(run_root):
    store = RunStore(run_root)
    job = SessionJob(TINY.replace(epochs=30), store=store, limiter=TrainingLimiter(1),
                     start_paused=True).start()
    _wait_for(lambda: job.status == "paused")
    assert [r.epoch for r in job.snapshot()] == [1]  # Step at start: one epoch, then paused
    job.change(lr=3e-4)  # a new learning rate while paused reaches the session's trainer
    job.step()
    _wait_for(lambda: len(job.snapshot()) == 2 and job.status == "paused")
    assert job.snapshot()[1].changes == {"lr": 3e-4} and job.config.lr == 3e-4
    job.stop()
    assert job.wait(60)
    assert job.status == "stopped"
    run = store.load(job.run_id)
    assert run.status == "stopped" and len(run.history) == 3  # the stop's own report
    assert load_checkpoint(run).epoch == run.history[-1]["epoch"]


def _wait_for(condition, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_queue_line_says_how_many_trainings_run_at_once_and_where():
    from types import SimpleNamespace

    from ui.live import _slots_in_words

    local = LocalRunner().training_job(TINY, store=None)
    local.limiter = TrainingLimiter(2)
    assert _slots_in_words(local) == " (2 trainings at once on this server)"
    on_ray = SessionJob(TINY, limiter=TrainingLimiter(1), launcher=SimpleNamespace(kind="ray"))
    assert _slots_in_words(on_ray) == " (1 training at once on the Ray cluster)"
