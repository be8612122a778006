"""A training saved as it goes: every epoch to the run store, or kept in memory when the disk
refuses."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from lab.core.config import RunConfig
from lab.learn.devices import pick_device
from lab.learn.memory import cpu_copy
from lab.learn.models import build_model
from lab.learn.runs import RunStore
from lab.learn.train import EpochReport, Trainer
from lab.measure import health

SAVE_FAILED = ("Could not save this run (disk full or read-only: {error}): it is kept in memory "
               "for this session")


class MemoryRun:
    """Stands in for a run folder when the run store cannot be written (disk full, read-only
    ``data/``): training goes on, its reports, weights and metrics stay in this object, and
    ``save_error`` says why nothing is on disk. Same writer methods as
    :class:`lab.learn.runs.Run`."""

    path = None

    def __init__(self, config: RunConfig, name: str | None, error: BaseException,
                 history: list[dict] | None = None, meta: dict | None = None):
        self.config = config
        self.id = f"memory-{id(self):x}"
        self.meta = {**(meta or {}), "id": self.id, "status": "running", "message": "",
                     "name": name or f"{config.loss} on {config.dataset} (not saved)"}
        self.history = list(history or [])
        self.metrics: dict = {}
        self.model: torch.nn.Module | None = None
        self.save_error = SAVE_FAILED.format(error=getattr(error, "strerror", None) or error)

    name = property(lambda self: self.meta["name"])
    status = property(lambda self: self.meta["status"])
    message = property(lambda self: self.meta["message"])

    def set_shape(self, in_channels: int, image_size, num_classes: int) -> None:
        self.meta.update(in_channels=in_channels, image_size=image_size, num_classes=num_classes)

    def set_status(self, status: str, message: str = "") -> None:
        self.meta.update(status=status, message=message)

    def append_history(self, record: dict) -> None:
        self.history.append(record)

    def save_model(self, model: torch.nn.Module) -> None:
        self.model = cpu_copy(model)  # not the trainer's: its weights stay on the device

    def save_probes(self, *args, **kwargs) -> None:
        pass  # the job keeps every report's probe embeddings itself

    def save_metrics(self, metrics: dict) -> None:
        self.metrics = metrics


def _to_memory(run, config: RunConfig, name: str | None, error: OSError) -> MemoryRun:
    """The store failed mid-run: keep going in memory; mark the folder if it still can be."""
    with contextlib.suppress(OSError):
        run.set_status("interrupted", "could not save the rest of this run: " + str(error))
    return MemoryRun(config, name, error, history=list(run.history), meta=dict(run.meta))


def warm_up(device: torch.device | None = None) -> float:
    """Pay the one-time costs of the first training before a user presses Run: the first
    optimiser imports ``torch._dynamo`` (3-7 s on a 2-core CPU) and the first convolution
    initialises oneDNN. Call it from a background thread; returns the seconds it took."""

    start = time.perf_counter()
    device = device or pick_device()
    model = build_model(RunConfig(network="cnn", extra={"width": 4}), 1, 8).to(device)
    # The fast path's optimiser (lab.learn.train_path): fused Adam where torch has the kernel.
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    optimizer = torch.optim.Adam(model.parameters(), **fused)
    images = torch.rand(4, 1, 8, 8, device=device).contiguous(memory_format=torch.channels_last)
    model(images).sum().backward()
    optimizer.step()
    return time.perf_counter() - start


def _add_health(trainer: Trainer, report: EpochReport) -> None:
    """The health monitor's statistics of this report (lab.measure.health), between epochs, from the
    embeddings the report already holds; the final evaluation gets the findings."""

    report.changes, trainer.pending_changes = trainer.pending_changes, {}
    report.health = health.epoch_statistics(
        trainer.config, report.probe_embeddings, trainer.probe_labels.numpy(),
        trainer.probe_is_test.numpy(), report.seen_embeddings, trainer.seen_labels.numpy())
    trainer.health_records.append(report.record())
    if report.metrics is not None:
        report.metrics["health"] = [f.to_dict() for f in
                                    health.diagnose(trainer.health_records, trainer.config)]


def train_run(config: RunConfig, store=None, faceset=None, name: str | None = None,
              on_report=None, on_start=None, **trainer_options):
    """Train and save into a RunStore: history, probes and weights at every epoch, metrics at
    the end. Returns (run, trainer). ``on_start(run, trainer)`` is called once the run folder
    exists (a background job keeps the trainer to stop it mid-epoch); ``on_report(report)`` is
    called after each report is saved; returning False from it stops training.

    When the store cannot be written (OSError: disk full, read-only folder) training carries on
    with a :class:`MemoryRun` instead, whose ``save_error`` says so."""

    store = store if store is not None else RunStore()
    trainer = Trainer(config, faceset, **trainer_options)
    try:
        run = store.create(config, name=name)
        run.set_shape(trainer.in_channels, trainer.image_size, trainer.num_classes)
    except OSError as error:
        run = MemoryRun(config, name, error)
        run.set_shape(trainer.in_channels, trainer.image_size, trainer.num_classes)
    if on_start is not None:
        on_start(run, trainer)
    probes: list[np.ndarray] = []
    seen: list[np.ndarray] = []
    epochs: list[float] = []
    if trainer.initial_probes is not None:
        probes.append(trainer.initial_probes)
        seen.append(trainer._seen_embeddings())
        epochs.append(0.0)

    def save(run, report) -> None:
        run.append_history(report.record())
        if report.probe_embeddings is not None:
            run.save_probes(probes, trainer.probe_labels.numpy(), trainer.probe_is_test.numpy(),
                            epochs, trainer.probe_indices.numpy(),
                            seen=None if any(x is None for x in seen) else
                            (seen, trainer.seen_labels.numpy(), trainer.seen_indices.numpy()))
        run.save_model(trainer.model)
        if report.metrics is not None:
            run.save_metrics(report.metrics)
        if report.status != "running":
            run.set_status(report.status, report.message)

    try:
        for report in trainer.fit():
            _add_health(trainer, report)
            if report.probe_embeddings is not None:
                probes.append(report.probe_embeddings)
                seen.append(report.seen_embeddings)
                epochs.append(float(report.epoch))
            try:
                save(run, report)
            except OSError as error:
                if isinstance(run, MemoryRun):
                    raise
                run = _to_memory(run, config, name, error)
                save(run, report)
            if on_report is not None and on_report(report) is False:
                trainer.stop()
    except BaseException as error:
        with contextlib.suppress(OSError):
            run.set_status("interrupted", f"training failed: {type(error).__name__}: {error}")
        raise
    return run, trainer
