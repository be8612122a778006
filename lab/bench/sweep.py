"""`python -m lab bench sweep`: K margins of the contrastive loss, one after another vs
trained together."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lab.bench.common import Clock, _common_arguments, _finish, _start, register, timings
from lab.bench.dashboard import _quick_config
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.batched import train_runs_batched
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run

# -- sweep ----------------------------------------------------------------------------------
SWEEP_MARGINS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser, repeats=1)
    parser.add_argument("--k", type=int, default=8, help="margins trained (default 8)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--network", default="cnn")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


@register("sweep", "K margins of the contrastive loss: one after another vs trained together",
          _sweep_arguments)
def sweep(args: argparse.Namespace) -> dict:
    """Seconds to train and save K runs that differ only in the margin: sequentially (what the
    app's sweep did) and together (lab.learn.batched), plus one run alone for the ratio. Both paths
    save every run with its history, probes, weights and metrics."""

    result = _start(args, "sweep")
    k = 2 if args.quick else args.k
    base = (_quick_config(epochs=1) if args.quick else
            RunConfig(epochs=args.epochs, network=args.network)).replace(device=args.device)
    margins = [SWEEP_MARGINS[i % len(SWEEP_MARGINS)] * (1 + i // len(SWEEP_MARGINS))
               for i in range(k)]
    configs = [base.replace(margin=m, extra={**base.extra, "sweep": "bench"}) for m in margins]
    faceset = load_for_config(base)
    repeats = 1 if args.quick else max(1, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        train_run(configs[0], store=RunStore(Path(root) / "warm"), faceset=faceset)  # warm-up
        for r in range(repeats):
            row: dict = {}
            with Clock() as c:
                train_run(configs[0], store=RunStore(Path(root) / f"one-{r}"), faceset=faceset)
            row["one_wall_s"], row["one_cpu_s"] = c.wall, c.cpu
            eers = []
            with Clock() as c:
                for config in configs:
                    _, trainer = train_run(config, store=RunStore(Path(root) / f"seq-{r}"),
                                           faceset=faceset)
                    eers.append(trainer.metrics["test"]["eer"])
            row["sequential_wall_s"], row["sequential_cpu_s"] = c.wall, c.cpu
            with Clock() as c:
                _, batched = train_runs_batched(configs, store=RunStore(Path(root) / f"bat-{r}"),
                                                faceset=faceset)
            row["batched_wall_s"], row["batched_cpu_s"] = c.wall, c.cpu
            row["max_eer_difference"] = max(
                abs(a - t.metrics["test"]["eer"]) for a, t in zip(eers, batched.trainers,
                                                                   strict=True))
            rows.append(row)
    figures = timings(rows)
    result.update({"k": k, "margins": margins, "epochs": base.epochs, "network": base.network,
                   "loss": base.loss, "device_used": str(batched.device), **figures,
                   "batched_over_sequential": round(figures["batched_wall_s"]
                                                    / figures["sequential_wall_s"], 3),
                   "batched_over_one": round(figures["batched_wall_s"] / figures["one_wall_s"], 3),
                   "note": "each path trains and saves K runs (history, probes every epoch, "
                           "weights, final evaluation); max_eer_difference compares the test "
                           "EER of the same margin trained both ways"})
    result["summary"] = (f"sweep K={k}: one {figures['one_wall_s']:.2f} s, sequential "
                         f"{figures['sequential_wall_s']:.2f} s, batched "
                         f"{figures['batched_wall_s']:.2f} s")
    return _finish(result)
