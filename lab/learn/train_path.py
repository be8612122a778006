"""How the trainer computes a step on this machine (its *path*), apart from what it learns.

A path never changes the lesson (the network, the loss, the P x K batches, the seeds); it changes
how the same step is computed. Two named paths:

- ``baseline``: the trainer as it was before issue 21 (per-image augmentation loop, Adam's
  default for-each implementation, one thread when the CPU has two cores). Kept so that
  ``python -m lab bench train`` can compare old and new in the same process, and so that an old
  figure can be reproduced.
- ``fast`` (the default): the levers that won in ``bench train`` (benchmarks/README.md):
  augmentation of the whole batch at once with one ``grid_sample`` (no per-image crop loop; the
  same draws give the same pixels up to float rounding, see :func:`augment_batch_grid`), the
  fused single-kernel Adam/SGD on CPU, and the thread policy of :func:`threads_for` (all cores
  when a training has the machine to itself, a share each when several run).

Levers measured and not kept (figures in benchmarks/README.md): ``torch.compile`` of the model
(inductor on CPU: ~55 s of compilation per process on the 2-core box and no faster per step:
its convolutions are the same oneDNN calls, and batch norm/ReLU were not faster fused);
bf16 autocast on the CPU: slower even where bf16 is native (``bench train --bf16`` on an Intel
Xeon with AVX-512 BF16 and no AMX: 58.0 -> 73.5 CPU ms a step on the default lesson, 44.6 ->
53.8 at 48 px), and emulated where it is not (:func:`native_bf16`: the AMD EPYC
of earlier sittings has AVX2 only), so float32 stays.

``config.extra["train_path"]`` picks a path (``"fast"`` or ``"baseline"``), or a comma list of
levers on top of the baseline (``"batch_augment,fused_optimizer"``) for the bench; every report
of a run records the path that trained it (``EpochReport.train_path``, in history.jsonl).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lab.core import settings

LEVERS = ("batch_augment", "fused_optimizer", "alone_threads")
PATHS = {"baseline": (), "fast": LEVERS}


@dataclass(frozen=True)
class TrainPath:
    name: str
    batch_augment: bool = False  # one grid_sample for the batch instead of a per-image loop
    fused_optimizer: bool = False  # torch's fused Adam/SGD kernel (CPU and CUDA)
    alone_threads: bool = False  # all cores when training alone (threads_for), else half

    def describe(self) -> str:
        levers = [lever for lever in LEVERS if getattr(self, lever)]
        return self.name if self.name in PATHS else ",".join(levers) or "baseline"


def path_for_config(config) -> TrainPath:
    """The path named by ``config.extra["train_path"]`` (default ``fast``)."""
    name = str((config.extra or {}).get("train_path", "fast"))
    if name in PATHS:
        levers = PATHS[name]
    else:
        levers = tuple(part.strip() for part in name.split(",") if part.strip())
        unknown = [lever for lever in levers if lever not in LEVERS]
        if unknown:
            raise ValueError(f"unknown train_path lever(s) {', '.join(unknown)}: choose from "
                             f"{', '.join(LEVERS)} or a path ({', '.join(PATHS)})")
    return TrainPath(name=name, **{lever: lever in levers for lever in LEVERS})


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    """True when the CPU computes in bf16 natively (AVX-512 BF16 or AMX): only then can bf16
    autocast be faster than float32 on CPU; elsewhere oneDNN converts and computes in float32
    (slower, and less precise)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


# Trainings now in Trainer.fit() in this process: the thread policy shares the cores among them.
_active = 0
_active_lock = threading.Lock()


@contextlib.contextmanager
def active_training() -> Iterator[None]:
    """Counts this process's running trainings while inside (for :func:`threads_for`)."""
    global _active
    with _active_lock:
        _active += 1
    try:
        yield
    finally:
        with _active_lock:
            _active -= 1


def active_trainings() -> int:
    return _active


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine since boot, from Linux's /proc/stat; None
    where there is no /proc/stat (macOS, Windows)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def others_busy_cores(window: float = 0.1, cores: int | None = None) -> float | None:
    """How many cores other processes keep busy right now: the machine's non-idle share of CPU
    time over ``window`` seconds (/proc/stat) times the cores, less what this process itself
    used meanwhile (``time.process_time``, all its threads: the app drawing a page is not a
    reason to train on fewer cores, and trainings of this process are counted by
    :func:`active_trainings`). None where /proc/stat is absent.

    Why not the 1-minute load average: it is an exponential average, so for about a minute
    after a training ends it still counts that training. Measured on the 2-core box (this
    project's benchmarks, 2026-12-02): a `bench accuracy` run started 2 s after another saw a
    load of 1.6, got one thread instead of two and trained 215 epochs in its 60 s where the same
    fold, started on an idle box, trained 302; inside one 4-fold bench, the folds that followed
    another within the minute trained 231 and 219 epochs, the others 287 and 337.
    """
    cores = cores or os.cpu_count() or 1
    before, own_before, clock = _cpu_ticks(), time.process_time(), time.perf_counter()
    if before is None:
        return None
    time.sleep(window)
    after, own, elapsed = _cpu_ticks(), time.process_time() - own_before, \
        time.perf_counter() - clock
    if after is None or after[1] <= before[1]:
        return None
    busy = (after[0] - before[0]) / (after[1] - before[1]) * cores
    return max(0.0, busy - own / max(elapsed, 1e-9))


