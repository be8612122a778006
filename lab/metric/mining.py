"""Mining: which pairs and triplets of a batch a loss looks at.

Index tuples follow pytorch-metric-learning, so they can be handed to its losses in tests:
- pairs: ``(anchor_genuine, other_genuine, anchor_impostor, other_impostor)`` (LongTensors);
  genuine pairs share an identity (``same`` is True), impostor pairs do not;
- triplets: ``(anchor, positive, negative)``.

Pairs are unordered (i < j): each pair of images is counted once. ``energies`` arguments are the
[N, N] energy matrix of the batch (see :func:`lab.metric.energy.energy_matrix`), computed with the
same energy the loss uses, and are never differentiated here.

Two forms of the same miners:
- the index tuples above (``all_pairs``, ``semihard_triplets``, ...): readable, the form
  pytorch-metric-learning takes, what the tests check against it; their length depends on the
  data (``nonzero``), so on a GPU each call waits for the device;
- :func:`mine_batch`, what training runs: the same pairs and triplets as masks over the fixed
  layout of the batch (:mod:`lab.metric.layout`), so every shape is known on the host and a step
  never waits for the device. Random draws are made on the generator's device: the smallest
  of uniform keys among the allowed positions is a uniform draw without replacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.metric.energy import energy_matrix, pairwise_energy
from lab.metric.layout import BatchLayout, layout_of

MINERS = ("all", "random", "semihard", "batchhard")

Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _same_matrix(labels: torch.Tensor) -> torch.Tensor:
    """[N, N] boolean: True where two images share an identity (the diagonal included)."""
    return labels[:, None] == labels[None, :]


def all_pairs(labels: torch.Tensor) -> Pairs:
    """Every unordered pair i < j of the batch, split into genuine and impostor pairs."""
    n = labels.shape[0]
    upper = torch.ones(n, n, dtype=torch.bool, device=labels.device).triu(diagonal=1)
    same = _same_matrix(labels)
    anchor_g, other_g = torch.nonzero(upper & same, as_tuple=True)
    anchor_i, other_i = torch.nonzero(upper & ~same, as_tuple=True)
    return anchor_g, other_g, anchor_i, other_i


def _keys(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform keys in [0, 1), drawn with ``generator`` (on its device; pass one on the batch's
    device, or the keys are copied there)."""
    where = generator.device if generator is not None else torch.device(device)
    keys = torch.rand(shape, generator=generator, device=where)
    return keys if where == torch.device(device) else keys.to(device)


