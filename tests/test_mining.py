import itertools

import pytest
import torch
from pytorch_metric_learning import miners

from lab.metric.energy import energy_matrix
from lab.metric.mining import (
    all_pairs,
    all_triplets,
    batchhard_triplets,
    mine,
    random_pairs,
    random_triplets,
    semihard_triplets,
    triplets_to_pairs,
)


def _batch(seed=0, n_identities=4, per_identity=3, dim=6):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_identities).repeat_interleave(per_identity)
    embeddings = torch.randn(labels.shape[0], dim, generator=generator)
    return embeddings, labels


def _as_set(indices):
    return set(zip(*[t.tolist() for t in indices], strict=True))


def test_all_pairs_brute_force():
    _, labels = _batch()
    anchor_g, other_g, anchor_i, other_i = all_pairs(labels)
    n = labels.shape[0]
    genuine = {(i, j) for i, j in itertools.combinations(range(n), 2) if labels[i] == labels[j]}
    impostor = {(i, j) for i, j in itertools.combinations(range(n), 2) if labels[i] != labels[j]}
    assert _as_set((anchor_g, other_g)) == genuine
    assert _as_set((anchor_i, other_i)) == impostor
    assert len(anchor_g) == len(genuine) and len(anchor_i) == len(impostor)


def test_all_triplets_brute_force():
    _, labels = _batch()
    n = labels.shape[0]
    expected = {(a, p, q) for a, p, q in itertools.product(range(n), repeat=3)
                if a != p and labels[a] == labels[p] and labels[a] != labels[q]}
    assert _as_set(all_triplets(labels)) == expected


def test_random_miners_are_seeded_subsets():
    _, labels = _batch()
    pairs = random_pairs(labels, torch.Generator().manual_seed(3), n=5)
    again = random_pairs(labels, torch.Generator().manual_seed(3), n=5)
    assert all(torch.equal(a, b) for a, b in zip(pairs, again, strict=True))
    assert len(pairs[0]) == 5 and len(pairs[2]) == 5
    assert _as_set(pairs[:2]) <= _as_set(all_pairs(labels)[:2])
    assert _as_set(pairs[2:]) <= _as_set(all_pairs(labels)[2:])
    triplets = random_triplets(labels, torch.Generator().manual_seed(3), n=7)
    assert len(_as_set(triplets)) == 7
    assert _as_set(triplets) <= _as_set(all_triplets(labels))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semihard_brute_force_and_pml(seed):
    embeddings, labels = _batch(seed)
    energies = energy_matrix(embeddings, "sqeuclidean")
    margin = 2.0
    n = labels.shape[0]
    expected = set()
    for a, p, q in itertools.product(range(n), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[q]:
            e_ap, e_an = energies[a, p].item(), energies[a, q].item()
            if e_ap < e_an < e_ap + margin:
                expected.add((a, p, q))
    mined = semihard_triplets(energies, labels, margin)
    assert _as_set(mined) == expected
    assert expected  # the test would be empty otherwise
    from pytorch_metric_learning.distances import LpDistance

    pml = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard",
                                    distance=LpDistance(normalize_embeddings=False, power=2))
    assert _as_set(pml(embeddings, labels)) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchhard_brute_force(seed):
    embeddings, labels = _batch(seed, n_identities=3, per_identity=4)
    labels = torch.cat([labels, torch.tensor([9])])  # an identity with one image: no positive
    embeddings = torch.cat([embeddings, torch.zeros(1, embeddings.shape[1])])
    energies = energy_matrix(embeddings, "l2")
    anchor, positive, negative = batchhard_triplets(energies, labels)
    n = labels.shape[0]
    expected_anchors = [a for a in range(n) if (labels == labels[a]).sum() > 1]
    assert anchor.tolist() == expected_anchors
    for a, p, q in zip(anchor.tolist(), positive.tolist(), negative.tolist(), strict=True):
        positives = [j for j in range(n) if j != a and labels[j] == labels[a]]
        negatives = [j for j in range(n) if labels[j] != labels[a]]
        assert energies[a, p] == max(energies[a, j] for j in positives)
        assert energies[a, q] == min(energies[a, j] for j in negatives)


def test_triplets_to_pairs_and_mine_dispatch():
    embeddings, labels = _batch()
    energies = energy_matrix(embeddings, "l2")
    triplets = batchhard_triplets(energies, labels)
    anchor_g, other_g, anchor_i, other_i = mine("batchhard", "pair", energies, labels, 0.5, None)
    def unordered(first, second) -> list[tuple[int, int]]:
        return [tuple(sorted(pair)) for pair in zip(first.tolist(), second.tolist(),
                                                     strict=True)]

    # each unordered pair of the triplets once: (a, p) and (p, a) are one genuine pair
    genuine, impostor = unordered(anchor_g, other_g), unordered(anchor_i, other_i)
    assert len(genuine) == len(set(genuine)) and len(impostor) == len(set(impostor))
    assert set(genuine) == set(unordered(triplets[0], triplets[1]))
    assert set(impostor) == set(unordered(triplets[0], triplets[2]))
    assert len(mine("all", "triplet", None, labels, 0.2, None)[0]) == len(all_triplets(labels)[0])
    empty = triplets_to_pairs(semihard_triplets(energies, labels, 0.0))
    assert all(t.numel() == 0 for t in empty)
    with pytest.raises(ValueError, match="unknown miner"):
        mine("hardest", "pair", energies, labels, 0.2, None)
    with pytest.raises(ValueError, match="energy matrix"):
        mine("semihard", "triplet", None, labels, 0.2, None)
