"""Benchmarks -> JSON: ``python -m lab bench NAME ...``.

A registry: each bench is a function ``run(args) -> dict`` plus a function that adds its options;
``register`` adds one (other modules add theirs the same way). Every result records the machine,
the device, the torch version and the date, so results can be compared run to run.

``accuracy``: identity-fold cross-validation of one loss. For each of K folds the test identities
(about N/K of them) are never seen in training; the network trains for at most
``--time-budget`` seconds, then test EER, AUC, TAR@FAR, rank-1 and d′ are measured, with the
threshold chosen on validation identities. The raw-pixel baseline is evaluated on the same folds.
``--split-seeds`` repeats the folds over other partitions of the people (a single partition's
figure is partly the luck of who is in it); ``--ensemble K`` trains K nets per fold at once, one
thread each, and judges their embeddings side by side.

Speed (issue 7; every figure is the median of ``--repeats`` where a run is short, with wall and
process-CPU seconds, the load average before and after, and the machine and library versions):

- ``dashboard``: the default lesson from pressing Run to loss curve + embedding map + histograms +
  ROC on screen, in parts: data, train, embed, evaluate, project (PCA live map every epoch, the
  first UMAP map after warm-up), figures (the plotly figures the Train page builds).
- ``train``: FLOPs, peak, fraction of peak, images/s, profile; old vs new path
  (lab.bench.throughput).
- ``train-grid``: images/s and s/epoch of each network x loss x miner at the default batch.
- ``umap``: first map in a new process (with and without numba's on-disk cache, in subprocesses),
  the first map in the app's own order of events (warm-up thread at the first page view, Run at
  once, then the run's map), warm UMAP / PCA / t-SNE maps of 500, 2,000 and 10,000 points
  (lab.measure.project.benchmark).
- ``sweep``: K margins trained one after another vs together (lab.learn.batched).
- ``verify``: lab.views.verify's end-to-end verification bench.
- ``inside``: what the health monitor adds to each epoch, one miner inspection with its figures,
  the reference model's seconds per photo (lab.bench.inside).
- ``memory``: peak RSS (VmHWM) of a streamlit app process with 1 and with 10 runs, its pages opened
  by chromium.

``--quick`` runs each on tiny sizes (tests check that it works and writes JSON; never a time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab.core import settings
from lab.core.config import RunConfig
from lab.core.limits import MAX_EPOCHS


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
    from lab.learn.train import describe_device, pick_device, training_threads

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
        # lab.learn.train.training_threads
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
    parser.add_argument("--ensemble", type=int, default=1, metavar="K",
                        help="train K nets per fold at once (seeds seed..seed+K-1, one thread "
                             "each) and judge their embeddings side by side (default 1)")
    parser.add_argument("--split-seeds", type=_int_list, default=None, metavar="S,S,...",
                        help="repeat the folds for these identity partitions (default: the "
                             "config's split seed): how much of a figure is the draw of people")
    add_config_options(parser)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}") from None


@register("accuracy", "identity-fold test EER/AUC/TAR/rank-1 of one loss under a time budget",
          _accuracy_arguments)
def accuracy(args: argparse.Namespace) -> dict:
    from lab.cli import config_from_args
    from lab.data import load_for_config

    if args.threads or args.ensemble > 1:
        # K nets at once share the cores: one torch thread each unless told otherwise.
        torch.set_num_threads(args.threads or 1)
    base = config_from_args(args, RunConfig(dataset="att", epochs=MAX_EPOCHS))
    where = machine()  # before training: its load average is the one the figures ran under
    split_seeds = args.split_seeds or [base.data_seed]
    members = max(1, args.ensemble)
    results, baseline = [], []
    for split_seed in split_seeds:
        split_base = base.replace(split_seed=split_seed)
        faceset = load_for_config(split_base)
        folds = range(base.folds) if args.fold_only is None else [args.fold_only]
        for fold in folds:
            row, pixels = _accuracy_fold(split_base.replace(fold=fold), faceset, members, args)
            results.append(row)
            if pixels:
                baseline.append(pixels)
            print(f"split {split_seed} fold {fold}: EER {row['eer']:.4f} AUC {row['auc']:.4f} "
                  f"rank-1 {row['rank1']} ({row['epochs']} epochs, {row['train_seconds']:.1f} s)"
                  + (f"; members {', '.join(f'{e:.4f}' for e in row['member_eer'])}"
                     if members > 1 else "")
                  + (f"; pixels EER {pixels['eer']:.4f}" if pixels else ""), flush=True)
    report = {"bench": "accuracy", "dataset": base.dataset, "loss": base.loss,
              "time_budget": args.time_budget, "ensemble": members, "split_seeds": split_seeds,
              "folds": results, "mean": _summarise(results),
              "by_split": {str(seed): _summarise([r for r in results if r["split_seed"] == seed])
                           for seed in split_seeds},
              "baseline_pixels_mean": _summarise(baseline) if baseline else None,
              "config": base.to_dict(), "machine": where}
    if members > 1:
        report["mean_member_eer"] = _mean([e for r in results for e in r["member_eer"]])
    return _finish(report)


def _accuracy_fold(config: RunConfig, faceset, members: int, args: argparse.Namespace
                   ) -> tuple[dict, dict | None]:
    """Train one fold (``members`` nets at once, one thread each, from seeds seed..seed+K-1)
    and evaluate it; an ensemble is judged on its members' embeddings side by side."""
    from concurrent.futures import ThreadPoolExecutor

    from lab.learn.train import Trainer
    from lab.measure.evaluate import evaluate_embeddings

    started = time.perf_counter()
    trainers = [Trainer(config.replace(seed=config.seed + k), faceset,
                        time_budget=args.time_budget, probes=False) for k in range(members)]
    if members == 1:
        reports = [list(trainers[0].fit())]
    else:
        with ThreadPoolExecutor(members) as pool:
            reports = list(pool.map(lambda t: list(t.fit()), trainers))
    last = reports[0][-1] if reports[0] else None
    first = trainers[0]
    if members == 1:
        test = (first.metrics or {}).get("test", {})
    else:
        # Side by side and scaled by 1/sqrt(K), L2-normalised members (the default) give a unit
        # embedding whose cosine and squared-L2 energies are the mean of the members' energies.
        def joined(index: torch.Tensor) -> np.ndarray:
            parts = [t.embeddings(index) for t in trainers]
            return np.concatenate(parts, axis=1) / np.sqrt(members)

        labels = faceset.labels
        has_val = len(torch.unique(labels[first.val_index])) >= 2
        test = evaluate_embeddings(
            joined(first.test_index), labels[first.test_index].numpy(), config.energy,
            joined(first.val_index) if has_val else None,
            labels[first.val_index].numpy() if has_val else None,
            seed=config.data_seed).summary()
    row = {"split_seed": config.data_seed, "fold": config.fold, **{k: test.get(k) for k in (
        "eer", "auc", "tar_at_far", "rank1", "dprime", "test_accuracy", "threshold",
        "threshold_source", "genuine_pairs", "impostor_pairs")},
        "train_seconds": last.elapsed if last else None, "epochs": last.epoch if last else 0,
        "steps": last.step if last else 0, "status": first.status,
        "message": first.message, "wall_seconds": time.perf_counter() - started,
        "test_identities": sorted(int(i) for i in first.split.test)}
    if members > 1:
        row["member_eer"] = [(t.metrics or {}).get("test", {}).get("eer") for t in trainers]
        row["member_epochs"] = [r[-1].epoch if r else 0 for r in reports]
    pixels = None
    if args.baseline:
        found = first.baselines(("pixels",))["pixels"]
        pixels = {k: found.get(k) for k in ("eer", "auc", "rank1", "tar_at_far")}
        row["baseline_pixels"] = pixels
    return row, pixels


