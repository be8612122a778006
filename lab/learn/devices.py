"""Which device trains, in which precision, and why (the reason is shown on Home).

- CUDA only where this torch build has kernels for the card. A wheel is compiled for a list of
  architectures (``torch.cuda.get_arch_list()``: "sm_75", ..., "compute_120"); a card of
  compute capability (major, minor) runs an ``sm_XY`` binary of the same major with Y <= minor,
  or JIT-compiles ``compute_XY`` PTX with (X, Y) <= (major, minor). The CUDA 13 wheels start at
  sm_75, so a Pascal (6.x) or Volta (7.0) card would fail every training with "no kernel image
  is available": such a card is skipped, with the reason, and the CPU trains.
- bfloat16 autocast only where bf16 is native: compute capability 8.0 (Ampere) and later have
  bf16 tensor cores. On 7.5 (Turing: T4, RTX 20xx) bf16 is emulated and slower than float32,
  and float16 would need loss scaling, so the forward pass stays in float32 there.
- Apple MPS when there is no usable CUDA card, in float32; else the CPU, in float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from lab.core import settings

# Where the architecture list cannot be read: the oldest card the CUDA 13 wheels support.
MIN_CAPABILITY = (7, 5)
BF16_CAPABILITY = (8, 0)  # bf16 tensor cores (Ampere)


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    precision: str  # "float32" or "bfloat16" (autocast of the forward pass; losses in float32)
    reason: str  # one sentence for the user: why this device, why this precision

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bfloat16" else None


def _architectures() -> list[tuple[str, int, int]]:
    """("sm" | "compute", major, minor) of each architecture this torch build was compiled for."""
    found = []
    for arch in torch.cuda.get_arch_list():
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if match:
            found.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return found


def supports(capability: tuple[int, int]) -> bool:
    """Whether this torch build has kernels a card of this compute capability can run."""
    arches = _architectures()
    if not arches:
        return capability >= MIN_CAPABILITY
    major, minor = capability
    return any((kind == "sm" and a == major and b <= minor)
               or (kind == "compute" and (a, b) <= (major, minor)) for kind, a, b in arches)


def oldest_supported() -> tuple[int, int]:
    arches = _architectures()
    return min(((a, b) for _, a, b in arches), default=MIN_CAPABILITY)


def _cuda_choice() -> DeviceChoice | None:
    """The first CUDA card this build can use, or a CPU choice saying why none could be used
    (None when there is no CUDA card at all)."""
    if not torch.cuda.is_available():
        return None
    skipped = []
    for index in range(torch.cuda.device_count()):
        capability = tuple(torch.cuda.get_device_capability(index))
        name = torch.cuda.get_device_name(index)
        if not supports(capability):
            skipped.append(f"{name} (compute capability {capability[0]}.{capability[1]})")
            continue
        device = torch.device("cuda", index) if index else torch.device("cuda")
        cc = f"{capability[0]}.{capability[1]}"
        if capability >= BF16_CAPABILITY:
            return DeviceChoice(device, "bfloat16", f"{name}, compute capability {cc}: the "
                                "forward pass runs in bfloat16 (native on 8.0 and later), "
                                "losses in float32.")
        return DeviceChoice(device, "float32", f"{name}, compute capability {cc}: training "
                            "runs in float32 (bfloat16 is only emulated below 8.0, so slower).")
    low = oldest_supported()
    return DeviceChoice(torch.device("cpu"), "float32", (
        f"{' and '.join(skipped)}: this PyTorch build has no GPU kernels below compute "
        f"capability {low[0]}.{low[1]}, so training runs on the CPU."))


def choose_device(preference: str = "auto") -> DeviceChoice:
    """The device and precision for ``preference`` ("auto", "cuda", "mps", "cpu"). A choice
    that is missing or unusable falls back to the CPU (a config written on a GPU machine
    still runs on a laptop), and ``reason`` says so."""
    if preference == "cpu":
        return DeviceChoice(torch.device("cpu"), "float32", "The CPU was chosen; float32.")
    if preference in ("auto", "cuda"):
        cuda = _cuda_choice()
        if cuda is not None and (cuda.device.type == "cuda" or preference == "cuda"):
            return cuda
        skipped = cuda.reason if cuda is not None else ""
    else:
        skipped = ""
    mps = getattr(torch.backends, "mps", None)
    if preference in ("auto", "mps") and mps is not None and mps.is_available():
        return DeviceChoice(torch.device("mps"), "float32",
                            f"{skipped} Apple GPU (MPS), float32.".strip())
    if skipped:
        return DeviceChoice(torch.device("cpu"), "float32", skipped)
    wanted = "" if preference == "auto" else f"No {preference.upper()} device here: "
    return DeviceChoice(torch.device("cpu"), "float32",
                        f"{wanted}no usable GPU found, so training runs on the CPU in float32.")


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA if a card this build supports is present, else Apple MPS, else CPU."""
    return choose_device(preference).device


def precision_for(device: torch.device) -> str:
    """The training precision on ``device`` (the choice made by :func:`choose_device`)."""
    if device.type != "cuda":
        return "float32"
    index = device.index or 0
    return "bfloat16" if tuple(torch.cuda.get_device_capability(index)) >= BF16_CAPABILITY \
        else "float32"



def training_threads() -> int:
    """CPU threads for one training: METRIC_LAB_TORCH_THREADS, else half the cores (at least 1),
    never more than torch is already set to.

    Why not every core: these models are tiny, so two threads gain little even on an idle CPU,
    while any other work on the machine (the app drawing figures, the browser, a second user)
    makes OpenMP threads spin against each other: on the 2-core box one thread trained the
    default lesson in 3 s where two took 24 s under load (`python -m lab bench dashboard`)."""
    import os

    configured = settings.torch_threads()
    if configured:
        return configured
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // 2))


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
