"""The miner inspector's panel (Train tab and Energies section); the work is lab.views.inspector."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lab.views.inspector import Inspection, inspect_saved_run, inspect_trainer
from lab.viz.maps import image_grid
from lab.viz.planes import miner_plane, region_shares_bar
from lab.viz.style import COLORS

CACHE_KEY = "miner_inspections"
ARROWS = 14  # items drawn with their move: the deepest on the wrong side, then those that cross


def _cached(key: tuple, compute) -> Inspection:
    cache = st.session_state.setdefault(CACHE_KEY, {})
    if key not in cache:
        if len(cache) > 8:
            cache.clear()
        cache[key] = compute()
    return cache[key]


def _margin_label(inspection: Inspection) -> str:
    m = f"{inspection.margin:g}"
    return {
        "triplet": f"d(a,n) = d(a,p) + α  (α = {m})",
        "pair": f"E_I = E_G + m  (m = {m})",
    }.get(inspection.kind, {
        "arcface": f"θ_other = θ_own + m  (m = {m} rad)",
        "cosface": f"cos θ_other = cos θ_own − m  (m = {m})",
    }.get(inspection.loss, "θ_other = θ_own (no margin)"))


def show_inspection(inspection: Inspection, presenter: bool = False, key: str = "inspector"
                    ) -> None:
    """Shares, the plane before/after one Step, and the hardest items' thumbnails."""
    before, after = inspection.shares("before"), inspection.shares("after")
    what = {"triplet": "triplets", "pair": "genuine + impostor pairs of one image",
            "classifier": "images"}[inspection.kind]
    cols = st.columns(4)
    cols[0].metric("Mined", f"{inspection.mined}", help=f"{what} the miner gave the loss, of "
                   f"{inspection.candidates} in the batch")
    for col, name in zip(cols[1:], ("hard", "semi-hard", "easy"), strict=True):
        col.metric(name.capitalize(), f"{before[name]:.0%}",
                   delta=f"{100 * (after[name] - before[name]):+.0f} pts after the Step",
                   delta_color="off")
    crossed = inspection.crossed()
    arrows = list(dict.fromkeys([*inspection.hardest(ARROWS // 2), *crossed[:ARROWS // 2]]))
    fig = miner_plane(inspection.before, inspection.after, inspection.boundary,
                            x_label=inspection.x_label, y_label=inspection.y_label,
                            margin_label=_margin_label(inspection), arrows=arrows,
                            title=f"One batch, {inspection.loss} loss, {inspection.miner} miner",
                            presenter=presenter)
    st.plotly_chart(fig, width="stretch", key=f"{key}-plane")
    st.caption(f"Each point is one of the {what} the loss sees in this batch ({inspection.note}). "
               f"Pink lines: where one Step of the optimiser moves the {len(arrows)} hardest "
               f"ones; {len(crossed)} items change region with it. The loss of the batch goes "
               f"from {inspection.loss_before:.4g} to {inspection.loss_after:.4g}.")
    st.plotly_chart(region_shares_bar(before, after, presenter=presenter), width="stretch",
                    key=f"{key}-shares")
    _thumbnails(inspection, presenter, key)


def _thumbnails(inspection: Inspection, presenter: bool, key: str) -> None:
    hardest = inspection.hardest(4 if inspection.kind != "classifier" else 8,
                                 one_per_anchor=True)
    if len(hardest) == 0:
        return
    images, captions, colours = [], [], []
    if inspection.kind == "classifier":
        for k in hardest:
            image, own, other = (int(v) for v in inspection.items[k])
            x, y = inspection.before[k]
            images.append(inspection.images[image])
            captions.append(f"id {own}: θ {np.degrees(x):.0f}° · id {other}: {np.degrees(y):.0f}°")
            colours.append(COLORS["hard"] if y <= x else None)
        title = "The hardest images: angle to their own centre · to the nearest other"
        columns = 4
    else:
        for k in hardest:
            a, p, n = (int(v) for v in inspection.items[k])
            x, y = inspection.before[k]
            images += [inspection.images[a], inspection.images[p], inspection.images[n]]
            captions += [f"anchor (id {inspection.labels[a]})", f"positive E = {x:.3f}",
                         f"negative E = {y:.3f}"]
            colours += [None, COLORS["genuine"], COLORS["impostor"]]
        # short enough for the half-width live view (a longer one was cut in a screenshot)
        title = "Hardest per anchor: anchor, positive, negative (energies before the Step)"
        columns = 3
    st.plotly_chart(image_grid(np.stack(images), captions, columns=columns, title=title,
                                     border_colors=colours, presenter=presenter),
                    width="stretch", key=f"{key}-thumbs")


def inspector_for_job(job, store, dataset_for, presenter: bool = False) -> None:
    """The Train page's tab: the live trainer when paused, the saved run once finished."""
    if job is None:
        st.info("Press **Step** (or Run, then Pause): the inspector shows the next batch, "
                "what the miner picks from it, and where one Step moves it.")
        return
    trainer = job.paused_trainer
    latest = job.latest
    if trainer is not None and latest is not None:
        inspection = _cached(("job", job.ticket, latest.step),
                             lambda: inspect_trainer(trainer, latest.epoch + 1))
    elif not job.active and job.run_id is not None and job.saved:
        from lab.data import DatasetError
        from lab.learn.runs import RunError

        try:
            run = (job.store if job.store is not None else store).load(job.run_id)
            inspection = _cached(("run", run.id, len(run.history)),
                                 lambda: inspect_saved_run(run, dataset_for(run.config.to_json())))
        except (RunError, DatasetError, OSError) as error:
            st.caption(f"The inspector cannot open this run: {error}")
            return
    else:
        st.info("Pause (or let the run finish) to inspect a batch: while it trains the "
                "network changes under the inspector's feet.")
        return
    show_inspection(inspection, presenter, key="train-inspector")


def inspector_for_run(run, dataset_for, presenter: bool = False) -> None:
    """The Energies page's section: a saved run's final weights on one of its batches."""
    from lab.data import DatasetError
    from lab.learn.runs import RunError

    if not run.path or run.status in ("running", "paused"):
        st.caption("The inspector opens once this run has finished.")
        return
    try:
        inspection = _cached(("run", run.id, len(run.history)),
                             lambda: inspect_saved_run(run, dataset_for(run.config.to_json())))
    except (RunError, DatasetError, OSError) as error:
        st.caption(f"The inspector cannot open this run here: {error}")
        return
    show_inspection(inspection, presenter, key="energies-inspector")
