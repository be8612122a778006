"""``python -m lab bench inside``: what seeing inside the training costs (issue 19).

The live Train page must keep the dashboard figure (lab.bench ``dashboard``). Three things look
inside a run, and they are paid at different moments, so each is timed where the app pays it:

- the **health monitor** (lab.measure.health.epoch_statistics + diagnose) runs after *every* epoch
  of a run, on the embeddings the report already holds: its seconds are added to each epoch;
- the **miner inspector** (lab.views.inspector.inspect_trainer: mine one batch, one Step on a copy)
  runs only on demand, when a paused run's tab is opened: nothing per epoch, its seconds once per
  inspection, with the figures the panel draws (plotly ``to_dict``, what Streamlit serialises);
- the **reference model** of the error gallery (lab.faces.reference.describe_images) describes the
  test photos once per run when asked: seconds per photo.

Every epoch of the default Run is timed from one report to the next (training, probes,
evaluation), so each part is also given as a share of a median epoch measured in the same
process, which the machine's load changes much less than the seconds themselves.
"""

from __future__ import annotations

import argparse
import time

from lab.bench.common import Clock, _common_arguments, _finish, _start, median, register
from lab.bench.dashboard import _quick_config
from lab.cli import add_config_options, config_from_args
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.faces.reference import REFERENCE_IMAGE_SIZE, ReferenceModel, describe_images
from lab.learn.train import Trainer
from lab.learn.training_run import warm_up
from lab.measure import health
from lab.views.inspector import inspect_trainer
from lab.viz.maps import image_grid
from lab.viz.planes import miner_plane, region_shares_bar


def _arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser, repeats=5)
    parser.add_argument("--photos", type=int, default=40,
                        help="photos the reference model describes (default 40)")
    add_config_options(parser)


def _inspector_figures(inspection) -> None:
    """The figures ui.inspector draws for one inspection, serialised as Streamlit does."""

    crossed = inspection.crossed()
    arrows = list(dict.fromkeys([*inspection.hardest(7), *crossed[:7]]))
    figures = [miner_plane(inspection.before, inspection.after, inspection.boundary,
                                 x_label=inspection.x_label, y_label=inspection.y_label,
                                 margin_label="margin", arrows=arrows),
               region_shares_bar(inspection.shares("before"), inspection.shares("after"))]
    hardest = inspection.hardest(4 if inspection.kind != "classifier" else 8)
    picks = (list(hardest) if inspection.kind == "classifier"
             else [int(v) for k in hardest for v in inspection.items[k]])
    if picks:
        figures.append(image_grid(inspection.images[picks], [""] * len(picks), columns=3))
    for fig in figures:
        fig.to_dict()


@register("inside", "per-epoch cost of the health monitor; one miner inspection; the reference "
          "model's seconds per photo", _arguments)
def inside(args: argparse.Namespace) -> dict:
    result = _start(args, "inside")
    config = config_from_args(args, _quick_config() if args.quick else RunConfig())
    repeats = 1 if args.quick else max(1, args.repeats)
    warm_up()
    faceset = load_for_config(config)
    trainer = Trainer(config, faceset)
    epoch_s, health_wall, health_cpu = [], [], []
    records: list[dict] = []
    last = time.perf_counter()
    for report in trainer.fit():
        epoch_s.append(time.perf_counter() - last)
        with Clock() as c:
            report.health = health.epoch_statistics(
                config, report.probe_embeddings, trainer.probe_labels.numpy(),
                trainer.probe_is_test.numpy(), report.seen_embeddings,
                trainer.seen_labels.numpy())
            records.append(report.record())
            health.diagnose(records, config)
        health_wall.append(c.wall)
        health_cpu.append(c.cpu)
        last = time.perf_counter()
    timed = epoch_s[1:] or epoch_s  # the first epoch pays one-off costs
    epoch = median(timed)

    inspect_wall, inspect_cpu, figure_wall = [], [], []
    for r in range(repeats + 1):  # the first inspection warms up (reported apart)
        with Clock() as c:
            inspection = inspect_trainer(trainer, config.epochs + 1 + r)
        with Clock() as f:
            _inspector_figures(inspection)
        if r == 0:
            result["first_inspection_s"] = round(c.wall + f.wall, 3)
            continue
        inspect_wall.append(c.wall)
        inspect_cpu.append(c.cpu)
        figure_wall.append(f.wall)

    result.update({
        "config": config.to_dict(), "epochs": len(epoch_s), "epoch_wall_s": epoch,
        "health_per_epoch": {"wall_s": median(health_wall), "cpu_s": median(health_cpu),
                             "share_of_epoch": round(median(health_wall) / epoch, 4)},
        "inspection": {"wall_s": median(inspect_wall), "cpu_s": median(inspect_cpu),
                       "figures_wall_s": median(figure_wall),
                       "share_of_epoch": round((median(inspect_wall) + median(figure_wall))
                                               / epoch, 4),
                       "mined_items": int(inspection.mined), "per_epoch_s": 0.0},
    })
    result["reference"] = _reference_cost(faceset, 2 if args.quick else args.photos)
    inspection_s = result["inspection"]["wall_s"] + result["inspection"]["figures_wall_s"]
    result["summary"] = (
        f"inside: epoch {epoch:.3f} s; health monitor +{result['health_per_epoch']['wall_s']:.4f}"
        f" s per epoch ({100 * result['health_per_epoch']['share_of_epoch']:.1f} %); one miner "
        f"inspection {inspection_s:.3f} s with its figures, on demand only (0 s per epoch)")
    if result["reference"].get("per_photo_s") is not None:
        result["summary"] += (f"; reference model {result['reference']['per_photo_s']:.3f} s "
                              "per photo")
    result["note"] = ("epoch = wall seconds from one report to the next (training, probes, "
                      "evaluation), median without the first; health and inspection are medians "
                      "over epochs / repeats in the same process")
    return _finish(result)


def _reference_cost(faceset, photos: int) -> dict:
    """Seconds per photo of lab.faces.reference.describe_images at the reference's image size (the
    images' content barely matters to a ResNet's cost; the size does)."""
    import torch.nn.functional as F


    ok, why = ReferenceModel.available()
    if not ok:
        return {"available": False, "why": why}
    model = ReferenceModel()
    images = F.interpolate(faceset.images[:photos], size=REFERENCE_IMAGE_SIZE,
                           mode="bilinear").numpy()
    describe_images(model, images[:1])  # warm-up
    with Clock() as c:
        describe_images(model, images)
    return {"available": True, "photos": len(images), "image_size": REFERENCE_IMAGE_SIZE,
            "wall_s": round(c.wall, 3), "cpu_s": round(c.cpu, 3),
            "per_photo_s": round(c.wall / max(len(images), 1), 4),
            "images_per_s": round(len(images) / max(c.wall, 1e-9), 1)}
