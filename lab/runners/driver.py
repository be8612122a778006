"""The app's side of a training that runs elsewhere: a TrainingJob whose epochs come from a
:class:`lab.runners.session.TrainingSession` reached through a *launcher* (a Ray actor, or the
same object in this process to resume a run locally).

The page cannot tell it from a local job: same statuses, same fair queue (its limiter), same
Pause / Step / Stop, same reports polled by the live view. What differs is who writes the run
store: the app does, from the reports (every epoch) and the checkpoints (every few epochs) the
worker sends back, so workers need no shared disk and a dead worker loses nothing that was
sent. A worker or node that dies mid-run leaves the run *interrupted* at its last checkpoint
with a sentence saying so; :func:`lab.runners.checkpoint.load_checkpoint` resumes it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Protocol

from lab.core.config import RunConfig
from lab.learn.jobs import TrainingJob
from lab.learn.runs import RunStore
from lab.learn.train import EpochReport
from lab.learn.training_run import MemoryRun, _to_memory
from lab.runners.checkpoint import (
    Checkpoint,
    load_checkpoint,
    model_state,
    rewind,
    save_checkpoint,
)
from lab.runners.session import TrainingSession


class WorkerLostError(RuntimeError):
    """The worker running a training (or the whole cluster) went away; the text says which,
    in words a teacher can act on."""


class SessionHandle(Protocol):
    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on the session and wait for its result; WorkerLostError when the worker
        is gone. A failure inside the training is raised as itself."""

    def cast(self, method: str) -> None:
        """Call ``method`` without waiting (stop, while ``next`` trains)."""

    def close(self) -> None:
        """Free the worker."""


class Launcher(Protocol):
    def launch(self, config: RunConfig, checkpoint: Checkpoint | None,
               time_budget: float | None = None) -> SessionHandle: ...


class InProcessHandle:
    """The session in this process: resuming a run when no cluster is there."""

    def __init__(self, config: RunConfig, checkpoint: Checkpoint | None,
                 time_budget: float | None = None):
        self.session = TrainingSession(config, checkpoint=checkpoint, time_budget=time_budget)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.session, method)(*args)

    def cast(self, method: str) -> None:
        getattr(self.session, method)()

    def close(self) -> None:
        pass


class InProcessLauncher:
    where = "this server"

    def launch(self, config: RunConfig, checkpoint: Checkpoint | None,
               time_budget: float | None = None) -> InProcessHandle:
        return InProcessHandle(config, checkpoint, time_budget)


class _StateDict:
    """Stands in for the network when saving weights that came back as tensors:
    ``Run.save_model`` only asks for ``state_dict()``."""

    def __init__(self, state: dict):
        self._state = state

    def state_dict(self) -> dict:
        return self._state


class _RemoteTrainer:
    """What TrainingJob reads from its trainer (the probe set) and ``stop``."""

    def __init__(self, handle: SessionHandle, info: dict):
        self._handle = handle
        self.probe_labels = info["probe_labels"]
        self.probe_is_test = info["probe_is_test"]
        self.seen_labels = info["seen_labels"]
        self.info = info

    def stop(self) -> None:
        self._handle.cast("stop")

    def change(self, changes: dict) -> None:
        self._handle.call("change", changes)


