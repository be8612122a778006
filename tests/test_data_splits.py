"""Identity splits (disjoint, deterministic, folds cover every identity once) and the P x K
sampler."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from lab.core.config import RunConfig, problems
from lab.data import DatasetError
from lab.data.faceset import DataSource, FaceSet
from lab.data.sampler import PKSampler
from lab.data.splits import (
    IdentitySplit,
    fitted_sizes,
    identity_folds,
    split_for_config,
    split_identities,
)


def _assert_partition(split: IdentitySplit, num_identities: int) -> None:
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(num_identities))
    assert split.train == sorted(split.train)


def test_split_is_disjoint_sized_and_deterministic():
    split = split_identities(40, 5, 10, seed=0)
    _assert_partition(split, 40)
    assert (len(split.train), len(split.val), len(split.test)) == (25, 5, 10)
    assert split == split_identities(40, 5, 10, seed=0)
    assert split != split_identities(40, 5, 10, seed=1)
    with pytest.raises(AttributeError):
        split.train = []  # frozen


def test_split_that_leaves_too_few_to_train_is_refused():
    with pytest.raises(DatasetError, match="to train on"):
        split_identities(10, 4, 5, seed=0)
    with pytest.raises(DatasetError):
        split_identities(10, 0, 0, seed=0)


@pytest.mark.parametrize("num, k", [(40, 4), (10, 3), (7, 7)])
def test_folds_cover_every_identity_exactly_once(num, k):
    folds = identity_folds(num, k, n_val=1, seed=3)
    assert len(folds) == k
    tested = Counter(i for fold in folds for i in fold.test)
    assert tested == Counter(range(num))
    for fold in folds:
        _assert_partition(fold, num)
    assert folds == identity_folds(num, k, n_val=1, seed=3)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_bad_fold_counts_are_refused():
    with pytest.raises(DatasetError):
        identity_folds(10, 1, 1, seed=0)
    with pytest.raises(DatasetError):
        identity_folds(3, 4, 0, seed=0)


def test_split_for_config_uses_seed_and_fold():
    config = RunConfig(seed=4, val_identities=5, test_identities=10)
    assert split_for_config(config, 40) == split_identities(40, 5, 10, seed=4)
    folds = [split_for_config(config.replace(fold=f, folds=4), 40) for f in range(4)]
    assert sorted(i for s in folds for i in s.test) == list(range(40))
    with pytest.raises(DatasetError, match="fold 4"):
        split_for_config(config.replace(fold=4, folds=4), 40)


def test_split_seed_keeps_the_people_while_seed_changes_the_weights():
    config = RunConfig(seed=4, split_seed=7, fold=1, folds=4)
    assert config.data_seed == 7 and RunConfig(seed=4).data_seed == 4
    same_people = split_for_config(config.replace(seed=5), 40)
    assert same_people == split_for_config(config, 40)
    assert same_people == split_for_config(RunConfig(seed=7, fold=1, folds=4), 40)
    assert same_people != split_for_config(config.replace(split_seed=None), 40)
    assert problems(config) == [] and problems(config.replace(split_seed=None)) == []
    assert "split_seed" in problems(config.replace(split_seed=-1))[0]


def test_small_datasets_get_smaller_val_and_test():
    assert fitted_sizes(40, 5, 10) == (5, 10)
    val, test = fitted_sizes(10, 5, 10)  # digits, MNIST: ten classes
    assert test >= 1 and val >= 1 and 10 - val - test >= 2
    split = split_for_config(RunConfig(), 10)
    _assert_partition(split, 10)
    assert len(split.train) >= 2
    with pytest.raises(DatasetError):
        fitted_sizes(2, 1, 1)


def test_faceset_subset_keeps_identity_labels():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    faces = FaceSet(torch.zeros(6, 1, 4, 4), labels, ["a", "b", "c"],
                    DataSource("t", "", "", True))
    part = faces.subset([0, 2])
    assert part.labels.tolist() == [0, 0, 2, 2]


# --- sampler ---------------------------------------------------------------------------------

def _labels(counts: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])


def test_batches_are_p_identities_by_k_images():
    labels = _labels([10] * 12)
    sampler = PKSampler(labels, p=4, k=3, seed=0)
    assert len(sampler) == 120 // 12
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert batch.dtype == torch.long and batch.shape == (12,)
        per_identity = Counter(labels[batch].tolist())
        assert len(per_identity) == 4 and set(per_identity.values()) == {3}
        assert len(set(batch.tolist())) == 12  # enough images: no repeats


def test_sampler_is_deterministic_and_epochs_differ():
    labels = _labels([6] * 10)
    first = [b.tolist() for b in PKSampler(labels, 3, 2, seed=7)]
    again = [b.tolist() for b in PKSampler(labels, 3, 2, seed=7)]
    assert first == again
    sampler = PKSampler(labels, 3, 2, seed=7)
    epoch0, epoch1 = [b.tolist() for b in sampler], [b.tolist() for b in sampler]
    assert epoch0 == first and epoch1 != epoch0
    sampler.set_epoch(0)
    assert [b.tolist() for b in sampler] == first


def test_small_identities_are_sampled_with_replacement():
    labels = _labels([1, 2, 8, 8])
    sampler = PKSampler(labels, p=4, k=4, seed=0)
    for batch in sampler:
        counts = Counter(labels[batch].tolist())
        assert counts == {0: 4, 1: 4, 2: 4, 3: 4}
        assert set(batch[labels[batch] == 0].tolist()) == {0}


def test_p_larger_than_identities_is_clamped_and_bad_input_refused():
    sampler = PKSampler(_labels([4, 4]), p=8, k=2, seed=0)
    assert all(len(b) == 4 for b in sampler)
    with pytest.raises(DatasetError):
        PKSampler(torch.tensor([], dtype=torch.long), 2, 2)
    with pytest.raises(DatasetError):
        PKSampler(_labels([5]), 2, 2)
    with pytest.raises(DatasetError):
        PKSampler(_labels([5, 5]), 0, 2)


def test_every_image_is_seen_in_an_epoch_when_balanced():
    labels = _labels([4] * 8)
    seen = torch.cat(list(PKSampler(labels, p=4, k=4, seed=1)))
    assert sorted(seen.tolist()) == list(range(32))


def test_ten_classes_keep_two_validation_identities():
    """Digits / MNIST / Fashion-MNIST with the default 5 + 10 request: 2 validation people
    (the fewest with an impostor pair, so the threshold never silently comes from test),
    3 test, 5 train."""
    from lab.data.splits import fitted_sizes

    assert fitted_sizes(10, 5, 10) == (2, 3)
    assert fitted_sizes(40, 5, 10) == (5, 10)  # what fits is left alone
    assert fitted_sizes(6, 5, 10) == (2, 2)  # 2 / 2 / 2
