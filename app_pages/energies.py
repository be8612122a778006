"""Energies: genuine vs impostor energies of unseen people, the margin and the threshold."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from lab.learn.changes import setting_at
from lab.metric.energy import energy_matrix_np
from lab.views.margin_view import energy_margin, gap_histogram, margin_on_gap_axis, triplet_gaps
from lab.views.run_view import verification_of
from lab.viz.energies import energy_histogram, far_frr_at
from ui import icons
from ui.errors import error_gallery, reference_disagreements
from ui.inspector import inspector_for_run

st.title(f"{icons.ENERGIES} Energies")
st.caption("For every pair of images of people never seen in training: the energy E (distance "
           "between embeddings). Genuine pairs (same person) should sit left of the threshold, "
           "impostors right of it, ideally beyond the margin. Where they overlap, the "
           "verifier errs.")
presenter = ui.presenter()

run, history = ui.pick_run_history()

epochs = [int(e) for e in history.epochs]
round_index = st.select_slider("Epoch", options=list(range(len(epochs))), value=len(epochs) - 1,
                               format_func=lambda r: str(epochs[r]),
                               key="energy_epoch") if len(epochs) > 1 else 0


verification = st.cache_data(verification_of, max_entries=64)
result = verification(history.at(round_index), history.labels, history.is_test,
                      run.config.energy, run.config.data_seed, history.is_seen)
if result is None:
    st.warning("This run has fewer than two test identities: no genuine/impostor pairs to show.")
    st.stop()

genuine, impostor = result.genuine_energies, result.impostor_energies
high = float(np.percentile(np.concatenate([genuine, impostor]), 99.5)) * 1.05
start = float(result.threshold if np.isfinite(result.threshold) else result.eer_threshold)
threshold = st.slider("Decision threshold (accept as the same person when E ≤ threshold)",
                      0.0, max(high, start, 1e-3), value=min(start, max(high, start)),
                      step=max(high, 1e-3) / 400, format="%.3f", key="threshold",
                      help=f"Starts at the threshold taken on {result.threshold_source}.")
if result.threshold_from_test:
    st.warning(f"This run has fewer than two validation identities, so the starting threshold "
               f"is taken on {result.threshold_source}: the FAR and FRR below are measured on "
               "the same people it was chosen on.")
else:
    st.caption(f"The starting threshold τ is taken on the {result.threshold_source} (people "
               "neither trained nor tested on) and scored here on the test identities.")
far, frr = far_frr_at(threshold, genuine, impostor)
cols = st.columns(5)
cols[0].metric("FAR (impostors accepted)", f"{100 * far:.1f}%")
cols[1].metric("FRR (genuine rejected)", f"{100 * frr:.1f}%")
cols[2].metric("EER", f"{100 * result.eer:.1f}%")
cols[3].metric("d′ (decidability)", f"{result.dprime:.2f}")
cols[4].metric("pairs", f"{len(genuine)} / {len(impostor)}",
               help="genuine / impostor pairs among the test identities")
run_margin = setting_at(run.config, run.history, epochs[round_index], "margin")  # a changed one
margin = energy_margin(run.config.loss, run_margin)
fig = energy_histogram(genuine, impostor, margin=margin, threshold=threshold,
                             dprime=result.dprime, eer=result.eer, x_range=(0, high),
                             title=f"Unseen identities after epoch {epochs[round_index]}",
                             energy_label=f"energy E ({run.config.energy})", presenter=presenter)
ui.show_figure(fig, f"{run.id}-energies-epoch{epochs[round_index]}", key="energies")
if margin is not None and margin <= high:
    st.caption(f"The green line is the margin m = {margin:g} of the {run.config.loss} loss: "
               "impostors beyond it no longer contribute to the loss.")
elif margin is not None:
    st.caption(f"The margin m = {margin:g} of the {run.config.loss} loss lies right of every "
               f"energy drawn here (E ≤ {high:.3g}), so no green line: every impostor pair is "
               "still inside it and still pushed apart by the loss.")
if abs(run_margin - run.config.margin) > 1e-12:
    st.caption(f"The margin was changed mid-run: it started at {run.config.margin:g} and was "
               f"{run_margin:g} in epoch {epochs[round_index]} (the run's history).")
if margin_on_gap_axis(run.config.loss):
    st.caption(f"No margin line on the energy axis: the triplet margin α = "
               f"{run_margin:g} is relative. A triplet stops contributing when "
               "d(a,n) − d(a,p) ≥ α, whatever its energies: it is drawn on the gap below.")
    test = history.is_test & ~history.is_seen if history.is_seen is not None else history.is_test
    matrix = energy_matrix_np(history.at(round_index)[test], run.config.energy)
    gaps = triplet_gaps(matrix, history.labels[test], seed=run.config.data_seed)
    ui.show_figure(gap_histogram(gaps, run_margin, presenter=presenter,
                                 title=f"Triplets of unseen identities after epoch "
                                       f"{epochs[round_index]}: d(a,n) − d(a,p) vs α"),
                   f"{run.id}-gaps-epoch{epochs[round_index]}", key="energies-gaps")
if not presenter:
    with st.expander("The loss this run minimised"):
        ui.loss_formula(run.config.loss)

st.divider()
st.subheader(f"{icons.ERRORS} Error gallery")
st.caption("At this threshold, the worst mistakes among the test people (never trained on): "
           "both photos, their energy, and each photo's nearest neighbours (blue border: same "
           "person; vermillion: someone else). Move the threshold to see others.")
probe_images = ui.probe_images(run, history)
error_gallery(run, history, round_index, threshold, probe_images, presenter)
reference_disagreements(run, history, round_index, threshold, probe_images, presenter)

st.divider()
st.subheader(f"{icons.INSPECT} Miner inspector")
st.caption("One of this run's training batches with its final weights: which pairs or triplets "
           "the miner gives the loss, how hard they are, and where one Step moves them.")
inspector_for_run(run, ui.dataset_for, presenter=presenter)
