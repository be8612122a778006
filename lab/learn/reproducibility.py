"""Same config, same seed, same figures: on the same device, with the same libraries.

What it takes, and what this module does about each:
- Initial weights come from torch's global RNG (``nn.Module`` initialisers take no generator).
  Two trainers started together in threads would interleave their draws, so :func:`seeded`
  holds a process-wide lock while one seeds, builds and leaves (``fork_rng`` restores the
  global state). Everything else a trainer draws uses its own ``torch.Generator``.
- On CUDA, cuDNN picks algorithms by timing them (``benchmark``) and some kernels accumulate
  with atomics (the backward of adaptive pooling, index_add, scatter): run to run the sums
  differ in their last bits, and training amplifies that. :func:`configure` turns on
  deterministic algorithms, cuDNN's deterministic mode, a fixed cuBLAS workspace
  (``CUBLAS_WORKSPACE_CONFIG``) and turns TF32 off (TF32 rounds float32 matmuls and
  convolutions to a 10-bit mantissa). The price is measured by ``python -m lab bench gpu``.
- bfloat16 autocast changes the numbers, but the same way every time: the precision is part
  of what a run records, with the device and the library versions (:func:`record`). A figure
  is "reproducible on this device": another GPU, the CPU or another torch version gives other
  (equally valid) figures.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
from collections.abc import Iterator

import numpy as np
import torch

# cuBLAS needs a fixed workspace to be deterministic; read when cuBLAS starts, so set early.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

_SEED_LOCK = threading.Lock()
_CONFIGURED: set[str] = set()
_CONFIGURE_LOCK = threading.Lock()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's global CPU RNG as a fresh ``manual_seed(seed)`` would, alone: other
    threads seeding at the same time wait, and the global state is restored afterwards."""
    with _SEED_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def configure(device: torch.device) -> None:
    """Process-wide settings that make training on ``device`` deterministic (once per type).

    Nothing to do on the CPU: its kernels are deterministic for a fixed thread count (the
    trainer fixes it, lab.learn.devices.training_threads). ``warn_only``: an operation without a
    deterministic CUDA kernel warns instead of failing a student's run."""
    if device.type != "cuda":
        return
    with _CONFIGURE_LOCK:
        if "cuda" in _CONFIGURED:
            return
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        _CONFIGURED.add("cuda")


def record(device: torch.device, precision: str) -> dict:
    """What a figure depends on besides the config: saved with every run's metrics."""
    info = {
        "device": device.type,
        "precision": precision,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "deterministic": True,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
    }
    if device.type == "cuda":
        index = device.index or 0
        info.update(
            gpu=torch.cuda.get_device_name(index),
            capability=".".join(map(str, torch.cuda.get_device_capability(index))),
            cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
            deterministic=torch.are_deterministic_algorithms_enabled()
            and torch.backends.cudnn.deterministic)
    return info


REPRODUCIBLE = ("Reproducible on this device: the same config and seed give the same figures "
                "here; another device, precision or library version gives other, equally valid "
                "ones.")
