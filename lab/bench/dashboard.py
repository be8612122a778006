"""`python -m lab bench dashboard`: seconds from pressing Run to the loss curve, maps,
histograms and ROC (see lab.bench)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lab.bench.common import (
    Clock,
    _common_arguments,
    _finish,
    _python_subprocess,
    _start,
    median,
    register,
    timings,
)
from lab.cli import add_config_options, config_from_args
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run, warm_up
from lab.measure.evaluate import evaluate_embeddings
from lab.measure.project import project, warm_up_umap
from lab.metric.energy import energy_bound
from lab.views.margin_view import energy_margin
from lab.views.run_view import live_map, pair_energies, verification_of
from lab.viz.curves import loss_curve
from lab.viz.energies import energy_histogram
from lab.viz.maps import embedding_map
from lab.viz.roc import roc_curves

# -- dashboard ------------------------------------------------------------------------------
DASHBOARD_PARTS = ("data", "train", "embed", "evaluate", "project", "figures")


def _quick_config(**changes) -> RunConfig:
    """A lesson small enough for a smoke test: 12 synthetic people, 16 px, 2 epochs."""
    base = RunConfig(num_identities=12, images_per_identity=4, image_size=16, val_identities=2,
                     test_identities=4, epochs=2, p_identities=4, k_images=4,
                     extra={"width": 8})
    return base.replace(**changes)


def _dashboard_arguments(parser: argparse.ArgumentParser) -> None:
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
        figures = [loss_curve(epochs, [row["loss"] for row in history_rows],
                                    active_fraction=[row["active_fraction"]
                                                     for row in history_rows])]
        figures.append(embedding_map(points, probe_labels,
                                           seen_mask=np.zeros_like(probe_is_test),
                                           title="Unseen identities (PCA)"))
        genuine, impostor = pair_energies(final, probe_labels, config.energy, 5000, config.seed)
        bound = energy_bound(config.energy, final.shape[1]) if config.normalize else None
        figures.append(energy_histogram(genuine, impostor,
                                              margin=energy_margin(config.loss, config.margin),
                                              x_range=(0, bound) if bound else None))
        if roc is not None:
            figures.append(roc_curves([{"name": config.loss, "fpr": roc.fpr,
                                              "tpr": roc.tpr, "auc": roc.auc, "eer": roc.eer}]))
        if umap_points is not None:
            figures.append(embedding_map(umap_points, probe_labels,
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
import plotly.graph_objects, lab.viz.curves, lab.viz.maps, lab.viz.energies, lab.viz.roc
import lab.views.run_view; c = time.perf_counter()
from lab.measure import project; project._import_umap(); d = time.perf_counter()
project.warm_up_umap(); e = time.perf_counter()
print(json.dumps({"torch": a - t, "lab_training": b - a, "plotly_plots": c - b,
                  "umap_cached": d - c, "umap_warm_up": e - d}))
"""


@register("dashboard", "seconds from Run to loss curve, maps, histograms and ROC on screen",
          _dashboard_arguments)
def dashboard(args: argparse.Namespace) -> dict:
    result = _start(args, "dashboard")
    base = _quick_config() if args.quick else RunConfig()
    config = config_from_args(args, base)
    repeats = 1 if args.quick else max(1, args.repeats)
    if args.imports and not args.quick:
        result["imports_new_process_s"] = _python_subprocess(_IMPORTS_SCRIPT)
    with Clock() as c:
        warm_up_umap()  # the app does this in a background thread at start
    result["umap_warm_up_s"] = round(c.wall, 3)
    # the Train page warms training up in the background before Run is pressed
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
