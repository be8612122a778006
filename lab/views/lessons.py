"""Lessons: presets that make one claim of the papers visible, and measure it.

A lesson is a handful of runs that differ in one thing (the loss, the energy, the miner, ...),
a short text (what to look at, what the paper claims) and a check of the DIRECTION of the
effect on the figures the runs measure (e.g. batch-hard EER < random EER). The check is what
keeps a lesson honest: :func:`run_lesson` trains the variants, measures them and says whether
the app saw what the paper claims; the tests run every lesson with its seed, so a lesson can
never silently teach something the app does not show.

Every preset is small (synthetic faces at 16 px, a small MLP, a few epochs) so that a whole
lesson trains in under a minute on a 2-core CPU. Lesson "conditions" trains nothing: it checks
conditions 1-3 of Chopra et al. (2005) with :mod:`lab.metric.geometry`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab.core import settings
from lab.core.config import RunConfig
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run
from lab.metric.geometry import check_conditions
from lab.views.run_view import probe_history, verification_of

Figures = dict[str, Any]  # one variant's measured figures: eer, auc, energy_scale, status, ...
Check = Callable[[dict[str, Figures]], tuple[bool, str]]

# The small, fast base every training lesson starts from (about 1 s of CPU per epoch).
BASE = RunConfig(dataset="synthetic", num_identities=40, images_per_identity=8, image_size=16,
                 difficulty=1.0, val_identities=5, test_identities=10, network="mlp",
                 embedding_dim=16, epochs=6, lr=1e-3, device="cpu", extra={"width": 128})

# The spread of every lesson over seeds, measured by ``python -m lab bench lessons`` on this
# project's CPU and committed (lab.bench.lessons); the Lessons page shows it beside a live run.
# lessons-cpu.json: seeds 0, 1, 2 (those of the slow test); lessons-cpu-seeds3-7.json: five more,
# run after the presets were fixed, to see how far the claims carry. The page shows them merged.
RESULTS = settings.REPO_ROOT / "benchmarks" / "results"
SPREAD_FILE = RESULTS / "lessons-cpu.json"
SPREAD_FILES = (SPREAD_FILE, RESULTS / "lessons-cpu-seeds3-7.json")

BUDGET_S = 60.0  # CPU seconds a whole lesson (all its variants) may take on a 2-core CPU


@dataclass(frozen=True)
class Lesson:
    """One claim of a paper, a preset per variant, and the check of the effect's direction.

    ``variants``: (label, RunConfig) pairs trained one after another. ``metric``: the figure the
    lesson compares (a key of the measured figures). ``check(measured) -> (passed, sentence)``,
    ``measured`` mapping each label to its figures, the sentence saying what was measured.
    ``trains``: False for a lesson computed without training (the conditions).
    ``geometry``: query parameters of the geometry page that show this lesson, when one does.
    """

    key: str
    title: str
    summary: str
    look_at: str
    claim: str
    variants: tuple[tuple[str, RunConfig], ...]
    metric: str
    expect: str
    check: Check
    trains: bool = True
    geometry: dict[str, str] | None = None
    source: str = ""

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.variants]


@dataclass
class VariantResult:
    """What one variant measured, plus the arrays the lesson page draws."""

    label: str
    config: RunConfig
    figures: Figures
    run_id: str | None = None
    fpr: np.ndarray | None = None
    tpr: np.ndarray | None = None
    genuine: np.ndarray | None = None
    impostor: np.ndarray | None = None


@dataclass
class LessonResult:
    key: str
    variants: list[VariantResult]
    passed: bool
    sentence: str
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> dict[str, Figures]:
        return {v.label: v.figures for v in self.variants}


# --- measuring a run ---------------------------------------------------------------------------

def _finite_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def measure_run(run, label: str | None = None) -> VariantResult:
    """The figures of one saved run (a :class:`lab.learn.runs.Run`): test EER, AUC, d′, the energy
    scale of unseen pairs at the last saved epoch, the status and the final loss."""

    config = run.config
    metrics = run.metrics or {}
    test = metrics.get("test", {})
    history = run.history or []
    last = history[-1] if history else {}
    figures: Figures = {
        "status": run.status,
        "message": run.message,
        "epochs": int(last.get("epoch", 0) or 0),
        "eer": _finite_or_none(test.get("eer")),
        "auc": _finite_or_none(test.get("auc")),
        "dprime": _finite_or_none(test.get("dprime")),
        "rank1": _finite_or_none(test.get("rank1")),
        "steps": int(last.get("step", 0) or 0),
        "final_loss": _finite_or_none(last.get("loss")),
        "active_fraction": _finite_or_none(last.get("active_fraction")),
        "train_mean_genuine": _finite_or_none(last.get("mean_genuine")),
        "train_mean_impostor": _finite_or_none(last.get("mean_impostor")),
        "genuine_energy": None, "impostor_energy": None, "energy_scale": None,
        "separation": None,
    }
    result = VariantResult(label or run.name, config, figures, run_id=run.id)
    probes = probe_history(run)
    if probes is not None:
        verification = verification_of(probes.at(probes.rounds - 1), probes.labels,
                                        probes.is_test, config.energy, config.seed,
                                        probes.is_seen)
        if verification is not None:
            genuine, impostor = verification.genuine_energies, verification.impostor_energies
            result.genuine, result.impostor = genuine, impostor
            result.fpr, result.tpr = verification.fpr, verification.tpr
            g, i = float(np.median(genuine)), float(np.median(impostor))
            figures.update(genuine_energy=_finite_or_none(g), impostor_energy=_finite_or_none(i),
                           energy_scale=_finite_or_none(float(np.median(
                               np.concatenate([genuine, impostor])))),
                           separation=_finite_or_none(i / g) if g > 0 else None)
    if figures["eer"] is None and probes is not None and result.fpr is not None:
        figures["eer"] = _finite_or_none(verification.eer)
        figures["auc"] = _finite_or_none(verification.auc)
    return result


def conditions_figures(config: RunConfig) -> Figures:
    """Conditions 1-3 for a lesson variant that trains nothing: the loss, its own parameter
    (``config.margin`` = contrastive m_c, ``config.chopra_q`` = Q) and the half-plane margin m
    and energy box in ``config.extra`` ("m", "e_max")."""

    extra = config.extra or {}
    m, e_max = float(extra.get("m", 0.5)), float(extra.get("e_max", 2.0))
    bounded = bool(extra.get("bounded", True))
    found = check_conditions(config.loss, m, e_max, loss_margin=config.margin,
                             q=float(config.chopra_q or 2.0), bounded=bounded)
    checks = (found.condition1, found.condition2, found.condition3)
    figures: Figures = {f"condition{k}": c.ok for k, c in enumerate(checks, start=1)}
    figures.update({f"reason{k}": c.reason for k, c in enumerate(checks, start=1)})
    figures.update(all_ok=found.all_ok, m=m, e_max=e_max, bounded=bounded, status="computed")
    return figures


def geometry_query(config: RunConfig) -> dict[str, str]:
    """The geometry page's query parameters that show one conditions variant."""
    extra = config.extra or {}
    query = {"view": config.loss, "m": f"{float(extra.get('m', 0.5)):g}",
             "emax": f"{float(extra.get('e_max', 2.0)):g}"}
    if config.loss == "contrastive":
        query["mc"] = f"{config.margin:g}"
    if config.loss == "chopra":
        query["q"] = f"{float(config.chopra_q or 2.0):g}"
    if not extra.get("bounded", True):
        query["bounded"] = "0"
    return query


