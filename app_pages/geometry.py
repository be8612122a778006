"""Margin geometry: the (E_G, E_I) plane of Chopra, Hadsell & LeCun (2005), conditions 1-3, the
plateau of the squared energy, and the triplet plane. All math is in lab.metric.geometry; nothing
trains.

Every loss is judged by one rule (lab.metric.geometry's docstring has the derivations), with
energies bounded (the box [0, E_max]², normalised embeddings) or unbounded ([0, ∞)²). Verdicts for a
half-plane margin m, contrastive margin m_c, Chopra bound Q (the page shows the same table):

=========== ==== ============================================ ==============================
loss        cond bounded [0, E_max]²                          unbounded [0, ∞)²
=========== ==== ============================================ ==============================
contrastive 1    ✓ if m < E_max: L_G min at 0, L_I never grows ✓: the same terms
contrastive 2    ✓ iff m < min(m_c, E_max): H = 0 on E_G = 0,  ✓ iff m < m_c: H = 0 on
                 E_I ≥ min(m_c, E_max)                        E_G = 0, E_I ≥ m_c
contrastive 3    ✓ iff m < m_c: L_G′ − L_I′ = E_G +            ✓ iff m < m_c: the same
                 max(0, m_c − E_G − m)
Chopra      1    ✓ if m < E_max: L_G min at 0, L_I decreasing  ✓: the same terms
Chopra      2    ✓ iff m < E_max: one minimiser, (0, E_max)    ✗: H → 0 as E_I → ∞, never 0
Chopra      3    ✓: 4E_G/Q + 5.54 e^{−2.77(E_G+m)/Q} > 0       ✓: the same
naive       1    ✓ if m < E_max: L_G min at 0, L_I decreasing  ✓: the same terms
naive       2    ✓ iff m < E_max: one minimiser, (0, E_max)    ✗: H(0, E_I) = −E_I → −∞
naive       3    ✓: L_G′ − L_I′ = 1 + 1 = 2 > 0                ✓: the same
=========== ==== ============================================ ==============================
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st
import torch

import ui
from lab.metric import geometry
from lab.metric.energy import energy_matrix_np
from lab.metric.loss_specs import LOSSES
from lab.metric.mining import batchhard_triplets, semihard_triplets
from lab.views.run_view import probe_history, run_label, seen_mask
from lab.viz.planes import geometry_plane, plateau_plot, triplet_plane
from ui import icons

VIEWS = ("contrastive", "chopra", "naive", "triplet")
VIEW_TITLES = {"contrastive": "Contrastive (Hadsell 2006)", "chopra": "Energy loss (Chopra 2005)",
               "naive": "Naive, no margin (E_G − E_I)", "triplet": "Triplet view (FaceNet 2015)"}
# URL parameter -> (session key, default, low, high)
NUMBERS = {"m": ("geo_m", 0.5, 0.0, 3.0), "mc": ("geo_mc", 1.0, 0.05, 3.0),
           "q": ("geo_q", 2.0, 0.25, 5.0), "emax": ("geo_emax", 2.0, 0.5, 5.0),
           "alpha": ("geo_alpha", 0.2, 0.0, 2.0)}
TIMING_KEY = "geometry_seconds"  # compute + figure time of the last redraw (checked by tests)
CONDITION_NAMES = ("a margin m > 0 exists", "the minimum of H lies in E_G + m < E_I",
                   "on the margin line, −∇H points into the half-plane")

st.title(f"{icons.GEOMETRY} Margin geometry")
st.markdown(
    "Take one **genuine** pair and one **impostor** pair that share a photo. A pair loss is a "
    "genuine term plus an impostor term, so for these two pairs it is "
    "H(E_G, E_I) = L_G(E_G) + L_I(E_I), a surface over the plane of their energies. "
    "Chopra et al. (2005) show that minimising it drives the network to a solution with a "
    "margin, E_G + m < E_I, when H's minimum lies in that half-plane and its descent "
    "direction −∇H points into it: move the sliders and watch the three conditions flip."
)
presenter = ui.presenter()


def _url_float(name: str) -> float | None:
    key, default, low, high = NUMBERS[name]
    try:
        value = float(st.query_params.get(name, ""))
    except ValueError:
        return None
    return min(max(value, low), high) if np.isfinite(value) else None


# ---- controls: filled from the URL once per session, then kept by the widgets ---------------
# A widget's value is forgotten while it is not drawn (m_c when Chopra is shown), so the values
# live in one session dict and each widget is refilled from it.
if "geo_values" not in st.session_state:
    view = st.query_params.get("view")
    values = {"geo_view": view if view in VIEWS else "contrastive",
              "geo_bounded": st.query_params.get("bounded") != "0"}
    for name, (key, default, _, _) in NUMBERS.items():
        value = _url_float(name)
        values[key] = default if value is None else value
    st.session_state["geo_values"] = values
values = st.session_state["geo_values"]
for key, value in values.items():
    st.session_state.setdefault(key, value)

left, right = st.columns([1, 2.4], gap="large")
with left:
    view = st.selectbox("Loss", VIEWS, key="geo_view", format_func=VIEW_TITLES.get,
                        help="The three pair losses of lab, or the triplet plane.")
    if view == "contrastive":
        st.slider("Loss margin m_c (the contrastive loss's own margin)", 0.05, 3.0, step=0.05,
                  key="geo_mc", help=LOSSES["contrastive"].param_help.get("margin"))
    elif view == "chopra":
        st.slider("Q (the upper bound of the energy in Chopra's loss)", 0.25, 5.0, step=0.25,
                  key="geo_q", help=LOSSES["chopra"].param_help.get("chopra_q"))
    if view == "triplet":
        st.slider("Triplet margin α", 0.0, 2.0, step=0.05, key="geo_alpha",
                  help="The hinge max(0, d(a,p) − d(a,n) + α).")
    else:
        st.slider("Half-plane margin m (the margin the conditions ask for)", 0.0, 3.0,
                  step=0.05, key="geo_m")
    st.slider("Energy range (largest energy drawn)", 0.5, 5.0, step=0.25, key="geo_emax",
              help="The box [0, E_max]² of reachable energies; 2 is the largest L2 energy "
                   "between normalised embeddings.")
    if view != "triplet":
        st.toggle("Bounded energies", key="geo_bounded",
                  help="On: energies live in the box [0, E_max]², as between L2-normalised "
                       "embeddings. Off: embeddings may grow, energies are unbounded, and the "
                       "conditions are judged on [0, ∞)² (the box only draws).")
for key in values:
    if key in st.session_state:
        values[key] = st.session_state[key]

m, mc, q = values["geo_m"], values["geo_mc"], values["geo_q"]
e_max, alpha = values["geo_emax"], values["geo_alpha"]
bounded = bool(values["geo_bounded"])

# ---- the state in the URL, so a lesson can link to exactly this view ----------------------
query = {"view": view, "emax": f"{e_max:g}"}
if view == "triplet":
    query["alpha"] = f"{alpha:g}"
else:
    query["m"] = f"{m:g}"
    if view == "contrastive":
        query["mc"] = f"{mc:g}"
    if view == "chopra":
        query["q"] = f"{q:g}"
    if not bounded:
        query["bounded"] = "0"
for kept in ("run", "presenter", "epoch"):
    if kept in st.query_params:
        query[kept] = st.query_params[kept]
if st.query_params.to_dict() != query:
    st.query_params.from_dict(query)

# ---- an optional run, whose real energies are drawn as points -----------------------------
with left:
    st.divider()
    infos = [info for info in ui.run_store().list() if info.status != "corrupt"]
    options = [None, *infos]
    wanted = st.query_params.get("run")
    ids = [info.id if info is not None else None for info in options]
    chosen = st.selectbox("A run's energies (optional)", options,
                          index=ids.index(wanted) if wanted in ids else 0,
                          format_func=lambda i: "none: just the loss" if i is None
                          else run_label(i), key="geo_run",
                          help="Draw a trained run's real (genuine, impostor) energy pairs on "
                               "the plane: one genuine and one impostor pair sharing a photo.")
    if not infos:
        st.caption("No trained run yet: the page works without one. Train one on the Train "
                   "page to see its energies here.")
if chosen is None:
    st.query_params.pop("run", None)
elif st.query_params.get("run") != chosen.id:
    st.query_params["run"] = chosen.id


@st.cache_data(max_entries=32, show_spinner=False)
def run_probes(run_id: str, _modified: float):
    """The run's probe embeddings of unseen identities per epoch, its energy and its margin."""
    run = ui.run_store().load(run_id)
    history = probe_history(run)
    if history is None:
        return None
    unseen = ~seen_mask(history)
    return (history.embeddings[:, unseen], history.labels[unseen], [int(e) for e in
            history.epochs], run.config.energy, run.config.loss, run.config.margin)


