"""Benchmarks -> JSON: ``python -m lab bench NAME ...``.

A registry: each bench is a function ``run(args) -> dict`` plus a function that adds its options;
``register`` adds one (other modules add theirs the same way). Every result records the machine,
the device, the torch version and the date, so results can be compared run to run.

``accuracy``: identity-fold cross-validation of one loss. For each of K folds the test identities
(about N/K of them) are never seen in training; the network trains for at most
``--time-budget`` seconds, then test EER, AUC, TAR@FAR, rank-1 and d′ are measured, with the
threshold chosen on validation identities. The raw-pixel baseline is evaluated on the same folds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab.config import RunConfig
from lab.limits import MAX_EPOCHS


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


def machine() -> dict:
    """Where a figure was measured."""
    from lab.train import describe_device, pick_device

    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": describe_device(pick_device()),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, int | float) and v is not None]
    return float(np.mean(values)) if values else None


def _summarise(folds: list[dict]) -> dict:
    keys = ("eer", "auc", "rank1", "dprime", "test_accuracy")
    summary = {key: _mean([f.get(key) for f in folds]) for key in keys}
    summary["eer_std"] = float(np.std([f["eer"] for f in folds])) if folds else None
    fars = folds[0].get("tar_at_far", {}) if folds else {}
    summary["tar_at_far"] = {far: _mean([f["tar_at_far"].get(far) for f in folds]) for far in fars}
    return summary


# -- accuracy -------------------------------------------------------------------------------
def _accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    from lab.cli import add_config_options

    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="seconds of training per fold (default 60)")
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--fold-only", type=int, default=None,
                        help="run one fold only (quick checks)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also evaluate raw pixels on the same folds")
    add_config_options(parser)


@register("accuracy", "identity-fold test EER/AUC/TAR/rank-1 of one loss under a time budget",
          _accuracy_arguments)
def accuracy(args: argparse.Namespace) -> dict:
    from lab.cli import config_from_args
    from lab.data import load_for_config
    from lab.train import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    base = config_from_args(args, RunConfig(dataset="att", epochs=MAX_EPOCHS))
    faceset = load_for_config(base)
    folds = range(base.folds) if args.fold_only is None else [args.fold_only]
    results, baseline = [], []
    for fold in folds:
        config = base.replace(fold=fold)
        started = time.perf_counter()
        trainer = Trainer(config, faceset, time_budget=args.time_budget, probes=False)
        reports = list(trainer.fit())
        last = reports[-1] if reports else None
        test = (trainer.metrics or {}).get("test", {})
        row = {"fold": fold, **{k: test.get(k) for k in (
            "eer", "auc", "tar_at_far", "rank1", "dprime", "test_accuracy", "threshold",
            "genuine_pairs", "impostor_pairs")},
            "train_seconds": last.elapsed if last else None, "epochs": last.epoch if last else 0,
            "steps": last.step if last else 0, "status": trainer.status,
            "message": trainer.message, "wall_seconds": time.perf_counter() - started,
            "test_identities": sorted(int(i) for i in trainer.split.test)}
        if args.baseline:
            pixels = trainer.baselines(("pixels",))["pixels"]
            row["baseline_pixels"] = {k: pixels.get(k) for k in ("eer", "auc", "rank1",
                                                                  "tar_at_far")}
            baseline.append(row["baseline_pixels"])
        results.append(row)
        print(f"fold {fold}: EER {row['eer']:.4f} AUC {row['auc']:.4f} rank-1 {row['rank1']} "
              f"({row['epochs']} epochs, {row['train_seconds']:.1f} s)"
              + (f"; pixels EER {row['baseline_pixels']['eer']:.4f}" if args.baseline else ""),
              flush=True)
    report = {"bench": "accuracy", "dataset": base.dataset, "loss": base.loss,
              "time_budget": args.time_budget, "folds": results, "mean": _summarise(results),
              "baseline_pixels_mean": _summarise(baseline) if baseline else None,
              "config": base.to_dict(), "machine": machine()}
    return report


def add_parser(subparsers) -> None:
    from lab import verify as _v  # the verify bench lives with its module (issue 6)

    register("verify", _v.BENCH_HELP, _v.bench_arguments)(_v.bench_run)
    from lab import classroom as _c  # the classroom load test (issue 8)

    register("classroom", _c.BENCH_HELP, _c.bench_arguments)(_c.bench_run)
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
        if not out:
            print(text)
        return 0
    return run
