"""Where trainings run: a *runner* makes the jobs the pages drive.

Two runners with the same face (``training_job``, ``sweep_job``, ``banner``):

- ``local`` (lab.runners.local): in this process, as always; the default.
- ``ray`` (lab.runners.ray_runner): each training a Ray actor on a cluster, chosen by
  ``METRIC_LAB_RAY_ADDRESS=auto|HOST:PORT``. Ray is an optional extra
  (``requirements-ray.txt``): without the variable nothing imports it.

A cluster that cannot be reached at start leaves the app on the local runner with a banner
saying why; one lost mid-class hands new trainings to the local runner (lab.runners.ray_runner).
"""

from __future__ import annotations

from typing import Protocol

from lab.core import settings
from lab.core.config import RunConfig
from lab.runners.local import LocalRunner

ADDRESS_VARIABLE = settings.RAY_ADDRESS_VARIABLE


class Runner(Protocol):
    kind: str

    def training_job(self, config: RunConfig, store=None, name: str | None = None,
                     start_paused: bool = False, resume_id: str | None = None,
                     time_budget: float | None = None):
        """A job the Train page drives (start, pause, resume, step, stop, heartbeat, reports);
        ``resume_id``: continue that interrupted run from its last checkpoint."""

    def sweep_job(self, configs: list[RunConfig], store=None):
        """Several configs (a lesson's variants, a Compare grid), each saved as its own run."""

    def banner(self) -> tuple[str, str] | None:
        """(level, sentence) to show on the Train page, or None."""


def select_runner(address: str | None = None) -> Runner:
    """The runner ``address`` (default: $METRIC_LAB_RAY_ADDRESS) asks for; local when it is
    empty, and local with a banner when Ray is missing or the cluster does not answer."""

    address = (address if address is not None else settings.ray_address())
    if not address:
        return LocalRunner()
    try:
        from lab.runners.ray_runner import RayRunner, RayUnavailableError
    except ImportError:
        return LocalRunner(f"{ADDRESS_VARIABLE}={address} asks for a Ray cluster, but Ray is "
                           "not installed here (make install-ray): training runs on this "
                           "server.")
    try:
        return RayRunner.connect(address)
    except RayUnavailableError as error:
        return LocalRunner(f"Could not reach the Ray cluster at {address} ({error}), so "
                           "training runs on this server.")
