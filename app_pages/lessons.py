"""Lessons: one claim of a paper, a preset per variant, trained here and checked honestly."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from lab.learn.jobs import SweepJob
from lab.learn.runs import RunError
from lab.metric.loss_specs import LOSSES
from lab.views.lessons import (
    LESSON_LIST,
    LESSONS,
    Lesson,
    LessonResult,
    VariantResult,
    conditions_figures,
    evaluate,
    geometry_query,
    lesson_configs,
    measure_run,
    planned_steps,
    seed_spread,
    spread_sentence,
    training_images_per_person,
)
from lab.views.margin_view import energy_margin
from lab.views.report import lesson_report
from lab.views.urlstate import config_to_query
from lab.viz.energies import energy_histogram
from lab.viz.roc import lesson_variants_plot, roc_curves
from lab.viz.style import series_color
from ui import icons
from ui.reports import report_button

st.title(f"{icons.LESSONS} Lessons")
presenter = ui.presenter()


def lesson_list() -> None:
    st.markdown("Each lesson sets the dataset, the loss, the margin and the seed of a few small "
                "runs that differ in one thing, says what to look at and what the paper claims, "
                "then trains them here (under a minute on a laptop CPU) and checks the claim "
                "on what it measured.")
    for number, lesson in enumerate(LESSON_LIST, start=1):
        with st.container(border=True):
            text, link = st.columns([5, 1])
            text.markdown(f"**{number}. {lesson.title}**: {lesson.summary}")
            # A button, not st.page_link: a link to the page already open left the browser's
            # URL without ?lesson=..., so the next click ("Run this lesson") fell back here.
            link.button("Open", icon=icons.LESSONS, key=f"open-{lesson.key}", width="stretch",
                        on_click=open_lesson, args=(lesson.key,))


def open_lesson(key: str) -> None:
    st.query_params["lesson"] = key


key = st.query_params.get("lesson")
if key not in LESSONS:
    if key:
        st.warning("There is no such lesson: choose one below.")
    lesson_list()
    st.stop()

lesson: Lesson = LESSONS[key]
number = LESSON_LIST.index(lesson) + 1
st.header(f"{number}. {lesson.title}")
st.markdown(f"*{lesson.summary}*")
look, claim = st.columns(2, gap="large")
with look, st.container(border=True):
    st.markdown(f"#### {icons.LOOK} What to look at")
    st.markdown(lesson.look_at)
with claim, st.container(border=True):
    st.markdown(f"#### {icons.PAPER} What the paper claims")
    st.markdown(lesson.claim)
    if lesson.source:
        st.caption(lesson.source)
st.markdown(f"**What the app checks:** {lesson.expect}.")
SPREAD = seed_spread(lesson.key) if lesson.trains else None


def seeds_note() -> None:
    """The spread over seeds the bench measured (lab.bench.lessons), or that none was."""
    if not lesson.trains:  # derived, not measured: no seed
        return
    if SPREAD is None:
        st.caption("This lesson's spread over seeds has not been measured on this machine "
                   "(`python -m lab bench lessons`): one live run is all there is.")
        return
    st.info(spread_sentence(lesson, SPREAD), icon=icons.SEEDS)


def setting_rows() -> list[dict]:
    rows = []
    for label, config in lesson.variants:
        rows.append({"variant": label, "loss": LOSSES[config.loss].title,
                     "energy": config.energy, "margin": config.margin,
                     "miner": config.miner, "normalised": config.normalize,
                     "optimiser": f"{config.optimizer} lr {config.lr:g}",
                     "train images/person": training_images_per_person(config),
                     "epochs": config.epochs, "steps": planned_steps(config),
                     "seed": config.seed})
    return rows


def figures_table(result: LessonResult) -> list[dict]:
    def pct(value):
        return None if value is None else round(100 * value, 1)

    def num(value):
        return None if value is None else float(f"{value:.4g}")

    rows = []
    for variant in result.variants:
        f = variant.figures
        rows.append({"variant": variant.label, "status": f.get("status"),
                     "EER %": pct(f.get("eer")), "AUC": num(f.get("auc")),
                     "d′": num(f.get("dprime")),
                     "energy scale": num(f.get("energy_scale")),
                     "genuine E": num(f.get("genuine_energy")),
                     "impostor E": num(f.get("impostor_energy")),
                     "final loss": num(f.get("final_loss")),
                     "active %": pct(f.get("active_fraction")),
                     "epochs": f.get("epochs"), "train s": num(f.get("seconds"))})
    return rows


def verdict(result: LessonResult) -> None:
    seed = result.variants[0].config.seed if result.variants else None
    live = f"Today's run (seed {seed}) measured" if seed is not None else "Today's run measured"
    if not lesson.trains:
        live = "Computed (no training, no seed)"
    if result.passed:
        st.success(f"**{live}:** {result.sentence}. ✓ As the paper claims.")
    else:
        held = (f" Over {SPREAD['runs']} seeds on this machine the claim held on "
                f"{SPREAD['held']} (below)." if SPREAD else "")
        st.error(f"**✗ {live} against the claim:** {result.sentence}. The lesson expected "
                 f"{lesson.expect}.{held} Why a run can go against it: these are small nets "
                 "trained for seconds on a few people, so who happens to be among the unseen "
                 "people and the initial weights move the EER by a few points; when the effect "
                 "is no larger than that noise, one run can land on the wrong side. Compare "
                 "with the spread over seeds before you conclude.")
    seeds_note()


def show_result(result: LessonResult) -> None:
    verdict(result)
    st.dataframe(figures_table(result), hide_index=True, width="stretch")
    # One colour per variant, the same on the ROC and on the EER plot beside it.
    colors = {v.label: series_color(k) for k, v in enumerate(result.variants)}
    curves = [{"name": v.label, "key": v.label, "color": colors[v.label], "fpr": v.fpr,
               "tpr": v.tpr, "auc": v.figures.get("auc"), "eer": v.figures.get("eer")}
              for v in result.variants if v.fpr is not None]
    if curves:
        roc, bars = st.columns([3, 2], gap="large") if not presenter else (st.container(),) * 2
        with roc:
            ui.show_figure(roc_curves(curves, presenter=presenter,
                                            title="ROC on unseen people, one curve per variant"),
                           f"lesson-{lesson.key}-roc", key=f"roc-{lesson.key}")
        with bars:
            # the figure the lesson checks, where it is a rate; EER otherwise (the energy scale
            # of the margin lesson spans orders of magnitude: its table and histograms show it)
            metric = lesson.metric if lesson.metric in ("eer", "active_fraction") else "eer"
            fig = lesson_variants_plot(
                lesson.labels, {v.label: v.figures.get(metric) for v in result.variants},
                {label: (figures or {}).get(metric)
                 for label, figures in (SPREAD or {}).get("spread", {}).items()},
                metric, seeds=SPREAD["runs"] if SPREAD else None, colors=colors,
                presenter=presenter)
            ui.show_figure(fig, f"lesson-{lesson.key}-eer", key=f"eer-{lesson.key}")
    histograms = [v for v in result.variants if v.genuine is not None]
    if histograms:
        st.markdown("**Energies of unseen pairs, per variant** (note each variant's energy "
                    "scale on its x axis)")
        for column, variant in zip(st.columns(len(histograms)), histograms, strict=True):
            with column:
                high = float(np.percentile(np.concatenate([variant.genuine, variant.impostor]),
                                           99.5)) * 1.05 or 1.0
                config = variant.config
                margin = energy_margin(config.loss, config.margin)  # not α: lab.views.margin_view
                fig = energy_histogram(variant.genuine, variant.impostor, margin=margin,
                                             eer=variant.figures.get("eer"),
                                             dprime=variant.figures.get("dprime"),
                                             x_range=(0.0, high), title=variant.label,
                                             energy_label=f"energy E ({config.energy})",
                                             presenter=presenter, height=380)
                ui.show_figure(fig, f"lesson-{lesson.key}-{variant.label}",
                               key=f"hist-{lesson.key}-{variant.label}")


# ---- the variants and their links --------------------------------------------------------
st.subheader("The variants")
st.dataframe(setting_rows(), hide_index=True, width="stretch")
# Two links a row at most: four in a row were cut short until two read the same.
links = st.columns(2 if len(lesson.variants) > 1 else 1)
for k, (label, config) in enumerate(lesson.variants):
    with links[k % len(links)]:
        if lesson.trains:
            st.page_link("app_pages/train.py", label=f"Open “{label}” in Train", icon=icons.TRAIN,
                         query_params=config_to_query(config))
        else:
            st.page_link("app_pages/geometry.py", label=f"Open “{label}” on the geometry page",
                         icon=icons.GEOMETRY, query_params=geometry_query(config))

# ---- a lesson without training: computed on the spot ------------------------------------
if not lesson.trains:
    st.subheader("What the app measured")
    result = evaluate(lesson, [VariantResult(label, config, conditions_figures(config))
                               for label, config in lesson.variants])
    verdict(result)
    rows = []
    for variant in result.variants:
        f = variant.figures
        rows.append({"setting": variant.label, "m": f["m"], "E_max": f["e_max"],
                     **{f"condition {k}": "✓" if f[f"condition{k}"] else "✗"
                        for k in (1, 2, 3)}, "why condition 2": f["reason2"]})
    st.dataframe(rows, hide_index=True, width="stretch")
    if lesson.geometry:
        st.page_link("app_pages/geometry.py", label="Open the geometry page and flip them "
                     "yourself", icon=icons.GEOMETRY, query_params=lesson.geometry)
    st.stop()

# ---- a lesson that trains: in the background, polled ------------------------------------
JOB = f"lesson_job_{lesson.key}"
RESULT = f"lesson_result_{lesson.key}"


def previous_result() -> LessonResult | None:
    """The latest finished runs of this lesson in the run store, one per variant."""
    store = ui.run_store()
    latest: dict[str, object] = {}
    for info in store.list():  # newest last or first: keep the most recent by created time
        config = info.config
        if (config is None or config.extra.get("sweep") != f"lesson-{lesson.key}"
                or info.status not in ("done", "diverged", "stopped")):
            continue
        label = config.extra.get("lesson_variant")
        if label in lesson.labels and (label not in latest
                                       or info.created > latest[label].created):
            latest[label] = info
    if set(latest) != set(lesson.labels):
        return None
    try:
        variants = [measured(store, latest[label].id, label) for label in lesson.labels]
    except RunError:
        return None
    return evaluate(lesson, variants)


def measured(store, run_id: str, label: str) -> VariantResult:
    """measure_run, with the run's own training time (the lesson table's "train s")."""
    run = store.load(run_id)
    variant = measure_run(run, label)
    variant.figures["seconds"] = (run.metrics or {}).get("train_seconds")
    return variant


def collect(sweep: SweepJob) -> LessonResult:
    store = ui.run_store()
    variants = []
    for (label, config), job in zip(lesson.variants, sweep.jobs, strict=False):
        if job.run_id is None:
            variants.append(VariantResult(label, config, {"status": job.status,
                                                          "message": job.message}))
            continue
        variants.append(measured(store, job.run_id, label))
    return evaluate(lesson, variants)


def start() -> None:
    sweep = ui.runner().sweep_job(lesson_configs(lesson), store=ui.run_store()).start()
    st.session_state[JOB] = sweep
    st.session_state.pop(RESULT, None)


st.subheader("Run it")
sweep: SweepJob | None = st.session_state.get(JOB)
running = sweep is not None and sweep.active
buttons = st.columns([1, 1, 3])
buttons[0].button("Run this lesson", icon=icons.RUN, type="primary", on_click=start,
                  disabled=running, width="stretch",
                  help=f"Trains the {len(lesson.variants)} variants one after another.")
if running:
    buttons[1].button("Stop", icon=icons.STOP, on_click=sweep.stop, width="stretch")


@st.fragment(run_every=1.0 if running else None)
def progress() -> None:
    current: SweepJob | None = st.session_state.get(JOB)
    if current is None:
        return
    current.heartbeat()
    if current.active:
        total = len(lesson.variants)
        parts, done = [], 0.0
        for index, (label, _) in enumerate(lesson.variants):
            job = current.jobs[index] if index < len(current.jobs) else None
            if job is None:
                parts.append(f"{label}: waiting")
                continue
            latest = job.latest
            if job.status == "queued":
                parts.append(f"{label}: queued (place {job.queue_position or 1})")
            elif latest is not None:
                parts.append(f"{label}: epoch {latest.epoch}/{latest.epochs} ({job.status})")
                done += latest.epoch / max(latest.epochs, 1) if job.active else 1.0
            else:
                parts.append(f"{label}: {job.status}")
        st.progress(min(done / total, 1.0), text=" · ".join(parts))
        return
    if RESULT not in st.session_state:
        st.session_state[RESULT] = collect(current)
        st.rerun()


progress()
result = st.session_state.get(RESULT)
if result is None and not running:
    result = previous_result()
    if result is not None:
        st.caption("Measured earlier on this server (the lesson's last runs in the run store); "
                   "press Run to measure again.")
if result is not None:
    st.subheader("What the app measured")
    show_result(result)
    report_button("Report of this lesson (HTML)", lambda: lesson_report(
        lesson, result, [ui.run_store().load(v.run_id) for v in result.variants if v.run_id]),
        f"lesson-{lesson.key}.html", key=f"report-lesson-{lesson.key}")
elif not running:
    st.info("Press **Run this lesson** to train the variants and measure the claim.")
    seeds_note()
