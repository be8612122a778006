"""Miner inspector: which pairs or triplets one batch gives the loss, and where one Step moves them.

For one P x K batch of training images the inspector mines exactly as the run's criterion does
(:func:`lab.metric.mining.mine`, same miner, margin and energy), places every mined item on a plane
whose margin line is the loss's, then takes one optimiser Step on a *copy* of the network, the
loss head and the optimiser (the run itself is untouched) and places the same items again:

- pair losses (contrastive, Chopra, naive): the (E_G, E_I) plane of Chopra, Hadsell & LeCun
  (2005). Each point is a genuine pair (a, p) and an impostor pair (a, n) of the mined pairs
  that share the image a; the margin line is E_I = E_G + m (the paper's half-plane condition).
- triplet loss: x = d(a, p), y = d(a, n), the hinge line d(a,n) = d(a,p) + α (FaceNet 2015).
- classifier losses (ArcFace, CosFace, softmax): one point per image, x = angle θ_y to its own
  identity's centre (the head's weight row), y = angle to the nearest other centre. ArcFace's
  line is θ_other = θ_y + m, CosFace's cos θ_other = cos θ_y − m, softmax's θ_other = θ_y.

Regions (the same words for every loss): **hard** below the diagonal (the impostor is closer
than the genuine pair / the nearest other centre closer than the own), **semi-hard** between the
diagonal and the margin line (ordered right, but still paying a loss), **easy** beyond the line.

Run on demand (a paused or finished run), never inside the training loop: the copy costs one
forward/backward pass of one batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lab.learn.changes import CHANGEABLE, setting_at
from lab.learn.train import Trainer
from lab.measure.evaluate import embed
from lab.metric.energy import energy_matrix
from lab.metric.loss_specs import LOSSES
from lab.metric.mining import mine

REGIONS = ("hard", "semi-hard", "easy")
MAX_ITEMS = 4000  # points drawn on the plane at most (a seeded sample beyond that)


@dataclass
class Inspection:
    """One batch before and after one Step. Coordinates are [T, 2]; items index the batch."""

    loss: str
    kind: str  # "pair" | "triplet" | "classifier"
    miner: str
    margin: float
    x_label: str
    y_label: str
    before: np.ndarray
    after: np.ndarray
    items: np.ndarray  # [T, 3]: (anchor, positive, negative) or (image, own id, nearest id)
    images: np.ndarray  # [N, C, H, W] the batch's images, in [0, 1]
    labels: np.ndarray  # [N] identity of each batch image (the run's training ids, 0..C-1)
    loss_before: float
    loss_after: float
    mined: int  # items the miner gave the loss (before sampling for the plane)
    candidates: int  # items it could have given ("all")
    boundary: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    note: str = ""

    def regions(self, which: str = "before") -> np.ndarray:
        points = self.before if which == "before" else self.after
        return regions_of(points[:, 0], points[:, 1], self.boundary)

    def shares(self, which: str = "before") -> dict[str, float]:
        kinds = self.regions(which)
        n = max(len(kinds), 1)
        return {k: float(np.sum(kinds == k)) / n for k in REGIONS}

    def crossed(self) -> np.ndarray:
        """Indices of the items that changed region with the Step."""
        return np.flatnonzero(self.regions("before") != self.regions("after"))

    def hardest(self, count: int = 4, one_per_anchor: bool = False) -> np.ndarray:
        """The items deepest on the wrong side of the margin line, before the Step.
        ``one_per_anchor``: the deepest item of each anchor image only (the thumbnails; one
        hard anchor otherwise fills every row with itself and its one positive)."""
        depth = self.before[:, 1] - self.boundary(self.before[:, 0])
        order = np.argsort(depth, kind="stable")
        if not one_per_anchor:
            return order[:count]
        _, first = np.unique(self.items[order, 0], return_index=True)
        return order[np.sort(first)][:count]


def regions_of(x: np.ndarray, y: np.ndarray, boundary: Callable[[np.ndarray], np.ndarray]
               ) -> np.ndarray:
    """"hard" when y <= x, "easy" when y >= boundary(x), "semi-hard" in between."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return np.where(y <= x, "hard", np.where(y < boundary(x), "semi-hard", "easy"))


