"""`python -m lab bench train-grid`: images/s and s/epoch of each network x loss x miner."""

from __future__ import annotations

import argparse
import time

from lab.bench.common import _common_arguments, _finish, _start, median, register
from lab.bench.dashboard import _quick_config
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.train import Trainer
from lab.metric.loss_specs import LOSSES

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