# -- dashboard ------------------------------------------------------------------------------
DASHBOARD_PARTS = ("data", "train", "embed", "evaluate", "project", "figures")


def _quick_config(**changes) -> RunConfig:
    """A lesson small enough for a smoke test: 12 synthetic people, 16 px, 2 epochs."""
    base = RunConfig(num_identities=12, images_per_identity=4, image_size=16, val_identities=2,
                     test_identities=4, epochs=2, p_identities=4, k_images=4,
                     extra={"width": 8})
    return base.replace(**changes)


def _dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    from lab.cli import add_config_options

    _common_arguments(parser, repeats=3)
    parser.add_argument("--imports", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the imports in a fresh process (not part of the total)")
    add_config_options(parser)


def dashboard_once(config: RunConfig, store_root: str | Path, umap: bool = True) -> dict:
    """One Run of the Train page, timed in parts; returns seconds per part and the test EER.

    The parts, in the order the app does them:
    data (load the faces), train (Trainer, epochs, probe embeddings, run-store writes),
    embed (test and validation embeddings for the final figures), evaluate (EER/AUC/TAR on test
    with the threshold from validation, and the live page's ROC from the probes), project (the
    PCA live map at every epoch and the first UMAP map of the final probes), figures (loss curve,
    embedding map, energy histogram and ROC, as plotly figures).
    """
    from lab.data import load_for_config
    from lab.learn.runs import RunStore
    from lab.learn.train import train_run
    from lab.measure.evaluate import evaluate_embeddings
    from lab.measure.project import project
    from lab.metric.energy import energy_bound
    from lab.views.margin_view import energy_margin
    from lab.views.run_view import live_map, pair_energies, verification_of
    from lab.viz import plots

    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with Clock() as c:
        faceset = load_for_config(config)
    wall["data"], cpu["data"] = c.wall, c.cpu
    first_report: list[float] = []
    started = time.perf_counter()

    def on_report(report) -> None:
        if not first_report:
            first_report.append(time.perf_counter() - started)

    with Clock() as c:
        _, trainer = train_run(config, store=RunStore(store_root), faceset=faceset,
                               on_report=on_report, evaluate=False)
    wall["train"], cpu["train"] = c.wall, c.cpu
    history = RunStore(store_root).list()
    reports_probes = RunStore(store_root).load(history[0].id).probes() if history else {}
    probes = reports_probes["embeddings"].numpy() if reports_probes else None

    with Clock() as c:
        test_emb = trainer.embeddings(trainer.test_index)
        val_emb = trainer.embeddings(trainer.val_index)
    wall["embed"], cpu["embed"] = c.wall, c.cpu
    labels = trainer.faceset.labels
    probe_labels = trainer.probe_labels.numpy()
    probe_is_test = trainer.probe_is_test.numpy()
    with Clock() as c:
        result = evaluate_embeddings(test_emb, labels[trainer.test_index].numpy(), config.energy,
                                     val_emb, labels[trainer.val_index].numpy(),
                                     seed=config.seed)
        final = probes[-1] if probes is not None else test_emb
        roc = verification_of(final, probe_labels, probe_is_test, config.energy, config.seed)
    wall["evaluate"], cpu["evaluate"] = c.wall, c.cpu

    with Clock() as c:
        points = None
        for frame in (probes if probes is not None else [final]):
            points = live_map(frame, points, seed=config.seed)
        umap_points = project(final, "umap", seed=config.seed) if umap else None
    wall["project"], cpu["project"] = c.wall, c.cpu

    history_rows = RunStore(store_root).load(history[0].id).history if history else []
    with Clock() as c:
        epochs = [row["epoch"] for row in history_rows]
        figures = [plots.loss_curve(epochs, [row["loss"] for row in history_rows],
                                    active_fraction=[row["active_fraction"]
                                                     for row in history_rows])]
        figures.append(plots.embedding_map(points, probe_labels,
                                           seen_mask=np.zeros_like(probe_is_test),
                                           title="Unseen identities (PCA)"))
        genuine, impostor = pair_energies(final, probe_labels, config.energy, 5000, config.seed)
        bound = energy_bound(config.energy, final.shape[1]) if config.normalize else None
        figures.append(plots.energy_histogram(genuine, impostor,
                                              margin=energy_margin(config.loss, config.margin),
                                              x_range=(0, bound) if bound else None))
        if roc is not None:
            figures.append(plots.roc_curves([{"name": config.loss, "fpr": roc.fpr,
                                              "tpr": roc.tpr, "auc": roc.auc, "eer": roc.eer}]))
        if umap_points is not None:
            figures.append(plots.embedding_map(umap_points, probe_labels,
                                               title="Unseen identities (UMAP)"))
        for fig in figures:
            fig.to_dict()  # what st.plotly_chart serialises
    wall["figures"], cpu["figures"] = c.wall, c.cpu
    return {"wall": wall, "cpu": cpu, "first_epoch_on_screen_s": first_report[0]
            if first_report else None, "test_eer": result.eer, "test_auc": result.auc,
            "probe_roc_eer": roc.eer if roc is not None else None,
            "epochs": config.epochs, "steps": int(history_rows[-1]["step"]) if history_rows
            else 0}


_IMPORTS_SCRIPT = """
import json, time
t = time.perf_counter(); import torch; a = time.perf_counter()
import lab.learn.train, lab.measure.evaluate, lab.data, lab.metric.losses; b = time.perf_counter()
import plotly.graph_objects, lab.viz.plots, lab.views.run_view; c = time.perf_counter()
from lab.measure import project; project._import_umap(); d = time.perf_counter()
project.warm_up_umap(); e = time.perf_counter()
print(json.dumps({"torch": a - t, "lab_training": b - a, "plotly_plots": c - b,
                  "umap_cached": d - c, "umap_warm_up": e - d}))
"""


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


@register("dashboard", "seconds from Run to loss curve, maps, histograms and ROC on screen",
          _dashboard_arguments)
def dashboard(args: argparse.Namespace) -> dict:
    from lab.cli import config_from_args
    from lab.measure.project import warm_up_umap

    result = _start(args, "dashboard")
    base = _quick_config() if args.quick else RunConfig()
    config = config_from_args(args, base)
    repeats = 1 if args.quick else max(1, args.repeats)
    if args.imports and not args.quick:
        result["imports_new_process_s"] = _python_subprocess(_IMPORTS_SCRIPT)
    with Clock() as c:
        warm_up_umap()  # the app does this in a background thread at start
    result["umap_warm_up_s"] = round(c.wall, 3)
    try:  # the Train page warms training up in the background before Run is pressed
        from lab.learn.train import warm_up
    except ImportError:  # older lab.learn.train: the first Run pays these costs itself
        result["train_warm_up_s"] = None
    else:
        result["train_warm_up_s"] = round(warm_up(), 3)
    runs = []
    with tempfile.TemporaryDirectory() as root:
        # The first Run of a process is reported apart (first-use costs), then the repeats.
        first = dashboard_once(config, Path(root) / "runs-first", umap=True)
        result["first_run"] = {"total_wall_s": round(sum(first["wall"].values()), 3),
                               "wall_s": {k: round(v, 3) for k, v in first["wall"].items()}}
        for r in range(0 if args.quick else repeats):
            runs.append(dashboard_once(config, Path(root) / f"runs-{r}", umap=True))
        runs = runs or [first]
    wall = timings([run["wall"] for run in runs])
    cpu = timings([run["cpu"] for run in runs])
    result.update({
        "config": config.to_dict(), "parts": list(DASHBOARD_PARTS),
        "wall_s": wall, "cpu_s": cpu,
        "total_wall_s": median(sum(run["wall"].values()) for run in runs),
        "total_cpu_s": median(sum(run["cpu"].values()) for run in runs),
        "first_epoch_on_screen_s": median(run["first_epoch_on_screen_s"] for run in runs),
        "test_eer": median(run["test_eer"] for run in runs),
        "test_auc": median(run["test_auc"] for run in runs),
        "probe_roc_eer": median(run["probe_roc_eer"] for run in runs),
        "steps": runs[0]["steps"], "goal_s": 10.0,
        "note": "seconds are medians over repeats in one warm process after a first Run "
                "(reported apart as first_run); imports, UMAP warm-up and training warm-up "
                "happen at app start and are reported apart; total = sum of the parts",
    })
    result["summary"] = (f"dashboard: first Run {result['first_run']['total_wall_s']:.2f} s, "
                         f"then {result['total_wall_s']:.2f} s wall "
                         f"({', '.join(f'{k} {v:.2f}' for k, v in wall.items())}); "
                         f"test EER {result['test_eer']:.4f}")
    return _finish(result)



# -- train ----------------------------------------------------------------------------------
TRAIN_LOSSES = {"contrastive": ("all", "semihard", "batchhard"),
                "triplet": ("all", "semihard", "batchhard"), "arcface": ("all",)}


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser, repeats=3)
    parser.add_argument("--networks", nargs="+", default=None, help="default: all four")
    parser.add_argument("--losses", nargs="+", default=None,
                        help=f"default: {', '.join(TRAIN_LOSSES)}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def train_speed(config: RunConfig, faceset, repeats: int) -> dict:
    """Epochs of ``config`` without probes or evaluation: the first epoch warms up (kernels,
    allocator), the next ``repeats`` are timed. Returns medians of s/epoch and images/s."""
    from lab.learn.train import Trainer

    trainer = Trainer(config.replace(epochs=repeats + 1), faceset, probes=False, evaluate=False)
    cpu = time.process_time()
    reports = list(trainer.fit())
    timed = reports[1:] or reports
    return {"s_per_epoch": median(r.seconds for r in timed),
            "images_per_s": median(r.images_per_second for r in timed),
            "steps_per_epoch": reports[0].step,
            "cpu_s_total": round(time.process_time() - cpu, 3), "status": trainer.status}


@register("train-grid", "images/s and s/epoch of each network x loss x miner", _train_arguments)
def train(args: argparse.Namespace) -> dict:
    from lab.data import load_for_config
    from lab.metric.loss_specs import LOSSES

    result = _start(args, "train")
    base = (_quick_config(epochs=1, steps_per_epoch=2) if args.quick else RunConfig())
    base = base.replace(device=args.device)
    repeats = 1 if args.quick else max(1, args.repeats)
    networks = args.networks or (("linear", "cnn") if args.quick else
                                 ("linear", "mlp", "cnn", "resnet"))
    losses = args.losses or (("contrastive", "arcface") if args.quick else tuple(TRAIN_LOSSES))
    faceset = load_for_config(base)
    rows = []
    for network in networks:
        for loss in losses:
            spec = LOSSES[loss]
            miners = ("all",) if spec.kind == "classifier" else TRAIN_LOSSES.get(
                loss, ("all", "semihard", "batchhard"))
            if args.quick:
                miners = miners[:1]
            for miner in miners:
                config = base.replace(network=network, loss=loss, miner=miner,
                                      energy=spec.default_energy, margin=spec.default_margin)
                row = {"network": network, "loss": loss,
                       "miner": miner if spec.kind != "classifier" else None,
                       **train_speed(config, faceset, repeats)}
                rows.append(row)
                print(f"{network:7s} {loss:12s} {str(row['miner']):10s} "
                      f"{row['images_per_s']:8.0f} images/s {row['s_per_epoch']:.3f} s/epoch",
                      flush=True)
    result.update({"batch": base.p_identities * base.k_images, "image_size": base.image_size,
                   "train_images": int(len(faceset.labels)), "rows": rows})
    return _finish(result)


# -- umap -----------------------------------------------------------------------------------
def _umap_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser, repeats=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                        help="also time a first map with an empty numba cache (1-2 minutes)")