@dataclass
class SessionJob(TrainingJob):
    """A TrainingJob trained through ``launcher``; ``resume_id`` resumes that interrupted run
    (in its own folder, from its last checkpoint) instead of starting a new one."""

    launcher: Any = None
    resume_id: str | None = None
    where: str = ""  # where it trains, in words ("Ray node 10.0.0.5"), once it has started

    def __post_init__(self) -> None:
        super().__post_init__()
        self.launcher = self.launcher or InProcessLauncher()
        self._interruption: str | None = None
        self.checkpoint_epoch = 0
        self.node_id: str | None = None  # the Ray node it trains on

    def _apply_changes(self) -> None:
        """Settings changed while paused (lab.learn.changes) go to the session, which applies them
        to its trainer before the next epoch, as a local job does."""
        with self._lock:
            changes, self._changes = getattr(self, "_changes", {}), {}
        if changes and self._trainer is not None:
            self._trainer.change(changes)
            self.config = self.config.replace(**changes)

    def _work(self) -> None:
        super()._work()
        if self._interruption is not None:
            self.status, self.message = "interrupted", self._interruption

    def _train(self, train_run):
        store = self.store if self.store is not None else RunStore()
        run, checkpoint = None, None
        if self.resume_id is not None:
            run = store.load(self.resume_id)
            checkpoint = load_checkpoint(run)
            self.config = run.config
            self.checkpoint_epoch = checkpoint.epoch
        handle = None
        try:
            handle = self.launcher.launch(self.config, checkpoint, self.time_budget)
            return self._drive(handle, store, run, checkpoint)
        except WorkerLostError as lost:
            self._interrupt(lost)
            raise
        finally:
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()

    def _drive(self, handle: SessionHandle, store, run, checkpoint: Checkpoint | None):
        info = handle.call("describe")
        self.node_id = info.get("node_id")
        self.where = (f"Ray node {info['node_ip']}" if info.get("node_ip")
                      else getattr(self.launcher, "where", ""))
        if run is None:
            try:
                run = store.create(self.config, name=self.name)
            except OSError as error:
                run = MemoryRun(self.config, self.name, error)
        else:
            rewind(run, checkpoint.epoch)
            with self._lock:
                self.reports[:] = _reports_of(run.history, EpochReport)
            run.meta.update(pid=os.getpid(), host=socket.gethostname())
            run.set_status("running", f"resumed from epoch {checkpoint.epoch}")
        run.set_shape(info["in_channels"], info["image_size"], info["num_classes"])
        self._run = run
        self._on_start(run, _RemoteTrainer(handle, info))
        probes, seen, epochs = self._probe_lists(run, info)

        def save(run, report, state) -> None:
            run.append_history(report.record())
            if report.probe_embeddings is not None:
                run.save_probes(probes, info["probe_labels"].numpy(),
                                info["probe_is_test"].numpy(), epochs,
                                info["probe_indices"].numpy(),
                                seen=None if any(x is None for x in seen) else
                                (seen, info["seen_labels"].numpy(),
                                 info["seen_indices"].numpy()))
            if state is not None:
                run.save_model(_StateDict(model_state(state)))
                if run.path is not None:
                    save_checkpoint(run, state, report.epoch)
            if report.metrics is not None:
                run.save_metrics(report.metrics)
            if report.status != "running":
                run.set_status(report.status, report.message)

        while True:
            report, state = handle.call("next")
            if report.probe_embeddings is not None:
                probes.append(report.probe_embeddings)
                seen.append(report.seen_embeddings)
                epochs.append(float(report.epoch))
            try:
                save(run, report, state)
            except OSError as error:
                if isinstance(run, MemoryRun):
                    raise
                run = self._run = _to_memory(run, self.config, self.name, error)
                save(run, report, state)
            if state is not None:
                self.checkpoint_epoch = report.epoch
            if self._on_report(report) is False:
                self._trainer.stop()
            if report.status != "running":
                return run

    def _probe_lists(self, run, info: dict) -> tuple[list, list, list]:
        """The probe embeddings saved so far (a resumed run keeps its earlier epochs)."""
        saved = run.probes() if run.path is not None else {}
        if saved and info["first_epoch"] > 1:
            seen = (list(saved["seen_embeddings"].numpy()) if "seen_embeddings" in saved
                    else [None] * len(saved["epochs"]))
            return (list(saved["embeddings"].numpy()), seen,
                    [float(e) for e in saved["epochs"]])
        if info["initial_probes"] is None:
            return [], [], []
        return [info["initial_probes"]], [info["initial_seen"]], [0.0]

    def _interrupt(self, lost: WorkerLostError) -> None:
        """Mark the run interrupted at its last checkpoint, in words."""
        if self.checkpoint_epoch > 0:
            kept = (f"Its weights of epoch {self.checkpoint_epoch} (the last checkpoint) are "
                    "kept: select it in Saved runs and press Resume to train the rest.")
        else:
            kept = ("It stopped before its first checkpoint, so there is nothing to resume: "
                    "press Run to train it again.")
        self._interruption = f"{lost} {kept}"
        run = getattr(self, "_run", None)
        if run is not None:
            with contextlib.suppress(OSError):
                run.set_status("interrupted", self._interruption)


def _reports_of(history: list[dict], report_type) -> list:
    """A resumed run's earlier epochs as reports (no embeddings), for its loss curve."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(report_type)}
    reports = []
    for record in history:
        values = {k: (float("nan") if v is None else v) for k, v in record.items() if k in names}
        try:
            reports.append(report_type(**values, probe_embeddings=None))
        except TypeError:  # an old history line without some field: leave it out of the curve
            continue
    return reports
