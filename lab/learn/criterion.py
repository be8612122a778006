"""The loss of a run as a module: the run's settings, its spec (lab.metric.loss_specs) and a batch
in, a :class:`lab.metric.losses.LossOutput` out.

Nothing here knows a loss by name: the spec says what kind it is (pairs, triplets or a
classifier head), which settings its batch function takes (``spec.arguments``) and which head
it holds, so a newly registered loss trains without a change here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lab.core.config import RunConfig
from lab.metric.layout import LayoutCache
from lab.metric.loss_specs import LOSSES
from lab.metric.losses import LossOutput, chopra_q
from lab.metric.mining import mine_batch


def chopra_q_for(config: RunConfig) -> float:
    """Q of the Chopra loss for a run (:func:`lab.metric.losses.chopra_q` of its settings)."""
    return chopra_q(config.chopra_q, config.energy, config.embedding_dim)


class Criterion(nn.Module):
    """The loss of a run as a module: mining per ``config.miner``, then the loss.

    Classifier losses (ArcFace, CosFace, softmax) hold their head here as parameters (one row
    per training identity), so the optimiser must see ``criterion.parameters()`` too; their
    labels must be 0..num_classes-1. Pair losses mine pairs and triplet losses mine triplets
    (see :func:`lab.metric.mining.mine`: "semihard"/"batchhard" give pair losses the pairs of the
    semi-hard / batch-hard triplets). ``config`` may be replaced between steps (a margin
    changed while paused, lab.learn.changes): the loss's arguments are read from it at every call.
    """

    def __init__(self, config: RunConfig, num_classes: int):
        super().__init__()
        if config.loss not in LOSSES:
            raise ValueError(f"unknown loss {config.loss!r}; expected one of "
                             f"{', '.join(LOSSES)}")
        self.config = config
        self.spec = LOSSES[config.loss]
        self.spec.arguments(config)  # a setting the loss cannot take fails here, not mid-run
        self.num_classes = num_classes
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if self.spec.kind == "classifier":
            if num_classes < 2:
                raise ValueError(f"a classifier loss needs at least 2 identities, "
                                 f"got {num_classes}")
            # Drawn from torch's global RNG, so the run's seed fixes the head like the network.
            self.weight = nn.Parameter(torch.empty(num_classes, config.embedding_dim))
            if self.spec.head == "affine":  # w·x + b, initialised as nn.Linear does
                nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
                self.bias = nn.Parameter(torch.zeros(num_classes))
            else:  # cosines to unit weight vectors (ArcFace, CosFace)
                nn.init.xavier_normal_(self.weight)
        self.layouts = LayoutCache()  # the layouts of the batches seen, by label pattern

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None = None, layout=None) -> LossOutput:
        """The loss of one batch. ``layout``: the batch's :class:`lab.metric.layout.BatchLayout` on
        the embeddings' device (the trainer passes it, computed on the host once per trainer);
        without it the layout comes from the labels (on a GPU, reading them waits once per new label
        pattern: the cache keeps the few last). ``generator``: the random miner's, on the same
        device, so its draws never leave it."""
        config, spec = self.config, self.spec
        arguments = spec.arguments(config)
        if spec.kind == "classifier":
            # Checked where it is free: on a GPU reading min/max would wait for the device every
            # step, and the Trainer (which passes a layout) remapped its labels to 0..C-1 on the
            # host before they moved.
            if layout is None and labels.device.type == "cpu" and labels.numel() and (
                    int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"classifier labels must lie in 0..{self.num_classes - 1}")
            head = {"weight": self.weight}
            if self.bias is not None:
                head["bias"] = self.bias
            return spec.function(embeddings, labels, **head, **arguments)
        if layout is None:
            layout = self.layouts.get(labels, embeddings.device)
        indices = mine_batch(config.miner, spec.kind, embeddings, config.energy, layout,
                             config.margin, generator)
        return spec.function(embeddings, labels, indices=indices, **arguments)


def build_criterion(config: RunConfig, num_classes: int) -> Criterion:
    """The criterion of a run (``num_classes`` = training identities, used by classifier heads)."""
    return Criterion(config, num_classes)
