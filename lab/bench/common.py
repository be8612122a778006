"""The benchmark registry and what every benchmark shares: the machine, timings, JSON out.

See lab.bench for the list of benchmarks; each registers itself with :func:`register`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab.core import settings
from lab.learn.devices import describe_device, pick_device, training_threads


@dataclass(frozen=True)
class Bench:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]


BENCHES: dict[str, Bench] = {}


def register(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator: ``@register("speed", "...", add_speed_arguments) def speed(args): ...``."""
    def decorate(function: Callable[[argparse.Namespace], dict]):
        BENCHES[name] = Bench(name, help, add_arguments, function)
        return function
    return decorate


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (a busy machine makes every figure slower)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict:
    """Versions of the libraries whose speed is measured (None when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "numpy", "umap-learn", "numba", "scikit-learn", "plotly", "streamlit"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict:
    """Where a figure was measured: CPU model, cores, RAM, device, versions, load, date."""

    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "ram_gb": _ram_gb(),
            "torch_threads": torch.get_num_threads(), "training_threads": training_threads(),
            "torch": torch.__version__, "device": describe_device(pick_device()),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "versions": versions(), "load_average": load_average(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def median(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


class Clock:
    """Wall and process-CPU seconds of a block: ``with Clock() as c: ...; c.wall, c.cpu``.

    On a shared machine the wall time includes waiting for other processes; the CPU time of this
    process does not (but counts both cores when two threads compute)."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def timings(runs: list[dict[str, float]]) -> dict[str, float | None]:
    """Per-key median over repeats."""
    keys = list(dict.fromkeys(k for run in runs for k in run))
    return {k: median(run.get(k) for run in runs) for k in keys}


def _common_arguments(parser: argparse.ArgumentParser, repeats: int = 3) -> None:
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one repeat: checks the bench works (no real figures)")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"timed repeats; figures are medians (default {repeats})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")


def _start(args: argparse.Namespace, name: str) -> dict:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
        # lab.learn.devices.training_threads
        os.environ["METRIC_LAB_TORCH_THREADS"] = str(args.threads)
    repeats = 1 if getattr(args, "quick", False) else getattr(args, "repeats", None)
    return {"bench": name, "quick": bool(getattr(args, "quick", False)),
            "repeats": repeats, "machine": machine()}


def _finish(result: dict) -> dict:
    result["machine"]["load_average_after"] = load_average()
    return result


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, int | float) and v is not None]
    return float(np.mean(values)) if values else None


def _python_subprocess(script: str, timeout: float = 900, env: dict | None = None) -> dict:
    """Run ``script`` in a fresh Python (cold imports); its last stdout line is JSON."""
    root = settings.REPO_ROOT
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = str(root) + os.pathsep + environment.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environment, cwd=root, timeout=timeout)
    if done.returncode != 0:
        return {"error": done.stderr[-800:]}
    values = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that write JSON")
    benches = parser.add_subparsers(dest="bench", required=True)
    for bench in BENCHES.values():
        sub = benches.add_parser(bench.name, help=bench.help)
        bench.add_arguments(sub)
        sub.set_defaults(func=_runner(bench))


def _runner(bench: Bench):
    def run(args: argparse.Namespace) -> int:
        result = bench.run(args)
        text = json.dumps(result, indent=1, default=str)
        out = getattr(args, "json_out", None)
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(text + "\n")
            print(f"wrote {out}")
        mean = result.get("mean") or {}
        if mean.get("eer") is not None:
            line = f"mean test EER {mean['eer']:.4f} (± {mean['eer_std']:.4f})"
            pixels = result.get("baseline_pixels_mean") or {}
            if pixels.get("eer") is not None:
                line += f"; raw pixels {pixels['eer']:.4f}"
            print(line)
        if result.get("summary"):
            print(result["summary"])
        if not out:
            print(text)
        return 0
    return run