def evaluate(lesson: Lesson, variants: list[VariantResult], cpu_seconds: float = 0.0,
             wall_seconds: float = 0.0) -> LessonResult:
    """Apply the lesson's check to measured variants (a missing figure fails it, honestly)."""
    measured = {v.label: v.figures for v in variants}
    missing = [label for label in lesson.labels if label not in measured]
    if missing:
        return LessonResult(lesson.key, variants, False,
                            f"not measured yet: {', '.join(missing)}", cpu_seconds, wall_seconds)
    try:
        passed, sentence = lesson.check(measured)
    except (TypeError, KeyError, ValueError) as error:
        passed, sentence = False, f"a figure the check needs is missing ({error})"
    return LessonResult(lesson.key, variants, bool(passed), sentence, cpu_seconds, wall_seconds)


def with_seed(lesson: Lesson, seed: int | None) -> Lesson:
    """The lesson with every variant on ``seed``: the weights and batches AND the people (the
    synthetic faces, who is train / val / test, the sampled impostor pairs) follow it
    (``split_seed`` cleared, so ``data_seed`` is ``seed``). None: the lesson as written."""
    if seed is None:
        return lesson
    return dataclasses.replace(lesson, variants=tuple(
        (label, config.replace(seed=int(seed), split_seed=None))
        for label, config in lesson.variants))


