"""Class challenges: "who gets the lowest error on people nobody has seen?"

A teacher (who holds the teacher key) fixes a dataset, a people split, a time budget per run and
which settings students may change. The challenge keeps a set of identities hidden: every run of
the challenge carries ``extra["holdout"]``, so :func:`lab.data.splits.split_for_config` removes
those people before any split. Students train and tune on the others (their "test" people are
the challenge's validation people); the server scores each submitted run on the hidden ones
(EER, TAR at FAR 1 %, AUC) and ranks the leaderboard by that EER.

Nothing a page sends is trusted: a submission is checked here from the run folder itself (its
config, its history, its origin), one entry per run, a few submissions per student per minute,
names cleaned and length-limited, and only the teacher key can hide entries or close it.

Store: one JSON file per challenge in ``<run store>/../challenges`` (or
``$METRIC_LAB_CHALLENGES``); every change is a read-modify-write under an exclusive ``flock``,
written to a temporary file and ``os.replace``-d, so concurrent submissions never lose one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lab.core import settings
from lab.core.config import RunConfig, problems
from lab.core.fields import FIELDS
from lab.data import DatasetError, load_for_config
from lab.data.splits import held_out_identities, split_for_config
from lab.measure.evaluate import embed, evaluate_embeddings

# Settings a teacher may hand to students; everything else is fixed by the challenge. A
# student's value of each stays inside its range in lab.core.fields (checked by config.problems).
EDITABLE = tuple(name for name in (
    "loss", "margin", "energy", "miner", "scale", "chopra_q", "network", "embedding_dim",
    "normalize", "lr", "epochs", "p_identities", "k_images", "seed", "augment", "flip_average",
    "optimizer", "weight_decay") if name in FIELDS)
DEFAULT_EDITABLE = ("loss", "margin", "energy", "miner", "network", "embedding_dim", "lr",
                    "epochs", "seed")
DATASETS = ("synthetic", "digits", "att", "olivetti")  # offline, or cached on the server
MAX_NAME_CHARS = 40
MAX_TITLE_CHARS = 80
SUBMISSIONS_PER_MINUTE = 3  # per student (browser session) and per name
FINISHED = ("done", "stopped")
# The trainer checks the time budget after each optimisation step, so a run ends at most one
# step past it: a run may report this much more than the budget and still count.
BUDGET_SLACK_FRACTION, BUDGET_SLACK_SECONDS = 0.10, 2.0
CHALLENGE_ID = re.compile(r"^[0-9a-f]{16}$")


class ChallengeError(ValueError):
    """A refused action, with a sentence a student or teacher can act on."""


# ---- the teacher key ---------------------------------------------------------------------------

_GENERATED_KEY: str | None = None


def teacher_key() -> str:
    """``$METRIC_LAB_TEACHER_KEY``, or a key generated once per server process and printed in
    its console (like a notebook server's token)."""
    global _GENERATED_KEY
    env = settings.teacher_key()
    if env:
        return env
    if _GENERATED_KEY is None:
        _GENERATED_KEY = secrets.token_urlsafe(12)
        print(f"Metric Lab teacher key: {_GENERATED_KEY}  (Class challenge page; set "
              "METRIC_LAB_TEACHER_KEY to choose it)", file=sys.stderr, flush=True)
    return _GENERATED_KEY


def is_teacher(key: str | None) -> bool:
    return bool(key) and hmac.compare_digest(str(key).strip().encode(), teacher_key().encode())


def _require_teacher(key: str | None) -> None:
    if not is_teacher(key):
        raise ChallengeError("Only the teacher can do this: enter the teacher key printed in "
                             "the server's console.")


def student_hash(token: str) -> str:
    """What the store keeps of a student's session token (never the token itself)."""
    return hashlib.sha256(f"metric-lab-student:{token}".encode()).hexdigest()[:16]


def clean_name(name: str) -> str:
    """A leaderboard name: printable characters, spaces collapsed, at most MAX_NAME_CHARS.
    Pages show it as text; the CSV neutralises spreadsheet formulas (see to_csv)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(name or ""))
    text = " ".join(text.split())
    if not text:
        raise ChallengeError("Choose a name for the leaderboard.")
    if len(text) > MAX_NAME_CHARS:
        raise ChallengeError(f"A name has at most {MAX_NAME_CHARS} characters.")
    return text


# ---- the challenge ----------------------------------------------------------------------------

@dataclass
class Entry:
    run_id: str
    name: str
    student: str  # student_hash of the submitting session
    submitted: float
    eer: float
    tar_far_1: float | None
    auc: float
    train_seconds: float
    loss: str
    margin: float
    miner: str
    network: str
    hidden: bool = False


@dataclass
class Challenge:
    id: str
    title: str
    base: RunConfig  # the fixed settings (and the students' starting point)
    editable: tuple[str, ...]
    time_budget: float  # seconds of training per run
    hidden_count: int
    holdout_seed: int  # secret: which people are hidden
    created: float
    closed: bool = False
    entries: list[Entry] = field(default_factory=list)
    attempts: dict[str, list[float]] = field(default_factory=dict)  # who -> recent times

    @property
    def required_extra(self) -> dict:
        return {"holdout": {"seed": self.holdout_seed, "count": self.hidden_count},
                "challenge": self.id}

    def student_config(self, config: RunConfig, owner: str) -> RunConfig:
        """``config`` with every setting students may not change put back to the challenge's,
        and the holdout (so the hidden people are never trained or shown)."""
        values = {name: getattr(config, name) for name in self.editable}
        return self.base.replace(**values, extra={**self.required_extra,
                                                  "challenge_owner": owner})

    def limits_text(self) -> list[str]:
        base = self.base
        fixed = [f"{name} = {getattr(base, name)}" for name in
                 ("dataset", "image_size", "val_identities", "test_identities")]
        return [f"Time budget: {self.time_budget:g} s of training per run.",
                f"You may change: {', '.join(self.editable) or 'nothing'}.",
                f"Fixed: {', '.join(fixed)}; {self.hidden_count} more people are hidden and "
                "score the leaderboard."]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["base"] = self.base.to_dict()
        data["editable"] = list(self.editable)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Challenge:
        data = dict(data)
        data["base"] = RunConfig.from_dict(data["base"])
        data["editable"] = tuple(data.get("editable", ()))
        data["entries"] = [Entry(**e) for e in data.get("entries", [])]
        return cls(**data)


def new_challenge(key: str, title: str, base: RunConfig, editable: Sequence[str],
                  time_budget: float, hidden_count: int) -> Challenge:
    """A challenge checked for sense (the teacher's settings are input too)."""
    _require_teacher(key)
    title = " ".join("".join(c if c.isprintable() else " " for c in str(title)).split())
    if not title or len(title) > MAX_TITLE_CHARS:
        raise ChallengeError(f"A title has 1 to {MAX_TITLE_CHARS} characters.")
    unknown = [name for name in editable if name not in EDITABLE]
    if unknown:
        raise ChallengeError(f"Students cannot be given {', '.join(unknown)}.")
    if base.dataset not in DATASETS:
        raise ChallengeError(f"A challenge runs on {', '.join(DATASETS)}.")
    if not 5 <= time_budget <= 3600:
        raise ChallengeError("The time budget is between 5 s and 3600 s per run.")
    wrong = problems(base)
    if wrong:
        raise ChallengeError(" ".join(wrong))
    challenge = Challenge(id=secrets.token_hex(8), title=title,
                          base=base.replace(extra={}, data_dir=None if base.dataset != "att"
                                            else base.data_dir),
                          editable=tuple(n for n in EDITABLE if n in editable),
                          time_budget=float(time_budget), hidden_count=int(hidden_count),
                          holdout_seed=secrets.randbelow(2**31 - 1), created=time.time())
    _check_people(challenge)
    return challenge


def _check_people(challenge: Challenge) -> None:
    """The split must leave people to train on; the dataset tells how many there are."""

    config = challenge.student_config(challenge.base, "check")
    try:
        faces = load_for_config(config)
        hidden = held_out_identities(config, faces.num_identities)
        split = split_for_config(config, faces.num_identities)
    except DatasetError as error:
        raise ChallengeError(str(error)) from error
    if len(split.test) < 2 or len(hidden) < 2:
        raise ChallengeError("The split needs at least 2 validation and 2 hidden people.")
    if len(split.train) < 2:
        raise ChallengeError("Hide fewer people: too few would be left to train on.")


# ---- checking and scoring a run ----------------------------------------------------------------

def run_problems(challenge: Challenge, run, owner: str | None = None) -> list[str]:
    """Why a run cannot enter the challenge, in sentences (empty: it can). Read from the run's
    folder on the server: its origin, status, config and history, never from the page."""
    found = []
    meta = run.meta
    if meta.get("imported") or meta.get("host") is None:
        found.append("Only runs trained on this server for the challenge can enter.")
    if float(meta.get("created", 0)) < challenge.created:
        found.append("This run was trained before the challenge was set.")
    if run.status not in FINISHED:
        found.append(f"The run is {run.status}: only finished runs can enter.")
    config = run.config
    extra = {k: v for k, v in (config.extra or {}).items()
             if k not in ("challenge_owner", "changes")}
    if extra != challenge.required_extra:
        found.append("This run was not trained in this challenge (its people are not the "
                     "challenge's).")
    if owner is not None and (config.extra or {}).get("challenge_owner") != owner:
        found.append("You can only submit runs you trained yourself.")
    for name, value in challenge.base.to_dict().items():
        if name in challenge.editable or name in ("extra",):
            continue
        if getattr(config, name) != value:
            found.append(f"{name} must stay {value!r} in this challenge (the run has "
                         f"{getattr(config, name)!r}).")
    found += problems(config)
    history = run.history
    if not history:
        found.append("The run has no training history.")
    else:
        elapsed = max(float(h.get("elapsed") or 0.0) for h in history)
        allowed = challenge.time_budget + max(BUDGET_SLACK_SECONDS,
                                              BUDGET_SLACK_FRACTION * challenge.time_budget)
        if elapsed > allowed:
            found.append(f"The run trained {elapsed:.0f} s, more than the challenge's "
                         f"{challenge.time_budget:g} s.")
        # Settings changed mid-run (lab.learn.changes: live in the history, replayed from extra).
        changed = {k for h in history for k in (h.get("changes") or {})}
        changed |= {k for c in (config.extra or {}).get("changes", []) for k in c
                    if k != "epoch"}
        fixed = sorted(changed - set(challenge.editable))
        if fixed:
            found.append(f"The run changed {', '.join(fixed)} while it trained; this challenge "
                         "fixes it.")
        if max(int(h.get("epoch") or 0) for h in history) > config.epochs:
            found.append("The run's history has more epochs than its config.")
    if not (run.path / "model.safetensors").exists():
        found.append("The run has no saved weights.")
    return found


def hidden_images(challenge: Challenge, faceset=None):
    """(images, labels) of the hidden people: only the scorer and the tests call this."""
    import torch


    config = challenge.student_config(challenge.base, "scorer")
    faces = faceset if faceset is not None else load_for_config(config)
    hidden = held_out_identities(config, faces.num_identities)
    index = torch.nonzero(torch.isin(faces.labels, torch.as_tensor(hidden))).flatten()
    return faces.images[index].float(), faces.labels[index].numpy()


def score_run(challenge: Challenge, run, faceset=None) -> dict:
    """EER, TAR at FAR 1 % and AUC of the run's model on the hidden people (the threshold-free
    figures: nobody tuned on these people, so no threshold is chosen on them)."""

    images, labels = hidden_images(challenge, faceset)
    model = run.load_model("cpu")
    result = evaluate_embeddings(embed(model, images, "cpu"), labels, run.config.energy,
                                 seed=challenge.holdout_seed)
    history = run.history
    return {"eer": result.eer, "auc": result.auc, "tar_far_1": result.tar_at_far.get(0.01),
            "train_seconds": max(float(h.get("elapsed") or 0.0) for h in history)}


# ---- the store ----------------------------------------------------------------------------------

def default_root(runs_root: Path | None = None) -> Path:
    return settings.challenges_root(runs_root)


class ChallengeStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _path(self, challenge_id: str) -> Path:
        if not isinstance(challenge_id, str) or not CHALLENGE_ID.match(challenge_id):
            raise ChallengeError("This is not a challenge link.")
        return self.root / f"{challenge_id}.json"

    def save_new(self, challenge: Challenge) -> Challenge:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(challenge.id):
            self._write(challenge)
        return challenge

    def load(self, challenge_id: str) -> Challenge:
        path = self._path(challenge_id)
        if not path.exists():
            raise ChallengeError("No such challenge on this server (check the link).")
        try:
            return Challenge.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as error:
            raise ChallengeError(f"This challenge's file cannot be read: {error}") from error

    def list(self) -> list[Challenge]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.json")):
            with contextlib.suppress(ChallengeError):
                found.append(self.load(path.stem))
        return sorted(found, key=lambda c: c.created, reverse=True)

    @contextlib.contextmanager
    def _locked(self, challenge_id: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / f".{challenge_id}.lock"
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, challenge: Challenge) -> None:
        path = self._path(challenge.id)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{challenge.id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(challenge.to_dict(), handle, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- what students do --------------------------------------------------------------------
    def submit(self, challenge_id: str, run, name: str, token: str, faceset=None,
               now: float | None = None) -> Entry:
        """Check, score and enter one run; ChallengeError says why not."""
        now = time.time() if now is None else now
        owner = student_hash(token)
        with self._locked(challenge_id):
            challenge = self.load(challenge_id)
            if challenge.closed:
                raise ChallengeError("This challenge is closed: the teacher no longer takes "
                                     "submissions.")
            name = clean_name(name)
            who = (f"s:{owner}", f"n:{name.casefold()}")
            recent = {k: [t for t in challenge.attempts.get(k, []) if now - t < 60] for k in who}
            if any(len(times) >= SUBMISSIONS_PER_MINUTE for times in recent.values()):
                raise ChallengeError(f"At most {SUBMISSIONS_PER_MINUTE} submissions a minute: "
                                     "wait a moment and try again.")
            challenge.attempts = {k: v for k, v in challenge.attempts.items()
                                  if any(now - t < 60 for t in v)}
            for k in who:
                challenge.attempts[k] = [*recent[k], now]
            self._write(challenge)  # the attempt counts even when it is refused
            if any(e.run_id == run.id for e in challenge.entries):
                raise ChallengeError("This run is already on the leaderboard (one entry per "
                                     "run).")
            wrong = run_problems(challenge, run, owner)
            if wrong:
                raise ChallengeError("This run cannot enter: " + " ".join(wrong))
            score = score_run(challenge, run, faceset)
            config = run.config
            entry = Entry(run_id=run.id, name=name, student=owner, submitted=now,
                          eer=score["eer"], tar_far_1=score["tar_far_1"], auc=score["auc"],
                          train_seconds=score["train_seconds"], loss=config.loss,
                          margin=config.margin, miner=config.miner, network=config.network)
            challenge.entries.append(entry)
            self._write(challenge)
            return entry

    # -- what only the teacher does ---------------------------------------------------------
    def set_hidden(self, challenge_id: str, run_id: str, hidden: bool, key: str) -> None:
        _require_teacher(key)
        with self._locked(challenge_id):
            challenge = self.load(challenge_id)
            entry = next((e for e in challenge.entries if e.run_id == run_id), None)
            if entry is None:
                raise ChallengeError("No such entry.")
            entry.hidden = bool(hidden)
            self._write(challenge)

    def set_closed(self, challenge_id: str, closed: bool, key: str) -> None:
        _require_teacher(key)
        with self._locked(challenge_id):
            challenge = self.load(challenge_id)
            challenge.closed = bool(closed)
            self._write(challenge)


# ---- the leaderboard ----------------------------------------------------------------------------

def leaderboard(challenge: Challenge, include_hidden: bool = False) -> list[dict]:
    """Entries ranked by EER on the hidden people (then by training time), as table rows."""
    entries = [e for e in challenge.entries if include_hidden or not e.hidden]
    entries.sort(key=lambda e: (e.eer if np.isfinite(e.eer) else 2.0, e.train_seconds,
                                e.submitted))
    rows = []
    for rank, entry in enumerate(entries, start=1):
        rows.append({
            "rank": rank, "name": entry.name,
            "EER %": round(100 * entry.eer, 2),
            "TAR@FAR 1 %": None if entry.tar_far_1 is None else round(100 * entry.tar_far_1, 1),
            "AUC": round(entry.auc, 4), "loss": entry.loss, "margin": entry.margin,
            "miner": entry.miner, "network": entry.network,
            "train s": round(entry.train_seconds, 1),
            "submitted": time.strftime("%H:%M:%S", time.localtime(entry.submitted)),
            "run": entry.run_id, **({"hidden": entry.hidden} if include_hidden else {}),
        })
    return rows


COLUMNS = ("rank", "name", "EER %", "TAR@FAR 1 %", "AUC", "loss", "margin", "miner", "network",
           "train s", "submitted")


def to_csv(rows: Sequence[dict]) -> str:
    """The table as CSV; a cell a spreadsheet would run as a formula (=, +, -, @) is quoted
    with a leading apostrophe (OWASP's CSV-injection advice)."""
    buffer = io.StringIO()
    columns = list(rows[0].keys()) if rows else list(COLUMNS)
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v)
                         for k, v in row.items()})
    return buffer.getvalue()
