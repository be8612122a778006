"""The index layout of a batch: which pairs and triplets it holds, computed once on the host.

Why: mining by ``nonzero`` over masks gives tensors whose length depends on the data, so on a
GPU the host waits for the device every step to learn it (a sync), and the triplet mask of all
(anchor, positive, negative) is [N, N, N] (8.6 G booleans for the largest batch the app
allows). A P x K batch (:class:`lab.data.sampler.PKSampler`) always has the same layout: P
blocks of K images, so the same positions form genuine pairs, and every anchor has the same
K - 1 positives and N - K negatives. The layout depends only on which labels are equal, not
on who they are; it is computed once from the labels' pattern (here, on the CPU), kept on the
device, and mining becomes fixed-shape gathers and masked sums (:mod:`lab.metric.mining`).

Layout of N images:
- pairs: every unordered i < j (``first``, ``second``; ``torch.triu_indices`` order) and
  whether it is genuine;
- per anchor a: its positives ``positives[a, :Q]`` (other images of a's identity, in index
  order) and negatives ``negatives[a, :M]`` (images of other identities), padded to the
  largest count with a itself and flagged by ``positive_ok`` / ``negative_ok``. A triplet is
  (a, positives[a, q], negatives[a, m]) with both flags set: [N, Q, M] = N (K-1) (N-K) for
  P x K, no padding at all.
- the counts, as Python ints (fixed-size random draws need them without asking the device).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchLayout:
    size: int
    first: torch.Tensor  # [n_pairs] long
    second: torch.Tensor  # [n_pairs] long
    genuine: torch.Tensor  # [n_pairs] bool
    positives: torch.Tensor  # [N, Q] long
    positive_ok: torch.Tensor  # [N, Q] bool
    negatives: torch.Tensor  # [N, M] long
    negative_ok: torch.Tensor  # [N, M] bool
    genuine_pairs: int
    impostor_pairs: int
    triplets: int

    @property
    def device(self) -> torch.device:
        return self.first.device

    @property
    def triplet_ok(self) -> torch.Tensor:
        """[N, Q, M] bool: which (anchor, positive slot, negative slot) is a triplet."""
        return self.positive_ok[:, :, None] & self.negative_ok[:, None, :]


def pattern(labels: torch.Tensor) -> tuple[int, ...]:
    """Labels renamed by first appearance: (7, 7, 3, 3) and (2, 2, 9, 9) give (0, 0, 1, 1).
    Two batches with the same pattern have the same layout."""
    names: dict[int, int] = {}
    return tuple(names.setdefault(value, len(names)) for value in labels.tolist())


def _slots(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the columns where ``mask`` holds, in order, padded with the row's own index."""
    n = mask.shape[0]
    width = max(1, int(mask.sum(dim=1).max())) if n else 1
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]
    ok = mask.gather(1, order)
    own = torch.arange(n)[:, None].expand_as(order)
    return torch.where(ok, order, own), ok


def layout_of(labels: torch.Tensor, device: torch.device | str | None = None) -> BatchLayout:
    """The layout of a batch with these labels (a CPU tensor; the result is put on ``device``,
    default the CPU). Costs a few host operations: call it once per pattern (LayoutCache)."""
    labels = torch.as_tensor(labels).reshape(-1).cpu()
    n = labels.shape[0]
    same = labels[:, None] == labels[None, :]
    first, second = torch.triu_indices(n, n, offset=1)
    genuine = same[first, second]
    not_self = ~torch.eye(n, dtype=torch.bool)
    positives, positive_ok = _slots(same & not_self)
    negatives, negative_ok = _slots(~same)
    per_anchor = positive_ok.sum(dim=1) * negative_ok.sum(dim=1)
    layout = BatchLayout(
        size=n, first=first, second=second, genuine=genuine, positives=positives,
        positive_ok=positive_ok, negatives=negatives, negative_ok=negative_ok,
        genuine_pairs=int(genuine.sum()), impostor_pairs=int((~genuine).sum()),
        triplets=int(per_anchor.sum()))
    return layout if device is None else to_device(layout, device)


def to_device(layout: BatchLayout, device: torch.device | str) -> BatchLayout:
    tensors = {name: getattr(layout, name).to(device) for name in (
        "first", "second", "genuine", "positives", "positive_ok", "negatives", "negative_ok")}
    return BatchLayout(size=layout.size, genuine_pairs=layout.genuine_pairs,
                       impostor_pairs=layout.impostor_pairs, triplets=layout.triplets, **tensors)


class LayoutCache:
    """Layouts by label pattern and device, the few most recent kept (a P x K trainer needs
    one; the last, smaller batch of an epoch or a different P after a retry, a second)."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._layouts: OrderedDict[tuple, BatchLayout] = OrderedDict()
        self.built = 0  # how many layouts were computed (a test counts them)

    def get(self, labels: torch.Tensor, device: torch.device | str) -> BatchLayout:
        """The layout of ``labels`` (read on the host: pass CPU labels to stay sync-free)."""
        key = (pattern(labels.cpu()), str(torch.device(device)))
        layout = self._layouts.get(key)
        if layout is None:
            layout = layout_of(labels, device)
            self.built += 1
            self._layouts[key] = layout
            while len(self._layouts) > self.capacity:
                self._layouts.popitem(last=False)
        else:
            self._layouts.move_to_end(key)
        return layout
