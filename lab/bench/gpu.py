"""``python -m lab bench gpu --json out.json``: the one prepared check of the CUDA path.

This project's machines have no GPU, so everything the CUDA path promises is measured here in
one go, the day a GPU is there (total well under 10 minutes):

- ``dashboard``: seconds from Run to every figure of the default lesson (goal <= 1 s on a GPU);
- ``images_per_second``: each network on the device vs the CPU path, same config;
- ``syncs_per_step``: host syncs of one training step per loss and miner, counted by
  ``torch.cuda.set_sync_debug_mode("warn")`` (goal 0); on every machine also the torch calls
  that would sync (nonzero, .item(), boolean indexing, ...), counted by a TorchFunctionMode;
- ``sessions``: 30 simulated sessions each train once (TrainingJob); device memory still
  allocated after them vs one training's peak (goal: one training's worth), and trainers alive;
- ``oom_retry``: a batch forced past the device memory (CUDA: a per-process memory cap;
  elsewhere a simulated allocation failure): the job must retry at half P and finish;
- ``sweep``: 8 margins trained together (lab.learn.batched) vs one run (goal <= 2x on a GPU);
- ``determinism``: two runs, same seed, same figures and weights; on CUDA also the cost of
  the deterministic settings (images/s with and without them).

Without CUDA it says so (``cuda: false`` and the device choice's reason) and runs the parts
that mean something on a CPU, so the bench itself is tested here
(benchmarks/results/gpu-check-cpu.json).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import warnings
import weakref
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

import lab.learn.train
from lab.bench.common import _common_arguments, _finish, _start, median, register
from lab.bench.dashboard import dashboard_once
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.batched import BatchedTrainer
from lab.learn.devices import choose_device
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.models import EmbeddingNet
from lab.learn.runs import RunStore
from lab.learn.train import Trainer, _Accumulator
from lab.metric.loss_specs import LOSSES

NETWORKS = ("linear", "mlp", "cnn", "resnet")
SESSIONS = 30
SWEEP_MARGINS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
CASES = (("contrastive", "all"), ("contrastive", "random"), ("contrastive", "semihard"),
         ("contrastive", "batchhard"), ("chopra", "all"), ("triplet", "all"),
         ("triplet", "semihard"), ("triplet", "batchhard"), ("triplet", "random"),
         ("arcface", "all"), ("cosface", "all"), ("softmax", "all"))
HOST_SYNC_CALLS = {"nonzero", "argwhere", "unique", "unique_consecutive", "masked_select",
                   "item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy"}


def _arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser, repeats=1)
    parser.add_argument("--sessions", type=int, default=SESSIONS,
                        help=f"simulated sessions that each train once (default {SESSIONS})")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="parts to leave out: dashboard images syncs sessions oom sweep "
                             "determinism")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _base(device: str, **changes) -> RunConfig:
    """The default lesson's data and network, on ``device``."""
    return RunConfig(device=device).replace(**changes)


# -- images per second ---------------------------------------------------------------------

def _images_per_second(config: RunConfig, faceset, steps: int) -> float:
    """Images/s of epochs 2.. (epoch 1 warms kernels and caches up)."""

    trainer = Trainer(config.replace(epochs=3, steps_per_epoch=steps), faceset, probes=False,
                      evaluate=False)
    rates = [r.images_per_second for r in trainer.fit()][1:]
    del trainer
    return median(rates)


def images_part(device: torch.device, quick: bool) -> dict:
    steps = 3 if quick else 20
    out = {}
    for network in NETWORKS[:2] if quick else NETWORKS:
        config = _base(device.type, network=network)
        faceset = load_for_config(config)
        row = {"device": _images_per_second(config, faceset, steps)}
        if device.type != "cpu":
            row["cpu"] = _images_per_second(config.replace(device="cpu"), faceset, steps)
            row["speed_up"] = row["device"] / row["cpu"] if row["cpu"] else None
        out[network] = row
    return out


# -- host syncs of one step ------------------------------------------------------------------

