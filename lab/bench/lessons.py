"""``python -m lab bench lessons``: every lesson on several seeds, and whether its claim held.

A lesson's live run is one seed; a claim the app teaches must hold beyond it (issue 14). This
bench trains each lesson (lab.views.lessons.run_lesson, exactly the page's presets) on each seed of
``--seeds``, the weights AND the people following the seed (lab.views.lessons.with_seed), and writes
per seed every variant's figures and the verdict, then per variant the mean ± standard deviation
(population, ddof = 0) of the figures the page shows. The Lessons page reads the committed JSON
(``benchmarks/results/lessons-cpu.json``, seeds 0-2, and ``lessons-cpu-seeds3-7.json``, five
more: :data:`lab.views.lessons.SPREAD_FILES`) and shows that spread, merged, beside the live
result; the machine and its load average, before and after, are recorded (the figures do not
depend on the load, the seconds do).
"""

from __future__ import annotations

import argparse
import time

from lab.bench.common import _finish, _start, register
from lab.views.lessons import LESSONS, run_lesson, spread
from lab.views.lessons import SPREAD_FIGURES as SPREAD

FIGURES = ("eer", "auc", "dprime", "energy_scale", "genuine_energy", "impostor_energy",
           "active_fraction", "final_loss", "steps", "status", "cpu_seconds")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file (the page reads "
                             "benchmarks/results/lessons-cpu.json)")
    parser.add_argument("--seeds", default="0,1,2",
                        help="comma-separated seeds (weights and people; default 0,1,2)")
    parser.add_argument("--lessons", default=",".join(LESSONS),
                        help="comma-separated lesson keys (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="only the conditions lesson and one trained lesson on one seed, "
                             "cut to 1 epoch (checks the bench works; no real figures)")


def lesson_on_seeds(lesson, seeds: list[int]) -> dict:
    """One lesson on each seed: per seed the verdict and figures, per variant the spread."""

    per_seed = []
    for seed in seeds:
        result = run_lesson(lesson, seed=seed)
        per_seed.append({
            "seed": seed, "passed": result.passed, "sentence": result.sentence,
            "cpu_s": round(result.cpu_seconds, 2), "wall_s": round(result.wall_seconds, 2),
            "figures": {v.label: ({k: v.figures.get(k) for k in FIGURES} if lesson.trains
                                  else v.figures) for v in result.variants}})
    summary = {}
    if lesson.trains:
        for label in lesson.labels:
            summary[label] = {key: spread([s["figures"][label].get(key) for s in per_seed])
                              for key in SPREAD}
    return {"key": lesson.key, "title": lesson.title, "metric": lesson.metric,
            "expect": lesson.expect, "trains": lesson.trains, "seeds": seeds,
            "held": sum(s["passed"] for s in per_seed), "runs": len(per_seed),
            "per_seed": per_seed, "spread": summary}


@register("lessons", "every lesson on 3 seeds (weights and people): its figures, their spread "
          "and whether its claim held (the Lessons page shows the spread)", _arguments)
def lessons_bench(args: argparse.Namespace) -> dict:
    keys = [k.strip() for k in args.lessons.split(",") if k.strip()]
    unknown = [k for k in keys if k not in LESSONS]
    if unknown:
        raise SystemExit(f"no such lesson: {', '.join(unknown)} (known: {', '.join(LESSONS)})")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    lessons = [LESSONS[k] for k in keys]
    if args.quick:
        import dataclasses

        seeds = seeds[:1]
        trained = [lesson for lesson in lessons if lesson.trains][:1]
        lessons = [lesson for lesson in lessons if not lesson.trains] + [
            dataclasses.replace(lesson, variants=tuple(
                (label, config.replace(epochs=1, steps_per_epoch=2))
                for label, config in lesson.variants)) for lesson in trained]
    result = _start(args, "lessons")
    result["seeds"] = seeds
    result["lessons"] = {}
    start = time.perf_counter()
    for lesson in lessons:
        result["lessons"][lesson.key] = lesson_on_seeds(lesson, seeds)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["summary"] = "; ".join(
        f"{key} {entry['held']}/{entry['runs']}" for key, entry in result["lessons"].items())
    return _finish(result)
