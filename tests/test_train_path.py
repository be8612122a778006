"""lab.learn.train_path: the fast path computes the same step as the baseline, and says so."""

from __future__ import annotations

import pytest
import torch

from lab.core.config import RunConfig
from lab.learn.train import Trainer, augment_batch
from lab.learn.train_path import (
    LEVERS,
    TrainPath,
    augment_batch_grid,
    native_bf16,
    path_for_config,
    threads_for,
)

SMALL = RunConfig(num_identities=12, images_per_identity=4, image_size=16, val_identities=2,
                  test_identities=4, epochs=2, p_identities=4, k_images=4, extra={"width": 8})


@pytest.mark.parametrize("shape", [(16, 1, 48, 48), (8, 3, 32, 32), (5, 1, 20, 30)])
@pytest.mark.parametrize("scale", [(0.85, 1.0), (0.6, 1.0), (0.3, 0.5)])
def test_batched_augmentation_gives_the_per_image_pixels(shape, scale):
    images = torch.rand(*shape)
    if shape[1] == 3:
        images = images.contiguous(memory_format=torch.channels_last)
    loop = augment_batch(images, torch.Generator().manual_seed(7), scale, 0.2)
    grid = augment_batch_grid(images, torch.Generator().manual_seed(7), scale, 0.2)
    assert grid.shape == loop.shape
    assert torch.allclose(grid, loop, atol=1e-4), (grid - loop).abs().max()
    assert grid.is_contiguous(memory_format=torch.channels_last) == images.is_contiguous(
        memory_format=torch.channels_last)


def test_batched_augmentation_changes_images_and_follows_the_generator():
    images = torch.rand(6, 1, 24, 24)
    a = augment_batch_grid(images, torch.Generator().manual_seed(1))
    b = augment_batch_grid(images, torch.Generator().manual_seed(1))
    c = augment_batch_grid(images, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - images).abs().max() > 0.01


def test_path_names_and_levers():
    assert path_for_config(RunConfig()).name == "fast"
    fast = path_for_config(RunConfig())
    assert all(getattr(fast, lever) for lever in LEVERS)
    base = path_for_config(RunConfig(extra={"train_path": "baseline"}))
    assert not any(getattr(base, lever) for lever in LEVERS)
    one = path_for_config(RunConfig(extra={"train_path": "fused_optimizer"}))
    assert one.fused_optimizer and not one.batch_augment and one.describe() == "fused_optimizer"
    with pytest.raises(ValueError, match="unknown train_path"):
        path_for_config(RunConfig(extra={"train_path": "warp_drive"}))


def test_thread_policy(monkeypatch):
    monkeypatch.delenv("METRIC_LAB_TORCH_THREADS", raising=False)
    fast, base = TrainPath("fast", alone_threads=True), TrainPath("baseline")
    assert threads_for(fast, cores=2, active=1, load=0.3) == 2  # alone on an idle box
    assert threads_for(fast, cores=2, active=1, load=2.5) == 1  # someone else computes
    assert threads_for(fast, cores=2, active=2, load=0.3) == 1  # two trainings: one each
    assert threads_for(fast, cores=8, active=2, load=0.3) == 4
    assert threads_for(base, cores=2, active=1, load=0.0) == 1
    # Measured now (/proc/stat): the cores other processes leave free, rounded.
    assert threads_for(fast, cores=2, active=1, busy=0.2) == 2
    assert threads_for(fast, cores=2, active=1, busy=0.7) == 1
    assert threads_for(fast, cores=8, active=1, busy=3.0) == 5
    assert threads_for(fast, cores=2, active=2, busy=0.0) == 1
    monkeypatch.setenv("METRIC_LAB_TORCH_THREADS", "3")
    assert threads_for(fast, cores=2, active=1, load=0.0) == 3


def test_busy_cores_count_other_processes_not_this_one():
    """A process spinning on one core is seen as ~1 busy core; this process spinning is not
    counted (its page drawing is no reason to train on fewer cores)."""
    import multiprocessing
    import threading
    import time

    from lab.learn.train_path import others_busy_cores

    if others_busy_cores() is None:
        pytest.skip("no /proc/stat on this system: the load average is used instead")
    own = threading.Thread(target=_spin, args=(1.2,), daemon=True)
    own.start()  # this process keeps a core busy while it samples
    mine = min(others_busy_cores(window=0.3) for _ in range(3))
    own.join()
    ctx = multiprocessing.get_context("spawn")
    spinner = ctx.Process(target=_spin, args=(3.0,), daemon=True)
    spinner.start()
    try:
        time.sleep(1.0)  # the child imports and starts spinning
        seen = max(others_busy_cores(window=0.3) for _ in range(3))
    finally:
        spinner.terminate()
        spinner.join(5)
    assert seen > 0.6, seen
    assert mine < seen - 0.4, (mine, seen)


def _spin(seconds: float) -> None:
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_native_bf16_needs_the_flags():
    assert not native_bf16({"avx2", "fma", "f16c"})  # this project's AMD EPYC
    assert not native_bf16({"avx512f", "avx512bw"})
    assert native_bf16({"avx512f", "avx512_bf16"}) and native_bf16({"amx_bf16"})


def test_history_records_the_path_and_both_paths_learn_alike(monkeypatch):
    monkeypatch.setenv("METRIC_LAB_TORCH_THREADS", "1")
    config = SMALL.replace(augment=True)
    fast = list(Trainer(config, probes=False).fit())
    base = list(Trainer(config.replace(extra={**config.extra, "train_path": "baseline"}),
                        probes=False).fit())
    assert fast[-1].record()["train_path"] == "fast" and fast[-1].record()["threads"] == 1
    assert base[-1].record()["train_path"] == "baseline"
    # Same draws, same pixels, same maths: the losses agree up to float rounding.
    for a, b in zip(fast, base, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-3, abs=1e-4)
