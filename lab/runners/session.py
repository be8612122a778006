"""One training, driven one report at a time: what runs on a worker (a Ray actor wraps it).

The app's job (``lab.runners.driver.SessionJob``) asks for the next report, saves it, and asks
again only when the student has not paused: between two calls the worker is idle, exactly as a
local training waits inside its ``on_report`` callback. ``stop()`` may arrive while ``next()``
is training (the actor takes two calls at once), and ends the epoch at the next step.

Nothing here touches a disk: the dataset arrives as an object (or is generated here when it
needs no files), and the reports, the probe embeddings and every few epochs the weights go
back to the app, which writes the run store.
"""

from __future__ import annotations

import os
import socket
import sys

from lab.core import settings
from lab.core.config import RunConfig
from lab.learn.changes import apply_changes
from lab.learn.train import Trainer
from lab.learn.training_run import _add_health
from lab.runners.checkpoint import restore, training_state

# Datasets a worker can make itself (generated, or shipped inside a package): the app sends
# every other dataset's images, so worker nodes need no copy of data/ and no shared disk.
SELF_MADE_DATASETS = ("synthetic", "digits")
DEFAULT_CHECKPOINT_EVERY = 5


def checkpoint_every() -> int:
    """Epochs between two checkpoints sent back: METRIC_LAB_CHECKPOINT_EVERY, else 5.

    Why not every epoch: the default nets are small (a few hundred kB), but a ResNet on a GPU
    worker is tens of MB per epoch over the network for 30 students; 5 epochs is at most a few
    seconds of a classroom run lost when a node dies."""
    return settings.checkpoint_every() or DEFAULT_CHECKPOINT_EVERY


class TrainingSession:
    """A :class:`lab.learn.train.Trainer` behind three calls: ``describe``, ``next``, ``stop``."""

    def __init__(self, config: RunConfig, faceset=None, checkpoint=None,
                 every: int | None = None, time_budget: float | None = None):
        self.every = every or checkpoint_every()
        self.trainer = Trainer(config, faceset, time_budget=time_budget)
        if checkpoint is not None:
            restore(self.trainer, checkpoint)
        self._fit = None

    def describe(self) -> dict:
        """What the app needs before the first report: the input shape, the probe set, and
        where this training runs (shown to the student, and checked by the tests)."""
        trainer = self.trainer
        return {
            "in_channels": trainer.in_channels, "image_size": trainer.image_size,
            "num_classes": trainer.num_classes,
            "probe_labels": trainer.probe_labels, "probe_is_test": trainer.probe_is_test,
            "probe_indices": trainer.probe_indices,
            "seen_labels": trainer.seen_labels, "seen_indices": trainer.seen_indices,
            "initial_probes": trainer.initial_probes,
            "initial_seen": trainer._seen_embeddings(),
            "first_epoch": trainer.first_epoch,
            "host": socket.gethostname(), "pid": os.getpid(),
            "node_ip": _node_ip(), "node_id": _node_id(),
        }

    def next(self):
        """Train up to the next report; returns (report, checkpoint state or None).

        The checkpoint comes with every ``every``-th epoch and with the last report."""

        if self._fit is None:
            self._fit = self.trainer.fit()
        report = next(self._fit)
        _add_health(self.trainer, report)  # the health monitor's statistics, as train_run does
        due = report.status != "running" or (report.epoch > 0 and report.epoch % self.every == 0)
        if not due:
            return report, None

        return report, training_state(self.trainer)

    def stop(self) -> None:
        self.trainer.stop()

    def change(self, changes: dict) -> None:
        """New learning rate / margin for the rest of the run (lab.learn.changes; asked while
        paused, so between two ``next`` calls)."""

        apply_changes(self.trainer, changes)


def _node_ip() -> str | None:
    """The Ray node's address when this runs in a Ray worker (never imports Ray itself)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.util.get_node_ip_address()


def _node_id() -> str | None:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()
