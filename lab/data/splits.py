"""Identity-disjoint splits: the people in the test set are never seen in training.

Verification is open-world (Chopra, Hadsell & LeCun 2005 test on people outside training), so
splits are over identities, not images: train, validation (to choose the decision threshold)
and test identities are disjoint sets, drawn deterministically from the seed. k folds over
identities give cross-validation where every identity is a test identity exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.data.errors import DatasetError

MIN_TRAIN_IDENTITIES = 2  # a pair or classifier loss needs two people to tell apart
MIN_VAL_IDENTITIES = 2  # the fewest validation people with an impostor pair (a threshold)


@dataclass(frozen=True)
class IdentitySplit:
    """Identity indices (into FaceSet.names) of each part, sorted, pairwise disjoint."""

    train: list[int]
    val: list[int]
    test: list[int]


def _check(num_identities: int, n_val: int, n_test: int) -> None:
    if n_val < 0 or n_test < 1:
        raise DatasetError(f"need n_val >= 0 and n_test >= 1 identities, got {n_val}, {n_test}")
    if num_identities - n_val - n_test < MIN_TRAIN_IDENTITIES:
        raise DatasetError(
            f"{num_identities} identities cannot hold {n_val} validation + {n_test} test "
            f"identities and still leave {MIN_TRAIN_IDENTITIES} to train on; use fewer "
            "validation/test identities or a dataset with more people")


def split_identities(num_identities: int, n_val: int, n_test: int, seed: int) -> IdentitySplit:
    """A seeded random split into train / val / test identities (test first, then val)."""
    _check(num_identities, n_val, n_test)
    order = np.random.default_rng(seed).permutation(num_identities)
    test = order[:n_test]
    val = order[n_test:n_test + n_val]
    train = order[n_test + n_val:]
    return IdentitySplit(sorted(map(int, train)), sorted(map(int, val)), sorted(map(int, test)))


def identity_folds(num_identities: int, k: int, n_val: int, seed: int) -> list[IdentitySplit]:
    """k splits whose test sets partition the identities (each identity is test exactly once).

    Validation identities of fold i are the first n_val of the next fold's test block, so they
    never overlap fold i's test set.
    """
    if k < 2:
        raise DatasetError(f"need at least 2 folds, got {k}")
    if k > num_identities:
        raise DatasetError(f"{k} folds need at least {k} identities, got {num_identities}")
    order = np.random.default_rng(seed).permutation(num_identities)
    blocks = np.array_split(order, k)
    folds = []
    for i in range(k):
        test = blocks[i]
        rest = np.concatenate([blocks[(i + j) % k] for j in range(1, k)])
        _check(num_identities, n_val, len(test))
        val, train = rest[:n_val], rest[n_val:]
        folds.append(IdentitySplit(sorted(map(int, train)), sorted(map(int, val)),
                                   sorted(map(int, test))))
    return folds


def fitted_sizes(num_identities: int, n_val: int, n_test: int) -> tuple[int, int]:
    """The requested val/test sizes, shrunk when the dataset has too few identities.

    Digits, MNIST and Fashion-MNIST have only ten classes while the default asks for 5 + 10;
    rather than fail, keep MIN_VAL_IDENTITIES validation identities (2: the fewest that have an
    impostor pair, without which the threshold would silently come from the test people), about
    a third for test and the rest (at least 2) to train on: 10 classes give 5 / 2 / 3.
    """
    if num_identities - n_val - n_test >= MIN_TRAIN_IDENTITIES:
        return n_val, n_test
    if num_identities < MIN_TRAIN_IDENTITIES + 1:
        raise DatasetError(f"{num_identities} identities are too few to split; need at least "
                           f"{MIN_TRAIN_IDENTITIES + 1}")
    val = min(n_val, max(MIN_VAL_IDENTITIES, num_identities // 5))
    test = max(1, min(n_test, round(0.3 * num_identities),
                      num_identities - val - MIN_TRAIN_IDENTITIES))
    val = max(0, min(val, num_identities - test - MIN_TRAIN_IDENTITIES))
    return val, test


def held_out_identities(config, num_identities: int) -> list[int]:
    """The identities a class challenge keeps hidden (``config.extra["holdout"]`` = {"seed",
    "count"}): drawn from their own seed, before any split, so no run of the challenge trains,
    tunes or draws on them; the challenge scores its runs on them (lab.views.challenge). [] when the
    config has no holdout."""
    holdout = (getattr(config, "extra", None) or {}).get("holdout")
    if not holdout:
        return []
    count, seed = int(holdout["count"]), int(holdout["seed"])
    if not 2 <= count <= num_identities - MIN_TRAIN_IDENTITIES - 2:
        raise DatasetError(f"cannot hide {count} of {num_identities} identities and still train "
                           "and validate on the others")
    order = np.random.default_rng(seed).permutation(num_identities)
    return sorted(map(int, order[:count]))


def split_for_config(config, num_identities: int) -> IdentitySplit:
    """The split a RunConfig asks for: one seeded split, or fold config.fold of config.folds,
    over the identities that are not held out (see held_out_identities)."""
    hidden = held_out_identities(config, num_identities)
    if hidden:
        visible = [k for k in range(num_identities) if k not in set(hidden)]
        inner = split_for_config(config.replace(extra={k: v for k, v in config.extra.items()
                                                       if k != "holdout"}), len(visible))
        return IdentitySplit(*([visible[k] for k in part]
                               for part in (inner.train, inner.val, inner.test)))
    n_val, n_test = fitted_sizes(num_identities, config.val_identities, config.test_identities)
    seed = config.data_seed
    if config.fold is None:
        return split_identities(num_identities, n_val, n_test, seed)
    if not 0 <= config.fold < config.folds:
        raise DatasetError(f"fold {config.fold} does not exist; folds are 0..{config.folds - 1}")
    n_val = min(n_val, num_identities - -(-num_identities // config.folds) - MIN_TRAIN_IDENTITIES)
    return identity_folds(num_identities, config.folds, max(n_val, 0), seed)[config.fold]