def threads_for(path: TrainPath, cores: int | None = None, active: int | None = None,
                load: float | None = None, busy: float | None = None) -> int:
    """CPU threads for one training on ``path``.

    ``METRIC_LAB_TORCH_THREADS`` wins when set. Baseline: half the cores (lab.learn.train's
    ``training_threads``). Fast: the cores divided among the trainings running in this
    process; a lone training takes the cores other processes leave free
    (:func:`others_busy_cores`, rounded: on 2 cores, both while others use less than half a
    core), or, where that cannot be measured, all of them only when the 1-minute load average
    is below ``cores - 1 + 0.5``. OpenMP threads that find their core taken spin and wait, so
    two threads on a busy 2-core box were 3-5x slower than one (benchmarks/README.md), while
    one thread each for two trainings uses both cores.
    """
    configured = settings.torch_threads()
    if configured:
        return configured
    cores = cores or os.cpu_count() or 1
    if not path.alone_threads:
        return max(1, min(torch.get_num_threads(), cores // 2))
    active = max(1, active_trainings() if active is None else active)
    if active > 1:
        return max(1, cores // active)
    if busy is None and load is None:
        busy = others_busy_cores(cores=cores)
    if busy is not None:
        return max(1, min(cores, int(cores - busy + 0.5)))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    # The load average counts this process's own work of the last minute too; anything above
    # ~one busy core means someone else is computing.
    return cores if load < cores - 0.5 else max(1, cores // 2)


def augment_batch_grid(images: torch.Tensor, generator: torch.Generator,
                       scale: tuple[float, float] = (0.85, 1.0), brightness: float = 0.2
                       ) -> torch.Tensor:
    """The trainer's augmentation (random resized crop, horizontal flip, brightness) of a whole
    batch in one ``affine_grid`` + ``grid_sample`` call, from the very same draws as the
    per-image loop (``lab.learn.train.augment_batch``), so both give the same pixels up to rounding.

    Why it matches: ``resized_crop`` upsamples a crop of h x w pixels at (top, left) to H x W
    bilinearly (align_corners=False; antialiasing does nothing when enlarging), so output row i
    reads input row y = top + (i + 1/2) h / H - 1/2. In grid_sample's normalised coordinates
    (y_n = (2y + 1) / H - 1, same for the output u) that is the affine map
    y_n = (h / H) u + (2 top + h) / H - 1; a flip negates the x scale. Clamping the grid to the
    centres of the crop's edge pixels reproduces resized_crop's edge (it never reads outside
    the crop).
    """
    n, _, height, width = images.shape
    draws = torch.rand(n, 5, generator=generator, device=generator.device).cpu().double()
    area = scale[0] + (scale[1] - scale[0]) * draws[:, 0]
    side = area.sqrt()
    # Python's round (half to even), as the per-image loop does, so the crops are the same.
    h = torch.tensor([max(1, round(height * float(s))) for s in side], dtype=torch.float64)
    w = torch.tensor([max(1, round(width * float(s))) for s in side], dtype=torch.float64)
    top = (draws[:, 1] * (height - h + 1)).floor()
    left = (draws[:, 2] * (width - w + 1)).floor()
    flip = draws[:, 3] < 0.5
    sx = torch.where(flip, -w / width, w / width)
    # The map is separable (x depends on the column only, y on the row): build it per axis.
    u = (2 * torch.arange(width, dtype=torch.float64) + 1) / width - 1
    v = (2 * torch.arange(height, dtype=torch.float64) + 1) / height - 1
    x = sx[:, None] * u + ((2 * left + w) / width - 1)[:, None]  # [n, W]
    y = (h / height)[:, None] * v + ((2 * top + h) / height - 1)[:, None]  # [n, H]
    x = torch.minimum(x, ((2 * (left + w - 1) + 1) / width - 1)[:, None]).maximum(
        ((2 * left + 1) / width - 1)[:, None])
    y = torch.minimum(y, ((2 * (top + h - 1) + 1) / height - 1)[:, None]).maximum(
        ((2 * top + 1) / height - 1)[:, None])
    grid = torch.stack([x[:, None, :].expand(n, height, width),
                        y[:, :, None].expand(n, height, width)], dim=-1)
    grid = grid.to(images.device, images.dtype)
    batch = torch.nn.functional.grid_sample(images, grid, mode="bilinear",
                                            padding_mode="border", align_corners=False)
    factor = (1.0 + brightness * (2 * draws[:, 4] - 1)).to(images.device, images.dtype)
    layout = (torch.channels_last if images.is_contiguous(memory_format=torch.channels_last)
              else torch.contiguous_format)
    return (batch * factor[:, None, None, None]).clamp_(0.0, 1.0).contiguous(memory_format=layout)
