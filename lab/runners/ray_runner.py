"""The Ray runner: each training is a Ray actor on a cluster; the app keeps the queue.

Selected by ``METRIC_LAB_RAY_ADDRESS`` (``auto`` or ``HOST:PORT`` of the head's GCS, port 6379
by default); only then is this module, and Ray, imported.

- **Placement**: one actor per training with explicit resources, ``num_cpus`` =
  ``METRIC_LAB_RAY_CPUS`` (default 1) and ``num_gpus`` = ``METRIC_LAB_RAY_GPUS`` (default 0; a
  fraction such as 0.25 lets four students share one GPU: Ray sets ``CUDA_VISIBLE_DEVICES`` for
  the actor and ``pick_device`` then finds it). Ray chooses the node.
- **Fairness**: the app's own :class:`lab.learn.jobs.TrainingLimiter` stays in front, sized to what
  the cluster holds (its CPUs, or GPUs, divided by one training's share;
  ``METRIC_LAB_MAX_TRAININGS`` overrides it), so a full cluster shows every student their place in
  one fair queue instead of leaving actors pending inside Ray where nobody can see the order.
- **Nothing lost**: the actor sends every report and, every few epochs, a checkpoint; the app
  writes the run store (lab.runners.driver). A dead actor or node -> the run is *interrupted* at
  its last checkpoint. A head that stops answering -> every run in flight is interrupted and
  the runner hands new trainings to the local runner, with a banner saying so.
- **Data**: synthetic faces and digits are made on the worker; any other dataset is loaded by
  the app once and sent through Ray's object store, so workers need no data folder.

Every address Ray uses in the tests is the loopback one (see ``_keep_loopback``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import threading
import time
from typing import Any

import ray
import ray._private.auto_init_hook

from lab.core import settings
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.jobs import SweepJob, TrainingLimiter
from lab.runners.driver import InProcessHandle, SessionJob, WorkerLostError
from lab.runners.local import LocalRunner
from lab.runners.session import SELF_MADE_DATASETS, TrainingSession, checkpoint_every

CONNECT_TIMEOUT_S = 20.0
POLL_S = 2.0  # the head is checked this often, and a waiting ray.get looks up this often
# The head unreachable this long: the cluster is lost. Well below Ray's
# gcs_rpc_server_reconnect_timeout_s (60 s by default): after that the raylet of the app's own
# node gives up on the head and exits, and a driver whose raylet exits is ended by Ray (the
# whole app process). The app disconnects from Ray before that (``_disconnect``).
HEAD_SILENT_S = 10.0
DRAIN_S = 3 * POLL_S  # how long a disconnect waits for the calls in flight to give up
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ACTOR_CLASS = None  # the Ray actor class, made on first use
# A Ray call after the cluster is gone must fail, not quietly start a one-machine Ray inside the
# app (Ray's "auto connect"): the runner then hands trainings to the local runner instead.
ray._private.auto_init_hook.enable_auto_connect = False


class RayUnavailableError(RuntimeError):
    """No Ray cluster could be reached at the address given (the text says why)."""


def _keep_loopback(host: str) -> None:
    """Keep a cluster on 127.0.0.1 on 127.0.0.1.

    Ray replaces a loopback bootstrap address by the machine's network address before it
    connects (``services.resolve_ip_for_localhost``), unless multi-node clusters are switched
    off, its mode on macOS and Windows; then every address it guesses is the loopback one. A
    cluster of nodes all started with ``--node-ip-address=127.0.0.1`` (the tests, the load test)
    needs exactly that; a real cluster's private address is left alone."""
    if host in LOOPBACK:
        import ray._private.ray_constants as constants

        constants.ENABLE_RAY_CLUSTER = False  # read at each call, so this holds after import


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(f"{address!r} is not HOST:PORT or auto")
    return host.strip("[]"), int(port)


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_address(address: str) -> str:
    """``auto`` -> the running cluster's HOST:PORT (RAY_ADDRESS, or the one this machine last
    started); HOST:PORT stays as it is."""
    if address != "auto":
        _split(address)
        return address
    from ray._private.services import get_ray_address_from_environment

    found = get_ray_address_from_environment("auto", None)
    if not found:
        raise RayUnavailableError("address=auto, but no Ray cluster is running on this machine and "
                             "RAY_ADDRESS is not set")
    return found