def run_lesson(lesson: Lesson, store=None,
               on_variant: Callable[[int, VariantResult], None] | None = None,
               seed: int | None = None) -> LessonResult:
    """Train every variant of ``lesson`` (with :func:`lab.learn.training_run.train_run`), measure it
    and check the direction of the effect. ``store``: a :class:`lab.learn.runs.RunStore` to keep the
    runs in (a temporary one when None). ``on_variant(index, result)`` is called as each finishes.
    ``seed``: run every variant on this seed (weights and people, :func:`with_seed`)."""
    lesson = with_seed(lesson, seed)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    results: list[VariantResult] = []
    if not lesson.trains:
        for index, (label, config) in enumerate(lesson.variants):
            result = VariantResult(label, config, conditions_figures(config))
            results.append(result)
            if on_variant is not None:
                on_variant(index, result)
        return evaluate(lesson, results, time.process_time() - start_cpu,
                        time.perf_counter() - start_wall)


    with tempfile.TemporaryDirectory(prefix="metric-lab-lesson-") as scratch:
        runs = store if store is not None else RunStore(scratch)
        for index, (label, config) in enumerate(lesson.variants):
            variant_cpu = time.process_time()
            run, _ = train_run(config, store=runs, name=f"lesson {lesson.key}: {label}")
            result = measure_run(runs.load(run.id), label)
            result.figures["cpu_seconds"] = round(time.process_time() - variant_cpu, 2)
            results.append(result)
            if on_variant is not None:
                on_variant(index, result)
    return evaluate(lesson, results, time.process_time() - start_cpu,
                    time.perf_counter() - start_wall)


def training_images_per_person(config: RunConfig) -> int:
    """Images of each training person a run learns from (the few-images lesson cuts them)."""
    cut = config.train_images_per_identity
    return min(int(cut), config.images_per_identity) if cut else config.images_per_identity


