"""Checkpoints in the run folder, and what resuming an interrupted run starts from.

A training that runs away from the app (a Ray worker) sends back, every few epochs, the state
of its network *and* of its loss (ArcFace's class centres, for instance) with the epoch it
belongs to. The app writes it beside the run's other files as ``checkpoint.safetensors``
(tensors named ``model.*`` / ``criterion.*``, the epoch in the safetensors metadata; nothing is
ever unpickled). A run whose worker died is then *interrupted* at that epoch, and resuming it
starts a new training from these weights at the next epoch, in the same run folder.

The checkpoint also holds the optimiser's state (Adam's step count and moments, SGD's
momentum; tensors ``optimizer.<param index>.<name>``) and the trainer's two random generators
(``rng.augment``, ``rng.mining``: the augmentation's and the miner's streams, as the uint8 state
``torch.Generator.get_state`` returns). With them, and the per-epoch sampler seeds, a run
resumed from a checkpoint replays the epochs an uninterrupted run would have trained, to the
last bit on the same machine (tests/test_runners.py checks it). Cost: Adam's two moments are
twice the weights, so a checkpoint is about 3x the network (0.1-1 MB for the default nets, every
5 epochs): cheap.

A run trained in the app's own process has no checkpoint file but saves its weights at every
epoch (``model.safetensors``), so it resumes from those; the loss's own parameters (if it has
any), the optimiser and the random streams then start afresh: a faithful continuation of the
weights and of the batch sequence, not a bit-identical replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save

from lab.learn.runs import Run, RunError, _atomic_write

CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    """Weights to start from and the epoch they were saved at."""

    state: dict[str, torch.Tensor]  # "model.*", "criterion.*", "optimizer.*", "rng.*" tensors
    epoch: int
    source: str  # "checkpoint" (model and loss) or "weights" (model.safetensors only)


def model_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's part of a checkpoint state, named as ``model.state_dict()`` names it."""
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def training_state(trainer) -> dict[str, torch.Tensor]:
    """Everything a checkpoint resumes from: the network, the loss, the optimiser's state and
    the random generators (see the module docstring)."""
    state = trainer._state()
    for index, values in trainer.optimizer.state_dict()["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                state[f"optimizer.{index}.{name}"] = value.detach().clone()
            else:  # a plain number (an old torch's Adam step): kept as a float64 tensor
                state[f"optimizer.{index}.{name}"] = torch.tensor(float(value),
                                                                  dtype=torch.float64)
    state["rng.augment"] = trainer.generator.get_state()
    state["rng.mining"] = trainer.mining_generator.get_state()
    return state


def _restore_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor]) -> None:
    """Load ``optimizer.<index>.<name>`` tensors into ``optimizer``; its param groups (learning
    rate, weight decay) stay as the config made them."""
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    if not per_param:
        return
    current = optimizer.state_dict()
    known = {i for group in current["param_groups"] for i in group["params"]}
    if not set(per_param) <= known:
        raise ValueError("the checkpoint's optimiser state does not fit this network")
    optimizer.load_state_dict({"state": per_param, "param_groups": current["param_groups"]})


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
    _restore_optimizer(trainer.optimizer, state)
    if "rng.augment" in state:
        trainer.generator.set_state(state["rng.augment"])
    if "rng.mining" in state:
        trainer.mining_generator.set_state(state["rng.mining"])  # a CPU tensor, any device
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
           "resumable", "rewind", "save_checkpoint", "training_state", "RunError"]