class _CountSyncCalls(TorchFunctionMode):
    """Counts the torch calls that make the host wait for a GPU (on any device)."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("__getitem__", "__setitem__") and len(args) > 1:
            parts = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts):
                name = "boolean-mask indexing"
        if name in HOST_SYNC_CALLS or name == "boolean-mask indexing":
            self.calls[name] = self.calls.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _one_step(trainer, batch: int) -> None:
    """One training step as Trainer.fit takes it (the batch's index already on the device)."""

    index = trainer._bench_batches[batch % len(trainer._bench_batches)]
    images, labels = trainer.train_images[index], trainer.train_labels[index]
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=trainer.precision == "bfloat16"):
        embeddings = trainer.model(images)
    output = trainer.criterion(embeddings.float(), labels, trainer.mining_generator,
                               trainer.batch_layouts[batch % len(trainer.batch_layouts)])
    trainer.optimizer.zero_grad(set_to_none=True)
    output.loss.backward()
    trainer.optimizer.step()
    _Accumulator(trainer.device).add(output.loss, output, len(index), at=batch + 1)


def syncs_part(device: torch.device, quick: bool) -> dict:
    """Per loss and miner: torch calls that sync (any device) and, on CUDA, the syncs
    torch.cuda.set_sync_debug_mode reports, over one step after a warm-up step."""

    config = _base(device.type, network="cnn", epochs=1, augment=False)
    faceset = load_for_config(config)
    out = {}
    for loss, miner in CASES[:3] if quick else CASES:
        case = config.replace(loss=loss, miner=miner, energy=LOSSES[loss].default_energy,
                              margin=LOSSES[loss].default_margin)
        trainer = Trainer(case, faceset, probes=False, evaluate=False)
        trainer._bench_batches = trainer._epoch_batches(1)  # host work, once per epoch
        _one_step(trainer, 0)  # warm-up: lazy initialisations are not per step
        _sync(device)
        mode = _CountSyncCalls()
        with mode:
            _one_step(trainer, 1)
        row = {"sync_calls": sum(mode.calls.values()), "which": mode.calls}
        if device.type == "cuda":
            _sync(device)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    _one_step(trainer, 2)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
            row["cuda_syncs"] = len(syncs)
            row["cuda_sync_examples"] = sorted(set(syncs))[:3]
        out[f"{loss}/{miner}"] = row
        del trainer
    return out


# -- thirty sessions, memory -------------------------------------------------------------------

def _tiny(device: str, **changes) -> RunConfig:
    return RunConfig(dataset="synthetic", num_identities=20, images_per_identity=4,
                     image_size=32, network="cnn", embedding_dim=16, val_identities=2,
                     test_identities=4, epochs=1, p_identities=8, k_images=4,
                     steps_per_epoch=4, device=device).replace(**changes)


def _watch(trainers: list):
    real = lab.learn.train.Trainer.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        trainers.append(weakref.ref(self))

    lab.learn.train.Trainer.__init__ = init
    return real


def sessions_part(device: torch.device, sessions: int) -> dict:
    """``sessions`` jobs, each kept the way a session keeps it (in a list, as in
    st.session_state), each trained once, one after another through the device's limiter."""

    trainers: list = []
    real = _watch(trainers)
    kept = []
    try:
        with tempfile.TemporaryDirectory() as root:
            store, limiter = RunStore(Path(root)), TrainingLimiter(1)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            start = time.perf_counter()
            one_peak = None
            for number in range(sessions):
                job = TrainingJob(_tiny(device.type, seed=number), store=store, limiter=limiter)
                job.start().wait(300)
                kept.append(job)
                if number == 0 and device.type == "cuda":
                    one_peak = torch.cuda.max_memory_allocated(device) - before
            seconds = time.perf_counter() - start
            gc.collect()
            out = {"sessions": sessions, "seconds": seconds,
                   "done": sum(job.status == "done" for job in kept),
                   "trainers_alive_after": sum(ref() is not None for ref in trainers)}
            if device.type == "cuda":
                after = torch.cuda.memory_allocated(device) - before
                out.update(one_training_peak_bytes=one_peak, allocated_after_bytes=after,
                           peak_bytes=torch.cuda.max_memory_allocated(device) - before,
                           goal_met=after <= one_peak)
            else:
                out["goal_met"] = out["trainers_alive_after"] == 0
    finally:
        lab.learn.train.Trainer.__init__ = real
    return out


# -- OOM retry -----------------------------------------------------------------------------