def planned_steps(config: RunConfig) -> int | None:
    """SGD steps a synthetic-faces run will take: epochs x steps per epoch, where one pass is
    max(1, training images // (P x K)) as lab.data.sampler.PKSampler counts it (None for other
    datasets, whose size is known only once loaded). The lesson page shows it per variant."""
    if config.steps_per_epoch:
        return config.epochs * config.steps_per_epoch
    if config.dataset != "synthetic":
        return None
    people = config.num_identities - config.val_identities - config.test_identities
    images = people * training_images_per_person(config)
    p = min(config.p_identities, people)
    return config.epochs * max(1, images // (p * config.k_images))


def lesson_configs(lesson: Lesson) -> list[RunConfig]:
    """The variants' configs tagged for the run store (``extra["sweep"]`` = the lesson), as a
    :class:`lab.learn.jobs.SweepJob` trains them."""
    return [config.replace(extra={**config.extra, "sweep": f"lesson-{lesson.key}",
                                  "lesson_variant": label})
            for label, config in lesson.variants]


def budget_problems(lesson: Lesson) -> list[str]:
    """Settings that would not fit a lesson's CPU budget (checked by the fast tests)."""
    found = []
    for label, config in lesson.variants:
        if not lesson.trains:
            continue
        if config.dataset not in ("synthetic", "digits"):
            found.append(f"{label}: dataset {config.dataset} is not offline and small")
        if config.network not in ("mlp", "linear"):
            found.append(f"{label}: network {config.network} is slow on a CPU")
        if config.epochs * config.num_identities * config.images_per_identity > 6000:
            found.append(f"{label}: {config.epochs} epochs x {config.num_identities} x "
                         f"{config.images_per_identity} images is too much for the budget")
        if config.image_size > 16 or config.device != "cpu":
            found.append(f"{label}: image size 16 at most, on the CPU")
    if lesson.trains and len(lesson.variants) > 3:
        found.append("at most three trained variants per lesson")
    return found


# --- the spread over seeds (lab.bench.lessons) ---------------------------------------------

def spread(values: list) -> dict | None:
    """Mean, standard deviation (population, ddof 0), min and max of the finite numbers."""
    numbers = [float(v) for v in values
               if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    if not numbers:
        return None
    return {"mean": float(np.mean(numbers)), "std": float(np.std(numbers)),
            "min": min(numbers), "max": max(numbers), "n": len(numbers)}


SPREAD_FIGURES = ("eer", "auc", "energy_scale", "active_fraction")


def seed_spread(key: str, paths: Path | str | tuple = SPREAD_FILES) -> dict | None:
    """Lesson ``key`` as the bench measured it (lab.bench.lessons), merged over the result
    files that hold it: per seed figures and verdicts, the seeds, how often the claim held,
    per variant the spread of SPREAD_FIGURES, and the machines (date, load) under
    ``"machines"``; None when no file measured it (a --quick file never counts)."""
    paths = (paths,) if isinstance(paths, Path | str) else paths
    per_seed: dict[int, dict] = {}
    machines, entry = [], None
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        found = (data.get("lessons") or {}).get(key)
        if not found or data.get("quick"):
            continue
        entry = entry or found
        machines.append(data.get("machine") or {})
        for seed in found.get("per_seed", []):
            per_seed.setdefault(int(seed["seed"]), seed)
    if entry is None:
        return None
    seeds = sorted(per_seed)
    rows = [per_seed[s] for s in seeds]
    labels = list(entry.get("spread") or (rows[0]["figures"] if rows else {}))
    merged = {label: {figure: spread([(r["figures"].get(label) or {}).get(figure)
                                      for r in rows]) for figure in SPREAD_FIGURES}
              for label in labels}
    return {**entry, "seeds": seeds, "per_seed": rows, "runs": len(rows),
            "held": sum(bool(r["passed"]) for r in rows), "spread": merged,
            "machines": machines}


def _mean_std(summary: dict | None, metric: str) -> str:
    if not summary:
        return "n/a"
    if metric in ("eer", "active_fraction"):
        return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f} %"
    return f"{summary['mean']:.3g} ± {summary['std']:.2g}"


def spread_sentence(lesson: Lesson, entry: dict) -> str:
    """"On this machine, 3 seeds (0, 1, 2; weights and people): EER a 8.1 ± 0.9 % vs b ...;
    the claim held on 3 of 3", with where it came from (the bench, its date and load)."""
    seeds = ", ".join(str(s) for s in entry.get("seeds", []))
    metrics = [lesson.metric] + (["eer"] if lesson.metric != "eer" else [])
    names = {"eer": "EER", "energy_scale": "energy scale", "auc": "AUC",
             "active_fraction": "active triplets"}
    parts = []
    for metric in metrics:
        spread = entry.get("spread") or {}
        values = " vs ".join(
            f"{label} {_mean_std((spread.get(label) or {}).get(metric), metric)}"
            for label in lesson.labels)
        parts.append(f"{names.get(metric, metric)}: {values}")
    missed = [str(s["seed"]) for s in entry.get("per_seed", []) if not s.get("passed")]
    against = f" (not on seed{'s' if len(missed) > 1 else ''} {', '.join(missed)})" if missed \
        else ""
    machines = entry.get("machines") or [{}]
    loads = []
    for machine in machines:
        load = machine.get("load_average") or []
        after = machine.get("load_average_after") or []
        loads.append(f"{load[0]:.1f}" if load else "?")
        loads[-1] += f" → {after[0]:.1f}" if after else ""
    first = machines[0]
    where = (f"`python -m lab bench lessons`, {str(first.get('date', '?'))[:10]}, "
             f"{first.get('cpu_count', '?')} cores, load {'; '.join(loads)}")
    return (f"On this machine, {len(entry.get('seeds', []))} seeds ({seeds}; weights and "
            f"people), mean ± std: " + "; ".join(parts)
            + f". The claim held on {entry['held']} of {entry['runs']}{against} ({where}).")


# --- the checks ----------------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _lower(metric: str, better: str, worse: str, *, name: str | None = None) -> Check:
    """A check that variant ``better`` has a lower ``metric`` than ``worse``."""
    title = name or metric.upper()

    def check(measured: dict[str, Figures]) -> tuple[bool, str]:
        a, b = measured[better][metric], measured[worse][metric]
        if a is None or b is None:
            return False, f"{title} was not measured for {better if a is None else worse}"
        show = _pct if metric == "eer" else _num
        sign = "<" if a < b else "≥"
        return a < b, f"{title}: {better} {show(a)} {sign} {worse} {show(b)}"

    return check


def _check_margin(measured: dict[str, Figures]) -> tuple[bool, str]:
    naive, contrastive = measured["naive, no margin"], measured["contrastive, m = 1"]
    n_scale, c_scale = naive["energy_scale"], contrastive["energy_scale"]
    blew_up = naive["status"] == "diverged" or (
        n_scale is not None and c_scale is not None and n_scale > 10 * c_scale)
    clusters = (contrastive["eer"] is not None and naive["eer"] is not None
                and contrastive["eer"] < naive["eer"])
    sentence = (f"energy scale: naive {_num(n_scale)} ({naive['status']}) vs contrastive "
                f"{_num(c_scale)}; EER: naive {_pct(naive['eer'])} vs contrastive "
                f"{_pct(contrastive['eer'])}")
    return blew_up and clusters, sentence


def _check_conditions(measured: dict[str, Figures]) -> tuple[bool, str]:
    def marks(label: str) -> str:
        f = measured[label]
        return " ".join(f"{k}{'✓' if f[f'condition{k}'] else '✗'}" for k in (1, 2, 3))

    small = measured["contrastive m_c = 1, m = 0.5"]
    large = measured["contrastive m_c = 1, m = 1.5"]
    naive_box, naive_free = measured[_NAIVE_BOX], measured[_NAIVE_FREE]
    chopra = measured["Chopra Q = 2, m = 0.5"]
    passed = (small["all_ok"] and not large["condition2"] and naive_box["all_ok"]
              and not naive_free["condition2"] and naive_free["condition3"]
              and chopra["all_ok"])
    sentence = "; ".join(f"{label}: {marks(label)}" for label in measured)
    return passed, sentence


def _check_mining(measured: dict[str, Figures]) -> tuple[bool, str]:
    random = measured["random"].get("active_fraction")
    mined = {label: measured[label].get("active_fraction")
             for label in ("semi-hard", "batch-hard")}
    if random is None or None in mined.values():
        return False, "an active fraction was not measured"
    eers = " / ".join(_pct(measured[label].get("eer")) for label in measured)
    passed = all(value >= 2 * random for value in mined.values())
    return passed, (f"active triplets: random {_pct(random)}, semi-hard "
                    f"{_pct(mined['semi-hard'])}, batch-hard {_pct(mined['batch-hard'])} (EER "
                    f"random / semi-hard / batch-hard: {eers})")


def _check_shots(measured: dict[str, Figures]) -> tuple[bool, str]:
    two, ten = measured["2 per person"]["eer"], measured["10 per person"]["eer"]
    five = measured["5 per person"]["eer"]
    if None in (two, five, ten):
        return False, "an EER was not measured"
    return ten < two, (f"EER with 2 / 5 / 10 images per person: {_pct(two)} / {_pct(five)} / "
                       f"{_pct(ten)}")


# --- the lessons ---------------------------------------------------------------------------

_NAIVE_BOX = "naive, m = 0.5, energies ≤ 2"
_NAIVE_FREE = "naive, m = 0.5, unbounded energies"

# Plain SGD follows the gradient's size (Adam would rescale it), as the papers trained.
_SGD = {"optimizer": "sgd", "lr": 0.05}
# Few training people (25 - 5 validation - 10 test = 10), the same 120 steps for every loss.
_FEW_PEOPLE = {"num_identities": 25, "images_per_identity": 10, "epochs": 6,
               "steps_per_epoch": 20}


# Few images per person: 10 rendered per person (the unseen people keep all 10), the training
# people cut to 2 / 5 / 10 by RunConfig.train_images_per_identity; batches of 8 people x 2
# images (K = 2 never repeats an image of a 2-image person) and 360 steps for every variant
# (at 120 steps 10 did no better than 2 on 4 of 5 seeds: lessons-cpu-shorter-presets.json).
_FEW_SHOTS = {"images_per_identity": 10, "k_images": 2, "epochs": 6, "steps_per_epoch": 60}


def _v(**changes: Any) -> RunConfig:
    extra = {**BASE.extra, **changes.pop("extra", {})}
    return BASE.replace(**changes, extra=extra)


LESSON_LIST: list[Lesson] = [
    Lesson(
        key="margin",
        title="Why a margin",
        summary="Without a margin the loss is lowered by blowing the energies up, not by "
                "learning who is who.",
        look_at="Compare the **energy scale** of the two runs and their **EER** on unseen "
                "people. The naive loss E_G − E_I keeps pushing impostors apart for ever: its "
                "energies grow by orders of magnitude (or the loss becomes infinite and the "
                "trainer stops it as *diverged*), and genuine pairs grow with them. The "
                "contrastive loss stops pushing an impostor once it is beyond the margin m, so "
                "its energies stay of order m and the net spends its effort on clustering.",
        claim="Chopra, Hadsell & LeCun (2005), section 3: a margin m should be part of the loss "
              "to prevent trivial solutions (condition 1), and minimising the loss must drive "
              "the machine to E_G + m < E_I (conditions 2-3). With unnormalised embeddings, as "
              "here, the energies are unbounded and the naive loss E_G − E_I has no minimum at "
              "all: it is lowered for ever by blowing every energy up. (Were the energies "
              "bounded, its minimum would be the corner E_G = 0, E_I = E_max, as for Chopra's "
              "loss: see the geometry page.)",
        variants=(
            ("naive, no margin", _v(loss="naive", normalize=False, lr=1e-2)),
            ("contrastive, m = 1", _v(loss="contrastive", margin=1.0, normalize=False, lr=1e-2)),
        ),
        metric="energy_scale",
        expect="the naive run's energies blow up (diverged, or ×10 the contrastive scale) and its "
               "EER is worse than the contrastive run's",
        check=_check_margin,
        source="Chopra, Hadsell & LeCun (2005); Hadsell, Chopra & LeCun (2006)",
    ),
    Lesson(
        key="plateau",
        title="L1 vs squared-L2 energy",
        summary="From a collapsed start, the squared energy has no gradient to push impostors "
                "apart: Chopra's plateau.",
        look_at="Both runs start **collapsed**: the embedding's last layer is scaled by 0.01, so "
                "every pair, impostors included, starts at near-zero energy; both use plain SGD, "
                "which (unlike Adam) follows the gradient's size. Watch the **EER** and the "
                "**impostor energy**: with the L1 energy the impostors are pushed apart from the "
                "first step; with the squared L2 energy the gradient 2δ vanishes with the "
                "energy, so the run sits on a plateau. See the plateau plot on the geometry page.",
        claim="Chopra et al. (2005), section 3: \"if the energy were the square norm of the "
              "difference ... the gradient of the energy with respect to the parameters would "
              "vanish as the energy approached zero. This would create a dangerous plateau\" "
              "where impostor pairs at near-zero energy are not learnt.",
        variants=(
            ("L1 energy", _v(loss="chopra", energy="l1", normalize=False, optimizer="sgd",
                             lr=0.01, init_scale=0.01)),
            ("squared L2 energy", _v(loss="chopra", energy="sqeuclidean", normalize=False,
                                     optimizer="sgd", lr=0.01, init_scale=0.01)),
        ),
        metric="eer",
        expect="the L1 run reaches a lower EER than the squared-L2 run",
        check=_lower("eer", "L1 energy", "squared L2 energy"),
        source="Chopra, Hadsell & LeCun (2005)",
    ),
    Lesson(
        key="mining",
        title="Mining triplets",
        summary="Random, semi-hard and batch-hard triplets: which ones teach the net anything?",
        look_at="Watch the **active fraction** (the share of the triplets a step uses that have "
                "a non-zero loss, at the last epoch). Most random triplets are already easy: "
                "zero loss, zero gradient, nothing learnt from them. Semi-hard triplets "
                "(negative farther than the positive but within α) and the hardest triplet of "
                "each anchor keep the loss working. All three use plain SGD for the same steps, "
                "so a loss averaged over mostly-easy triplets also means smaller steps. The "
                "**EER** is shown too, but on this small set the three end within a few points "
                "of each other, no more than the seed-to-seed spread (batch-hard below random "
                "on some seeds, above on others: see the spread), so the app does not claim "
                "an EER ranking.",
        claim="Schroff et al. (2015, FaceNet): most of all possible triplets are easily "
              "satisfied, \"would not contribute to the training and result in slower "
              "convergence\"; it is crucial to select hard triplets that are active. Hermans "
              "et al. (2017, In Defense of the Triplet Loss) choose the hardest positive and "
              "hardest negative per anchor in a P×K batch (batch-hard).",
        variants=(
            ("random", _v(loss="triplet", energy="l2", margin=0.2, miner="random", **_SGD)),
            ("semi-hard", _v(loss="triplet", energy="l2", margin=0.2, miner="semihard", **_SGD)),
            ("batch-hard", _v(loss="triplet", energy="l2", margin=0.2, miner="batchhard", **_SGD)),
        ),
        metric="active_fraction",
        expect="semi-hard and batch-hard triplets are each at least twice as often active "
               "(non-zero loss) as random triplets at the end of training",
        check=_check_mining,
        source="Schroff et al. (2015); Hermans, Beyer & Leibe (2017)",
    ),
    Lesson(
        key="normalize",
        title="Normalised embeddings",
        summary="FaceNet puts every embedding on the unit sphere: does the margin mean more "
                "there?",
        look_at="Both runs use the triplet loss with α = 0.2 on the squared L2 energy. Without "
                "normalisation the net can satisfy d(a,n) > d(a,p) + α by scaling every "
                "embedding up, and α soon means nothing; on the unit sphere energies are bounded "
                "(squared L2 ≤ 4) and the margin keeps its meaning. Compare the **EER** and the "
                "**energy scale**.",
        claim="Schroff, Kalenichenko & Philbin (2015, FaceNet): the embedding is constrained to "
              "the hypersphere, ||f(x)||₂ = 1, so that the margin α is defined relative to a "
              "fixed scale.",
        variants=(
            ("L2-normalised", _v(loss="triplet", energy="sqeuclidean", margin=0.2,
                                 miner="semihard", normalize=True)),
            ("not normalised", _v(loss="triplet", energy="sqeuclidean", margin=0.2,
                                  miner="semihard", normalize=False)),
        ),
        metric="eer",
        expect="the normalised run reaches a lower EER than the unnormalised run",
        check=_lower("eer", "L2-normalised", "not normalised"),
        source="Schroff, Kalenichenko & Philbin (2015)",
    ),
    Lesson(
        key="open-world",
        title="Open world: unseen people",
        summary="A metric learnt on some people verifies people it never saw; a classifier "
                "learns its training classes.",
        look_at="Both runs learn from the same **10 training people** for the same 120 steps "
                "and are scored on the same **10 unseen people**, by the energy between "
                "embeddings. The classifier (softmax, DeepFace-style) uses its embedding layer "
                "as features. Compare the **EER** and **AUC**. (With many more training "
                "people, classifier features catch up: on 30 people and 240 steps the app "
                "measures both near 10% EER. That is DeepFace's point.)",
        claim="Chopra et al. (2005): learn a similarity metric rather than a classifier when the "
              "number of categories is large or unknown at training time; it generalises to "
              "new categories. DeepFace (Taigman et al. 2014) shows that classifier features "
              "transfer too, but only with millions of images and thousands of identities.",
        variants=(
            ("contrastive metric", _v(loss="contrastive", margin=1.0, **_FEW_PEOPLE)),
            ("softmax classifier", _v(loss="softmax", lr=3e-3, **_FEW_PEOPLE)),
        ),
        metric="eer",
        expect="the metric-learning run reaches a lower EER on unseen people than the softmax "
               "features",
        check=_lower("eer", "contrastive metric", "softmax classifier"),
        source="Chopra, Hadsell & LeCun (2005); Taigman et al. (2014)",
    ),
    Lesson(
        key="arcface",
        title="ArcFace: room on the sphere",
        summary="ArcFace puts every face on a sphere and separates people by angles: on the 3-D "
                "sphere you can see, 25 people with a 0.5 rad margin crowd each other.",
        look_at="Both runs use ArcFace with the same angular margin m = 0.5 rad and scale "
                "s = 16, on the same **25 training people**, for the same 240 steps: each face "
                "is a point on a sphere, and the loss wants it m closer (in angle) to its own "
                "person's centre than to any other. One run embeds on the ordinary sphere of "
                "**3** dimensions (open it on the Embeddings page to see it), the other on a "
                "sphere in **16** dimensions. Compare the **EER** on unseen people. What this "
                "lesson varies is the room on the sphere, not the margin: on this small set "
                "m = 0 (a normalised softmax) measures about as well as m = 0.5, so the app "
                "does not claim a gain from the margin itself (the paper's comes with "
                "thousands of identities).",
        claim="Deng et al. (2019, ArcFace): the additive angular margin is a geodesic distance "
              "on the hypersphere of normalised embeddings; it enforces intra-class compactness "
              "and inter-class discrepancy, which needs room: class centres must lie at least "
              "about 2m apart. On the 3-D sphere, 25 caps of angular radius m = 0.5 rad cover "
              "25 x 2π(1 − cos 0.5) ≈ 19 of its 4π ≈ 12.6 steradians: they cannot all fit "
              "apart; a 16-D sphere has room for them all.",
        variants=(
            ("16-D sphere, m = 0.5", _v(loss="arcface", margin=0.5, scale=16.0, lr=3e-3,
                                        embedding_dim=16, steps_per_epoch=40)),
            ("3-D sphere, m = 0.5", _v(loss="arcface", margin=0.5, scale=16.0, lr=3e-3,
                                       embedding_dim=3, steps_per_epoch=40)),
        ),
        metric="eer",
        expect="the 16-dimensional sphere gives a lower EER than the crowded 3-D sphere, at the "
               "same margin and the same steps",
        check=_lower("eer", "16-D sphere, m = 0.5", "3-D sphere, m = 0.5"),
        source="Deng et al. (2019)",
    ),
    Lesson(
        key="few-shot",
        title="Few images per person",
        summary="2, 5 or 10 photos per person: how many does a metric need?",
        look_at="The same 25 training people, of whom each run sees 2, 5 or 10 images; the "
                "same 10 unseen test people, scored with all 10 of their images in every run. "
                "Every run takes the same 360 steps of the same batch shape (8 people x 2 "
                "images, so no image is ever paired with itself). Compare the **EER**: 2 images "
                "per person against 10 (between 5 and 10 the difference is within the "
                "spread over seeds). Cut to 120 steps, 10 images did no better than 2 on 4 of "
                "5 seeds (benchmarks/results/lessons-cpu-shorter-presets.json): the net had "
                "not yet used the extra images.",
        claim="Chopra et al. (2005) train on few images per person (AT&T: 10; AR: 26) and "
              "verify new people from a single reference: the one-shot flavour of metric "
              "learning. More images per person show the net more of the nuisance it must "
              "ignore.",
        variants=(
            ("2 per person", _v(loss="contrastive", **_FEW_SHOTS,
                                train_images_per_identity=2)),
            ("5 per person", _v(loss="contrastive", **_FEW_SHOTS,
                                train_images_per_identity=5)),
            ("10 per person", _v(loss="contrastive", **_FEW_SHOTS,
                                 train_images_per_identity=10)),
        ),
        metric="eer",
        expect="10 images per person give a lower EER than 2",
        check=_check_shots,
        source="Chopra, Hadsell & LeCun (2005)",
    ),
    Lesson(
        key="conditions",
        title="The conditions, switched",
        summary="Conditions 1-3 of Chopra 2005 flip as you change the loss and the margin.",
        look_at="Open the geometry page with each setting (links below). For the contrastive "
                "loss with its own margin m_c = 1, ask for the half-plane E_G + m < E_I: with "
                "m = 0.5 all three conditions hold; with m = 1.5 the minimum of H, at "
                "E_G = 0, E_I = m_c = 1, lies outside the half-plane (condition 2 ✗). The naive "
                "loss depends on whether the energies are bounded: in the box [0, 2]² "
                "(normalised embeddings) its minimum is the corner (0, 2), inside the "
                "half-plane, exactly like Chopra's (all three ✓); with unbounded energies it has "
                "no minimum at all (condition 2 ✗). Chopra's exponential loss satisfies all "
                "three in the box its Q bounds.",
        claim="Chopra et al. (2005), section 3: a loss drives the machine to solutions with "
              "E_G + m < E_I when H(E_G, E_I) = L_G(E_G) + L_I(E_I) has its minimum in that "
              "half-plane (condition 2) and −∇H points into it on the margin line "
              "(condition 3).",
        variants=(
            ("contrastive m_c = 1, m = 0.5", RunConfig(loss="contrastive", margin=1.0,
                                                       extra={"m": 0.5, "e_max": 2.0})),
            ("contrastive m_c = 1, m = 1.5", RunConfig(loss="contrastive", margin=1.0,
                                                       extra={"m": 1.5, "e_max": 2.0})),
            (_NAIVE_BOX, RunConfig(loss="naive", extra={"m": 0.5, "e_max": 2.0})),
            (_NAIVE_FREE, RunConfig(loss="naive", extra={"m": 0.5, "e_max": 2.0,
                                                         "bounded": False})),
            ("Chopra Q = 2, m = 0.5", RunConfig(loss="chopra", energy="l1", chopra_q=2.0,
                                                extra={"m": 0.5, "e_max": 2.0})),
        ),
        metric="condition2",
        expect="contrastive m = 0.5: ✓✓✓; m = 1.5: condition 2 ✗; naive in the box: ✓✓✓; "
               "naive unbounded: condition 2 ✗; Chopra: ✓✓✓",
        check=_check_conditions,
        trains=False,
        geometry={"view": "contrastive", "mc": "1", "m": "1.5", "emax": "2"},
        source="Chopra, Hadsell & LeCun (2005)",
    ),
]

LESSONS: dict[str, Lesson] = {lesson.key: lesson for lesson in LESSON_LIST}