def _resources_per_training() -> tuple[float, float]:
    return settings.ray_resources()


class _TrainingActor:
    """The actor: a TrainingSession made on its first call (so a bad config or dataset comes
    back as that error, not as a dead actor)."""

    def __init__(self, config: RunConfig, faceset, checkpoint, every: int,
                 time_budget: float | None):
        self._args = (config, faceset, checkpoint, every, time_budget)
        self._session: TrainingSession | None = None

    def call(self, method: str, *args: Any) -> Any:
        if self._session is None:
            config, faceset, checkpoint, every, time_budget = self._args
            self._session = TrainingSession(config, faceset, checkpoint, every, time_budget)
        return getattr(self._session, method)(*args)

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()


class RayHandle:
    """One actor, called like a local session (lab.runners.driver.SessionHandle).

    Every call goes through ``runner.ray_call()``: once the cluster is lost no call starts, and
    the disconnect waits for those in flight (Ray's client is not safe to shut down while
    another thread is inside ``ray.get``: that thread may never return, or fail with an
    AttributeError instead of a Ray error)."""

    def __init__(self, runner: RayRunner, actor):
        self.runner, self.actor = runner, actor

    def call(self, method: str, *args: Any) -> Any:
        from ray.exceptions import GetTimeoutError, RayError, RayTaskError

        with self.runner.ray_call():
            try:
                ref = self.actor.call.remote(method, *args)
            except (Exception, SystemExit) as error:  # noqa: BLE001 - the cluster or the worker
                raise self.runner.lost_worker(error) from None
            while True:
                if self.runner.lost:  # the head watcher (or another run) found the head gone
                    raise self.runner.lost_cluster()
                try:
                    return ray.get(ref, timeout=POLL_S)
                except GetTimeoutError:
                    continue
                except RayTaskError as error:
                    raise error.as_instanceof_cause() from None
                except SystemExit:  # what ray.get raises once the driver lost its raylet or head
                    raise self.runner.lost_cluster() from None
                except RayError as error:  # RayActorError: the actor's worker or node died
                    raise self.runner.lost_worker(error) from None

    def cast(self, method: str) -> None:
        with contextlib.suppress(Exception, SystemExit), self.runner.ray_call():
            getattr(self.actor, method).remote()

    def close(self) -> None:
        with contextlib.suppress(Exception, SystemExit), self.runner.ray_call():
            ray.kill(self.actor)


class RaySweepJob(SweepJob):
    """A sweep (a lesson's variants, a Compare grid) fanned out: every config is its own actor,
    queued together in the fair queue, so a cluster with room trains them side by side."""

    runner: Any = None

    def _work(self) -> None:
        self._together = False
        for config in self.configs:
            self.jobs.append(self.runner.training_job(config, store=self.store,
                                                      name=self._name(config)))
        for job in self.jobs:
            job.start()
        for job in self.jobs:
            while not job.wait(timeout=1.0):
                if self._cancel.is_set():
                    job.stop()


