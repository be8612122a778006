"""Mining: which pairs and triplets of a batch a loss looks at.

Index tuples follow pytorch-metric-learning, so they can be handed to its losses in tests:
- pairs: ``(anchor_genuine, other_genuine, anchor_impostor, other_impostor)`` (LongTensors);
  genuine pairs share an identity (``same`` is True), impostor pairs do not;
- triplets: ``(anchor, positive, negative)``.

Pairs are unordered (i < j): each pair of images is counted once. ``energies`` arguments are the
[N, N] energy matrix of the batch (see :func:`lab.energy.energy_matrix`), computed with the same
energy the loss uses, and are never differentiated here.
"""

from __future__ import annotations

import torch

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


def _sample(count: int, n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """Up to n distinct positions in range(count), drawn with ``generator``."""
    where = generator.device if generator is not None else "cpu"
    order = torch.randperm(count, generator=generator, device=where)[: min(n, count)]
    return order.sort().values.to(device)


def random_pairs(labels: torch.Tensor, generator: torch.Generator | None = None,
                 n: int | None = None) -> Pairs:
    """A balanced random draw: up to n genuine and up to n impostor pairs (n defaults to N).

    Balanced because in a P x K batch only (K - 1) / (N - 1) of all pairs are genuine.
    """
    n = labels.shape[0] if n is None else n
    anchor_g, other_g, anchor_i, other_i = all_pairs(labels)
    keep_g = _sample(anchor_g.shape[0], n, generator, labels.device)
    keep_i = _sample(anchor_i.shape[0], n, generator, labels.device)
    return anchor_g[keep_g], other_g[keep_g], anchor_i[keep_i], other_i[keep_i]


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
    anchor, positive, negative = all_triplets(labels)
    keep = _sample(anchor.shape[0], n, generator, labels.device)
    return anchor[keep], positive[keep], negative[keep]


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
    """The distinct genuine pairs (a, p) and impostor pairs (a, n) of some triplets.

    This is how the pair losses use the triplet miners: FaceNet defines semi-hard and batch-hard
    on triplets, so a pair loss trains on the pairs those triplets are made of.
    """
    anchor, positive, negative = triplets

    def distinct(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if first.numel() == 0:
            return first, second
        unique = torch.unique(torch.stack([first, second], dim=1), dim=0)
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