def _draw(keys: torch.Tensor, allowed: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` smallest keys among the allowed ones, in increasing order:
    ``count`` distinct allowed positions, uniformly (count <= allowed.sum(), known on the host)."""
    keys = torch.where(allowed, keys, 2.0)
    return keys.topk(count, largest=False, sorted=False).indices.sort().values


def random_pair_positions(layout: BatchLayout, generator: torch.Generator | None,
                          n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to n genuine and up to n impostor positions in the layout's pair list."""
    keys = _keys((layout.first.shape[0],), generator, layout.device)
    return (_draw(keys, layout.genuine, min(n, layout.genuine_pairs)),
            _draw(keys, ~layout.genuine, min(n, layout.impostor_pairs)))


def random_triplet_slots(layout: BatchLayout, generator: torch.Generator | None,
                         n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to n triplets drawn uniformly without replacement: (anchor, positive slot, negative
    slot) into the layout's [N, Q, M] grid."""
    ok = layout.triplet_ok
    _, q, m = ok.shape
    flat = _draw(_keys((ok.numel(),), generator, layout.device), ok.reshape(-1),
                 min(n, layout.triplets))
    return flat // (q * m), (flat // m) % q, flat % m


def random_pairs(labels: torch.Tensor, generator: torch.Generator | None = None,
                 n: int | None = None) -> Pairs:
    """A balanced random draw: up to n genuine and up to n impostor pairs (n defaults to N).

    Balanced because in a P x K batch only (K - 1) / (N - 1) of all pairs are genuine.
    """
    n = labels.shape[0] if n is None else n
    layout = layout_of(labels, labels.device)
    keep_g, keep_i = random_pair_positions(layout, generator, n)
    return (layout.first[keep_g], layout.second[keep_g], layout.first[keep_i],
            layout.second[keep_i])


def all_triplets(labels: torch.Tensor) -> Triplets:
    """Every (anchor, positive, negative) with positive != anchor of the anchor's identity."""
    same = _same_matrix(labels)
    n = labels.shape[0]
    not_self = ~torch.eye(n, dtype=torch.bool, device=labels.device)
    valid = (same & not_self)[:, :, None] & ~same[:, None, :]
    anchor, positive, negative = torch.nonzero(valid, as_tuple=True)
    return anchor, positive, negative


def random_triplets(labels: torch.Tensor, generator: torch.Generator | None = None,
                    n: int | None = None) -> Triplets:
    """Up to n triplets drawn uniformly without replacement from all triplets (n defaults to N)."""
    n = labels.shape[0] if n is None else n
    layout = layout_of(labels, labels.device)
    anchor, q, m = random_triplet_slots(layout, generator, n)
    return anchor, layout.positives[anchor, q], layout.negatives[anchor, m]


def semihard_triplets(energies: torch.Tensor, labels: torch.Tensor, margin: float) -> Triplets:
    """FaceNet's semi-hard triplets: E(a,p) < E(a,n) < E(a,p) + alpha (Schroff et al. 2015).

    The negative is farther than the positive (so the triplet is not "hard", whose gradients
    can collapse the embedding early in training) but still inside the margin (so the loss is
    not zero). All such triplets are returned; there may be none.
    """
    anchor, positive, negative = all_triplets(labels)
    e_ap = energies[anchor, positive]
    e_an = energies[anchor, negative]
    keep = (e_ap < e_an) & (e_an < e_ap + margin)
    return anchor[keep], positive[keep], negative[keep]


def batchhard_triplets(energies: torch.Tensor, labels: torch.Tensor) -> Triplets:
    """Batch-hard (Hermans et al. 2017): per anchor, its hardest positive and hardest negative.

    Hardest positive = same identity, highest energy; hardest negative = other identity, lowest
    energy. Anchors without a positive or without a negative in the batch are skipped.
    """
    n = labels.shape[0]
    same = _same_matrix(labels)
    positive_mask = same & ~torch.eye(n, dtype=torch.bool, device=labels.device)
    negative_mask = ~same
    has_both = positive_mask.any(dim=1) & negative_mask.any(dim=1)
    inf = torch.finfo(energies.dtype).max
    hardest_positive = energies.masked_fill(~positive_mask, -inf).argmax(dim=1)
    hardest_negative = energies.masked_fill(~negative_mask, inf).argmin(dim=1)
    anchor = torch.nonzero(has_both, as_tuple=True)[0]
    return anchor, hardest_positive[anchor], hardest_negative[anchor]


def triplets_to_pairs(triplets: Triplets) -> Pairs:
    """The distinct genuine pairs {a, p} and impostor pairs {a, n} of some triplets.

    This is how the pair losses use the triplet miners: FaceNet defines semi-hard and batch-hard
    on triplets, so a pair loss trains on the pairs those triplets are made of. A pair is
    unordered: the triplets (a, p, ·) and (p, a, ·) share one genuine pair, counted once.
    """
    anchor, positive, negative = triplets

    def distinct(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if first.numel() == 0:
            return first, second
        ordered = torch.stack([torch.minimum(first, second), torch.maximum(first, second)], 1)
        unique = torch.unique(ordered, dim=0)
        return unique[:, 0], unique[:, 1]

    anchor_g, other_g = distinct(anchor, positive)
    anchor_i, other_i = distinct(anchor, negative)
    return anchor_g, other_g, anchor_i, other_i


def mine(miner: str, kind: str, energies: torch.Tensor | None, labels: torch.Tensor,
         margin: float, generator: torch.Generator | None = None) -> Pairs | Triplets:
    """Index tuple for one batch: ``kind`` is "pair" or "triplet", ``miner`` one of MINERS.

    For pair losses "semihard" gives the pairs of the FaceNet semi-hard triplets and
    "batchhard" the hardest genuine and hardest impostor pair of every anchor (the pairs of the
    batch-hard triplets); see :func:`triplets_to_pairs`. ``energies`` may be None for "all" and
    "random", which do not look at the embedding.
    """
    if miner not in MINERS:
        raise ValueError(f"unknown miner {miner!r}; expected one of {', '.join(MINERS)}")
    if kind not in ("pair", "triplet"):
        raise ValueError(f"mining kind must be 'pair' or 'triplet', got {kind!r}")
    if miner == "all":
        return all_pairs(labels) if kind == "pair" else all_triplets(labels)
    if miner == "random":
        if kind == "pair":
            return random_pairs(labels, generator)
        return random_triplets(labels, generator)
    if energies is None:
        raise ValueError(f"the {miner!r} miner needs the batch energy matrix")
    if miner == "semihard":
        triplets = semihard_triplets(energies, labels, margin)
    else:
        triplets = batchhard_triplets(energies, labels)
    return triplets_to_pairs(triplets) if kind == "pair" else triplets


# --- the same miners on the batch layout: fixed shapes, no host sync --------------------------

@dataclass(frozen=True)
class MinedPairs:
    """Energies of the mined genuine and impostor pairs, and which of them count: a boolean
    mask of the same shape, or None when all do. The shapes come from the layout, not from
    what the data picked."""

    genuine: torch.Tensor
    impostor: torch.Tensor
    genuine_mask: torch.Tensor | None = None
    impostor_mask: torch.Tensor | None = None


@dataclass(frozen=True)
class MinedTriplets:
    """E(a, p) and E(a, n) of the mined triplets (broadcastable to one shape), and the mask of
    which count over that shape (None = all)."""

    positive: torch.Tensor
    negative: torch.Tensor
    mask: torch.Tensor | None = None


def mine_batch(miner: str, kind: str, embeddings: torch.Tensor, energy: str,
               layout: BatchLayout, margin: float,
               generator: torch.Generator | None = None) -> MinedPairs | MinedTriplets:
    """What :func:`mine` selects, as energies (differentiable) with masks over the layout.

    The same pairs and triplets as the index form, with these shapes (N images, Q positives
    and M negatives per anchor):
    - pairs, "all": every pair i < j, genuine and impostor masks; "random": n = N genuine and
      N impostor pairs drawn on the device;
    - triplets, "all": the [N, Q, M] grid; "random": N triplets drawn on the device;
    - "semihard": the grid, masked by E(a,p) < E(a,n) < E(a,p) + margin (FaceNet); as pairs,
      the unordered pairs {a, p} and {a, n} of any such triplet, masks over the pair list
      (the distinct pairs of :func:`triplets_to_pairs`);
    - "batchhard": per anchor its hardest positive and negative [N], masked where the anchor
      has both; as pairs, their unordered pairs over the pair list.
    """
    if miner not in MINERS:
        raise ValueError(f"unknown miner {miner!r}; expected one of {', '.join(MINERS)}")
    if kind not in ("pair", "triplet"):
        raise ValueError(f"mining kind must be 'pair' or 'triplet', got {kind!r}")
    n = layout.size
    if kind == "pair" and miner in ("all", "random"):
        first, second = layout.first, layout.second
        if miner == "all":
            e = pairwise_energy(embeddings[first], embeddings[second], energy)
            return MinedPairs(e, e, layout.genuine, ~layout.genuine)
        g, i = random_pair_positions(layout, generator, n)
        return MinedPairs(pairwise_energy(embeddings[first[g]], embeddings[second[g]], energy),
                          pairwise_energy(embeddings[first[i]], embeddings[second[i]], energy))
    energies = energy_matrix(embeddings, energy)
    e_ap = energies.gather(1, layout.positives)  # [N, Q]
    e_an = energies.gather(1, layout.negatives)  # [N, M]
    if miner == "all":
        return MinedTriplets(e_ap[:, :, None], e_an[:, None, :], layout.triplet_ok)
    if miner == "random":
        anchor, q, m = random_triplet_slots(layout, generator, n)
        return MinedTriplets(e_ap[anchor, q], e_an[anchor, m])
    if miner == "semihard":
        ap, an = e_ap.detach()[:, :, None], e_an.detach()[:, None, :]
        chosen = layout.triplet_ok & (ap < an) & (an < ap + margin)
        if kind == "triplet":
            return MinedTriplets(e_ap[:, :, None], e_an[:, None, :], chosen)
        return _unordered(energies, layout, (layout.positives, chosen.any(dim=2)),
                          (layout.negatives, chosen.any(dim=1)))
    inf = torch.finfo(energies.dtype).max
    hardest_p = e_ap.detach().masked_fill(~layout.positive_ok, -inf).argmax(dim=1, keepdim=True)
    hardest_n = e_an.detach().masked_fill(~layout.negative_ok, inf).argmin(dim=1, keepdim=True)
    has_both = layout.positive_ok.any(dim=1) & layout.negative_ok.any(dim=1)
    e_p, e_n = e_ap.gather(1, hardest_p).squeeze(1), e_an.gather(1, hardest_n).squeeze(1)
    if kind == "triplet":
        return MinedTriplets(e_p, e_n, has_both)
    return _unordered(energies, layout,
                      (layout.positives.gather(1, hardest_p), has_both[:, None]),
                      (layout.negatives.gather(1, hardest_n), has_both[:, None]))


def _unordered(energies: torch.Tensor, layout: BatchLayout, genuine, impostor) -> MinedPairs:
    """Pairs picked per anchor, (columns [N, S], picked [N, S]), as unordered pairs i < j of the
    layout's pair list: {a, b} counts once whether a picked b, b picked a, or both (as
    :func:`triplets_to_pairs` counts them). A scatter into [N, N], no data-dependent shape."""
    n = layout.size

    def chosen(columns: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
        grid = torch.zeros(n, n, dtype=torch.bool, device=columns.device)
        grid = grid.scatter(1, columns, picked.expand_as(columns))
        grid = grid | grid.T
        return grid[layout.first, layout.second]

    e = energies[layout.first, layout.second]
    return MinedPairs(e, e, chosen(*genuine) & layout.genuine,
                      chosen(*impostor) & ~layout.genuine)