def margin_of(config) -> float:
    """The margin the plane's line uses: the loss's own, else the geometry page's default m."""
    spec = LOSSES[config.loss]
    return float(config.margin) if "margin" in spec.params else float(spec.default_margin)


def boundary_for(config) -> Callable[[np.ndarray], np.ndarray]:
    """y of the margin line at x (see the module doc)."""
    m = margin_of(config)
    spec = LOSSES[config.loss]
    if spec.margin_kind == "cosine":  # CosFace: cos θ_n = cos θ_y − m
        return lambda x: np.arccos(np.clip(np.cos(np.asarray(x, float)) - m, -1.0, 1.0))
    if spec.kind == "classifier" and spec.margin_kind is None:  # softmax: θ_n = θ_y
        return lambda x: np.asarray(x, float)
    return lambda x: np.asarray(x, float) + m  # an energy, a gap or an angle added


# --- coordinates ------------------------------------------------------------------------

def _pair_items(indices, labels: torch.Tensor) -> np.ndarray:
    """(a, p, n) for every mined genuine pair {a, p} and mined impostor pair {a, n} sharing the
    image a (pairs are unordered: a pair mined twice, or in both orders, counts once)."""
    anchor_g, other_g, anchor_i, other_i = (t.cpu().numpy() for t in indices)
    genuine: dict[int, set[int]] = {}
    for a, b in zip(anchor_g, other_g, strict=True):
        genuine.setdefault(int(a), set()).add(int(b))
        genuine.setdefault(int(b), set()).add(int(a))
    impostors = sorted({(min(int(i), int(j)), max(int(i), int(j)))
                        for i, j in zip(anchor_i, other_i, strict=True)})
    rows = [(a, p, n) for i, j in impostors for a, n in ((i, j), (j, i))
            for p in sorted(genuine.get(a, ()))]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _triplet_coordinates(energies: torch.Tensor, items: np.ndarray) -> np.ndarray:
    e = energies.detach().cpu().double().numpy()
    a, p, n = items.T
    return np.stack([e[a, p], e[a, n]], axis=1)


def _classifier_coordinates(embeddings: torch.Tensor, weight: torch.Tensor,
                            labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Angles (radians) to the own centre and to the nearest other centre, and which one."""
    cosine = (F.normalize(embeddings.detach().double(), dim=1)
              @ F.normalize(weight.detach().double(), dim=1).T).clamp(-1.0, 1.0)
    angles = torch.arccos(cosine)
    own = angles.gather(1, labels[:, None]).squeeze(1)
    others = angles.scatter(1, labels[:, None], math.inf)
    nearest_angle, nearest = others.min(dim=1)
    coords = torch.stack([own, nearest_angle], dim=1).cpu().numpy()
    return coords, nearest.cpu().numpy()


# --- the inspection ---------------------------------------------------------------------

def inspect_batch(model: torch.nn.Module, criterion, optimizer: torch.optim.Optimizer | None,
                  config, images: torch.Tensor, labels: torch.Tensor, seed: int = 0,
                  note: str = "") -> Inspection:
    """Mine ``images``/``labels`` as ``criterion`` would, take one Step on copies, measure again.

    ``optimizer`` None: a fresh optimiser of the run's kind and learning rate (a saved run keeps
    no optimiser state, so its first Step is that of a newly started Adam/SGD)."""
    model_copy, criterion_copy = copy.deepcopy((model, criterion))
    params = list(model_copy.parameters()) + list(criterion_copy.parameters())
    if optimizer is not None:
        step_optimizer = type(optimizer)(params, **optimizer.defaults)
        step_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    elif config.optimizer == "sgd":
        step_optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                                         weight_decay=config.weight_decay)
    else:
        step_optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    spec = LOSSES[config.loss]
    kind = spec.kind
    margin = margin_of(config)
    boundary = boundary_for(config)
    device = next(model_copy.parameters()).device
    images, labels = images.to(device), labels.to(device)
    model_copy.train()  # as in training: batch norm on the batch's statistics

    def generator() -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(seed)

    def forward():
        embeddings = model_copy(images).float()
        return embeddings, criterion_copy(embeddings, labels, generator=generator())

    embeddings, output = forward()
    loss_before = float(output.loss.detach())
    if kind == "classifier":
        weight = criterion_copy.weight
        before, nearest = _classifier_coordinates(embeddings, weight, labels)
        items = np.stack([np.arange(len(labels)), labels.cpu().numpy(), nearest], axis=1)
        mined = candidates = len(labels)
    else:
        energies = energy_matrix(embeddings.detach(), config.energy)
        indices = mine(config.miner, kind, energies, labels, config.margin, generator())
        everything = mine("all", kind, None, labels, config.margin)
        if kind == "pair":
            items, candidates = _pair_items(indices, labels), len(_pair_items(everything, labels))
        else:
            items = np.stack([t.cpu().numpy() for t in indices], axis=1).reshape(-1, 3)
            candidates = int(everything[0].numel())
        mined = len(items)
        if len(items) > MAX_ITEMS:
            keep = np.sort(np.random.default_rng(seed).choice(len(items), MAX_ITEMS, False))
            items = items[keep]
        before = _triplet_coordinates(energies, items)
    step_optimizer.zero_grad(set_to_none=True)
    output.loss.backward()
    step_optimizer.step()
    with torch.no_grad():
        embeddings, output_after = forward()
    if kind == "classifier":
        after, _ = _classifier_coordinates(embeddings, criterion_copy.weight, labels)
        x_label = "θ to own centre (rad)"
        y_label = "θ to nearest other centre (rad)"
    else:
        after = _triplet_coordinates(energy_matrix(embeddings, config.energy), items)
        x_label = "E_G = E(a, p), genuine" if kind == "pair" else "d(a, p) anchor–positive"
        y_label = "E_I = E(a, n), impostor" if kind == "pair" else "d(a, n) anchor–negative"
    return Inspection(
        loss=config.loss, kind=kind, miner=config.miner if kind != "classifier" else "—",
        margin=margin, x_label=x_label, y_label=y_label, before=before, after=after, items=items,
        images=images.detach().float().cpu().numpy(), labels=labels.cpu().numpy(),
        loss_before=loss_before, loss_after=float(output_after.loss.detach()), mined=mined,
        candidates=candidates, boundary=boundary, note=note)


def trainer_batch(trainer, epoch: int, batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``batch`` of epoch ``epoch`` as that trainer draws it (no augmentation)."""
    batches = trainer._epoch_batches(epoch)
    index = batches[batch % len(batches)].to(trainer.train_images.device)
    return trainer.train_images[index], trainer.train_labels[index]


