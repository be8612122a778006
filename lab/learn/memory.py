"""Device memory: recognise an allocation failure, give memory back, keep CPU copies.

A class server has one GPU and thirty sessions. What a finished training leaves behind must
not sit on the device: a session keeps its reports (numpy), its run (on disk, or a
:class:`lab.learn.training_run.MemoryRun` whose model is a CPU copy) and the labels of its probes
(CPU tensors), never the trainer with its model, optimiser state and training images.

Allocation failures come in more than one form. PyTorch's caching allocator raises
``torch.OutOfMemoryError`` (``torch.cuda.OutOfMemoryError`` on CUDA), but the libraries it calls
allocate their own workspaces and report failure as a plain ``RuntimeError``: cuDNN with
``CUDNN_STATUS_ALLOC_FAILED`` (or ``CUDNN_STATUS_NOT_ENOUGH_WORKSPACE``), cuBLAS with
``CUBLAS_STATUS_ALLOC_FAILED``, the CUDA runtime with "CUDA error: out of memory", MPS with
"MPS backend out of memory". All of them mean the same thing to a student: the batch was too
big for this device.
"""

from __future__ import annotations

import copy
import gc

import torch

# Markers in the message of a RuntimeError raised by a library that failed to allocate.
ALLOCATION_FAILURE_MARKERS = (
    "out of memory",  # CUDA runtime, the caching allocator, MPS
    "cudnn_status_alloc_failed",
    "cudnn_status_not_enough_workspace",
    "cublas_status_alloc_failed",
    "cusolver_status_alloc_failed",
    "cufft_alloc_failed",
)


def is_allocation_failure(error: BaseException) -> bool:
    """True for every way torch and the CUDA libraries say "not enough device memory"."""
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(error, oom):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error).lower()
    return any(marker in text for marker in ALLOCATION_FAILURE_MARKERS)


def release_device_memory() -> None:
    """Return cached blocks to the device once nothing references them any more.

    Callers drop their own references first (the trainer, the exception that holds its
    frames): ``empty_cache`` can only give back blocks no tensor uses. ``gc.collect`` breaks
    reference cycles (a model and its optimiser, a traceback and its frames) that would
    otherwise keep tensors alive until the next collection.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        mps.empty_cache()


def cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose parameters and buffers live on the CPU.

    Built without a second copy on the device: each tensor is copied straight to the host and
    handed to ``deepcopy`` through its memo, so only the module's structure is duplicated.
    On the CPU the copy is still a copy (the trainer goes on changing its own weights).
    """
    memo: dict[int, object] = {}
    for parameter in module.parameters():
        memo[id(parameter)] = torch.nn.Parameter(parameter.detach().to("cpu", copy=True),
                                                 requires_grad=parameter.requires_grad)
    for buffer in module.buffers():
        memo[id(buffer)] = buffer.detach().to("cpu", copy=True)
    return copy.deepcopy(module, memo)
