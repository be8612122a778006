"""Train K configs together: one forward pass of K stacked models on the same batches.

A margin sweep trains the same network on the same data with the same seed, changing only the
loss's parameters (margin, scale, Q, energy, miner, even the loss). The K networks then start
from the same weights and see the same P x K batches, so they can be trained as one: their
weights are stacked (``torch.func.stack_module_state``) and ``vmap`` over
``functional_call`` runs all K forward passes as one batched call (convolutions become one
grouped convolution, batch-norm statistics stay per model). Each model has its own criterion;
the K losses are summed, and since no weight is shared the gradient of the sum is each model's
own gradient. Adam (and SGD) act element by element, so one optimiser over the stacked weights
is K independent optimisers. The result is the same training as K runs one after another, up
to floating-point rounding.

Why: on a GPU a small model is bound by kernel launches, not arithmetic, so K models cost about
as much as one. On a CPU the arithmetic is the same either way; ``python -m lab bench sweep``
measures both, and :func:`prefer_batched` decides from that measurement (batched on CUDA,
sequential on CPU; see benchmarks/README.md).

Each model is saved as its own run (history, per-epoch probe embeddings, weights, final
metrics), exactly like :func:`lab.learn.training_run.train_run`.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.devices import training_threads
from lab.learn.runs import RunStore
from lab.learn.train import EpochReport, Trainer, _Accumulator, augment_batch

# Fields the K configs may differ in: they only change the criterion, never the network, the
# data, the batches or the initial weights.
LOSS_FIELDS = ("loss", "margin", "scale", "chopra_q", "miner", "energy")


def batch_problem(configs: Sequence[RunConfig]) -> str | None:
    """Why these configs cannot be trained together (None when they can)."""
    if not configs:
        return "no configs"
    first = configs[0].to_dict()
    for config in configs[1:]:
        other = config.to_dict()
        for key, value in first.items():
            if key in LOSS_FIELDS:
                continue
            if key == "extra":
                a = {k: v for k, v in value.items() if k != "sweep"}
                b = {k: v for k, v in other[key].items() if k != "sweep"}
                if a != b:
                    return "the configs differ in extra options"
            elif other[key] != value:
                return f"the configs differ in {key}, not only in the loss's parameters"
    if configs[0].augment and any(c.miner == "random" for c in configs):
        # one generator draws both augmentation and random pairs in a sequential run
        return "augmentation with the random miner draws from one generator per run"
    return None


def prefer_batched(device: torch.device) -> bool:
    """Batched pays on a GPU (launch-bound); on a CPU it measured no faster than sequential,
    so sequential is kept there (simpler, and each run appears as soon as it is done)."""
    return device.type == "cuda"


class BatchedTrainer:
    """K :class:`lab.learn.train.Trainer` objects (for their data, split, probes, criteria and
    evaluation) whose models are trained together. ``fit()`` yields lists of K reports, one
    list per epoch; a model that diverges is restored to its last good epoch and drops out."""

    def __init__(self, configs: Sequence[RunConfig], faceset=None, *, probes: bool = True,
                 evaluate: bool = True):
        from torch.func import stack_module_state


        problem = batch_problem(configs)
        if problem:
            raise ValueError(f"cannot train these configs together: {problem}")
        self.configs = list(configs)
        faceset = faceset if faceset is not None else load_for_config(self.configs[0])
        self.trainers = [Trainer(c, faceset, probes=False, evaluate=evaluate)
                         for c in self.configs]
        first = self.trainers[0]
        for trainer in self.trainers[1:]:  # one copy of the images on the device
            trainer.train_images, trainer._probe_images = first.train_images, first._probe_images
        self.record_probes = probes
        self.run_evaluation = evaluate
        self.device = first.device
        self.faceset = faceset
        self.params, self.buffers = stack_module_state([t.model for t in self.trainers])
        self._base = copy.deepcopy(first.model).to("meta")
        criterion_params = [p for t in self.trainers for p in t.criterion.parameters()]
        c = self.configs[0]
        weights = list(self.params.values()) + criterion_params
        if c.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                weights, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(weights, lr=c.lr, weight_decay=c.weight_decay)
        self.generators = [t.generator for t in self.trainers]
        self.mining_generators = [t.mining_generator for t in self.trainers]
        self.active = [True] * len(self.trainers)
        self._stop = threading.Event()
        self.initial_probes = self._probes() if probes else None

    @property
    def k(self) -> int:
        return len(self.trainers)

    def stop(self) -> None:
        self._stop.set()

    # -- the stacked model ---------------------------------------------------------------------
    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap

        def one(params, buffers, x):
            return functional_call(self._base, (params, buffers), (x,))

        return vmap(one, in_dims=(0, 0, None))(self.params, self.buffers, images)

    @torch.no_grad()
    def _probes(self) -> list[np.ndarray] | None:
        """[K] probe embeddings [P, D], all K models in one eval-mode pass."""
        if not self.record_probes:
            return None
        self._base.eval()
        try:
            images = self.trainers[0]._probe_images
            chunks = [self._forward(images[i:i + 256]).float().cpu()
                      for i in range(0, len(images), 256)]
        finally:
            self._base.train()
        stacked = torch.cat(chunks, dim=1).numpy()
        return [stacked[k] for k in range(self.k)]

    def sync_models(self, which: Sequence[int] | None = None) -> None:
        """Copy the stacked weights back into each trainer's own model (to save or evaluate)."""
        with torch.no_grad():
            for k in which if which is not None else range(self.k):
                model = self.trainers[k].model
                for name, value in self.params.items():
                    model.get_parameter(name).copy_(value[k])
                for name, value in self.buffers.items():
                    model.get_buffer(name).copy_(value[k])

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone() for name, value in
                {**self.params, **self.buffers}.items()}

    # -- training ------------------------------------------------------------------------------
    def fit(self):
        """Yield, per epoch, the list of K EpochReports (None for models already finished)."""

        c = self.configs[0]
        first = self.trainers[0]
        use_amp = first.precision == "bfloat16"
        check_each_step = self.device.type == "cpu"
        if self.device.type == "cpu":
            torch.set_num_threads(training_threads())
        start = last = time.perf_counter()
        accs = [_Accumulator(self.device) for _ in range(self.k)]
        snapshot = self._snapshot()
        step = 0
        for epoch in range(1, c.epochs + 1):
            batches = first._epoch_batches(epoch)
            steps = c.steps_per_epoch or len(batches)
            diverged: dict[int, str] = {}
            for s in range(steps):
                index = batches[s % len(batches)].to(self.device)
                images, labels = first.train_images[index], first.train_labels[index]
                if c.augment:
                    images = augment_batch(images, self.generators[0])
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    embeddings = self._forward(images)
                total = None
                for k, trainer in enumerate(self.trainers):
                    if not self.active[k] or k in diverged:
                        continue
                    output = trainer.criterion(embeddings[k].float(), labels,
                                               self.mining_generators[k],
                                               first.batch_layouts[s % len(batches)])
                    if check_each_step and not torch.isfinite(output.loss):
                        diverged[k] = f"epoch {epoch} step {s + 1}"
                        continue
                    accs[k].add(output.loss, output, len(index))
                    total = output.loss if total is None else total + output.loss
                self.optimizer.zero_grad(set_to_none=True)
                if total is not None:
                    total.backward()
                    self.optimizer.step()
                step += 1
                if self._stop.is_set():
                    break
            now = time.perf_counter()
            seconds = now - last
            reports: list = [None] * self.k
            finished = self._stop.is_set() or epoch == c.epochs
            self.sync_models()
            probes = self._probes()
            for k, trainer in enumerate(self.trainers):
                if not self.active[k]:
                    continue
                acc = accs[k]
                loss, active, genuine, impostor = acc.read() if acc.steps else (math.nan,) * 4
                report = EpochReport(
                    epoch=epoch, epochs=c.epochs, step=step, loss=loss, seconds=seconds,
                    images_per_second=acc.images / seconds if seconds > 0 else 0.0,
                    active_fraction=active, mean_genuine=genuine, mean_impostor=impostor,
                    probe_embeddings=None if probes is None else probes[k], elapsed=now - start,
                    train_path="batched (lab.learn.batched, vmap)")
                bad = k in diverged or not math.isfinite(loss) or not all(
                    torch.isfinite(p[k]).all() for p in self.params.values())
                if bad:
                    self._restore(k, snapshot)
                    where = diverged.get(k, f"epoch {epoch}")
                    report.epoch = epoch - 1
                    self._end(k, report, "diverged", trainer._divergence_message(
                        epoch, step, "not finite") + f" ({where}); the weights of the last good "
                        "epoch are kept")
                elif finished:
                    stopped = self._stop.is_set() and epoch < c.epochs
                    self._end(k, report, "stopped" if stopped else "done",
                              "stopped on request; the weights learnt so far are kept"
                              if stopped else f"trained {epoch} epochs")
                reports[k] = report
            snapshot = self._snapshot()
            yield reports
            if finished or not any(self.active):
                return
            last, accs = time.perf_counter(), [_Accumulator(self.device) for _ in range(self.k)]

    def _restore(self, k: int, snapshot: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in {**self.params, **self.buffers}.items():
                value[k].copy_(snapshot[name][k])
        self.sync_models([k])

    def _end(self, k: int, report, status: str, message: str) -> None:
        trainer = self.trainers[k]
        self.active[k] = False
        trainer.status, trainer.message = status, message
        report.status, report.message = status, message
        if self.run_evaluation:
            report.metrics = trainer.evaluate()
        if status == "diverged" and self.record_probes:
            report.probe_embeddings = self._probes()[k]  # of the restored weights


def train_runs_batched(configs: Sequence[RunConfig], store=None, faceset=None,
                       names: Sequence[str | None] | None = None,
                       on_report: Callable[[int, object], bool | None] | None = None,
                       on_start: Callable[[list, BatchedTrainer], None] | None = None,
                       **options):
    """Train ``configs`` together and save each as its own run (history, probes and weights at
    every epoch, metrics at the end), like :func:`lab.learn.training_run.train_run`. ``on_report(k,
    report)`` is called after model k's report is saved; returning False stops all of them. Returns
    (runs, batched_trainer)."""

    store = store if store is not None else RunStore()
    batched = BatchedTrainer(configs, faceset, **options)
    names = list(names) if names is not None else [None] * batched.k
    runs = []
    for k, (config, trainer) in enumerate(zip(configs, batched.trainers, strict=True)):
        run = store.create(config, name=names[k])
        run.set_shape(trainer.in_channels, trainer.image_size, trainer.num_classes)
        runs.append(run)
    if on_start is not None:
        on_start(runs, batched)
    probes: list[list[np.ndarray]] = [[] for _ in runs]
    epochs: list[list[float]] = [[] for _ in runs]
    if batched.initial_probes is not None:
        for k in range(batched.k):
            probes[k].append(batched.initial_probes[k])
            epochs[k].append(0.0)
    try:
        for reports in batched.fit():
            for k, report in enumerate(reports):
                if report is None:
                    continue
                run, trainer = runs[k], batched.trainers[k]
                run.append_history(report.record())
                if report.probe_embeddings is not None:
                    probes[k].append(report.probe_embeddings)
                    epochs[k].append(float(report.epoch))
                    run.save_probes(probes[k], trainer.probe_labels.numpy(),
                                    trainer.probe_is_test.numpy(), epochs[k],
                                    trainer.probe_indices.numpy())
                run.save_model(trainer.model)
                if report.metrics is not None:
                    run.save_metrics(report.metrics)
                if report.status != "running":
                    run.set_status(report.status, report.message)
                if on_report is not None and on_report(k, report) is False:
                    batched.stop()
    except BaseException as error:
        for run, active in zip(runs, batched.active, strict=True):
            if active:
                run.set_status("interrupted", f"training failed: {type(error).__name__}: {error}")
        raise
    return runs, batched
