"""Trainer: a generator of reports, one per epoch (optionally every N steps), that can be stopped.

``Trainer(config).fit()`` yields :class:`EpochReport` objects; the last one has status "done",
"stopped" or "diverged" and carries the final evaluation. Why a generator: the CLI draws a progress
bar from it, the app streams it into a queue, a test just takes ``list(...)``; nobody needs a
callback API.

Choices, and why:
- Seeds: ``config.seed`` fixes the identity split, the initial weights (drawn under a forked
  global RNG, one trainer at a time: lab.learn.reproducibility.seeded), the P x K batches (one
  sampler per epoch, seeded from seed and epoch), the augmentation and the random miner (their
  own ``torch.Generator`` each), so the same config on the same device gives the same metrics
  (on CUDA with deterministic kernels: lab.learn.reproducibility.configure).
  ``config.split_seed``, when set, takes over the data side (split, probes, sampled pairs), so
  the same people can be retrained from other weights.
- Device: CUDA (a card this build supports) > MPS > CPU (lab.learn.devices). All images move to the
  device once; batches are index lookups. Where bf16 is native (compute capability 8.0+) the
  forward pass runs under bf16 autocast (the loss in float32).
- No host sync per step on GPU: mining and losses work on the batch's layout, computed once
  per trainer on the host (lab.metric.layout, lab.metric.mining.mine_batch); loss and statistics
  accumulate in device tensors, with the first non-finite step, and are read only when a report is
  made. On CPU a sync costs nothing, so non-finite losses are caught at the step they happen.
- Divergence: a NaN/inf loss stops training with status "diverged", a plain-language message,
  and the weights of the last epoch that ended finite (a snapshot is kept at every epoch end).
- Augmentation (faces): per-image small random resized crop (scale 0.85-1), horizontal flip and
  brightness jitter, through ``torchvision.transforms.v2.functional`` with parameters drawn from
  the trainer's own generator (deterministic, and safe when several trainings share a process).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.data.sampler import PKSampler
from lab.data.splits import split_for_config
from lab.learn import reproducibility
from lab.learn.changes import apply_changes
from lab.learn.changes import scheduled as scheduled_changes
from lab.learn.criterion import build_criterion
from lab.learn.devices import describe_device, pick_device, precision_for
from lab.learn.lighting import light_batch
from lab.learn.models import build_model
from lab.learn.train_path import active_training, augment_batch_grid, path_for_config, threads_for
from lab.measure.evaluate import Verification, baseline_embeddings, embed, evaluate_embeddings

PROBE_CAP = 600  # probe images (val + test identities) embedded at every report
SEEN_IDENTITIES = 8  # training identities also drawn on the maps (filled markers)
SEEN_CAP = 160  # their images, at most
# Convolutional nets train 20-35 % faster on CPU with images and weights in channels-last
# (NHWC) memory order (oneDNN's native layout; also what GPU tensor cores prefer). Measured by
# `python -m lab bench train`; the flat nets (linear, mlp) would only pay for a copy.
CHANNELS_LAST_NETWORKS = ("cnn", "resnet")
MINING_SEED_OFFSET = 7919  # the random miner's generator: seed + this, apart from augmentation's


@dataclass
class EpochReport:
    epoch: int  # epochs completed (the report after the first epoch has epoch 1)
    epochs: int
    step: int  # optimisation steps completed in total
    loss: float
    seconds: float  # since the previous report
    images_per_second: float
    active_fraction: float  # pairs/triplets with a non-zero loss term
    mean_genuine: float
    mean_impostor: float
    probe_embeddings: np.ndarray | None  # [P, D] of the fixed probe set
    status: str = "running"  # running | done | stopped | diverged
    message: str = ""
    elapsed: float = 0.0  # seconds since fit() started
    metrics: dict | None = None  # the final evaluation, on the last report only
    seen_embeddings: np.ndarray | None = None  # [S, D] of a few training identities' images
    # lab.measure.health.epoch_statistics, set by train_run
    health: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)  # settings changed before this report's epochs
    train_path: str = ""  # how the steps were computed (lab.learn.train_path), e.g. "fast"
    threads: int | None = None  # CPU threads the training ran on (None on a GPU)

    def record(self) -> dict:
        """The JSON-ready part (no embeddings), one line of history.jsonl."""
        return {k: getattr(self, k) for k in (
            "epoch", "epochs", "step", "loss", "seconds", "images_per_second",
            "active_fraction", "mean_genuine", "mean_impostor", "status", "message", "elapsed",
            "health", "changes", "train_path", "threads")}


@dataclass
class _Accumulator:
    """Per-report sums kept on the device, read once per report.

    Also the first step whose loss was not finite (``at`` of :meth:`add`, 0 = none), recorded
    on the device, so a NaN is still named with its step when it is only read at the report."""

    device: torch.device
    steps: int = 0
    images: int = 0
    sums: torch.Tensor = field(init=False)
    bad_step: int = 0  # set by read()

    def __post_init__(self) -> None:
        # loss, active, gen, n_gen, imp, n_imp, first non-finite step
        self.sums = torch.zeros(7, device=self.device)

    def add(self, loss: torch.Tensor, output, images: int, at: int = 0) -> None:
        def stat(value) -> torch.Tensor:
            return torch.as_tensor(value, dtype=torch.float32, device=self.device).detach()

        genuine, impostor = stat(output.mean_genuine), stat(output.mean_impostor)
        g_ok, i_ok = torch.isfinite(genuine), torch.isfinite(impostor)
        loss = loss.detach().float()
        first_bad = (self.sums[6] == 0) & ~torch.isfinite(loss)
        self.sums += torch.stack([
            loss, stat(output.active_fraction),
            torch.where(g_ok, genuine, 0.0), g_ok.float(),
            torch.where(i_ok, impostor, 0.0), i_ok.float(),
            torch.where(first_bad, float(at), 0.0)])
        self.steps += 1
        self.images += images

    def read(self) -> tuple[float, float, float, float]:
        s = self.sums.cpu().tolist()
        n = max(self.steps, 1)
        self.bad_step = int(s[6])
        return (s[0] / n, s[1] / n, s[2] / s[3] if s[3] else math.nan,
                s[4] / s[5] if s[5] else math.nan)


def augment_batch(images: torch.Tensor, generator: torch.Generator,
                  scale: tuple[float, float] = (0.85, 1.0), brightness: float = 0.2
                  ) -> torch.Tensor:
    """Per-image random resized crop, horizontal flip and brightness, seeded by ``generator``.

    Small on purpose: a face cropped to 85 % of its area, mirrored, or a little brighter is
    still the same identity, so the net learns to ignore those changes.
    """
    from torchvision.transforms.v2 import functional as TF

    n, _, height, width = images.shape
    draws = torch.rand(n, 5, generator=generator, device=generator.device).cpu()
    out = []
    for k in range(n):
        area = scale[0] + (scale[1] - scale[0]) * float(draws[k, 0])
        side = math.sqrt(area)
        h, w = max(1, round(height * side)), max(1, round(width * side))
        top = int(float(draws[k, 1]) * (height - h + 1))
        left = int(float(draws[k, 2]) * (width - w + 1))
        out.append(TF.resized_crop(images[k], top, left, h, w, [height, width], antialias=True))
    batch = torch.stack(out)
    flip = (draws[:, 3] < 0.5).to(images.device)
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    factor = (1.0 + brightness * (2 * draws[:, 4] - 1)).to(images.device, images.dtype)
    return (batch * factor[:, None, None, None]).clamp_(0.0, 1.0)


class Trainer:
    """Trains ``config`` on ``faceset`` (loaded from the config when None).

    ``time_budget`` (seconds) stops training cleanly once exceeded (status "done", the message
    says so); ``report_every`` adds a report every N steps; ``probes=False`` skips the probe
    embeddings (benchmarks); ``evaluate=False`` skips the final evaluation.
    """

    def __init__(self, config: RunConfig, faceset=None, *, time_budget: float | None = None,
                 report_every: int | None = None, probes: bool = True, evaluate: bool = True):
        self.config = config
        self.path = path_for_config(config)  # how steps are computed, never what is learnt
        self.threads: int | None = None
        self.time_budget = time_budget
        self.report_every = report_every
        self.record_probes = probes
        self.run_evaluation = evaluate
        self._stop = threading.Event()
        self.faceset = faceset if faceset is not None else load_for_config(config)
        self.split = split_for_config(config, self.faceset.num_identities)
        self.device = pick_device(config.device)
        # bfloat16 autocast where native (lab.learn.devices)
        self.precision = precision_for(self.device)
        reproducibility.configure(self.device)
        labels = self.faceset.labels
        images = self.faceset.images.float()
        train_ids = torch.as_tensor(sorted(self.split.train), dtype=torch.long)
        train_mask = torch.isin(labels, train_ids)
        per_person = config.train_images_per_identity
        if per_person:  # fewer images of each TRAINING person; val/test people keep all theirs
            train_mask = _first_images_of_each(labels, train_mask, int(per_person),
                                               config.data_seed)
        # Classifier heads need class indices 0..C-1: remap the training identities.
        remap = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
        remap[train_ids] = torch.arange(len(train_ids))
        self.train_labels_cpu = remap[labels[train_mask]]
        self.memory_format = (torch.channels_last if config.network in CHANNELS_LAST_NETWORKS
                              and images.dim() == 4 else torch.contiguous_format)
        self.train_images = images[train_mask].to(self.device).contiguous(
            memory_format=self.memory_format)
        self.train_labels = self.train_labels_cpu.to(self.device)
        self.num_classes = len(train_ids)
        if self.num_classes < 2 or len(self.train_labels) < 2:
            raise ValueError("training needs at least 2 training identities with images")

        self.val_index = torch.nonzero(torch.isin(labels, torch.as_tensor(
            list(self.split.val), dtype=torch.long))).flatten()
        self.test_index = torch.nonzero(torch.isin(labels, torch.as_tensor(
            list(self.split.test), dtype=torch.long))).flatten()
        # Fixed probe set: val + test identity images, capped, chosen by the seed.
        unseen = torch.cat([self.val_index, self.test_index]).sort().values
        if len(unseen) > PROBE_CAP:
            gen = torch.Generator().manual_seed(config.data_seed)
            unseen = unseen[torch.randperm(len(unseen), generator=gen)[:PROBE_CAP]].sort().values
        self.probe_indices = unseen
        self.probe_labels = labels[unseen]
        self.probe_is_test = torch.isin(self.probe_labels, torch.as_tensor(
            list(self.split.test), dtype=torch.long))
        self._probe_images = images[unseen].to(self.device).contiguous(
            memory_format=self.memory_format)
        # A few training identities too, only for the maps: seen vs never seen, side by side.
        gen = torch.Generator().manual_seed(config.data_seed + 1)
        seen_ids = train_ids[torch.randperm(len(train_ids), generator=gen)[:SEEN_IDENTITIES]]
        seen = torch.nonzero(torch.isin(labels, seen_ids)).flatten()[:SEEN_CAP]
        self.seen_indices, self.seen_labels = seen, labels[seen]
        self._seen_images = images[seen].to(self.device).contiguous(
            memory_format=self.memory_format)

        c, h, w = self.faceset.image_shape
        self.in_channels, self.image_size = c, (h if h == w else (h, w))
        with reproducibility.seeded(config.seed):  # alone: another trainer's thread waits
            self.model = build_model(config, c, self.image_size).to(
                self.device, memory_format=self.memory_format)
            self.criterion = build_criterion(config, self.num_classes).to(self.device)
        params = list(self.model.parameters()) + list(self.criterion.parameters())
        # The fused optimiser: one kernel for all parameters instead of a dozen per tensor.
        fused = {"fused": True} if self.path.fused_optimizer and self.device.type in (
            "cpu", "cuda") else {}
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, **fused)
        elif config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=config.lr,
                                              weight_decay=config.weight_decay, **fused)
        else:
            raise ValueError(f"unknown optimizer {config.optimizer!r}: choose adam or sgd")
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed)
        # The random miner draws on the device, from its own stream (lab.metric.mining.mine_batch).
        self.mining_generator = torch.Generator(device=self.device).manual_seed(
            config.seed + MINING_SEED_OFFSET)
        # Smallest crop area kept by the augmentation, and the brightness jitter (+/-).
        self.augment_scale = (float(config.augment_scale), 1.0)
        self.augment_brightness = float(config.augment_brightness)
        self.cosine_lr = config.lr_schedule == "cosine"  # (RunConfig.lr_schedule)
        self.initial_probes = self._probe_embeddings() if probes else None
        self.status = "ready"
        self.message = ""
        self.verification: Verification | None = None
        self.val_verification: Verification | None = None
        self.metrics: dict | None = None
        self.health_records: list[dict] = []  # history as train_run records it (lab.measure.health)
        # changed while paused, for the next report (lab.learn.changes)
        self.pending_changes: dict = {}
        self._snapshot = self._state()
        # A resumed run (lab.runners.checkpoint) starts after its checkpoint's epoch, so its
        # batches and learning-rate schedule carry on where the interrupted run stopped.
        self.first_epoch = 1

    # -- control -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask fit() to stop after the current step; what was learnt is kept."""
        self._stop.set()

    def _state(self) -> dict[str, torch.Tensor]:
        return {**{f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()},
                **{f"criterion.{k}": v.detach().clone()
                   for k, v in self.criterion.state_dict().items()}}

    def _restore(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.criterion.load_state_dict({k[10:]: v for k, v in state.items()
                                        if k.startswith("criterion.")})

    def _probe_embeddings(self) -> np.ndarray | None:
        if not self.record_probes:
            return None
        return embed(self.model, self._probe_images, self.device)

    def _seen_embeddings(self) -> np.ndarray | None:
        if not self.record_probes or len(self._seen_images) == 0:
            return None
        return embed(self.model, self._seen_images, self.device)

    def _sampler(self, epoch: int):
        p = min(self.config.p_identities, self.num_classes)
        return PKSampler(self.train_labels_cpu, p, self.config.k_images,
                         seed=self.config.seed * 100_003 + epoch)

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """The epoch's index batches, on the device: one host-to-device copy per epoch (a copy
        from pageable host memory waits for the GPU, so one per step would sync every step)."""
        batches = list(self._sampler(epoch))
        # each batch's pair/triplet layout, on the device, computed once per label pattern
        self.batch_layouts = [self.criterion.layouts.get(self.train_labels_cpu[b], self.device)
                              for b in batches]
        if self.device.type == "cpu" or not batches:
            return batches
        sizes = [len(b) for b in batches]
        return list(torch.cat(batches).to(self.device).split(sizes))

    def _divergence_message(self, epoch: int, step: int, what: str) -> str:
        c = self.config
        hint = f"the learning rate {c.lr:g} may be too high for this loss, try {c.lr / 10:g}"
        if c.loss == "naive":
            hint = ("the naive loss E_genuine - E_impostor has no margin, so pushing impostors "
                    "apart never stops: use the contrastive loss, or turn on normalize")
        return f"the loss became {what} at epoch {epoch} step {step}: {hint}"

    # -- training ----------------------------------------------------------------------------
    def fit(self) -> Iterator[EpochReport]:
        """Train, yielding a report per epoch (and every ``report_every`` steps)."""

        with active_training():  # the thread policy shares the cores among running trainings
            yield from self._fit()

    def _fit(self) -> Iterator[EpochReport]:
        c = self.config
        use_amp = self.precision == "bfloat16"
        check_each_step = self.device.type == "cpu"
        augment = augment_batch_grid if self.path.batch_augment else augment_batch
        if self.device.type == "cpu":
            self.threads = threads_for(self.path)
            torch.set_num_threads(self.threads)  # per calling thread for OpenMP
        start = time.perf_counter()
        last_report = start
        acc = _Accumulator(self.device)
        step = 0
        self.status, self.message = "running", ""
        self.model.train()
        epoch = 0
        plan = scheduled_changes(c)  # settings changed mid-run, replayed (lab.learn.changes)
        for epoch in range(self.first_epoch, c.epochs + 1):
            apply_changes(self, plan.get(epoch, {}))
            if self.threads and self.threads > 1:  # another training started: share the cores
                self.threads = min(self.threads, threads_for(self.path, load=0.0))
                torch.set_num_threads(self.threads)
            batches = self._epoch_batches(epoch)
            steps = c.steps_per_epoch or len(batches)
            for k in range(steps):
                index = batches[k % len(batches)].to(self.device)
                images, labels = self.train_images[index], self.train_labels[index]
                if c.augment:
                    images = augment(images, self.generator, self.augment_scale,
                                     self.augment_brightness)
                if c.lighting:  # lab.learn.lighting: directional light, gamma, contrast, shadow
                    images = light_batch(images, self.generator)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    embeddings = self.model(images)
                output = self.criterion(embeddings.float(), labels, self.mining_generator,
                                        self.batch_layouts[k % len(batches)])
                if self.cosine_lr:
                    self._set_lr(epoch - 1 + k / steps, start)
                loss = output.loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                step += 1
                acc.add(loss, output, len(index), at=k + 1)
                if check_each_step and not torch.isfinite(loss):
                    yield self._diverged(epoch, k + 1, step, loss, acc, start, last_report)
                    return
                stop_reason = self._stop_reason(start)
                periodic = self.report_every and step % self.report_every == 0 and k + 1 < steps
                if periodic or stop_reason:
                    report = self._report(epoch, step, acc, start, last_report)
                    if not math.isfinite(report.loss):
                        yield self._diverged(epoch, acc.bad_step or k + 1, step, None, acc,
                                             start, last_report)
                        return
                    if stop_reason:
                        yield self._finish(report, *stop_reason)
                        return
                    yield report
                    last_report, acc = time.perf_counter(), _Accumulator(self.device)
            report = self._report(epoch, step, acc, start, last_report)
            if not math.isfinite(report.loss) or not self._weights_finite():
                yield self._diverged(epoch, acc.bad_step or steps, step, None, acc, start,
                                     last_report)
                return
            self._snapshot = self._state()
            if epoch == c.epochs:
                yield self._finish(report, "done", f"trained {epoch} epochs")
                return
            yield report
            last_report, acc = time.perf_counter(), _Accumulator(self.device)
        # epochs == 0: nothing to train, still evaluate
        report = self._report(0, 0, acc, start, last_report)
        yield self._finish(report, "done", "no epochs to train")

    def _set_lr(self, epochs_done: float, start: float) -> None:
        progress = epochs_done / max(self.config.epochs, 1)
        if self.time_budget:
            progress = max(progress, (time.perf_counter() - start) / self.time_budget)
        lr = self.config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _stop_reason(self, start: float) -> tuple[str, str] | None:
        if self._stop.is_set():
            return "stopped", "stopped on request; the weights learnt so far are kept"
        if self.time_budget is not None and time.perf_counter() - start > self.time_budget:
            return "done", f"time budget of {self.time_budget:g} s reached"
        return None

    def _weights_finite(self) -> bool:
        """One read for all the weights (not one per parameter tensor)."""
        return bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())

    def _report(self, epoch: int, step: int, acc: _Accumulator, start: float,
                last: float) -> EpochReport:
        loss, active, genuine, impostor = acc.read() if acc.steps else (math.nan,) * 4
        now = time.perf_counter()
        seconds = now - last
        return EpochReport(
            epoch=epoch, epochs=self.config.epochs, step=step, loss=loss, seconds=seconds,
            images_per_second=acc.images / seconds if seconds > 0 else 0.0,
            active_fraction=active, mean_genuine=genuine, mean_impostor=impostor,
            probe_embeddings=self._probe_embeddings(), elapsed=now - start,
            seen_embeddings=self._seen_embeddings(), train_path=self.path.describe(),
            threads=self.threads)

    def _diverged(self, epoch: int, step: int, total_steps: int, loss: torch.Tensor | None,
                  acc: _Accumulator, start: float, last: float) -> EpochReport:
        value = float(loss.item()) if loss is not None else math.nan
        what = "NaN" if math.isnan(value) else ("infinite" if math.isinf(value) else "not finite")
        self._restore(self._snapshot)
        report = self._report(epoch - 1, total_steps, acc, start, last)
        report.loss = value
        return self._finish(report, "diverged", self._divergence_message(epoch, step, what)
                            + "; the weights of the last good epoch are kept")

    def _finish(self, report: EpochReport, status: str, message: str) -> EpochReport:
        self.status, self.message = status, message
        report.status, report.message = status, message
        if self.run_evaluation:
            report.metrics = {**self.evaluate(), "train_seconds": report.elapsed}
        if report.probe_embeddings is None or status == "diverged":
            # _report embedded the probes of these very weights unless they were just restored
            report.probe_embeddings = self._probe_embeddings()
            report.seen_embeddings = self._seen_embeddings()
        return report

    # -- evaluation --------------------------------------------------------------------------
    def embeddings(self, index: torch.Tensor) -> np.ndarray:
        return embed(self.model, self.faceset.images[index].float(), self.device)

    def evaluate(self) -> dict:
        """Validation and test figures: threshold chosen on val identities, reported on test."""
        energy = self.config.energy
        labels = self.faceset.labels
        test_emb, test_labels = self.embeddings(self.test_index), labels[self.test_index].numpy()
        val_emb = val_labels = None
        metrics: dict = {}
        if len(torch.unique(labels[self.val_index])) >= 2:
            val_emb, val_labels = self.embeddings(self.val_index), labels[self.val_index].numpy()
            self.val_verification = evaluate_embeddings(val_emb, val_labels, energy,
                                                        seed=self.config.data_seed)
            metrics["val"] = self.val_verification.summary()
        self.verification = evaluate_embeddings(test_emb, test_labels, energy, val_emb,
                                                val_labels, seed=self.config.data_seed)
        metrics["test"] = self.verification.summary()
        metrics["device"] = describe_device(self.device)
        metrics["torch"] = torch.__version__
        metrics["reproducibility"] = reproducibility.record(self.device, self.precision)
        self.metrics = metrics
        return metrics

    def baselines(self, kinds=("pixels",), energy: str = "l2") -> dict[str, dict]:
        """Raw pixels / eigenfaces / Fisherfaces on this trainer's split, evaluated the same way
        (fitted on training identities, threshold on validation, figures on test)."""

        images, labels = self.faceset.images.float(), self.faceset.labels
        train_index = torch.nonzero(torch.isin(labels, torch.as_tensor(
            sorted(self.split.train), dtype=torch.long))).flatten()
        train_images, train_labels = images[train_index], labels[train_index]
        has_val = len(torch.unique(labels[self.val_index])) >= 2
        results = {}
        for kind in kinds:
            test = baseline_embeddings(kind, train_images, train_labels, images[self.test_index])
            val = (baseline_embeddings(kind, train_images, train_labels, images[self.val_index])
                   if has_val else None)
            results[kind] = evaluate_embeddings(
                test, labels[self.test_index].numpy(), energy, val,
                labels[self.val_index].numpy() if has_val else None, seed=self.config.data_seed,
            ).summary()
        return results


def _first_images_of_each(labels: torch.Tensor, mask: torch.Tensor, k: int,
                          seed: int) -> torch.Tensor:
    """``mask`` keeping only ``k`` images (a seeded draw without replacement) of each masked
    identity: the few-images lesson trains on 2, 5 or 10 images of the same people and scores
    every variant on the same unseen people with all their images."""
    keep = torch.zeros_like(mask)
    gen = torch.Generator().manual_seed(seed + 7)
    for identity in torch.unique(labels[mask]).tolist():
        where = torch.nonzero(mask & (labels == identity)).flatten()
        keep[where[torch.randperm(len(where), generator=gen)[:k]]] = True
    return keep
