"""Training in the background: one job per browser session, and a process-wide limit on how many
train at once.

A classroom server has 30 students pressing Train at the same moment. Each job waits for a slot
of the :class:`TrainingLimiter` (its place in the queue is shown), trains in its own thread
through :func:`lab.learn.training_run.train_run` (so every epoch is saved to the run store as it
comes), and hands its reports to the page that polls it. A page that stops polling (the browser tab
was closed) stops sending heartbeats; the job then gives up its place or its slot.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.core import settings
from lab.core.config import RunConfig
from lab.learn.batched import batch_problem, prefer_batched, train_runs_batched
from lab.learn.changes import apply_changes, check
from lab.learn.devices import pick_device
from lab.learn.memory import is_allocation_failure, release_device_memory
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run

# A job nobody has looked at for this long is abandoned. Generous: on a busy 2-core server a
# live page can miss its 1 s polls for over a minute (classroom load test, 10 sessions).
HEARTBEAT_TIMEOUT_S = 240.0
ACTIVE = ("queued", "loading", "running", "paused")


def default_slots(device: str | None = None) -> int:
    """How many trainings may run at once on ``device`` ("cuda", "mps", "cpu"; None = the
    device "auto" picks): METRIC_LAB_MAX_TRAININGS, else 1 on a GPU (one model saturates it)
    and one per four CPU cores on a CPU (each training uses several)."""
    configured = settings.max_trainings()
    if configured:
        return configured
    if device is None:
        device = _device_type("auto")
    if device in ("cuda", "mps"):
        return 1
    return max(1, (os.cpu_count() or 1) // 4)


def _device_type(preference: str) -> str:
    """The device type a config's ``device`` field trains on here (see
    lab.learn.devices.pick_device)."""

    return pick_device(preference).type


class TrainingLimiter:
    """A fair queue in front of N training slots, shared by every session of the process."""

    def __init__(self, slots: int | None = None, device: str | None = None):
        self.slots = slots if slots is not None else default_slots(device)
        self._condition = threading.Condition()
        self._waiting: list[int] = []
        self._running: set[int] = set()

    def acquire(self, ticket: int, cancelled: threading.Event) -> bool:
        """Wait for a slot in arrival order; False when ``cancelled`` was set while waiting."""
        with self._condition:
            self._waiting.append(ticket)
            try:
                while not (self._waiting[0] == ticket and len(self._running) < self.slots):
                    if cancelled.is_set():
                        return False
                    self._condition.wait(timeout=0.2)
                self._running.add(ticket)
                return True
            finally:
                self._waiting.remove(ticket)
                self._condition.notify_all()

    def release(self, ticket: int) -> None:
        with self._condition:
            self._running.discard(ticket)
            self._condition.notify_all()

    def position(self, ticket: int) -> int | None:
        """1 for the next in line; None when not waiting."""
        with self._condition:
            return self._waiting.index(ticket) + 1 if ticket in self._waiting else None

    @property
    def running(self) -> int:
        with self._condition:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)


_LIMITERS: dict[str, TrainingLimiter] = {}
_LIMITER_LOCK = threading.Lock()
_TICKETS = itertools.count(1)


def shared_limiter(device: str | None = None) -> TrainingLimiter:
    """The process-wide limiter of one device type (created on first use; None = the device
    "auto" picks). One per device: a lesson pinned to the CPU queues with the other CPU
    trainings and never takes the GPU's single slot (nor waits behind it)."""
    device = device or _device_type("auto")
    with _LIMITER_LOCK:
        if device not in _LIMITERS:
            _LIMITERS[device] = TrainingLimiter(device=device)
        return _LIMITERS[device]


