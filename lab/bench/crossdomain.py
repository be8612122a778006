"""`python -m lab bench crossdomain`: does a run still verify when the photos change?

For each AT&T identity fold and each variant (face pipeline x lighting augmentation), one run
is trained on the fold's training people under a time budget. Its threshold is the run's own:
the energy at FAR 1 % on its validation people (in-domain, as Verify uses it). It is then
judged twice on the fold's unseen test people:

- in-domain: their AT&T photos, as the run's own pipeline loads a dataset;
- shifted: each of those photos re-photographed (lab.faces.rephoto: a wider colour scene,
  directional light, scale and position, colour cast, JPEG), then decoded, searched for a face and
  cut exactly as Verify does for an upload (lab.views.verify.photo_to_input with the run's
  pipeline). A photo where no face is found uses the whole image, as Verify does when asked, and is
  counted.

Reported per variant (mean over folds, and each fold): EER and AUC, and the FAR and FRR at the
run's own threshold, in-domain beside shifted. Pairs: every genuine and every impostor pair of
the 10 test people (45 x 10 genuine, 4500 impostor per fold).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lab.bench.common import load_average, machine, register
from lab.cli import add_config_options, config_from_args
from lab.core.config import RunConfig
from lab.core.limits import MAX_EPOCHS
from lab.data import att_dir, load_for_config
from lab.data.folder import natural_key
from lab.data.splits import split_for_config
from lab.faces.facepipe import first_usable_face
from lab.faces.rephoto import rephotograph
from lab.learn.train import Trainer
from lab.measure.evaluate import embed, evaluate_embeddings, verification_pairs
from lab.metric.energy import pairwise_energy_np
from lab.views.verify import photo_to_input, prepare_photo, threshold_at_far

VARIANTS = ("none", "none+light", "aligned", "aligned+light", "aligned+tantriggs",
            "aligned+tantriggs+light")
THRESHOLD_FAR = 0.01


def variant_config(base, name: str):
    """"aligned+tantriggs+light" -> base with pipeline "aligned+tantriggs", lighting on."""
    lighting = name.endswith("+light")
    pipeline = name[:-len("+light")] if lighting else name
    return base.replace(pipeline=pipeline, lighting=lighting)


def shifted_photos(att: Path, identities: list[int], seed: int) -> tuple[list[bytes], np.ndarray]:
    """Every photo of these AT&T people (index 0..39 -> folder s1..s40), re-photographed."""

    photos, labels = [], []
    for identity in identities:
        folder = att / f"s{identity + 1}"
        for file in sorted(folder.glob("*.pgm"), key=lambda p: natural_key(p.name)):
            number = int(file.stem)
            photos.append(rephotograph(Image.open(file), seed * 100_003 + identity * 100 + number))
            labels.append(identity)
    return photos, np.asarray(labels)


def detect_uploads(photos: list[bytes]) -> tuple[list[Image.Image], list[Any]]:
    """Decode and detect as Verify does (lab.views.verify.prepare_photo); None where no usable
    face."""

    images, boxes = [], []
    for data in photos:
        prepared = prepare_photo(data)
        images.append(prepared.image)
        boxes.append(first_usable_face(prepared.faces))
    return images, boxes


def rates_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict[str, float]:
    """FAR (impostors accepted) and FRR (genuine rejected) when accepting E <= threshold."""
    return {"far": float(np.mean(impostor <= threshold)),
            "frr": float(np.mean(genuine > threshold))}


def judge(embeddings: np.ndarray, labels: np.ndarray, energy: str, threshold: float
          ) -> dict[str, float]:
    summary = evaluate_embeddings(embeddings, labels, energy).summary()
    i, j, same = verification_pairs(labels, max_impostor=10**9)
    energies = pairwise_energy_np(embeddings[i], embeddings[j], energy)
    return {"eer": summary["eer"], "auc": summary["auc"],
            **rates_at(energies[same], energies[~same], threshold)}


def run_fold(config, faceset, uploads, upload_labels, time_budget: float) -> dict:
    """Train one variant on one fold; judge it in-domain and shifted at its own threshold."""

    trainer = Trainer(config, faceset, time_budget=time_budget, probes=False, evaluate=False)
    reports = list(trainer.fit())
    last = reports[-1]
    labels = faceset.labels
    val_emb = trainer.embeddings(trainer.val_index)
    val_lab = labels[trainer.val_index].numpy()
    i, j, same = verification_pairs(val_lab, max_impostor=10**9)
    val_e = pairwise_energy_np(val_emb[i], val_emb[j], config.energy)
    threshold = threshold_at_far(val_e[same], val_e[~same], THRESHOLD_FAR)
    test_emb = trainer.embeddings(trainer.test_index)
    in_domain = judge(test_emb, labels[trainer.test_index].numpy(), config.energy, threshold)

    channels, size = trainer.in_channels, trainer.image_size
    images, boxes = uploads
    batch = torch.cat([photo_to_input(image, box, pipeline=config.pipeline, channels=channels,
                                      image_size=size)[0]
                       for image, box in zip(images, boxes, strict=True)])
    shifted_emb = embed(trainer.model, batch, trainer.device)
    shifted = judge(shifted_emb, upload_labels, config.energy, threshold)
    return {"fold": config.fold, "threshold": threshold, "epochs": last.epoch,
            "train_seconds": last.elapsed, "status": trainer.status,
            "in_domain": in_domain, "shifted": shifted}


def _mean(rows: list[dict], part: str, key: str) -> float:
    return float(np.mean([row[part][key] for row in rows]))


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="seconds of training per fold and variant (default 60)")
    parser.add_argument("--fold-only", type=str, default=None, metavar="F,F",
                        help="run these folds only (e.g. 0 or 0,1)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated variants, pipeline[+light] (default: all six)")
    parser.add_argument("--att-dir", default=None, help="AT&T faces (s1..s40 folders)")
    parser.add_argument("--rephoto-seed", type=int, default=0,
                        help="seed of the re-photographing draws")
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1)")
    add_config_options(parser)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(max(1, args.threads))
    base = config_from_args(args, RunConfig(dataset="att", epochs=MAX_EPOCHS))
    att = Path(args.att_dir or base.data_dir or att_dir() or "")
    if not (att / "s1").is_dir():
        raise SystemExit(f"AT&T faces not found at {att} (give --att-dir)")
    base = base.replace(data_dir=str(att))
    folds = ([int(f) for f in args.fold_only.split(",")] if args.fold_only
             else list(range(base.folds)))
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    where = machine()
    started = time.perf_counter()
    datasets: dict[str, Any] = {}
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    upload_notes = {}
    for fold in folds:
        split = split_for_config(base.replace(fold=fold), 40)
        photos, upload_labels = shifted_photos(att, list(split.test), args.rephoto_seed + fold)
        uploads = detect_uploads(photos)
        missing = sum(box is None for box in uploads[1])
        upload_notes[str(fold)] = {"photos": len(photos), "no_face_whole_image": missing}
        for name in variants:
            config = variant_config(base, name).replace(fold=fold)
            if config.pipeline not in datasets:
                datasets[config.pipeline] = load_for_config(config)
            row = run_fold(config, datasets[config.pipeline], uploads, upload_labels,
                           args.time_budget)
            rows[name].append(row)
            print(f"fold {fold} {name:24s} in-domain EER {row['in_domain']['eer']:.3f} "
                  f"FAR {row['in_domain']['far']:.3f} | shifted EER {row['shifted']['eer']:.3f}"
                  f" AUC {row['shifted']['auc']:.3f} FAR {row['shifted']['far']:.3f} "
                  f"FRR {row['shifted']['frr']:.3f} ({row['epochs']} epochs) "
                  f"load {load_average()}", flush=True)
    table = {}
    for name, found in rows.items():
        table[name] = {part: {key: _mean(found, part, key) for key in ("eer", "auc", "far", "frr")}
                       for part in ("in_domain", "shifted")}
        table[name]["eer_std"] = {part: float(np.std([r[part]["eer"] for r in found]))
                                  for part in ("in_domain", "shifted")}
    summary = ["variant | in-domain EER | FAR | FRR | shifted EER | AUC | FAR | FRR"]
    for name, t in table.items():
        a, b = t["in_domain"], t["shifted"]
        summary.append(f"{name} | {a['eer']:.3f} | {a['far']:.3f} | {a['frr']:.3f} | "
                       f"{b['eer']:.3f} | {b['auc']:.3f} | {b['far']:.3f} | {b['frr']:.3f}")
    return {"bench": "crossdomain", "time_budget": args.time_budget, "folds": folds,
            "variants": variants, "threshold_far": THRESHOLD_FAR, "uploads": upload_notes,
            "mean": None, "table": table, "rows": rows, "summary": "\n".join(summary),
            "config": base.to_dict(), "machine": where,
            "wall_seconds": time.perf_counter() - started}



# -- crossdomain ----------------------------------------------------------------------------
def _crossdomain_arguments(parser: argparse.ArgumentParser) -> None:
    arguments(parser)


@register("crossdomain", "train on AT&T folds, verify their unseen people in-domain and "
          "re-photographed (lab.bench.crossdomain)", _crossdomain_arguments)
def crossdomain_bench(args: argparse.Namespace) -> dict:
    return run(args)
