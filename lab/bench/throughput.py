"""``python -m lab bench train``: how fast the trainer is, against what the CPU can do.

For each case (network x image size x loss) it reports:

- the FLOPs of one training step (forward, loss and backward of one P x K batch), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions; what a roofline counts);
- the machine's measured peak on the same threads: a 2048 x 2048 float32 matmul and a large
  3 x 3 convolution (oneDNN), in GFLOP/s;
- images/s and the fraction of that peak the trainer reaches, for the OLD path (``baseline``, the
  trainer before issue 21) and the NEW path (``fast``, lab.learn.train_path) trained in the same
  process, epoch for epoch interleaved (old, new, old, new, ...), so that the load of a shared
  machine falls on both alike; wall and process-CPU seconds per step, medians;
- where the time of a step goes (torch.profiler, self CPU time of the ops): convolutions,
  batch norm, other layer ops (ReLU, pooling, linear), mining + loss, optimiser, augmentation,
  and what is left outside torch ops (Python, the trainer's bookkeeping).

``--levers`` times single levers of lab.learn.train_path against the baseline in the same way.
The figures are in benchmarks/README.md; no test ever asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import lab.learn.train as train_module
import lab.learn.train_path as path_module
from lab.bench.common import _finish, _start, median, register
from lab.core import settings
from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.train import Trainer
from lab.learn.train_path import LEVERS, PATHS, cpu_flags, native_bf16, path_for_config, threads_for
from lab.metric.loss_specs import LOSSES

ATT_DEFAULT = settings.shared_att()


def _att_recipe(data_dir: str) -> RunConfig:
    """The accuracy bench's AT&T recipe (benchmarks/README.md) at 48 px, ArcFace."""
    return RunConfig(dataset="att", data_dir=data_dir, image_size=48, loss="arcface",
                     energy="cosine", margin=0.5, augment=True, flip_average=True,
                     extra={"width": 16, "augment_scale": 0.6, "lr_schedule": "cosine"})


def default_cases(data_dir: str | None, quick: bool) -> list[tuple[str, RunConfig]]:
    """The issue's two cases first (default lesson; ArcFace at 48 px), then the other nets."""

    if quick:
        small = RunConfig(num_identities=12, images_per_identity=4, image_size=16,
                          val_identities=2, test_identities=4, p_identities=4, k_images=4,
                          extra={"width": 8})
        return [("cnn contrastive 16 px (quick)", small),
                ("cnn arcface 16 px augment (quick)", small.replace(
                    loss="arcface", energy="cosine", margin=0.5, augment=True))]
    att = Path(data_dir) if data_dir else ATT_DEFAULT
    if att.is_dir():
        arcface = ("cnn arcface 48 px (AT&T recipe)", _att_recipe(str(att)))
    else:
        spec = LOSSES["arcface"]
        arcface = ("cnn arcface 48 px (synthetic; AT&T absent)", RunConfig(
            image_size=48, loss="arcface", energy=spec.default_energy,
            margin=spec.default_margin, augment=True, extra={"width": 16}))
    return [("cnn contrastive 32 px (default lesson)", RunConfig()), arcface,
            ("resnet contrastive 32 px", RunConfig(network="resnet")),
            ("mlp contrastive 32 px", RunConfig(network="mlp")),
            ("linear contrastive 32 px", RunConfig(network="linear"))]


def _with_path(config: RunConfig, path: str) -> RunConfig:
    return config.replace(extra={**(config.extra or {}), "train_path": path})