def inspect_trainer(trainer, epoch: int, batch: int = 0) -> Inspection:
    """The inspection of a live (paused) trainer: the next epoch's batch, its real optimiser."""
    images, labels = trainer_batch(trainer, epoch, batch)
    return inspect_batch(trainer.model, trainer.criterion, trainer.optimizer, trainer.config,
                         images, labels, seed=trainer.config.seed * 1000 + epoch,
                         note=f"the first batch of epoch {epoch}, before any augmentation")


def inspect_saved_run(run, faceset, epoch: int | None = None, batch: int = 0) -> Inspection:
    """The same for a saved run: its final weights, a fresh optimiser (none is saved)."""

    # the settings of its last epoch: a margin or learning rate changed mid-run is the one used
    config = run.config.replace(**{name: setting_at(run.config, run.history, len(run.history),
                                                    name) for name in CHANGEABLE})
    trainer = Trainer(config, faceset, probes=False, evaluate=False)
    trainer.model.load_state_dict(run.load_model(trainer.device).state_dict())
    note = ("the saved weights; a fresh optimiser takes the Step, since the run's optimiser "
            "state is not saved")
    if trainer.criterion.weight is not None:
        # The classifier head is not saved with a run: each identity's centre is estimated as
        # the mean direction of its training images' embeddings (where ArcFace's rows settle).
        with torch.no_grad():
            emb = torch.as_tensor(embed(trainer.model, trainer.train_images, trainer.device))
            emb = F.normalize(emb, dim=1)
            centres = torch.zeros_like(trainer.criterion.weight)
            centres.index_add_(0, trainer.train_labels.cpu(), emb.to(centres))
            trainer.criterion.weight.copy_(F.normalize(centres, dim=1))
        note += "; identity centres estimated as the mean direction of each person's embeddings"
    epoch = len(run.history) + 1 if epoch is None else epoch
    images, labels = trainer_batch(trainer, epoch, batch)
    return inspect_batch(trainer.model, trainer.criterion, None, config, images, labels,
                         seed=config.seed * 1000 + epoch, note=note)
