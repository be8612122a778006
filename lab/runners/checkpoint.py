"""Checkpoints in the run folder, and what resuming an interrupted run starts from.

A training that runs away from the app (a Ray worker) sends back, every few epochs, the state
of its network *and* of its loss (ArcFace's class centres, for instance) with the epoch it
belongs to. The app writes it beside the run's other files as ``checkpoint.safetensors``
(tensors named ``model.*`` / ``criterion.*``, the epoch in the safetensors metadata; nothing is
ever unpickled). A run whose worker died is then *interrupted* at that epoch, and resuming it
starts a new training from these weights at the next epoch, in the same run folder.

A run trained in the app's own process has no checkpoint file but saves its weights at every
epoch (``model.safetensors``), so it resumes from those (the loss's own parameters, if it has
any, start afresh). The optimiser's moments always start afresh: a resumed run is a faithful
continuation of the weights and of the batch sequence, not a bit-identical replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save

from lab.runs import Run, RunError, _atomic_write

CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    """Weights to start from and the epoch they were saved at."""

    state: dict[str, torch.Tensor]  # "model.<name>" and "criterion.<name>" tensors
    epoch: int
    source: str  # "checkpoint" (model and loss) or "weights" (model.safetensors only)


def model_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's part of a checkpoint state, named as ``model.state_dict()`` names it."""
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def save_checkpoint(run: Run, state: dict[str, torch.Tensor], epoch: int) -> None:
    """Write the checkpoint atomically (a killed app leaves the old one or the new one)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    _atomic_write(run.path / CHECKPOINT_FILE, save(tensors, metadata={"epoch": str(int(epoch))}))


def load_checkpoint(run: Run) -> Checkpoint:
    """The latest weights of ``run`` to resume from; RunError when it has none."""
    from safetensors import safe_open

    path = run.path / CHECKPOINT_FILE
    if path.exists():
        with safe_open(str(path), framework="pt") as handle:
            epoch = int((handle.metadata() or {}).get("epoch", 0))
        return Checkpoint(load_file(str(path)), epoch, "checkpoint")
    weights = run.path / "model.safetensors"
    epochs = [int(r.get("epoch", 0)) for r in run.history if r.get("status") == "running"]
    if not weights.exists() or not epochs:
        raise RunError(f"run {run.id} has no saved epoch to resume from")
    state = {f"model.{k}": v for k, v in load_file(str(weights)).items()}
    return Checkpoint(state, max(epochs), "weights")


def restore(trainer, checkpoint: Checkpoint) -> None:
    """Load the checkpoint into a fresh Trainer and make it start at the next epoch."""
    state = checkpoint.state
    trainer.model.load_state_dict(model_state(state))
    criterion = {k[len("criterion."):]: v for k, v in state.items()
                 if k.startswith("criterion.")}
    if criterion:
        trainer.criterion.load_state_dict(criterion)
    trainer.first_epoch = checkpoint.epoch + 1
    trainer._snapshot = trainer._state()  # divergence falls back to the checkpoint, not epoch 0


def rewind(run: Run, epoch: int) -> None:
    """Forget what ``run`` recorded after ``epoch`` (history and probe embeddings), so the
    resumed training appends to a run whose every record matches its weights."""
    kept = [r for r in run.history if int(r.get("epoch", 0)) <= epoch
            and r.get("status") == "running"]
    run.history[:] = kept
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
    _atomic_write(run.path / "history.jsonl", text.encode())
    probes = run.probes()
    if probes:
        keep = probes["epochs"] <= epoch
        tensors = {k: (v[keep] if k in ("embeddings", "seen_embeddings", "epochs") else v)
                   for k, v in probes.items()}
        _atomic_write(run.path / "probes.safetensors", save(tensors))


def resumable(run: Run) -> bool:
    try:
        load_checkpoint(run)
    except (RunError, OSError, ValueError):
        return False
    return True


__all__ = ["CHECKPOINT_FILE", "Checkpoint", "load_checkpoint", "model_state", "restore",
           "resumable", "rewind", "save_checkpoint", "RunError"]
