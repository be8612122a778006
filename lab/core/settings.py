"""Where Metric Lab keeps things and what the environment may change: one place for both.

Every path the app writes to and every ``METRIC_LAB_*`` variable it reads is defined here, so a
deployment (a class server, two app replicas on a shared run store, a Ray cluster) is configured
by reading one file. Values are read when asked for, never cached at import: a test or a server
that sets a variable before calling gets it.

| variable | meaning | default |
|---|---|---|
| METRIC_LAB_DATA | base folder for caches (and runs, challenges) | <repo>/data |
| METRIC_LAB_RUNS | the run store | <data>/runs |
| METRIC_LAB_CHALLENGES | class challenges | beside the run store |
| METRIC_LAB_ATT | an AT&T/ORL folder (s1 ... s40) | looked for, see data |
| METRIC_LAB_OFFLINE | 1: never download a dataset | downloads allowed |
| METRIC_LAB_MAX_TRAININGS | trainings at once on this server / cluster | from the hardware |
| METRIC_LAB_TORCH_THREADS | torch threads per training | from the cores |
| METRIC_LAB_CHECKPOINT_EVERY | epochs between two checkpoints of a Ray run | 5 |
| METRIC_LAB_RAY_ADDRESS | ``auto`` or HOST:PORT: train on a Ray cluster | empty: in process |
| METRIC_LAB_RAY_CPUS / _GPUS | resources of one training on the cluster | 1 CPU, 0 GPU |
| METRIC_LAB_TEACHER_KEY | the key that opens the teacher's controls | generated per server |
| METRIC_LAB_CHROMIUM | the browser the dashboard benchmark drives | /usr/bin/chromium |
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # lab/core/settings.py
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # the course's shared datasets, when present


def _text(name: str) -> str:
    return os.environ.get(name, "").strip()


def _positive_int(name: str) -> int | None:
    """``$name`` as an int >= 1 (a smaller number counts as 1), or None when unset."""
    value = _text(name)
    return max(1, int(value)) if value else None


def data_root() -> Path:
    """Base folder for runs and caches: $METRIC_LAB_DATA, else data/ under the repository."""
    value = _text("METRIC_LAB_DATA")
    return Path(value).expanduser() if value else REPO_ROOT / "data"


def cache_dir(kind: str) -> Path:
    """Where computed or downloaded data of one kind is cached ("sklearn", "torchvision",
    "pipeline", ...): data/cache/<kind>."""
    return data_root() / "cache" / kind


def runs_root() -> Path:
    """The run store: $METRIC_LAB_RUNS, else data/runs under the repository."""
    value = _text("METRIC_LAB_RUNS")
    return Path(value).expanduser() if value else REPO_ROOT / "data" / "runs"


def challenges_root(runs: Path | None = None) -> Path:
    """Class challenges: $METRIC_LAB_CHALLENGES, else ``challenges`` beside the run store."""
    value = _text("METRIC_LAB_CHALLENGES")
    return Path(value).expanduser() if value else (runs or runs_root()).parent / "challenges"


def att_override() -> Path | None:
    """$METRIC_LAB_ATT, the AT&T folder a user pointed at, or None."""
    value = _text("METRIC_LAB_ATT")
    return Path(value).expanduser() if value else None


def shared_att() -> Path:
    """The AT&T copy in the course's shared data folder (benchmarks default to it)."""
    return SHARED_DATA / "att_faces"


def downloads_allowed() -> bool:
    """False when ``METRIC_LAB_OFFLINE`` is set to anything but 0/false/empty."""
    return _text("METRIC_LAB_OFFLINE").lower() in ("", "0", "false", "no")


def max_trainings() -> int | None:
    """$METRIC_LAB_MAX_TRAININGS, or None: the runner decides from the hardware."""
    return _positive_int("METRIC_LAB_MAX_TRAININGS")


def torch_threads() -> int | None:
    """$METRIC_LAB_TORCH_THREADS, or None: the training path decides from the cores."""
    return _positive_int("METRIC_LAB_TORCH_THREADS")


def checkpoint_every() -> int | None:
    """$METRIC_LAB_CHECKPOINT_EVERY, or None: the Ray session's default."""
    return _positive_int("METRIC_LAB_CHECKPOINT_EVERY")


RAY_ADDRESS_VARIABLE = "METRIC_LAB_RAY_ADDRESS"


def ray_address() -> str:
    """$METRIC_LAB_RAY_ADDRESS (``auto`` or HOST:PORT), or "" to train in this process."""
    return _text(RAY_ADDRESS_VARIABLE)


def ray_resources() -> tuple[float, float]:
    """CPUs and GPU fraction of one training on the cluster ($METRIC_LAB_RAY_CPUS / _GPUS)."""
    cpus = float(_text("METRIC_LAB_RAY_CPUS") or 1)
    gpus = float(_text("METRIC_LAB_RAY_GPUS") or 0)
    if cpus <= 0 or gpus < 0:
        raise ValueError("METRIC_LAB_RAY_CPUS must be > 0 and METRIC_LAB_RAY_GPUS >= 0")
    return cpus, gpus


def teacher_key() -> str:
    """$METRIC_LAB_TEACHER_KEY, or "" (the challenge module then generates one per server)."""
    return _text("METRIC_LAB_TEACHER_KEY")


def chromium() -> str:
    """The browser the dashboard benchmark drives: $METRIC_LAB_CHROMIUM, else Debian's."""
    return _text("METRIC_LAB_CHROMIUM") or "/usr/bin/chromium"
