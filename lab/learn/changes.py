"""Settings changed in the middle of a run: the learning rate or the margin, while paused.

A student pauses, lowers the learning rate (or widens the margin) and goes on. For the run to
stay reproducible the change is part of its record twice:

- live: :func:`apply_changes` sets the trainer's optimiser learning rate / the criterion's
  margin; ``train_run`` puts the change on the next report (``EpochReport.changes``), so it is
  a line of ``history.jsonl`` at the epoch it first took effect;
- replay: ``config.extra["changes"] = [{"epoch": e, "lr": ...}, ...]`` makes a Trainer apply the
  same change before epoch ``e`` (:func:`scheduled`); :func:`replay_config` builds that config
  from a run's history. Nothing else moves (no random draw depends on lr or the margin), so
  the replay trains the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.core.config import problems

CHANGEABLE = ("lr", "margin")


def check(changes: dict, config) -> dict:
    """The changes as floats, ValueError with a sentence when one is unknown or out of range."""

    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise ValueError(f"only {', '.join(CHANGEABLE)} can change mid-run, not "
                         f"{', '.join(sorted(unknown))}")
    clean = {k: float(v) for k, v in changes.items()}
    wrong = problems(config.replace(**clean))
    if wrong:
        raise ValueError(" ".join(wrong))
    return clean


def apply_changes(trainer, changes: dict) -> None:
    """Set the new learning rate on every parameter group and the new margin on the criterion
    (both also in ``trainer.config``, which the cosine schedule and the inspector read), and
    keep them for the next report's ``changes``."""
    if not changes:
        return
    trainer.config = trainer.config.replace(**changes)
    if "lr" in changes:
        for group in trainer.optimizer.param_groups:
            group["lr"] = changes["lr"]
    if "margin" in changes:
        trainer.criterion.config = trainer.criterion.config.replace(margin=changes["margin"])
    trainer.pending_changes = {**trainer.pending_changes, **changes}  # for the next report


def scheduled(config) -> dict[int, dict]:
    """{epoch: changes applied before it} from ``config.extra["changes"]``."""
    plan: dict[int, dict] = {}
    for entry in (config.extra or {}).get("changes", []):
        values = {k: float(v) for k, v in entry.items() if k in CHANGEABLE}
        plan.setdefault(int(entry["epoch"]), {}).update(values)
    return plan


def recorded(history: Sequence[dict]) -> list[dict]:
    """The changes of a run's history, as ``config.extra["changes"]`` entries."""
    return [{"epoch": int(r["epoch"]), **r["changes"]} for r in history if r.get("changes")]


def replay_config(config, history: Sequence[dict]):
    """The run's config with its mid-run changes scheduled: training it replays the run."""
    entries = recorded(history)
    if not entries:
        return config
    return config.replace(extra={**(config.extra or {}), "changes": entries})


def markers(history: Sequence[dict]) -> list[tuple[float, str]]:
    """(x on the loss curve, label) per change: drawn at the epoch boundary where it began."""
    out = []
    for entry in recorded(history):
        label = ", ".join(f"{'lr' if k == 'lr' else 'margin'} → {v:g}" for k, v in entry.items()
                          if k != "epoch")
        out.append((entry["epoch"] - 1, label))
    return out


def setting_at(config, history: Sequence[dict], epoch: float, name: str) -> float:
    """The value of ``name`` ("lr" or "margin") that trained ``epoch``: the config's, unless a
    change recorded at or before that epoch replaced it (the figures of a changed run draw the
    margin it had then, not the one it started with)."""
    value = float(getattr(config, name))
    for entry in recorded(history):
        if entry["epoch"] <= epoch and name in entry:
            value = float(entry[name])
    return value
