"""`python -m lab bench accuracy`: identity-fold test EER of one loss under a time budget
(see lab.bench)."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lab.bench.common import _finish, _mean, machine, register
from lab.cli import add_config_options, config_from_args
from lab.core.config import RunConfig
from lab.core.limits import MAX_EPOCHS
from lab.data import load_for_config
from lab.learn.train import Trainer
from lab.measure.evaluate import evaluate_embeddings


def _summarise(folds: list[dict]) -> dict:
    keys = ("eer", "auc", "rank1", "dprime", "test_accuracy")
    summary = {key: _mean([f.get(key) for f in folds]) for key in keys}
    summary["eer_std"] = float(np.std([f["eer"] for f in folds])) if folds else None
    fars = folds[0].get("tar_at_far", {}) if folds else {}
    summary["tar_at_far"] = {far: _mean([f["tar_at_far"].get(far) for f in folds]) for far in fars}
    return summary


# -- accuracy -------------------------------------------------------------------------------
def _accuracy_arguments(parser: argparse.ArgumentParser) -> None:
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
