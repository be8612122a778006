"""P x K batches: P identities, K images of each (FaceNet's and Hermans et al.'s sampler).

Pair and triplet losses need genuine pairs inside every batch; drawing images uniformly gives
almost none when there are many identities. Sampling P identities and K images per identity
guarantees P * K * (K - 1) / 2 genuine pairs per batch. An identity with fewer than K images
is sampled with replacement (a single-image identity then repeats its image: its genuine pairs
have zero energy, and it still serves as an impostor for the others).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lab.data.errors import DatasetError


class PKSampler:
    """Iterable of LongTensor index batches into labels; deterministic by seed and epoch.

    Each iteration is one epoch of about len(labels) / (P * K) batches; consecutive epochs
    differ (the epoch number is mixed into the seed) but replay identically for the same seed.
    """

    def __init__(self, labels: torch.Tensor, p: int, k: int, seed: int = 0) -> None:
        labels = torch.as_tensor(labels).long().reshape(-1)
        if len(labels) == 0:
            raise DatasetError("PKSampler: no images to sample from")
        if p < 1 or k < 1:
            raise DatasetError(f"PKSampler: P and K must be at least 1, got P={p}, K={k}")
        identities, inverse = np.unique(labels.numpy(), return_inverse=True)
        if len(identities) < 2 and p >= 2:
            raise DatasetError("PKSampler: need at least 2 identities for impostor pairs")
        self.p = min(p, len(identities))
        self.k = k
        self.seed = seed
        self.epoch = 0
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))
        self._members = np.split(order, bounds[:-1])
        self._num_images = len(labels)

    def __len__(self) -> int:
        return max(1, self._num_images // (self.p * self.k))

    def set_epoch(self, epoch: int) -> None:
        """Replay a given epoch's batches (iteration otherwise advances the epoch itself)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        num_ids = len(self._members)
        queues = [rng.permutation(m) for m in self._members]
        cursor = [0] * num_ids
        id_order = rng.permutation(num_ids)
        id_pos = 0
        for _ in range(len(self)):
            if id_pos + self.p > num_ids:
                id_order = rng.permutation(num_ids)
                id_pos = 0
            chosen = id_order[id_pos:id_pos + self.p]
            id_pos += self.p
            batch = []
            for identity in chosen:
                members = self._members[identity]
                if len(members) < self.k:
                    batch.append(rng.choice(members, size=self.k, replace=True))
                    continue
                if cursor[identity] + self.k > len(members):
                    queues[identity] = rng.permutation(members)
                    cursor[identity] = 0
                start = cursor[identity]
                batch.append(queues[identity][start:start + self.k])
                cursor[identity] += self.k
            yield torch.from_numpy(np.concatenate(batch).astype(np.int64))
