"""RunStore: training runs on disk, one folder each, safe to list while a run is being written.

Layout of ``<root>/<run id>/``:

- ``run.json``: id, human name, status (running / done / stopped / diverged / interrupted),
  message, timestamps, input shape (channels, image size), number of training identities, the
  process that is writing it;
- ``config.json``: the RunConfig (a run is reproducible from it alone);
- ``history.jsonl``: one JSON object per report (loss, energies, timing);
- ``metrics.json``: the final evaluation (validation and test figures);
- ``model.safetensors``: the weights (safetensors: nothing is ever unpickled);
- ``probes.safetensors``: probe embeddings per report [R, P, D], probe labels, which probe
  identities are test (unseen) ones, and the epoch of each report, for the app's epoch slider.

Every write goes to a temporary file in the same folder, then ``os.replace``: a killed process
leaves either the old or the new file, never half of one. ``list()`` never raises: a folder it
cannot read is listed with status "corrupt" and the reason. A run left "running" by a process
that no longer exists is listed as "interrupted".

The run id is ``YYYYMMDD-HHMMSS-<6 hex>``: sortable, unique, and safe as a folder name; the
human name is separate and can be changed (``rename``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file, save, save_file

from lab.core import limits, settings
from lab.core.config import CHOICES, RunConfig, problems
from lab.learn.models import build_model
from lab.metric.loss_specs import LOSSES

STATUSES = ("running", "done", "stopped", "diverged", "interrupted", "corrupt")
KNOWN_FILES = ("run.json", "config.json", "history.jsonl", "metrics.json", "model.safetensors",
               "probes.safetensors")
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


class RunError(ValueError):
    """A run id, folder or archive that cannot be used, with a message a user can act on."""


def default_root() -> Path:
    """``$METRIC_LAB_RUNS`` if set, else ``data/runs`` under the repository root."""
    return settings.runs_root()


def sanitize_name(name: str) -> str:
    """A display name: printable, no path separators or markup brackets, at most
    MAX_RUN_NAME_CHARS characters."""
    name = "".join(ch if ch.isprintable() and ch not in "/\\<>`" else " " for ch in str(name))
    name = " ".join(name.split())[: limits.MAX_RUN_NAME_CHARS]
    return name or "run"


def default_name(config: RunConfig, when: float | None = None) -> str:
    """A name that tells a class's first runs apart: the loss, its margin when it has one, the
    dataset, and the time it started (every student's first run used to be "contrastive on
    synthetic"). Names are for people; the app identifies runs by id."""

    spec = LOSSES.get(config.loss)
    margin = f" m={config.margin:g}" if spec is not None and "margin" in spec.params else ""
    stamp = time.strftime("%H:%M:%S", time.localtime(time.time() if when is None else when))
    return f"{config.loss}{margin} on {config.dataset} · {stamp}"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_json(path: Path, obj: Any) -> None:
    _atomic_write(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default)
                         + "\n").encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """NaN/inf -> None so files stay strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunInfo:
    """One line of the run list: enough to show a table without loading weights."""

    id: str
    name: str
    status: str
    path: Path
    created: float = 0.0
    message: str = ""
    config: RunConfig | None = None
    metrics: dict = field(default_factory=dict)
    epochs_done: int = 0


class Run:
    """One run folder. Writers call ``append_history``, ``save_model``, ``save_probes``,
    ``save_metrics`` and ``set_status``; readers get ``config``, ``history``, ``metrics`` and
    ``model`` (built from the config and loaded from ``model.safetensors`` on first access)."""

    def __init__(self, path: Path, meta: dict, config: RunConfig):
        self.path = path
        self.meta = meta
        self.config = config
        self._history: list[dict] | None = None
        self._model: torch.nn.Module | None = None

    # -- reading ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def name(self) -> str:
        return self.meta.get("name", self.id)

    @property
    def status(self) -> str:
        return self.meta.get("status", "running")

    @property
    def message(self) -> str:
        return self.meta.get("message", "")

    @property
    def history(self) -> list[dict]:
        if self._history is None:
            self._history = _read_history(self.path / "history.jsonl")
        return self._history

    @property
    def metrics(self) -> dict:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self.load_model()
        return self._model

    def load_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The embedding net of this run with its saved weights, in eval mode."""

        path = self.path / "model.safetensors"
        if not path.exists():
            raise RunError(f"run {self.id} has no saved weights yet")
        model = build_model(self.config, int(self.meta["in_channels"]),
                            _image_size(self.meta["image_size"]))
        state = load_file(str(path), device=str(device))
        model.load_state_dict(state)
        return model.to(device).eval()

    def probes(self) -> dict[str, torch.Tensor]:
        """embeddings [R, P, D], labels [P], is_test [P], epochs [R], indices [P] (or {})."""
        path = self.path / "probes.safetensors"
        return load_file(str(path)) if path.exists() else {}

    # -- writing ---------------------------------------------------------------------------
    def _write_meta(self) -> None:
        self.meta["updated"] = time.time()
        _atomic_json(self.path / "run.json", _clean(self.meta))

    def set_shape(self, in_channels: int, image_size: int | tuple[int, int],
                  num_classes: int) -> None:
        self.meta.update(in_channels=int(in_channels), num_classes=int(num_classes),
                         image_size=list(image_size) if isinstance(image_size, tuple)
                         else int(image_size))
        self._write_meta()

    def set_status(self, status: str, message: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.meta.update(status=status, message=message)
        self._write_meta()

    def append_history(self, record: dict) -> None:
        self.history.append(_clean(record))
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
        _atomic_write(self.path / "history.jsonl", text.encode())

    def save_model(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".model.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(state, tmp)
            os.replace(tmp, self.path / "model.safetensors")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._model = None

    def save_probes(self, embeddings: list[np.ndarray], labels, is_test, epochs: list[float],
                    indices=None, seen=None) -> None:
        """``seen`` = (embeddings per epoch, labels, dataset indices) of a few training
        identities, drawn on the maps beside the never-seen ones."""
        tensors = {
            "embeddings": torch.as_tensor(np.stack(embeddings).astype(np.float32)),
            "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64)),
            "is_test": torch.as_tensor(np.asarray(is_test, dtype=np.uint8)),
            "epochs": torch.as_tensor(np.asarray(epochs, dtype=np.float32)),
        }
        if indices is not None:
            tensors["indices"] = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if seen is not None:
            seen_embeddings, seen_labels, seen_indices = seen
            tensors["seen_embeddings"] = torch.as_tensor(
                np.stack(seen_embeddings).astype(np.float32))
            tensors["seen_labels"] = torch.as_tensor(np.asarray(seen_labels, dtype=np.int64))
            tensors["seen_indices"] = torch.as_tensor(np.asarray(seen_indices, dtype=np.int64))
        _atomic_write(self.path / "probes.safetensors", save(tensors))

    def save_metrics(self, metrics: dict) -> None:
        _atomic_json(self.path / "metrics.json", _clean(metrics))


def _image_size(value) -> int | tuple[int, int]:
    return tuple(value) if isinstance(value, list) else int(value)


def _read_history(path: Path) -> list[dict]:
    """history.jsonl, skipping a line that does not parse (never fatal)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _config_from_json(text: str | bytes, strict: bool) -> RunConfig:
    """config.json as a RunConfig. Unknown keys are ignored (old folders still load); a value of
    the wrong type or outside the choices is refused. ``strict`` (imported archives: outside
    input) also refuses values outside the limits of lab.core.config."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise RunError("config.json is not an object")
    config = RunConfig.from_dict(data)
    wrong = problems(config) if strict else _type_problems(config)
    if wrong:
        raise RunError("config.json has values that cannot be used: " + " ".join(wrong))
    return config


def _type_problems(config: RunConfig) -> list[str]:
    """Fields whose value is not of the field's type, or not one of its choices."""
    found = [f"{name} must be one of {', '.join(choices)}." for name, choices in CHOICES.items()
             if getattr(config, name) not in choices]
    for f in dataclasses.fields(RunConfig):
        value, kind = getattr(config, f.name), str(f.type)
        if f.name in CHOICES or f.name == "extra" or (value is None and "None" in kind):
            continue
        if kind.startswith("bool"):
            ok = isinstance(value, bool)
        elif kind.startswith(("int", "float")):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            found.append(f"{f.name} has the wrong type (got {type(value).__name__}).")
    if not isinstance(config.extra, dict):
        found.append("extra must be an object.")
    return found


class RunStore:
    """All runs under one root folder (``$METRIC_LAB_RUNS`` or ``data/runs``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _folder(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not RUN_ID.match(run_id):
            raise RunError(f"{run_id!r} is not a run id (expected YYYYMMDD-HHMMSS-abcdef)")
        path = self.root / run_id
        if not path.is_dir():
            raise RunError(f"no run {run_id} in {self.root}")
        return path

    def _new_id(self, seed_text: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        for attempt in range(1000):
            digest = hashlib.sha1(f"{seed_text}{time.time_ns()}{os.getpid()}{attempt}".encode())
            run_id = f"{stamp}-{digest.hexdigest()[:6]}"
            if not (self.root / run_id).exists():
                return run_id
        raise RunError("could not find a free run id")

    def create(self, config: RunConfig, name: str | None = None) -> Run:
        """A new folder with config.json and run.json (status "running")."""
        self.root.mkdir(parents=True, exist_ok=True)
        run_id = self._new_id(config.to_json())
        path = self.root / run_id
        path.mkdir()
        now = time.time()
        meta = {"id": run_id, "name": sanitize_name(name or default_name(config, now)),
                "status": "running", "message": "", "created": now, "updated": now,
                "pid": os.getpid(), "host": socket.gethostname(),
                "torch": torch.__version__}
        run = Run(path, meta, config)
        try:
            _atomic_write(path / "config.json", (json.dumps(config.to_dict(), indent=1,
                                                             sort_keys=True) + "\n").encode())
            run._write_meta()
        except OSError:  # disk full: leave no half-made folder behind
            shutil.rmtree(path, ignore_errors=True)
            raise
        return run

    def _read(self, path: Path) -> Run:
        meta = json.loads((path / "run.json").read_text())
        if not isinstance(meta, dict):
            raise RunError("run.json is not an object")
        config = _config_from_json((path / "config.json").read_text(), strict=False)
        meta["id"] = path.name
        if (meta.get("status") == "running" and meta.get("host") == socket.gethostname()
                and isinstance(meta.get("pid"), int) and not _pid_alive(meta["pid"])):
            meta["status"] = "interrupted"
            meta["message"] = "the process that trained it stopped before it finished"
        return Run(path, meta, config)

    def list(self) -> list[RunInfo]:
        """Every run, newest first; unreadable folders come back with status "corrupt"."""
        if not self.root.is_dir():
            return []
        infos = []
        for path in sorted(self.root.iterdir(), reverse=True):
            if not path.is_dir() or not RUN_ID.match(path.name):
                continue
            try:
                run = self._read(path)
                metrics = run.metrics
                infos.append(RunInfo(
                    id=run.id, name=run.name, status=run.status, path=path,
                    created=float(run.meta.get("created", 0.0)), message=run.message,
                    config=run.config, metrics=metrics,
                    epochs_done=len(run.history)))
            except Exception as error:  # noqa: BLE001 - a broken folder must not break the list
                infos.append(RunInfo(id=path.name, name=path.name, status="corrupt", path=path,
                                     message=f"{type(error).__name__}: {error}"))
        return infos

    def load(self, run_id: str) -> Run:
        path = self._folder(run_id)
        try:
            return self._read(path)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise RunError(f"run {run_id} is corrupt: {error}") from error

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self._folder(run_id))

    def rename(self, run_id: str, name: str) -> RunInfo:
        run = self.load(run_id)
        run.meta["name"] = sanitize_name(name)
        run._write_meta()
        return next(info for info in self.list() if info.id == run_id)

    def export_zip(self, run_id: str) -> bytes:
        """The run's known files in a zip (no folders inside), for download or sharing."""
        path = self._folder(run_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in KNOWN_FILES:
                if (path / name).is_file():
                    archive.write(path / name, arcname=name)
        return buffer.getvalue()

    def import_zip(self, data: bytes) -> RunInfo:
        """A run from ``export_zip`` bytes, checked before anything touches the disk.

        Only the known file names are accepted (no paths, no other files), sizes are bounded by
        ``lab.core.limits``, config.json must be a RunConfig, safetensors files must load. The run
        gets a fresh id; a run that was "running" when exported is imported as "interrupted".
        """
        if len(data) > limits.MAX_ARCHIVE_BYTES:
            raise RunError(f"the archive is {len(data) / 1e6:.0f} MB, more than the "
                           f"{limits.MAX_ARCHIVE_BYTES / 1e6:.0f} MB allowed")
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as error:
            raise RunError(f"not a zip archive: {error}") from error
        files: dict[str, bytes] = {}
        with archive:
            members = archive.infolist()
            if len(members) > len(KNOWN_FILES):
                raise RunError(f"a run archive holds at most {len(KNOWN_FILES)} files, this one "
                               f"{len(members)}")
            if sum(m.file_size for m in members) > limits.MAX_ARCHIVE_EXPANDED_BYTES:
                raise RunError("the archive expands to more than the allowed size")
            for member in members:
                if member.is_dir() or member.filename not in KNOWN_FILES:
                    raise RunError(f"unexpected file {member.filename!r} in the archive: only "
                                   f"{', '.join(KNOWN_FILES)} are allowed")
                if member.filename in files:
                    raise RunError(f"{member.filename} appears twice in the archive")
                with archive.open(member) as handle:
                    content = handle.read(limits.MAX_ARCHIVE_EXPANDED_BYTES + 1)
                if len(content) > limits.MAX_ARCHIVE_EXPANDED_BYTES:
                    raise RunError(f"{member.filename} is too large")
                files[member.filename] = content
        for required in ("run.json", "config.json"):
            if required not in files:
                raise RunError(f"the archive has no {required}: is it a Metric Lab run?")
        try:
            meta = json.loads(files["run.json"])
            _config_from_json(files["config.json"], strict=True)
            if not isinstance(meta, dict):
                raise ValueError("run.json is not an object")
            for name in ("model.safetensors", "probes.safetensors"):
                if name in files:
                    load_safetensors_bytes(files[name])
            if "metrics.json" in files:
                json.loads(files["metrics.json"])
        except Exception as error:  # noqa: BLE001 - any parse failure means a bad archive
            raise RunError(f"the archive is not a valid run: {type(error).__name__}: "
                           f"{error}") from error
        if "model.safetensors" in files and "in_channels" not in meta:
            raise RunError("run.json does not say the input shape of the model")
        self.root.mkdir(parents=True, exist_ok=True)
        run_id = self._new_id(files["config.json"].decode(errors="replace"))
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".import-"))
        try:
            meta.update(id=run_id, name=sanitize_name(meta.get("name", "imported run")),
                        pid=None, host=None, imported=time.time())
            if meta.get("status") not in STATUSES or meta.get("status") in ("running",
                                                                            "corrupt"):
                meta["status"] = "interrupted"
            files["run.json"] = json.dumps(_clean(meta), indent=1, sort_keys=True).encode()
            for name, content in files.items():
                (staging / name).write_bytes(content)
            os.replace(staging, self.root / run_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return next(info for info in self.list() if info.id == run_id)