# The app's own order of events in a fresh process: the first page view starts UMAP's warm-up
# thread (ui.warm_up_umap_in_background), the user presses Run at once on the default lesson,
# then opens Embeddings, which maps every epoch of the run (project_frames, warm-started).
_APP_FIRST_MAP_SCRIPT = """
import json, threading, time
t0 = time.perf_counter()
import lab.learn.train, lab.measure.evaluate
from lab.measure import project
from lab.core.config import RunConfig
warm = threading.Thread(target=project.warm_up_umap, daemon=True)
warm.start()
t_view = time.perf_counter()
config = RunConfig() if "__SIZE__" == "full" else RunConfig(
    num_identities=12, images_per_identity=4, image_size=16, val_identities=2,
    test_identities=4, epochs=2, network="mlp")
reports = list(lab.learn.train.Trainer(config).fit())
frames = [r.probe_embeddings for r in reports if r.probe_embeddings is not None]
t_ask = time.perf_counter()
ready_before = project.umap_ready()
first = project.project(frames[-1], "umap", seed=config.seed)
t_first = time.perf_counter()
project.project_frames(frames, method="umap", seed=config.seed)
t_all = time.perf_counter()
print(json.dumps({"imports_s": t_view - t0, "run_s": t_ask - t_view,
                  "umap_ready_when_asked": ready_before, "points": len(first),
                  "frames": len(frames), "first_map_s": t_first - t_ask,
                  "all_frames_s": t_all - t_first, "view_to_first_map_s": t_first - t_view}))
"""


