"""Device memory on a class server: what a finished job keeps, what an allocation failure
frees, which limiter a job queues at. All on the CPU: a weak reference to a tensor dies when
nothing holds the tensor, whatever the device, so these catch on a laptop the leaks that would
fill one GPU with thirty sessions."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from lab.core.config import RunConfig
from lab.learn import jobs
from lab.learn.jobs import SweepJob, TrainingJob, TrainingLimiter
from lab.learn.memory import cpu_copy, is_allocation_failure
from lab.learn.runs import RunStore

TINY = RunConfig(dataset="synthetic", num_identities=20, images_per_identity=4, image_size=16,
                 network="mlp", embedding_dim=8, val_identities=2, test_identities=4, epochs=2,
                 p_identities=8, k_images=2, steps_per_epoch=2)

# One message of each kind a CUDA machine raises when an allocation fails (torch 2.x wording).
ALLOCATION_FAILURES = {
    "torch": lambda: torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"),
    "cudnn": lambda: RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    "cublas": lambda: RuntimeError(
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    "runtime": lambda: RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be "
                                    "asynchronously reported at some other API call"),
}


def _refs(trainer) -> list[weakref.ref]:
    """Weak references to everything of a trainer that lives on the device."""
    tensors = [trainer.train_images, trainer.train_labels, trainer._probe_images,
               trainer._seen_images, *trainer.model.parameters(), *trainer.model.buffers(),
               *trainer.criterion.parameters()]
    for state in trainer.optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return [weakref.ref(trainer), weakref.ref(trainer.model)] + [weakref.ref(t) for t in tensors]


def _watch_trainers(monkeypatch) -> list[list[weakref.ref]]:
    """Record weak references to each trainer a job starts (at its last report)."""
    import lab.learn.train

    seen: list[list[weakref.ref]] = []
    real = lab.learn.train.Trainer.fit

    def fit(self):
        for report in real(self):
            if report.status != "running":
                seen.append(_refs(self))
            yield report

    monkeypatch.setattr(lab.learn.train.Trainer, "fit", fit)
    return seen


def _alive(refs: list[weakref.ref]) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def test_a_finished_job_holds_no_model_nor_images(run_root, monkeypatch):
    seen = _watch_trainers(monkeypatch)
    job = TrainingJob(TINY, store=RunStore(run_root), limiter=TrainingLimiter(1)).start()
    assert job.wait(120) and job.status == "done", job.message
    assert len(seen) == 1 and len(seen[0]) > 10
    assert _alive(seen[0]) == 0
    # what the pages read is still there, on the CPU
    assert job.probe_labels is not None and len(job.probe_labels) == len(job.probe_is_test)
    assert job.seen_labels is not None and job.reports[-1].probe_embeddings is not None


def test_a_run_kept_in_memory_holds_a_cpu_copy_not_the_trainers_model(run_root, monkeypatch):
    import lab.learn.runs

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lab.learn.runs, "_atomic_write", disk_full)
    monkeypatch.setattr(lab.learn.runs, "save_file", disk_full)
    seen = _watch_trainers(monkeypatch)
    job = TrainingJob(TINY, store=RunStore(run_root), limiter=TrainingLimiter(1)).start()
    assert job.wait(120) and job.status == "done" and not job.saved, job.message
    assert _alive(seen[0]) == 0
    model = job.run.model
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert torch.isfinite(model(torch.rand(2, 3, 16, 16))).all()


def test_a_finished_batched_sweep_holds_no_models_nor_images(run_root, monkeypatch):
    import lab.learn.batched

    refs: list[weakref.ref] = []
    real = lab.learn.batched.BatchedTrainer.fit

    def fit(self):
        for reports in real(self):
            if all(r is None or r.status != "running" for r in reports):
                refs.extend([weakref.ref(self), *map(weakref.ref, self.params.values())])
                for trainer in self.trainers:
                    refs.extend(_refs(trainer))
            yield reports

    monkeypatch.setattr(lab.learn.batched.BatchedTrainer, "fit", fit)
    configs = [TINY.replace(margin=m, extra={"sweep": "s"}) for m in (0.5, 1.0)]
    sweep = SweepJob(configs, store=RunStore(run_root), limiter=TrainingLimiter(1),
                     batched=True).start()
    assert sweep.wait(120) and sweep.together and sweep.done == 2, sweep.message
    assert len(refs) > 20 and _alive(refs) == 0


def test_a_finished_sequential_sweep_holds_no_models(run_root, monkeypatch):
    seen = _watch_trainers(monkeypatch)
    configs = [TINY.replace(epochs=1, margin=m, extra={"sweep": "s"}) for m in (0.5, 1.0)]
    sweep = SweepJob(configs, store=RunStore(run_root), limiter=TrainingLimiter(1),
                     batched=False).start()
    assert sweep.wait(120) and sweep.done == 2
    assert len(seen) == 2 and _alive([r for refs in seen for r in refs]) == 0


def test_cpu_copy_is_a_copy_on_the_cpu():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    copy = cpu_copy(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(copy[0].weight, model[0].weight)
    assert copy[0].weight.requires_grad and isinstance(copy[0].weight, torch.nn.Parameter)
    assert torch.equal(copy[1].running_var, model[1].running_var)


# ---------------------------------------------------------------- allocation failures


@pytest.mark.parametrize("kind", list(ALLOCATION_FAILURES))
def test_every_kind_of_allocation_failure_is_recognised(kind):
    assert is_allocation_failure(ALLOCATION_FAILURES[kind]())


def test_other_errors_are_not_allocation_failures():
    assert not is_allocation_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_allocation_failure(ValueError("out of memory"))  # not raised by torch
    assert not is_allocation_failure(RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM"))


def _fail_batches_over(limit: int, error, monkeypatch) -> list[int]:
    from lab.learn.models import EmbeddingNet

    real = EmbeddingNet.__call__
    sizes: list[int] = []

    def forward(self, images, *args, **kwargs):
        if self.training:
            sizes.append(len(images))
            if len(images) > limit:
                raise error()
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(EmbeddingNet, "__call__", forward)
    return sizes


def _trainers_alive_at_each_construction(monkeypatch) -> list[int]:
    """For each Trainer built, how many earlier trainers were still alive at that moment (no
    gc.collect here: the job must have let go of them itself)."""
    import lab.learn.train

    earlier: list[weakref.ref] = []
    alive_then: list[int] = []
    real = lab.learn.train.Trainer.__init__

    def init(self, *args, **kwargs):
        alive_then.append(sum(ref() is not None for ref in earlier))
        real(self, *args, **kwargs)
        earlier.append(weakref.ref(self))

    monkeypatch.setattr(lab.learn.train.Trainer, "__init__", init)
    return alive_then


@pytest.mark.parametrize("kind", list(ALLOCATION_FAILURES))
def test_a_batch_that_does_not_fit_drops_the_trainer_then_retries_at_half_p(
        kind, run_root, monkeypatch):
    half = TINY.p_identities // 2
    sizes = _fail_batches_over(half * TINY.k_images, ALLOCATION_FAILURES[kind], monkeypatch)
    alive = _trainers_alive_at_each_construction(monkeypatch)
    store = RunStore(run_root)
    job = TrainingJob(TINY, store=store, limiter=TrainingLimiter(1)).start()
    assert job.wait(120) and job.status == "done", job.message
    assert sizes[0] == TINY.p_identities * TINY.k_images and max(sizes[1:]) == half * 2
    assert alive == [0, 0]  # the failed trainer was gone before the retry built its own
    assert job.config.p_identities == half and f"P = {half}" in job.message
    [info] = store.list()
    assert info.config.p_identities == half


def test_an_allocation_failure_while_loading_is_not_retried(run_root, monkeypatch):
    import lab.learn.train

    calls: list[int] = []

    def init(self, *args, **kwargs):
        calls.append(1)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(lab.learn.train.Trainer, "__init__", init)
    job = TrainingJob(TINY, store=RunStore(run_root), limiter=TrainingLimiter(1)).start()
    assert job.wait(60) and job.status == "failed"
    assert calls == [1]  # a smaller batch cannot make the images fit
    assert "while loading the training images" in job.message
    assert "smaller image size" in job.message


def test_the_batched_sweep_retries_at_half_p_too(run_root, monkeypatch):
    half = TINY.p_identities // 2
    sizes = _fail_batches_over(half * TINY.k_images, ALLOCATION_FAILURES["cudnn"], monkeypatch)
    store = RunStore(run_root)
    configs = [TINY.replace(margin=m, extra={"sweep": "s"}) for m in (0.5, 1.0)]
    sweep = SweepJob(configs, store=store, limiter=TrainingLimiter(1), batched=True).start()
    assert sweep.wait(120) and sweep.done == 2, sweep.message
    assert sizes[0] == TINY.p_identities * TINY.k_images
    assert f"retried with P = {half}" in sweep.message
    infos = store.list()  # the failed attempt's two runs are gone
    assert sorted(i.config.margin for i in infos) == [0.5, 1.0]
    assert all(i.config.p_identities == half and i.status == "done" for i in infos)


# ---------------------------------------------------------------- one limiter per device


def test_each_device_has_its_own_limiter(monkeypatch):
    monkeypatch.setattr(jobs, "_LIMITERS", {})
    monkeypatch.delenv("METRIC_LAB_MAX_TRAININGS", raising=False)
    monkeypatch.setattr(jobs, "_device_type", lambda preference: (
        "cpu" if preference == "cpu" else "cuda"))  # a machine with a usable GPU
    gpu = TrainingJob(TINY.replace(device="auto"))
    lesson = TrainingJob(TINY.replace(device="cpu"))
    assert gpu.limiter is jobs.shared_limiter("cuda") and gpu.limiter.slots == 1
    assert lesson.limiter is jobs.shared_limiter("cpu") and lesson.limiter is not gpu.limiter
    # the GPU's one slot is taken: a CPU lesson still gets a slot at once
    never = __import__("threading").Event()
    assert gpu.limiter.acquire(gpu.ticket, never)
    assert lesson.limiter.acquire(lesson.ticket, never)
    gpu.limiter.release(gpu.ticket)
    lesson.limiter.release(lesson.ticket)