def step_flops(config: RunConfig, faceset) -> int:
    """FLOPs of one training step (one batch: forward, loss, backward; optimiser ops are not
    matmuls or convolutions and count ~0), by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode


    trainer = Trainer(config.replace(epochs=1, steps_per_epoch=1), faceset, probes=False,
                      evaluate=False)
    with FlopCounterMode(display=False) as counter:
        list(trainer.fit())
    return int(counter.get_total_flops())


def measured_peak(threads: int, repeats: int = 5, quick: bool = False) -> dict:
    """GFLOP/s of a large float32 matmul and a large convolution on ``threads`` threads
    (median of ``repeats``; wall and process-CPU based)."""
    torch.set_num_threads(threads)
    n = 512 if quick else 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(16 if quick else 64, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * x.shape[0] * 64 * 64 * 9 * 32 * 32
    out = {}
    with torch.no_grad():
        for name, work, flops in (("matmul", lambda: a @ b, 2 * n ** 3),
                                  ("conv", lambda: conv(x), conv_flops)):
            work()
            walls, cpus = [], []
            for _ in range(1 if quick else repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                work()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            out[f"{name}_gflops"] = round(flops / statistics.median(walls) / 1e9, 2)
            # CPU-based: the peak per thread-second, immune to waiting for a shared core.
            out[f"{name}_gflops_per_cpu_s"] = round(flops / statistics.median(cpus) / 1e9, 2)
    out["threads"] = threads
    return out


def interleaved(configs: dict[str, RunConfig], faceset, epochs: int,
                threads: dict[str, int | None]) -> dict[str, dict]:
    """Train each config epoch by epoch in turn (a, b, a, b, ...) in this process; the first
    epoch of each is a warm-up. Returns, per name, medians of wall and CPU s/step, images/s."""

    trainers, runs, rows = {}, {}, {}
    for name, config in configs.items():
        trainers[name] = Trainer(config.replace(epochs=epochs + 1), faceset, probes=False,
                                 evaluate=False)
        runs[name] = trainers[name].fit()
        rows[name] = {"wall_s_per_step": [], "cpu_s_per_step": [], "images_per_s": []}
    for epoch in range(epochs + 1):
        for name, run in runs.items():
            trainer = trainers[name]
            if epoch == 0:
                # All trainings are open at once here; each is timed as a lone training would
                # run (the thread policy of a training that has the machine to itself).
                trainer._bench_threads = threads.get(name) or threads_for(trainer.path, active=1)
            torch.set_num_threads(trainer._bench_threads)
            steps_before = getattr(trainer, "_bench_steps", 0)
            wall, cpu = time.perf_counter(), time.process_time()
            report = next(run)  # its first epoch sets the threads of its policy: undone here
            trainer.threads = trainer._bench_threads
            torch.set_num_threads(trainer._bench_threads)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            steps = report.step - steps_before
            trainer._bench_steps = report.step
            if epoch == 0 or steps <= 0:
                continue
            rows[name]["wall_s_per_step"].append(wall / steps)
            rows[name]["cpu_s_per_step"].append(cpu / steps)
            rows[name]["images_per_s"].append(report.images_per_second)
    for run in runs.values():
        run.close()
    out = {}
    for name, row in rows.items():
        trainer = trainers[name]
        batch = trainer.config.p_identities * trainer.config.k_images
        out[name] = {"train_path": trainer.path.describe(), "threads": trainer._bench_threads,
                     "wall_s_per_step": median(row["wall_s_per_step"]),
                     "cpu_s_per_step": median(row["cpu_s_per_step"]),
                     "images_per_s": median(row["images_per_s"]),
                     "images_per_cpu_s": round(batch / median(row["cpu_s_per_step"]), 1)
                     if row["cpu_s_per_step"] else None,
                     "epochs_timed": len(row["images_per_s"]), "batch": batch}
    return out


def _one_batch(config: RunConfig, faceset, threads: int):
    """A trainer on ``threads`` and one of its P x K batches (images, labels)."""
    torch.set_num_threads(threads)
    trainer = Trainer(config, faceset, probes=False, evaluate=False)
    index = next(iter(trainer._sampler(1)))
    return trainer, trainer.train_images[index], trainer.train_labels[index]


def _interleaved_steps(step, names: tuple[str, ...], steps: int, rounds: int) -> dict:
    """Median CPU and wall ms per ``step(name)``, the names taking turns round by round."""
    times: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "wall": []} for n in names}
    for _ in range(rounds):
        for name in names:
            step(name)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step(name)
            times[name]["wall"].append((time.perf_counter() - wall) / steps * 1e3)
            times[name]["cpu"].append((time.process_time() - cpu) / steps * 1e3)
    return {name: {"cpu_ms_per_step": median(t["cpu"]), "wall_ms_per_step": median(t["wall"])}
            for name, t in times.items()}


def compile_trial(config: RunConfig, faceset, steps: int, rounds: int, threads: int) -> dict:
    """torch.compile (inductor) of the model against eager, one P x K batch, same threads:
    seconds to compile (first two steps) and medians of CPU/wall ms per step, interleaved."""
    import copy

    trainer, images, labels = _one_batch(config, faceset, threads)
    eager = trainer.model
    compiled = torch.compile(copy.deepcopy(eager))
    optimisers = {name: torch.optim.Adam(model.parameters(), lr=config.lr)
                  for name, model in (("eager", eager), ("compiled", compiled))}
    models = {"eager": eager, "compiled": compiled}

    def step(name: str) -> None:
        output = trainer.criterion(models[name](images), labels, generator=trainer.generator)
        optimisers[name].zero_grad(set_to_none=True)
        output.loss.backward()
        optimisers[name].step()

    wall = time.perf_counter()
    step("compiled")
    step("compiled")
    compile_s = time.perf_counter() - wall
    return {"compile_s": round(compile_s, 2), "threads": threads,
            **_interleaved_steps(step, ("eager", "compiled"), steps, rounds)}


def bf16_trial(config: RunConfig, faceset, steps: int, rounds: int, threads: int) -> dict:
    """The forward pass under CPU bfloat16 autocast against float32 (the loss in float32 both
    times), one P x K batch, same threads, interleaved: what bf16 would buy on this CPU. The
    trainer keeps float32 on the CPU; this measures whether that is right here. Where the CPU
    has no native bf16 (lab.learn.train_path.native_bf16) torch emulates it, and the trial
    says so beside the figures."""
    import copy

    trainer, images, labels = _one_batch(config, faceset, threads)
    models = {"float32": trainer.model, "bfloat16": copy.deepcopy(trainer.model)}
    optimisers = {name: torch.optim.Adam(model.parameters(), lr=config.lr)
                  for name, model in models.items()}

    def step(name: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bfloat16"):
            embeddings = models[name](images)
        output = trainer.criterion(embeddings.float(), labels, generator=trainer.generator)
        optimisers[name].zero_grad(set_to_none=True)
        output.loss.backward()
        optimisers[name].step()

    return {"threads": threads, "native_bf16": native_bf16(cpu_flags()),
            **_interleaved_steps(step, ("float32", "bfloat16"), steps, rounds)}


CATEGORIES = ("convolution", "batch norm", "other layers", "mining + loss", "optimiser",
              "augmentation", "outside torch ops")


def _category(event) -> str:
    """Which part of a step an op's self time belongs to: its labelled ancestor if any
    (augmentation, mining + loss, optimiser), else its own name."""
    parent = event
    while parent is not None:
        name = parent.name
        if name.startswith("bench:"):
            return name[len("bench:"):]
        if name.startswith("Optimizer."):
            return "optimiser"
        parent = parent.cpu_parent
    name = event.name
    if "convolution" in name or "conv2d" in name:
        return "convolution"
    if "batch_norm" in name:
        return "batch norm"
    return "other layers"


class _Labelled(torch.nn.Module):
    """Wraps the criterion so its ops are labelled "mining + loss" in the profile."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.layouts = inner.layouts  # the trainer asks the criterion for its batch layouts

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # the trainer also reads the criterion's own attributes
            return getattr(self._modules["inner"], name)

    def forward(self, *args, **kwargs):
        with torch.profiler.record_function("bench:mining + loss"):
            return self.inner(*args, **kwargs)


