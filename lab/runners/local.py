"""The local runner: today's trainings in this process (lab.learn.jobs), unchanged.

One background thread per training behind the process-wide fair queue
(:func:`lab.learn.jobs.shared_limiter`). Resuming an interrupted run trains its session in this
process too (lab.runners.driver), in the same queue.
"""

from __future__ import annotations

from lab.core.config import RunConfig
from lab.learn.jobs import SweepJob, TrainingJob
from lab.runners.driver import SessionJob


class LocalRunner:
    """Trainings on this server. ``notice``: why the app runs locally although a Ray cluster
    was asked for (shown as a banner), or "" when local is simply the choice."""

    kind = "local"

    def __init__(self, notice: str = ""):
        self.notice = notice

    def training_job(self, config: RunConfig, store=None, name: str | None = None,
                     start_paused: bool = False, resume_id: str | None = None,
                     time_budget: float | None = None) -> TrainingJob:
        if resume_id is not None:
            return SessionJob(config, store=store, name=name, start_paused=start_paused,
                              time_budget=time_budget, resume_id=resume_id)
        return TrainingJob(config, store=store, name=name, start_paused=start_paused,
                           time_budget=time_budget)

    def sweep_job(self, configs: list[RunConfig], store=None) -> SweepJob:
        return SweepJob(configs, store=store)

    def banner(self) -> tuple[str, str] | None:
        return ("warning", self.notice) if self.notice else None