@register("umap", "first map after app start (cold, cached) and warm UMAP / PCA / t-SNE maps",
          _umap_arguments)
def umap_bench(args: argparse.Namespace) -> dict:
    from lab.measure.project import benchmark

    result = _start(args, "umap")
    sizes = [200] if args.quick else args.sizes
    figures = benchmark(sizes=sizes, repeats=1 if args.quick else args.repeats,
                        cold=args.cold and not args.quick)
    figures.pop("bench", None)
    figures["project_machine"] = figures.pop("machine", None)
    result.update(figures)
    # What a user of the app waits for: the first UMAP of a run trained right after start.
    result["first_map_in_app"] = _python_subprocess(
        _APP_FIRST_MAP_SCRIPT.replace("__SIZE__", "quick" if args.quick else "full"))
    warm = figures.get("warm", {})
    in_app = result["first_map_in_app"].get("first_map_s")
    result["summary"] = ("umap: " + ", ".join(f"{k} {v['wall_s']:.2f} s" for k, v in warm.items())
                         + (f"; first map in the app after Run {in_app:.2f} s"
                            if in_app is not None else ""))
    return _finish(result)



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
    from lab.data import load_for_config
    from lab.learn.batched import train_runs_batched
    from lab.learn.runs import RunStore
    from lab.learn.train import train_run

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