class RayRunner:
    """Trainings as Ray actors on the cluster at ``address``; see the module docstring."""

    kind = "ray"

    def __init__(self, address: str, fallback=None):
        self.address = address
        self.host, self.port = _split(address)
        self.cpus, self.gpus = _resources_per_training()
        self.limiter = TrainingLimiter(1)
        self.fallback = fallback or LocalRunner()
        self.lost_at: float | None = None
        self.lost_reason = ""
        self._datasets: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self._calls = 0  # Ray calls in flight (ray_call)
        self._calls_changed = threading.Condition()
        self.refresh_slots()
        threading.Thread(target=self._watch_head, name="ray-head-watch", daemon=True).start()

    # -- connecting --------------------------------------------------------------------------
    @classmethod
    def connect(cls, address: str, timeout: float = CONNECT_TIMEOUT_S) -> RayRunner:
        """Connect to the cluster, or raise RayUnavailableError within about ``timeout`` s."""
        resolved = resolve_address(address)
        host, port = _split(resolved)
        _keep_loopback(host)
        if not _reachable(host, port, timeout=min(5.0, timeout)):
            raise RayUnavailableError(f"nothing answers at {resolved}")
        failure: list[BaseException] = []

        def init() -> None:
            try:
                ray.init(address=resolved, namespace="metric-lab", log_to_driver=False,
                         ignore_reinit_error=True, logging_level="WARNING")
            except BaseException as error:  # noqa: BLE001 - reported below
                failure.append(error)

        thread = threading.Thread(target=init, name="ray-connect", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise RayUnavailableError(f"{resolved} did not answer as a Ray cluster within "
                                 f"{timeout:.0f} s")
        if failure:
            raise RayUnavailableError(f"{type(failure[0]).__name__}: {failure[0]}")
        return cls(resolved)

    def head_reachable(self) -> bool:
        return _reachable(self.host, self.port)

    def _watch_head(self) -> None:
        """Every POLL_S, is the head's port still answering? Silent for HEAD_SILENT_S: the
        cluster is lost. One watcher for the runner, whatever the runs are doing: a run whose
        actor still trains (its worker node outlives the head for a while) is interrupted all
        the same, and the app disconnects before its own raylet gives up (see HEAD_SILENT_S)."""
        silent_since = None
        while not self.lost:
            if self.head_reachable():
                silent_since = None
            else:
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since > HEAD_SILENT_S:
                    self.lost_cluster()
                    return
            time.sleep(POLL_S)

    @contextlib.contextmanager
    def ray_call(self):
        """Around every use of Ray by a run: refused once the cluster is lost (the run is
        interrupted with the cluster's sentence), and counted so the disconnect can wait."""
        with self._calls_changed:
            refused = self.lost
            if not refused:
                self._calls += 1
        if refused:
            raise self.lost_cluster()
        try:
            yield
        finally:
            with self._calls_changed:
                self._calls -= 1
                self._calls_changed.notify_all()

    def _disconnect(self) -> None:
        """Leave the lost cluster once the calls in flight have given up (each looks at
        ``lost`` every POLL_S), so Ray's driver stops retrying a head that is gone."""
        with self._calls_changed:
            self._calls_changed.wait_for(lambda: self._calls == 0, timeout=DRAIN_S)
        with contextlib.suppress(Exception, SystemExit):
            ray.shutdown()

    # -- what the app asks -------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    @property
    def where(self) -> str:
        """Where a run trains when its worker does not say (a Ray actor names its node)."""
        return "this server" if self.lost else ""

    def refresh_slots(self) -> int:
        """Trainings at once: METRIC_LAB_MAX_TRAININGS, else what the cluster holds now."""
        configured = settings.max_trainings()
        if configured:
            slots = configured
        else:
            resources = ray.cluster_resources()
            slots = int(resources.get("CPU", 0) // self.cpus)
            if self.gpus:
                slots = min(slots, int(resources.get("GPU", 0) // self.gpus))
            slots = max(1, slots)
        self.limiter.slots = slots
        return slots

    def describe(self) -> str:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        training = sum(1 for n in nodes if n.get("Resources", {}).get("CPU", 0) > 0)
        cpus = ray.cluster_resources().get("CPU", 0)
        # a head started with --num-cpus=0 (as the README does) is a node that trains nothing
        shape = (f"{len(nodes)} nodes" if training == len(nodes)
                 else f"{training} of its {len(nodes)} nodes train")
        return (f"Trainings run on the Ray cluster at {self.address}: {shape}, "
                f"{cpus:g} CPUs, {self.limiter.slots} trainings at once "
                f"({self.cpus:g} CPU{'' if self.cpus == 1 else 's'}"
                + (f" and {self.gpus:g} GPU" if self.gpus else "") + " each).")

    def banner(self) -> tuple[str, str]:
        if self.lost:
            when = time.strftime("%H:%M", time.localtime(self.lost_at))
            return ("warning", f"The Ray cluster at {self.address} was lost at {when} "
                    f"({self.lost_reason}). Runs that were training on it are marked "
                    "interrupted and can be resumed; new runs train on this server.")
        try:
            return ("info", self.describe())
        except Exception as error:  # noqa: BLE001 - a banner never breaks the page
            return ("warning", f"The Ray cluster at {self.address} does not answer: {error}")

    def training_job(self, config: RunConfig, store=None, name: str | None = None,
                     start_paused: bool = False, resume_id: str | None = None,
                     time_budget: float | None = None):
        if self.lost:
            return self.fallback.training_job(config, store=store, name=name,
                                              start_paused=start_paused, resume_id=resume_id,
                                              time_budget=time_budget)
        with contextlib.suppress(Exception):
            self.refresh_slots()
        return SessionJob(config, store=store, name=name, limiter=self.limiter,
                          start_paused=start_paused, time_budget=time_budget, launcher=self,
                          resume_id=resume_id)

    def sweep_job(self, configs: list[RunConfig], store=None):
        if self.lost:
            return self.fallback.sweep_job(configs, store=store)
        sweep = RaySweepJob(configs, store=store, limiter=self.limiter)
        sweep.runner = self
        return sweep

    # -- launching actors ----------------------------------------------------------------------
    def launch(self, config: RunConfig, checkpoint, time_budget: float | None = None):
        """An actor for this run; a run that was still queued when the cluster was lost trains
        on this server instead (its student pressed Run and waited: nothing to interrupt)."""
        if self.lost:
            return InProcessHandle(config, checkpoint, time_budget)
        with self.ray_call():
            return self._launch(config, checkpoint, time_budget)

    def _launch(self, config: RunConfig, checkpoint, time_budget: float | None) -> RayHandle:
        global _ACTOR_CLASS
        if _ACTOR_CLASS is None:
            # Two calls at once: stop() must reach the actor while next() trains. No restarts:
            # a restarted actor would start the run over; the app resumes it from its
            # checkpoint instead, and says so.
            _ACTOR_CLASS = ray.remote(max_concurrency=2, max_restarts=0)(_TrainingActor)
        actor = _ACTOR_CLASS.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(
            config, self._dataset(config), checkpoint, checkpoint_every(), time_budget)
        return RayHandle(self, actor)

    def _dataset(self, config: RunConfig):
        """None for a dataset the worker makes itself; else a reference to the images in the
        object store (loaded once per dataset, the last few kept)."""
        if config.dataset in SELF_MADE_DATASETS:
            return None

        key = json.dumps([config.dataset, config.data_dir, config.image_size, config.data_seed,
                          config.extra or {}], sort_keys=True, default=str)
        with self._lock:
            if key in self._datasets:
                self._datasets.move_to_end(key)
                return self._datasets[key]
        ref = ray.put(load_for_config(config))
        with self._lock:
            self._datasets[key] = ref
            while len(self._datasets) > 4:
                self._datasets.popitem(last=False)
        return ref

    # -- losing things -------------------------------------------------------------------------
    def lost_worker(self, error: BaseException) -> WorkerLostError:
        """A dead actor: its node went down, or the whole cluster did."""
        if self.lost or not self.head_reachable():
            return self.lost_cluster()
        return WorkerLostError("The Ray worker training this run stopped (its node went down or "
                           "its process was killed).")

    def lost_cluster(self) -> WorkerLostError:
        """The head no longer answers: from now on new trainings run on this server."""
        with self._lock:
            first = self.lost_at is None
            if first:
                self.lost_at = time.time()
                self.lost_reason = "its head stopped answering"
        if first:
            threading.Thread(target=self._disconnect, name="ray-disconnect", daemon=True).start()
        return WorkerLostError(f"The Ray cluster at {self.address} stopped answering, so this run "
                           "could not finish there.")
