"""``python -m lab ...``: the same work as the app, without a browser.

Subcommands: ``train`` (every RunConfig field is an option), ``evaluate RUN``, ``runs``,
``bench ...`` (lab/bench/__init__.py). Other modules register their own subcommand with
``add_parser(subparsers)`` (``lab/cli/data.py`` adds ``data``), listed once in :data:`PLUGINS`.
Only the module of the command being run is imported (all of them for ``--help``); a module that
fails to import is an error with its name, never a command that silently disappears.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import sys
import time
from typing import Any

from lab.core.config import RunConfig, problems
from lab.core.fields import CHOICES, FIELDS, LOSS_DEFAULTS
from lab.learn.runs import RunStore
from lab.learn.train import Trainer
from lab.learn.training_run import train_run
from lab.views import crosseval
from lab.views.crosseval import add_arguments as cross_dataset_arguments

# Subcommands that other modules add with add_parser(subparsers): command -> module. Only the
# module of the command being run is imported (all of them for --help), so a slow import (umap,
# opencv) never delays `python -m lab train`.
PLUGINS = {"data": "lab.cli.data", "bench": "lab.bench", "project": "lab.measure.project",
           "report": "lab.views.report", "verify": "lab.cli.verify"}


def _optional(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _extra(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field (``--image-size 64``, ``--no-normalize`` ...).

    Defaults are left unset (None) so :func:`config_from_args` knows what was given: a loss
    chosen without an energy or margin gets that loss's own defaults.
    """
    group = parser.add_argument_group("run configuration (RunConfig fields)")
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "extra":
            group.add_argument("--extra", type=_extra, action="append", default=None,
                               metavar="KEY=VALUE",
                               help="extra option, e.g. width=64 (network width); repeatable")
            continue
        text = str(f.type)
        spec = FIELDS[f.name]
        if f.name in ("energy", "margin"):
            default = "the loss's own (" + ", ".join(
                f"{loss} {values[f.name]}" for loss, values in LOSS_DEFAULTS.items()) + ")"
        helptext = f"{spec.help} Allowed: {spec.describe()}; default: {default}".replace("%",
                                                                                      "%%")
        if "bool" in text:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=helptext)
            continue
        kind = int if "int" in text else float if "float" in text else str
        parse = _optional(kind) if "None" in text else kind
        group.add_argument(flag, type=parse, default=None, choices=CHOICES.get(f.name),
                           help=helptext)


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The RunConfig named by the options; a chosen loss brings its default energy and margin."""
    base = base or RunConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
             if getattr(args, f.name, None) is not None}
    if "extra" in given:
        given["extra"] = {**base.extra, **dict(given["extra"])}
    if "loss" in given:  # the loss's own energy and margin unless given (lab.core.fields)
        given.setdefault("energy", None)
        given.setdefault("margin", None)
    config = base.replace(**given)
    wrong = problems(config)
    if wrong:
        raise ValueError(" ".join(wrong))
    return config


class ProgressBar:
    """A one-line text bar on stderr (redrawn in place on a terminal, one line per report
    otherwise, so logs stay readable)."""

    def __init__(self, total: int, stream=None, width: int = 30):
        self.total, self.width = max(total, 1), width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()

    def update(self, report) -> None:
        done = min(report.epoch / self.total, 1.0)
        bar = "#" * round(done * self.width)
        elapsed = time.perf_counter() - self.start
        eta = elapsed * (1 - done) / done if done > 0 else math.nan
        text = (f"[{bar:<{self.width}}] epoch {report.epoch}/{report.epochs} "
                f"loss {report.loss:.4f} active {report.active_fraction:.2f} "
                f"{report.images_per_second:.0f} img/s {elapsed:.0f}s")
        if math.isfinite(eta) and report.status == "running":
            text += f" eta {eta:.0f}s"
        if report.status != "running":
            text += f" {report.status}"
        self.stream.write(("\r" + text + "\033[K") if self.tty else text + "\n")
        if report.status != "running" and self.tty:
            self.stream.write("\n")
        self.stream.flush()


def _metric_line(metrics: dict) -> str:
    test = metrics.get("test", {})
    tar = test.get("tar_at_far", {})
    parts = [f"{key} {test[key]:.4f}" for key in ("eer", "auc", "rank1", "dprime")
             if isinstance(test.get(key), int | float)]
    parts += [f"TAR@FAR={far} {value:.3f}" for far, value in tar.items() if value is not None]
    if isinstance(test.get("threshold"), int | float):  # and where it came from, on one line
        parts.append(f"threshold {test['threshold']:.4g} (from "
                     f"{test.get('threshold_source', 'validation identities')}, accuracy "
                     f"{test.get('test_accuracy', float('nan')):.3f})")
    return "test: " + ", ".join(parts) if parts else "no test metrics"


def cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    store = RunStore(args.runs) if args.runs else RunStore()
    bar = None if args.quiet else ProgressBar(config.epochs)
    run, trainer = train_run(config, store, name=args.name, time_budget=args.time_budget,
                             report_every=args.report_every,
                             on_report=bar.update if bar else None)
    metrics = trainer.metrics or {}
    if args.json:
        print(json.dumps({"run_id": run.id, "folder": str(run.path), "status": trainer.status,
                          "message": trainer.message, "config": config.to_dict(),
                          "metrics": metrics}, default=str))
    else:
        print(f"run {run.id} ({trainer.status}: {trainer.message})")
        print(f"folder {run.path}")
        print(_metric_line(metrics))
    return 0 if trainer.status in ("done", "stopped") else 2


def cmd_evaluate(args: argparse.Namespace) -> int:
    store = RunStore(args.runs) if args.runs else RunStore()
    run_id = args.run or getattr(args, "run_option", None)
    if not run_id:
        print("error: say which run: python -m lab evaluate RUN (or --run RUN)", file=sys.stderr)
        return 2
    run = store.load(run_id)
    if getattr(args, "dataset", None):  # another dataset: lab.views.crosseval

        return crosseval.cli(args, run)
    trainer = Trainer(run.config, probes=False)
    trainer.model.load_state_dict(run.load_model(trainer.device).state_dict())
    metrics = trainer.evaluate()
    if args.baselines:
        metrics["baselines"] = trainer.baselines(("pixels", "eigenfaces", "fisherfaces"))
    if args.save:
        run.save_metrics(metrics)
    if args.json:
        print(json.dumps({"run_id": run.id, "metrics": metrics}, default=str))
    else:
        print(f"run {run.id} {run.name!r} ({run.status})")
        print(_metric_line(metrics))
        for kind, figures in metrics.get("baselines", {}).items():
            print(f"baseline {kind}: " + _metric_line({"test": figures})[6:])
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = RunStore(args.runs) if args.runs else RunStore()
    infos = store.list()
    if args.json:
        print(json.dumps([{"id": i.id, "name": i.name, "status": i.status, "path": str(i.path),
                           "created": i.created, "message": i.message,
                           "eer": i.metrics.get("test", {}).get("eer"),
                           "config": i.config.to_dict() if i.config else None}
                          for i in infos], default=str))
        return 0
    if not infos:
        print(f"no runs in {store.root}")
        return 0
    print(f"{'id':<23} {'status':<11} {'EER':>7} {'AUC':>7}  name")
    for i in infos:
        test = i.metrics.get("test", {})
        eer = f"{test['eer']:.4f}" if isinstance(test.get("eer"), float) else "-"
        auc = f"{test['auc']:.4f}" if isinstance(test.get("auc"), float) else "-"
        print(f"{i.id:<23} {i.status:<11} {eer:>7} {auc:>7}  {i.name}"
              + (f"  ({i.message})" if i.status == "corrupt" else ""))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``command`` limits which plugin modules are imported."""
    parser = argparse.ArgumentParser(prog="python -m lab", description="Metric Lab")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one run and save it in the run store")
    add_config_options(train)
    train.add_argument("--name", help="a human name for the run")
    train.add_argument("--time-budget", type=float, help="stop after this many seconds")
    train.add_argument("--report-every", type=int, help="also report every N steps")
    train.add_argument("--runs", help="run store folder (default $METRIC_LAB_RUNS or data/runs)")
    train.add_argument("--json", action="store_true", help="print one JSON line at the end")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="recompute a saved run's test figures")
    evaluate.add_argument("run", nargs="?", default=None,
                          help="run id (see `python -m lab runs`)")
    evaluate.add_argument("--baselines", action="store_true",
                          help="also raw pixels, eigenfaces and Fisherfaces on the same split")
    evaluate.add_argument("--save", action="store_true", help="write them to metrics.json")
    evaluate.add_argument("--runs", help="run store folder")
    evaluate.add_argument("--json", action="store_true")

    cross_dataset_arguments(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    runs = sub.add_parser("runs", help="list saved runs")
    runs.add_argument("--runs", help="run store folder")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    wanted = [PLUGINS[command]] if command in PLUGINS else (
        [] if command in ("train", "evaluate", "runs") else list(dict.fromkeys(PLUGINS.values())))
    for name in wanted:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as error:  # DatasetError, RunError and bad options: a message, no trace
        print(f"error: {error}", file=sys.stderr)
        return 1