# -- memory ---------------------------------------------------------------------------------
MEMORY_PAGES = ("train", "embeddings", "energies", "compare")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


def _memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a tiny run, 1 and 2 runs")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10],
                        help="run counts to measure (default 1 10)")
    parser.add_argument("--chromium", default=settings.chromium())


def _proc_status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fill_store(root: Path, count: int, config: RunConfig) -> None:
    """``count`` finished runs: one trained, the others imported copies of it (same size)."""
    from lab.learn.runs import RunStore
    from lab.learn.train import train_run

    store = RunStore(root)
    existing = store.list()
    if not existing:
        train_run(config, store=store)
        existing = store.list()
    data = store.export_zip(existing[0].id)
    for _ in range(count - len(existing)):
        store.import_zip(data)


def app_peak_rss(runs_root: Path, chromium: str, pages=MEMORY_PAGES, log: Path | None = None
                 ) -> dict:
    """Start ``streamlit run app.py`` on this store, open ``pages`` in chromium (each until the
    app stops running), and read the server process's peak (VmHWM) and current RSS."""
    import urllib.request

    from playwright.sync_api import sync_playwright

    root = settings.REPO_ROOT
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "METRIC_LAB_RUNS": str(runs_root)}
    out = open(log or os.devnull, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    result: dict = {"pages": {}}
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        result["after_start_mib"] = round(_proc_status_kib(process.pid, "VmRSS") / 1024, 1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            for name in pages:
                started = time.perf_counter()
                page.goto(f"{url}/{name}")
                page.wait_for_selector('[data-testid="stApp"]')
                page.wait_for_timeout(500)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
                page.wait_for_timeout(1000)
                result["pages"][name] = {
                    "seconds": round(time.perf_counter() - started, 2),
                    "rss_mib": round(_proc_status_kib(process.pid, "VmRSS") / 1024, 1)}
            browser.close()
        result["peak_rss_mib"] = round(_proc_status_kib(process.pid, "VmHWM") / 1024, 1)
        result["rss_mib"] = round(_proc_status_kib(process.pid, "VmRSS") / 1024, 1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()
    return result


@register("memory", "peak RSS of the streamlit app process with 1 and with 10 trained runs",
          _memory_arguments)
def memory(args: argparse.Namespace) -> dict:
    result = _start(args, "memory")
    counts = [1, 2] if args.quick else sorted(args.runs)
    config = _quick_config() if args.quick else RunConfig()
    result.update({"pages": list(MEMORY_PAGES), "config": config.to_dict(), "runs": {},
                   "goal_mib_one_run": 1536})
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "runs"
        for count in counts:
            _fill_store(store, count, config)
            result["runs"][str(count)] = app_peak_rss(store, args.chromium,
                                                      log=Path(folder) / f"app-{count}.log")
    result["summary"] = "memory: " + ", ".join(
        f"{n} run(s) peak {r['peak_rss_mib']:.0f} MiB" for n, r in result["runs"].items())
    return _finish(result)


# -- verify ---------------------------------------------------------------------------------
def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    from lab.views import verify

    verify.bench_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no accuracy run")


@register("verify", "end-to-end time of one verification (student and reference model)",
          _verify_arguments)
def verify_bench(args: argparse.Namespace) -> dict:
    from lab.views import verify

    if args.quick:
        args.repeats, args.accuracy = min(args.repeats, 3), False
    return {"bench": "verify", **verify.bench_run(args)}


# -- crossdomain ----------------------------------------------------------------------------
def _crossdomain_arguments(parser: argparse.ArgumentParser) -> None:
    from lab.bench import crossdomain

    crossdomain.arguments(parser)


@register("crossdomain", "train on AT&T folds, verify their unseen people in-domain and "
          "re-photographed (lab.bench.crossdomain)", _crossdomain_arguments)
def crossdomain_bench(args: argparse.Namespace) -> dict:
    from lab.bench import crossdomain

    return crossdomain.run(args)


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


from lab import (  # noqa: E402,F401  (register "gpu", "inside", "lessons", "train")
    bench_gpu,
    bench_inspect,
    bench_lessons,
    bench_train,
)