def oom_part(device: torch.device) -> dict:
    """A batch that does not fit: the job must give the memory back and finish at half P."""

    config = _tiny(device.type, p_identities=16, k_images=4, epochs=1)
    simulated = device.type != "cuda"
    real_call = EmbeddingNet.__call__
    fraction = None
    if simulated:  # no device memory to exhaust: the allocator's error, raised by hand
        limit = config.p_identities * config.k_images // 2

        def forward(self, images, *args, **kwargs):
            if self.training and len(images) > limit:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return real_call(self, images, *args, **kwargs)

        EmbeddingNet.__call__ = forward
    else:  # a real one: a cap between half a batch's memory and a whole one's
        config = config.replace(image_size=64, network="resnet", p_identities=20, k_images=40,
                                images_per_identity=40)
        per_image, resident = _memory_per_image(config.replace(p_identities=4), device)
        cap = resident + per_image * config.p_identities * config.k_images * 0.75
        total = torch.cuda.get_device_properties(device).total_memory
        fraction = min(1.0, cap / total)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
    try:
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            job = TrainingJob(config, store=RunStore(Path(root)), limiter=TrainingLimiter(1))
            job.start().wait(300)
            out = {"simulated": simulated, "memory_cap_fraction": fraction,
                   "status": job.status, "message": job.message,
                   "p_first": config.p_identities, "p_final": job.config.p_identities,
                   "seconds": time.perf_counter() - start,
                   "retried": job.config.p_identities < config.p_identities}
    finally:
        EmbeddingNet.__call__ = real_call
        if fraction is not None:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
    return out


def _memory_per_image(config: RunConfig, device: torch.device) -> tuple[float, int]:
    """(bytes per batch image at the step's peak, bytes resident before the step), measured
    on one step of a small batch."""

    trainer = Trainer(config.replace(epochs=1, steps_per_epoch=1), probes=False, evaluate=False)
    trainer._bench_batches = trainer._epoch_batches(1)
    _one_step(trainer, 0)
    _sync(device)
    resident = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    _one_step(trainer, 1)
    _sync(device)
    per_image = (torch.cuda.max_memory_allocated(device) - resident) / (
        config.p_identities * config.k_images)
    del trainer
    gc.collect()
    torch.cuda.empty_cache()
    return per_image, resident


# -- batched sweep -----------------------------------------------------------------------------

def sweep_part(device: torch.device, quick: bool) -> dict:
    margins = SWEEP_MARGINS[:2] if quick else SWEEP_MARGINS
    config = _base(device.type, epochs=3, steps_per_epoch=4 if quick else 15)
    faceset = load_for_config(config)
    list(Trainer(config.replace(epochs=1), faceset, probes=False, evaluate=False).fit())
    _sync(device)
    start = time.perf_counter()
    list(Trainer(config, faceset, probes=False, evaluate=False).fit())
    _sync(device)
    one = time.perf_counter() - start
    start = time.perf_counter()
    list(BatchedTrainer([config.replace(margin=m) for m in margins], faceset, probes=False,
                        evaluate=False).fit())
    _sync(device)
    together = time.perf_counter() - start
    return {"margins": len(margins), "one_run_s": one, "batched_s": together,
            "ratio": together / one, "goal_met": together / one <= 2.0}


# -- determinism -------------------------------------------------------------------------------

def _final(config: RunConfig, faceset) -> tuple[dict, dict]:
    trainer = Trainer(config, faceset, probes=False)
    last = list(trainer.fit())[-1]
    weights = {k: v.detach().float().cpu() for k, v in trainer.model.state_dict().items()}
    return {"loss": last.loss, "eer": last.metrics["test"]["eer"],
            "auc": last.metrics["test"]["auc"]}, weights


def determinism_part(device: torch.device, quick: bool) -> dict:
    config = _base(device.type, network="cnn", epochs=2, steps_per_epoch=4 if quick else 15)
    faceset = load_for_config(config)
    first, w1 = _final(config, faceset)
    second, w2 = _final(config, faceset)
    differ = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    out = {"first": first, "second": second, "same_figures": first == second,
           "largest_weight_difference": differ}
    if device.type == "cuda":  # what the deterministic settings cost
        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        steps = 4 if quick else 20
        deterministic = _images_per_second(config, faceset, steps)
        saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
        try:
            cudnn.deterministic, cudnn.benchmark = False, True
            cudnn.allow_tf32 = matmul.allow_tf32 = True
            torch.use_deterministic_algorithms(False)
            fast = _images_per_second(config, faceset, steps)
        finally:
            (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) = saved
            torch.use_deterministic_algorithms(True, warn_only=True)
        out["images_per_second"] = {"deterministic": deterministic, "fastest": fast,
                                    "cost": 1 - deterministic / fast if fast else None}
    return out