@dataclass
class TrainingJob:
    """One training, run in a background thread. Pages read ``reports`` and ``status``.

    status: queued -> loading -> running <-> paused -> done | stopped | diverged | failed |
    cancelled. ``pause`` takes effect at the next report (one epoch), ``stop`` keeps what was
    learnt (the run is saved as stopped), ``step`` trains one more epoch then pauses.
    """

    config: RunConfig
    store: object | None = None  # a lab.learn.runs.RunStore; None = the default store
    name: str | None = None
    limiter: TrainingLimiter | None = None
    start_paused: bool = False
    time_budget: float | None = None  # seconds of training (a class challenge sets one)
    clock: Callable[[], float] = time.monotonic
    status: str = "queued"
    message: str = ""
    run_id: str | None = None
    reports: list = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    saved: bool = True  # False: the run store could not be written, the run lives in memory
    retry_note: str = ""  # set when the run was retried on a smaller batch
    # the finished run (a lab.learn.runs.Run, or lab.learn.training_run.MemoryRun)
    run: object | None = None

    def __post_init__(self) -> None:
        self.ticket = next(_TICKETS)
        self.limiter = self.limiter or shared_limiter(_device_type(self.config.device))
        self._cancel = threading.Event()
        self._resume = threading.Event()
        self._step_pending = self.start_paused
        self._lock = threading.Lock()
        self._last_seen = self.clock()
        self._thread: threading.Thread | None = None
        self._trainer = None  # set while training runs, so stop() can reach it; dropped after
        self._kept: dict = {}  # what the pages need of the trainer, on the CPU (numpy)
        self._reason: str | None = None  # why it was stopped, when not by the user

    # -- control, called from the page ------------------------------------------------------
    def start(self) -> TrainingJob:
        self._resume.set()
        self._thread = threading.Thread(target=self._work, name=f"train-{self.ticket}",
                                        daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._step_pending = False
        self._resume.set()

    def step(self) -> None:
        """Train one more epoch, then pause again."""
        self._step_pending = True
        self._resume.set()

    def stop(self, reason: str | None = None) -> None:
        """Stop now, also in the middle of an epoch (or leave the queue); what was learnt stays."""
        self._reason = reason or self._reason
        self._cancel.set()
        self._resume.set()
        trainer = self._trainer
        if trainer is not None:
            trainer.stop()

    def heartbeat(self) -> None:
        """Called by the page each time it polls: the session is still there."""
        self._last_seen = self.clock()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.active

    # -- what the page reads ------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    @property
    def paused_trainer(self):
        """The trainer while the job is paused (its weights then hold still), else None: what
        the miner inspector reads (lab.views.inspector)."""
        trainer = self._trainer
        return trainer if self.status == "paused" else None

    @property
    def queue_position(self) -> int | None:
        return self.limiter.position(self.ticket) if self.status == "queued" else None

    @property
    def probe_labels(self):
        """Identity of each probe image (numpy), once training has started."""
        return self._kept.get("probe_labels")

    @property
    def probe_is_test(self):
        return self._kept.get("probe_is_test")

    @property
    def seen_labels(self):
        """Identity of the training images kept for the maps (numpy), once training started."""
        return self._kept.get("seen_labels")

    @property
    def latest(self):
        with self._lock:
            return self.reports[-1] if self.reports else None

    def snapshot(self) -> list:
        with self._lock:
            return list(self.reports)

    # -- the worker thread ----------------------------------------------------------------------
    def _abandoned(self) -> bool:
        return self.clock() - self._last_seen > HEARTBEAT_TIMEOUT_S

    def _work(self) -> None:
        watchdog = threading.Thread(target=self._watch, daemon=True)
        watchdog.start()
        if not self.limiter.acquire(self.ticket, self._cancel):
            self.status = "cancelled"
            self.message = self._reason or "cancelled while waiting for a free slot"
            return
        try:
            self.status = "loading"
            self.started_at = self.clock()
            run = self._train(train_run)
            self.run = run
            self.saved = run.path is not None
            self.run_id = run.id if self.saved else None
            final = self.latest
            self.status = final.status if final is not None and final.status != "running" else (
                "stopped" if self._cancel.is_set() else "done")
            self.message = final.message if final is not None else ""
            if self._reason:
                self.message = f"{self._reason}. {self.message}".strip()
            if self.retry_note:
                self.message = f"{self.retry_note} {self.message}".strip()
            if not self.saved:
                self.message = f"{run.save_error}. {self.message}".strip()
        except Exception as error:  # noqa: BLE001 - any failure becomes a message on the page
            self.status = "failed"
            self.message = _plain_failure(error, during_batch=bool(self._kept))
        finally:
            self._trainer = None  # the model, optimiser and images go with it (lab.learn.memory)
            release_device_memory()
            self.finished_at = self.clock()
            self.limiter.release(self.ticket)

    def _train(self, train_run):
        """train_run, retried once with half the identities per batch when the device ran out
        of memory on a batch (the failed attempt's run folder is removed).

        Only a batch is retried: a failure before training started (the images, the model or
        the probes did not fit on the device) does not depend on P, so it is reported as is.
        The failed trainer is dropped, and its memory given back, before the retry uploads
        the data again (otherwise the device would hold both copies)."""
        try:
            run, _ = train_run(self.config, store=self.store, name=self.name,
                               on_report=self._on_report, on_start=self._on_start,
                               time_budget=self.time_budget)
            return run
        except Exception as error:
            smaller = max(2, self.config.p_identities // 2)
            started = self._trainer is not None
            self._trainer = None
            if (not is_allocation_failure(error) or not started
                    or smaller == self.config.p_identities or self._cancel.is_set()):
                raise
        # outside the except block: the exception and the frames holding the trainer are gone
        release_device_memory()
        self._forget_failed_attempt()
        self._kept = {}
        self.retry_note = (f"The GPU ran out of memory with P = {self.config.p_identities} "
                           f"identities per batch, so this run was retried with P = {smaller}.")
        self.config = self.config.replace(p_identities=smaller)
        with self._lock:
            self.reports.clear()
        run, _ = train_run(self.config, store=self.store, name=self.name,
                           on_report=self._on_report, on_start=self._on_start,
                           time_budget=self.time_budget)
        return run

    def _forget_failed_attempt(self) -> None:
        if self.run_id is None or not str(self.run_id)[:1].isdigit():
            return
        with contextlib.suppress(OSError, ValueError):
            (self.store if self.store is not None else RunStore()).delete(self.run_id)
        self.run_id = None

    def _on_start(self, run, trainer) -> None:
        self.run_id = run.id
        self._kept = {"probe_labels": trainer.probe_labels.numpy(),
                      "probe_is_test": trainer.probe_is_test.numpy(),
                      "seen_labels": trainer.seen_labels.numpy()}
        self._trainer = trainer
        self.status = "running"
        if self._cancel.is_set():
            trainer.stop()

    def _on_report(self, report) -> bool:
        with self._lock:
            self.reports.append(report)
        if report.status != "running":
            return True
        if self._step_pending:
            self._step_pending = False
            self._resume.clear()
        if not self._resume.is_set() and not self._cancel.is_set():
            self.status = "paused"
            self._resume.wait()
            self._apply_changes()
            self.status = "running"
        return not self._cancel.is_set()

    def change(self, **settings) -> dict:
        """While paused: new learning rate and/or margin for the rest of the run
        (lab.learn.changes); applied when it goes on, recorded in the history. ValueError when out
        of range."""

        if self.status != "paused":
            raise ValueError("settings can only change while the run is paused")
        changes = check(settings, self.config)
        with self._lock:
            self._changes = {**getattr(self, "_changes", {}), **changes}
        return changes

    def _apply_changes(self) -> None:
        with self._lock:
            changes, self._changes = getattr(self, "_changes", {}), {}
        if changes and self._trainer is not None:
            apply_changes(self._trainer, changes)
            self.config = self.config.replace(**changes)

    def _watch(self) -> None:
        """Stop a job whose page went away, so its slot and thread are freed."""
        while self.status in ACTIVE:
            if self._abandoned():
                self.stop("The browser session went away, so training stopped")
                return
            time.sleep(1.0)



def _plain_failure(error: Exception, during_batch: bool = True) -> str:
    """A sentence a student can act on, not a traceback. ``during_batch``: training had
    started (the data was on the device), so a smaller batch is what can help."""
    text = str(error) or type(error).__name__
    if is_allocation_failure(error) and not during_batch:
        return ("The GPU ran out of memory while loading the training images and the model. "
                "Try a smaller image size, fewer identities or a smaller network.")
    if is_allocation_failure(error):
        return ("The GPU ran out of memory. Try a smaller batch (fewer identities P or images K), "
                "a smaller image size or a smaller network.")
    return f"Training could not run: {text}"


@dataclass
class SweepJob:
    """Several configs trained one after another ("as the loss and margin are varied").

    Each config is an ordinary TrainingJob, so it queues fairly with other users' trainings and
    is saved as its own run, tagged with the sweep's name in ``config.extra["sweep"]``.

    ``batched``: configs that differ only in the loss's parameters can instead be trained
    together in one slot (lab.learn.batched: same runs, one stacked model). None decides by the
    device: together on CUDA, where it pays, one after another on CPU, where it measured
    slower (`python -m lab bench sweep`, benchmarks/README.md).
    """

    configs: list[RunConfig]
    store: object | None = None
    limiter: TrainingLimiter | None = None
    jobs: list[TrainingJob] = field(default_factory=list)
    batched: bool | None = None
    message: str = ""

    def __post_init__(self) -> None:
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._together: bool | None = None  # decided when the sweep starts
        self._finished = 0  # runs finished on the batched path
        self._trainer = None  # the BatchedTrainer while it trains (dropped at the end)
        self._started = False  # an attempt reached training (the data fitted on the device)
        self.retry_note = ""
        self._last_seen = time.monotonic()

    def start(self) -> SweepJob:
        self._thread = threading.Thread(target=self._work, name="sweep", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _name(config: RunConfig) -> str:
        variant = config.extra.get("lesson_variant")  # a lesson's variants may share a loss
        head = f"{config.extra.get('sweep', 'sweep')} {variant}:" if variant else \
            config.extra.get("sweep", "sweep")
        return f"{head} {config.loss} m={config.margin:g}"

    def _use_batched(self) -> bool:
        if len(self.configs) < 2 or batch_problem(self.configs) is not None:
            return False
        if self.batched is not None:
            return self.batched

        return prefer_batched(pick_device(self.configs[0].device))

    def _work(self) -> None:
        self._together = self._use_batched()
        if self._together:
            self._work_batched()
            return
        for config in self.configs:
            if self._cancel.is_set():
                return
            job = TrainingJob(config, store=self.store, limiter=self.limiter,
                              name=self._name(config))
            self.jobs.append(job)
            job.start().wait()

    def _work_batched(self) -> None:
        """All configs in one training slot, each saved as its own run (lab.learn.batched).

        Like a single job: retried once at half P when a batch did not fit on the device,
        and the stacked trainer (K models, the images) is dropped when the sweep ends."""
        limiter = self.limiter or shared_limiter(_device_type(self.configs[0].device))
        ticket = next(_TICKETS)
        if not limiter.acquire(ticket, self._cancel):
            return
        try:
            self._train_batched()
        except Exception as error:  # noqa: BLE001 - a failure becomes a message on the page
            self.message = f"{self.retry_note} {_plain_failure(error, self._started)}".strip()
        finally:
            self._trainer = None
            release_device_memory()
            limiter.release(ticket)

    def _train_batched(self) -> None:
        started: list = []  # the runs of the attempt that reached training

        def on_start(runs, trainer) -> None:
            started[:] = runs
            self._started = True
            self._trainer = trainer
            if self._cancel.is_set():
                trainer.stop()

        def on_report(k: int, report) -> bool:
            if report.status != "running":
                self._finished += 1
            if time.monotonic() - self._last_seen > HEARTBEAT_TIMEOUT_S:
                self.message = "The browser session went away, so the sweep stopped"
                return False
            return not self._cancel.is_set()

        def attempt() -> None:
            train_runs_batched(self.configs, store=self.store,
                               names=[self._name(c) for c in self.configs],
                               on_report=on_report, on_start=on_start)

        try:
            attempt()
            return
        except Exception as error:
            p = self.configs[0].p_identities
            smaller = max(2, p // 2)
            self._trainer = None
            if (not is_allocation_failure(error) or not self._started or smaller == p
                    or self._cancel.is_set()):
                raise
        release_device_memory()
        store = self.store
        if store is None:
            store = RunStore()
        for run in started:
            if run.path is not None:
                with contextlib.suppress(OSError, ValueError):
                    store.delete(run.id)
        self.retry_note = (f"The GPU ran out of memory with P = {p} identities per batch, so "
                           f"the sweep was retried with P = {smaller}.")
        self.configs = [c.replace(p_identities=smaller) for c in self.configs]
        self._finished = 0
        attempt()
        if not self.message:
            self.message = self.retry_note

    def heartbeat(self) -> None:
        self._last_seen = time.monotonic()
        for job in self.jobs:
            job.heartbeat()

    def stop(self) -> None:
        self._cancel.set()
        if self._trainer is not None:
            self._trainer.stop()
        for job in self.jobs:
            job.stop()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.active

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def together(self) -> bool | None:
        """True when the sweep trains its configs together (None until it has started)."""
        return self._together

    @property
    def done(self) -> int:
        if self._together:
            return self._finished
        return sum(1 for job in self.jobs if not job.active)