@st.cache_data(max_entries=64, show_spinner=False)
def energies_at(run_id: str, _modified: float, round_index: int) -> tuple[np.ndarray, np.ndarray]:
    probes = run_probes(run_id, _modified)
    embeddings, labels, _, energy, _, _ = probes
    return energy_matrix_np(embeddings[round_index], energy), labels


def triplet_points(energies: np.ndarray, labels: np.ndarray, which: str,
                   alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(d(a,p), d(a,n)) of the triplets a miner of lab.metric.mining would pick among these
    images."""
    if which == "all":
        points = geometry.pair_points(energies, labels, max_points=1500)
        return points.e_genuine, points.e_impostor
    matrix, ids = torch.from_numpy(energies), torch.from_numpy(np.asarray(labels))
    if which == "batchhard":
        anchor, positive, negative = batchhard_triplets(matrix, ids)
    else:
        anchor, positive, negative = semihard_triplets(matrix, ids, alpha)
    anchor, positive, negative = anchor.numpy(), positive.numpy(), negative.numpy()
    if anchor.size > 1500:
        keep = np.random.default_rng(0).choice(anchor.size, 1500, replace=False)
        anchor, positive, negative = anchor[keep], positive[keep], negative[keep]
    return energies[anchor, positive], energies[anchor, negative]


points = None
run_note = ""
round_index = 0
if chosen is not None:
    modified = float(chosen.created) if hasattr(chosen, "created") else 0.0
    modified = float(getattr(chosen, "epochs_done", 0) or 0) + modified
    try:
        probes = run_probes(chosen.id, modified)
    except Exception as error:  # noqa: BLE001 - a broken run folder becomes a sentence
        probes = None
        run_note = f"This run cannot be read: {error}"
    if probes is None:
        with left:
            st.info(run_note or "This run has no saved epochs yet.")
    else:
        _, _, epochs, run_energy, run_loss, run_margin = probes
        with left:
            if len(epochs) > 1:
                round_index = st.select_slider("Epoch", options=list(range(len(epochs))),
                                               value=len(epochs) - 1, key="geo_epoch",
                                               format_func=lambda r: str(epochs[r]))
            else:
                round_index = 0
            st.caption(f"Run trained with {LOSSES[run_loss].title}, margin {run_margin:g}, "
                       f"energy {run_energy}; points are pairs of people it never saw.")
        points = energies_at(chosen.id, modified, round_index)

# ---- the figures ---------------------------------------------------------------------------
with right:
    started = time.perf_counter()
    if view == "triplet":
        which = "all"
        if points is not None:
            which = st.segmented_control(
                "Triplets drawn", ["all", "semihard", "batchhard"], default="all",
                key="geo_triplets", format_func={"all": "a sample of all",
                                                 "semihard": "semi-hard ones",
                                                 "batchhard": "hardest per anchor"}.get,
                help="The triplets of the run's unseen probe images at this epoch, as each "
                     "miner of lab.metric.mining would pick them.") or "all"
            d_ap, d_an = triplet_points(*points, which, alpha)
        else:
            d_ap = d_an = None
        fig = triplet_plane(d_ap, d_an, alpha, extent=e_max, presenter=presenter,
                                  title=f"Triplets: d(a,p) vs d(a,n), α = {alpha:g}")
        st.session_state[TIMING_KEY] = time.perf_counter() - started
        ui.show_figure(fig, "triplet-plane", key="triplet_plane")
        st.markdown(
            "**Hard** (red, below the diagonal): the negative is closer than the positive. "
            "**Semi-hard** (orange): ordered right but within α, still a loss. **Easy** "
            "(green, above the dashed line): zero loss, zero gradient: such triplets teach "
            "nothing, which is why FaceNet mines semi-hard ones.")
        if d_ap is not None:
            regions = geometry.triplet_regions(d_ap, d_an, alpha)
            shares = {name: float(np.mean(regions == name)) for name in geometry.TRIPLET_REGIONS}
            cols = st.columns(3)
            for col, name in zip(cols, geometry.TRIPLET_REGIONS, strict=True):
                col.metric(f"{name} triplets", f"{100 * shares[name]:.0f}%")
        with st.expander("The triplet loss", expanded=not presenter):
            ui.loss_formula("triplet")
    else:
        result = geometry.geometry_view(view, m, e_max, loss_margin=mc, q=q, bounded=bounded)
        grid = result.grid
        share = None
        pair_xy = None
        if points is not None:
            sample = geometry.pair_points(*points, max_points=1500)
            pair_xy = (sample.e_genuine, sample.e_impostor)
            share = geometry.margin_share(sample.e_genuine, sample.e_impostor, m)
        parameter = {"contrastive": f", m_c = {mc:g}", "chopra": f", Q = {q:g}"}.get(view, "")
        fig = geometry_plane(grid.x, grid.y, grid.values, result.gradient, m,
                                   points=pair_xy, condition1_share=share,
                                   title=f"H(E_G, E_I) of the {view} loss{parameter}; "
                                         f"margin m = {m:g}",
                                   presenter=presenter)
        st.session_state[TIMING_KEY] = time.perf_counter() - started
        ui.show_figure(fig, f"geometry-{view}", key="geometry_plane")
        if share is not None:
            outside = int(np.sum((pair_xy[0] > e_max) | (pair_xy[1] > e_max)))
            st.markdown(f"**{100 * share:.0f}%** of this run's pairs of pairs satisfy "
                        f"condition 1 (E_G + {m:g} < E_I) at epoch {epochs[round_index]}."
                        + (f" {outside} of {pair_xy[0].size} lie outside the drawn box: "
                           "raise the energy range." if outside else ""))

if view != "triplet":
    st.subheader("Conditions of Chopra et al. (2005)")
    checks = (result.conditions.condition1, result.conditions.condition2,
              result.conditions.condition3)
    for col, (number, check) in zip(st.columns(3), enumerate(checks, start=1), strict=True):
        with col, st.container(border=True):
            mark = "✓" if check.ok else "✗"
            color = "green" if check.ok else "red"
            st.markdown(f"#### :{color}[{mark} Condition {number}]")
            st.markdown(f"*{CONDITION_NAMES[number - 1]}*")
            st.caption(check.reason)
    with st.expander("Every pair loss, bounded and unbounded energies: the verdicts and why",
                     expanded=False):
        st.markdown(
            "One rule for every loss. **1**: m > 0, a separated pair of pairs exists and the "
            "loss never penalises it. **2**: H *attains* its minimum and every minimiser lies "
            "in E_G + m < E_I. **3**: L_G′(E_G) − L_I′(E_G + m) > 0 on the margin line. "
            "m_c: the contrastive loss's margin; Q: Chopra's bound.")
        st.table([{"loss": LOSSES[loss].title, "condition": number,
                   "bounded [0, E_max]²": bounded_text, "unbounded [0, ∞)²": unbounded_text}
                  for loss, number, bounded_text, unbounded_text in geometry.VERDICT_TABLE])
        st.caption("Inside a bounded box the conditions do not tell the naive loss from "
                   "Chopra's: both are minimised by pushing every impostor to the largest "
                   "energy there is. The difference shows with unbounded energies: the naive "
                   "loss has no minimum and blows the energies up (lesson *Why a margin*), "
                   "Chopra's is bounded below and its push dies off exponentially.")

    st.subheader("The plateau: L1 vs squared-L2 energy")
    plateau_left, plateau_right = st.columns([2, 1], gap="large")
    energies = np.linspace(0.0, e_max, 200)
    with plateau_left:
        grad_l1 = geometry.impostor_gradient_norm(view, "l1", energies, 1, loss_margin=mc, q=q)
        grad_sq = geometry.impostor_gradient_norm(view, "sqeuclidean", energies, 1,
                                                  loss_margin=mc, q=q)
        ui.show_figure(plateau_plot(energies, grad_l1, grad_sq, presenter=presenter,
                                          title=f"How hard the {view} loss pushes an impostor "
                                                "pair apart"),
                       "plateau", key="plateau")
    with plateau_right:
        st.markdown(
            "The push on an impostor pair is |L_I′(E)| · |∇E|. With the **L1** energy "
            "|∇E| is constant; with the **squared L2** energy it is 2|δ| = 2√E, which "
            "vanishes as E → 0. Impostors that start at near-zero energy are then barely "
            "pushed apart: the *dangerous plateau* of Chopra et al. (one embedding "
            "dimension drawn; the lesson *L1 vs squared-L2 energy* trains it).")
        st.page_link("app_pages/lessons.py", label="Lesson: L1 vs squared-L2 energy",
                     query_params={"lesson": "plateau"}, icon=icons.LESSONS)
    with st.expander(f"The loss: {LOSSES[view].title}", expanded=False):
        ui.loss_formula(view)