def profile_steps(config: RunConfig, faceset, steps: int, threads: int) -> dict:
    """Where a step's time goes: self CPU ms per step by category (torch.profiler over
    ``steps`` steps after one warm-up epoch)."""

    trainer = Trainer(config.replace(epochs=2, steps_per_epoch=steps), faceset, probes=False,
                      evaluate=False)
    trainer.criterion = _Labelled(trainer.criterion)
    originals = train_module.augment_batch, path_module.augment_batch_grid

    def labelled(function):
        def augment(*args, **kwargs):
            with torch.profiler.record_function("bench:augmentation"):
                return function(*args, **kwargs)
        return augment

    train_module.augment_batch = labelled(originals[0])
    path_module.augment_batch_grid = labelled(originals[1])
    try:
        run = trainer.fit()
        torch.set_num_threads(threads)
        next(run)  # warm-up epoch
        torch.set_num_threads(threads)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            wall = time.perf_counter()
            list(run)
            wall = time.perf_counter() - wall
    finally:
        train_module.augment_batch, path_module.augment_batch_grid = originals
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in prof.events():
        if event.name.startswith(("bench:", "Optimizer.")) or event.cpu_parent is None and \
                event.name.startswith("ProfilerStep"):
            continue
        if not event.name.startswith("aten::") and "::" in event.name:
            # autograd engine wrappers (autograd::engine::evaluate_function ...) hold no work
            # of their own beyond their aten children; their self time counts as overhead
            continue
        totals[_category(event)] += event.self_cpu_time_total / 1e3
    ops_ms = sum(totals.values())
    totals["outside torch ops"] = max(0.0, wall * 1e3 - ops_ms)
    return {"ms_per_step": {k: round(v / steps, 2) for k, v in totals.items()},
            "wall_ms_per_step_profiled": round(wall * 1e3 / steps, 2), "steps": steps,
            "threads": threads,
            "note": "self CPU time of torch ops by category; 'outside torch ops' = profiled wall "
                    "minus op time (Python, trainer bookkeeping, profiler overhead)"}


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks the bench works (no real figures)")
    parser.add_argument("--epochs", type=int, default=4,
                        help="timed epochs per path, interleaved old/new (default 4)")
    parser.add_argument("--cases", type=int, nargs="+", default=None,
                        help="indices of the cases to run (default: all; 0 default lesson, "
                             "1 ArcFace 48 px, 2 resnet, 3 mlp, 4 linear)")
    parser.add_argument("--data-dir", default=None, help="AT&T folder (ArcFace 48 px case)")
    parser.add_argument("--levers", action="store_true",
                        help="also time each lever of lab.learn.train_path alone against the "
                             "baseline")
    parser.add_argument("--new-threads", type=int, default=None,
                        help="threads of the new path (default: its policy for a lone training)")
    parser.add_argument("--profile-steps", type=int, default=6,
                        help="steps profiled per path (0: no profile)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile (inductor) of the model against eager "
                             "(compilation takes about a minute on 2 cores)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the forward pass under CPU bfloat16 autocast against "
                             "float32 (interleaved, same threads)")
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)