# -- dashboard -----------------------------------------------------------------------------

def dashboard_part(device: torch.device) -> dict:
    with tempfile.TemporaryDirectory() as root:
        dashboard_once(_base(device.type, epochs=1), Path(root) / "warm", umap=True)
        result = dashboard_once(_base(device.type), Path(root) / "timed", umap=True)
    total = sum(result["wall"].values()) - result["wall"]["data"]
    return {**result, "run_to_figures_s": total, "goal_met": total <= 1.0}


PARTS = ("dashboard", "images", "syncs", "sessions", "oom", "sweep", "determinism")


@register("gpu", "the prepared CUDA check: dashboard, images/s, syncs per step, memory after "
          "30 sessions, OOM retry, batched sweep, determinism (CPU parts without CUDA)",
          _arguments)
def gpu(args: argparse.Namespace) -> dict:
    result = _start(args, "gpu")
    choice = choose_device("auto")
    device = choice.device
    quick = bool(args.quick)
    cuda = device.type == "cuda"
    result.update(cuda=cuda, device=str(device), precision=choice.precision,
                  reason=choice.reason, parts={}, seconds={})
    if not cuda:
        result["note"] = ("No usable CUDA GPU here: the CPU parts ran on the CPU; the GPU "
                          "goals (dashboard <= 1 s, sweep <= 2x, CUDA syncs 0, device memory) "
                          "are only judged on a GPU.")
    runs = {
        "dashboard": lambda: dashboard_part(device),
        "images": lambda: images_part(device, quick),
        "syncs": lambda: syncs_part(device, quick),
        "sessions": lambda: sessions_part(device, 3 if quick else args.sessions),
        "oom": lambda: oom_part(device),
        "sweep": lambda: sweep_part(device, quick),
        "determinism": lambda: determinism_part(device, quick),
    }
    total = time.perf_counter()
    for name in PARTS:
        if name in args.skip:
            continue
        start = time.perf_counter()
        try:
            result["parts"][name] = runs[name]()
        except Exception as error:  # noqa: BLE001 - one failed part must not hide the others
            result["parts"][name] = {"error": f"{type(error).__name__}: {error}"}
        result["seconds"][name] = time.perf_counter() - start
        print(f"bench gpu: {name} in {result['seconds'][name]:.1f} s", flush=True)
    result["seconds"]["total"] = time.perf_counter() - total
    result["summary"] = _summary(result)
    return _finish(result)


def _summary(result: dict) -> str:
    parts = result["parts"]
    lines = [f"device {result['device']} ({result['precision']}): {result['reason']}"]
    if "dashboard" in parts and "run_to_figures_s" in parts["dashboard"]:
        lines.append(f"dashboard {parts['dashboard']['run_to_figures_s']:.2f} s (goal <= 1 s)")
    if "syncs" in parts and "error" not in parts["syncs"]:
        calls = sum(r["sync_calls"] for r in parts["syncs"].values())
        lines.append(f"sync calls per step, all cases: {calls}")
    if "sessions" in parts and "error" not in parts["sessions"]:
        lines.append(f"trainers alive after {parts['sessions']['sessions']} sessions: "
                     f"{parts['sessions']['trainers_alive_after']}")
    if "oom" in parts and "error" not in parts["oom"]:
        oom = parts["oom"]
        lines.append(f"OOM retry: {oom['status']}, P {oom['p_first']} -> {oom['p_final']}")
    if "sweep" in parts and "error" not in parts["sweep"]:
        lines.append(f"sweep of {parts['sweep']['margins']}: {parts['sweep']['ratio']:.2f}x one "
                     "run (goal <= 2x on a GPU)")
    if "determinism" in parts and "error" not in parts["determinism"]:
        lines.append(f"same seed, same figures: {parts['determinism']['same_figures']}")
    lines.append(f"total {result['seconds']['total']:.0f} s")
    return "\n".join(lines)