@register("train", "FLOPs, peak, fraction of peak, images/s and time per part: old vs new path",
          _train_arguments)
def train(args: argparse.Namespace) -> dict:
    result = _start(args, "train")
    epochs = 1 if args.quick else max(1, args.epochs)
    cases = default_cases(args.data_dir, args.quick)
    chosen = args.cases if args.cases is not None else range(len(cases))
    old_threads = threads_for(path_for_config(_with_path(RunConfig(), "baseline")))
    new_threads = args.new_threads or threads_for(
        path_for_config(_with_path(RunConfig(), "fast")), active=1)
    peaks = {t: measured_peak(t, quick=args.quick) for t in sorted({old_threads, new_threads})}
    flags = cpu_flags()
    rows = []
    for index in chosen:
        label, config = cases[index]
        faceset = load_for_config(config)
        configs = {"old": _with_path(config, "baseline"), "new": _with_path(config, "fast")}
        if args.levers:
            configs.update({lever: _with_path(config, lever) for lever in LEVERS})
        flops = step_flops(configs["old"], faceset)
        speed = interleaved(configs, faceset, epochs,
                            {"old": old_threads, "new": new_threads,
                             **{lever: (new_threads if lever == "alone_threads" else
                                        old_threads) for lever in LEVERS}})
        for row in speed.values():
            peak = peaks.get(row["threads"]) or measured_peak(row["threads"], quick=args.quick)
            peaks[row["threads"]] = peak
            steps_per_s = 1.0 / row["wall_s_per_step"] if row["wall_s_per_step"] else 0.0
            achieved = flops * steps_per_s / 1e9
            row["gflops_achieved"] = round(achieved, 2)
            row["fraction_of_matmul_peak"] = round(achieved / peak["matmul_gflops"], 3)
            row["fraction_of_conv_peak"] = round(achieved / peak["conv_gflops"], 3)
            per_cpu = flops / row["cpu_s_per_step"] / 1e9 if row["cpu_s_per_step"] else 0.0
            row["fraction_of_matmul_peak_per_cpu_s"] = round(
                per_cpu / peak["matmul_gflops_per_cpu_s"], 3)
        profiles = {}
        if args.profile_steps > 0:
            steps = 2 if args.quick else args.profile_steps
            profiles = {"old": profile_steps(configs["old"], faceset, steps, old_threads),
                        "new": profile_steps(configs["new"], faceset, steps, new_threads)}
        compiled = (compile_trial(configs["old"], faceset, 2 if args.quick else 5,
                                  1 if args.quick else 3, old_threads) if args.compile else None)
        bf16 = (bf16_trial(configs["new"], faceset, 2 if args.quick else 10,
                           1 if args.quick else 5, new_threads) if args.bf16 else None)
        old, new = speed["old"], speed["new"]
        row = {"case": label, "network": config.network, "loss": config.loss,
               "image_size": config.image_size, "dataset": config.dataset,
               "augment": config.augment, "batch": config.p_identities * config.k_images,
               "flops_per_step": flops, "gflops_per_step": round(flops / 1e9, 3),
               "paths": speed, "profile": profiles, "compile": compiled, "bf16": bf16,
               "speedup_images_per_s": round(new["images_per_s"] / old["images_per_s"], 3)
               if old["images_per_s"] else None,
               "speedup_cpu_per_step": round(old["cpu_s_per_step"] / new["cpu_s_per_step"], 3)
               if new["cpu_s_per_step"] else None}
        rows.append(row)
        print(f"{label}: {flops / 1e9:.2f} GFLOP/step; old {old['images_per_s']:.0f} images/s "
              f"({old['fraction_of_matmul_peak']:.0%} of peak, {old['threads']} thr), new "
              f"{new['images_per_s']:.0f} images/s ({new['fraction_of_matmul_peak']:.0%}, "
              f"{new['threads']} thr): x{row['speedup_images_per_s']} wall, "
              f"x{row['speedup_cpu_per_step']} CPU/step", flush=True)
    result.update({
        "rows": rows, "peaks": {str(k): v for k, v in peaks.items()}, "paths": {
            name: list(levers) for name, levers in PATHS.items()},
        "cpu": {"avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
                "native_bf16": native_bf16(flags)},
        "note": "old = baseline path, new = fast path (lab.learn.train_path), trained epoch by "
                "epoch interleaved in one process; medians over the timed epochs; fraction of "
                "peak = "
                "counted step FLOPs x steps/s over the measured matmul (and conv) peak on the "
                "same threads; the machine is shared: see load_average before and after"})
    result["summary"] = "; ".join(
        f"{r['case']}: x{r['speedup_images_per_s']} images/s "
        f"({r['paths']['old']['images_per_s']:.0f} -> {r['paths']['new']['images_per_s']:.0f})"
        for r in rows)
    return _finish(result)
