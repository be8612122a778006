"""ROC & compare: runs and linear baselines side by side, and sweeps over the margin."""

from __future__ import annotations

import secrets

import streamlit as st

import ui
from lab.core.config import LOSSES as LOSS_NAMES
from lab.core.config import problems
from lab.data import DatasetError
from lab.metric.loss_specs import LOSSES
from lab.views.run_view import (
    baseline_verification,
    config_differences,
    probe_history,
    run_labels,
    run_names,
    runs_table,
    sweep_rows,
    verification_at,
)
from lab.viz.roc import roc_curves, sweep_plot
from lab.viz.style import series_color
from ui import icons
from ui.reports import run_report_button

BASELINES = {"pixels": "Raw pixels", "eigenfaces": "Eigenfaces (PCA)",
             "fisherfaces": "Fisherfaces (LDA)"}
SWEEP_KEY = "sweep_job"

CROSS_DATASETS = {"att": "AT&T / ORL faces", "olivetti": "Olivetti faces", "lfw": "LFW",
                  "folder": "Your own folder or .zip of faces"}


@st.cache_data(show_spinner="Embedding the other dataset through the run's pipeline ...",
               max_entries=8)
def _cross_dataset(run_id: str, stamp: float, dataset: str, data_dir: str | None) -> dict:
    from lab.views import crosseval

    found = crosseval.cross_dataset(ui.run_store().load(run_id), dataset, data_dir)
    verification = found.pop("verification")
    found["fpr"], found["tpr"] = verification.fpr, verification.tpr
    return found


def cross_dataset_section(store, chosen, curves, log_far: bool) -> None:
    """Test on another dataset: the run's in-domain ROC beside its ROC on another face set."""
    st.subheader("Test on another dataset")
    st.caption("Every person of another dataset is unseen, and so is its kind of photo "
               "(camera, light, framing): the gap between the two curves is domain shift. "
               "The other set goes through the run's own face pipeline and input size.")
    left, middle, right = st.columns(3)
    info = left.selectbox("Run", chosen, format_func=lambda i: i.name, key="cross_run")
    dataset = middle.selectbox("Other dataset", list(CROSS_DATASETS),
                               format_func=CROSS_DATASETS.get, key="cross_dataset")
    data_dir = right.text_input("Folder or .zip (for your own faces; AT&T: optional)",
                                key="cross_dir", placeholder="/path/to/faces") or None
    if dataset == "folder" and not data_dir:
        st.info("Give the path of a folder (or .zip) with one sub-folder of photos per person.")
        return
    if not st.toggle("Evaluate", key="cross_go",
                     help="Loads and embeds the other dataset (detection once, then cached)."):
        return
    try:
        found = _cross_dataset(info.id, info.created, dataset, data_dir)
    except (DatasetError, ValueError, OSError, RuntimeError) as error:
        st.error(f"Cannot evaluate {info.name} on {CROSS_DATASETS[dataset]}: {error}")
        return
    own = next((c for c in curves if c.get("key") == info.id), None)
    s = found["summary"]
    other = {"name": f"on {CROSS_DATASETS[dataset]} ({found['people']} people)",
             "fpr": found["fpr"], "tpr": found["tpr"], "auc": s["auc"], "eer": s["eer"]}
    pair = ([{**own, "name": f"{info.name}: own test people (in-domain)"}] if own else []) + [
        {**other, "name": f"{info.name}: {other['name']}"}]
    plot, table = st.columns([3, 2])
    with plot:
        ui.show_figure(roc_curves(pair, log_far=log_far,
                                        title="In-domain vs another dataset"),
                       f"cross-{info.id}-{dataset}", key="roc-cross")
    with table:
        st.dataframe([{"set": "own test people", "EER %": None if own is None
                       else round(100 * own["eer"], 2),
                       "AUC": None if own is None else round(own["auc"], 4)},
                      {"set": CROSS_DATASETS[dataset], "EER %": round(100 * s["eer"], 2),
                       "AUC": round(s["auc"], 4)}], hide_index=True)
        st.markdown(f"At the run's own threshold ({found['threshold']:.3f}, FAR "
                    f"{100 * found['threshold_far']:g} % on its validation people): "
                    f"**FAR {100 * found['far_at_threshold']:.1f} %**, "
                    f"**FRR {100 * found['frr_at_threshold']:.1f} %** on "
                    f"{CROSS_DATASETS[dataset]}.")
        for note in found["notes"]:
            st.caption(note)


st.title(f"{icons.COMPARE} ROC & compare")
st.caption("Verification of people never seen in training: each curve trades false accepts "
           "(FAR) against true accepts (TAR) as the threshold moves. Higher and further left "
           "is better; face verification lives at the low-FAR end (log axis).")
presenter = ui.presenter()
store = ui.run_store()
infos = [i for i in store.list() if i.status in ("done", "stopped", "diverged")]
compare_tab, sweep_tab = st.tabs(["Compare runs", "Sweep the margin"])

with compare_tab:
    if not infos:
        st.info("No finished run yet. Train one (or a sweep, in the next tab) first.")
        st.page_link("app_pages/train.py", label="Go to Train", icon=icons.TRAIN)
    else:
        # Runs are identified by id; the labels are for people and unique (run_labels).
        labels = run_labels(infos)
        names = run_names(infos)
        # One colour per run, from its place in the run store (oldest first), so it keeps its
        # colour whichever runs are picked.
        colors = {i.id: series_color(k)
                  for k, i in enumerate(sorted(infos, key=lambda i: (i.created, i.id)))}
        chosen_ids = st.multiselect("Runs", list(labels), default=list(labels)[:3],
                                    format_func=lambda v: labels.get(v, v),
                                    key="compare_runs")
        baselines = st.multiselect("Baselines on the first run's data and split",
                                   list(BASELINES), format_func=BASELINES.get,
                                   key="compare_baselines")
        log_far = st.toggle("Log FAR axis", value=True)
        chosen = [i for i in infos if i.id in chosen_ids]
        curves = []
        for info in chosen:
            run = store.load(info.id)
            history = probe_history(run)
            result = None if history is None else verification_at(
                history, history.rounds - 1, run.config.energy, run.config.seed)
            if result is not None:
                curves.append({"name": names[info.id], "key": info.id,
                               "color": colors[info.id], "fpr": result.fpr, "tpr": result.tpr,
                               "auc": result.auc, "eer": result.eer})
        table = runs_table(chosen)
        if baselines and chosen and chosen[0].config is not None:
            base_config = chosen[0].config
            cached = st.cache_data(baseline_verification, show_spinner="Fitting baselines ...",
                                   max_entries=16, hash_funcs={type(base_config): repr})
            for kind in baselines:
                try:
                    result = cached(base_config, kind)
                except (DatasetError, ValueError) as error:
                    st.warning(f"{BASELINES[kind]}: {error}")
                    continue
                curves.append({"name": BASELINES[kind], "key": kind, "fpr": result.fpr,
                               "color": series_color(len(infos)
                                                           + list(BASELINES).index(kind)),
                               "tpr": result.tpr, "auc": result.auc, "eer": result.eer})
                tar = result.tar_at_far
                table.append({"name": BASELINES[kind], "status": "baseline",
                              "EER %": round(100 * result.eer, 2), "AUC": round(result.auc, 4),
                              "TAR@1e-1 %": None if tar.get(0.1) is None
                              else round(100 * tar[0.1], 2),
                              "TAR@1e-2 %": None if tar.get(0.01) is None
                              else round(100 * tar[0.01], 2),
                              "rank-1 %": None if result.rank1 is None
                              else round(100 * result.rank1, 2)})
        if curves:
            ui.show_figure(roc_curves(curves, log_far=log_far, presenter=presenter),
                           "roc-compare", key="roc")
        if table:
            ui.table(table, hide_index=True, width="stretch", column_order=(
                "name", "loss", "margin", "energy", "EER %", "AUC", "TAR@1e-1 %", "TAR@1e-2 %",
                "TAR@1e-3 %", "rank-1 %", "train s", "epochs"))
        differences = config_differences([i.config for i in chosen])
        if differences:
            st.caption("These runs differ in: " + ", ".join(differences))
        run_report_button(store, [i.id for i in chosen], key="report-compare",
                          label="Report of these runs (HTML)")
        if chosen:
            cross_dataset_section(store, chosen, curves, log_far)

with sweep_tab:
    st.markdown("Train one loss at several margins and plot the test EER against the margin: "
                "too small a margin does not separate impostors, too large cannot be met.")
    sweep = st.session_state.get(SWEEP_KEY)
    left, right = st.columns([1, 2])
    with left:
        losses = st.multiselect("Losses", LOSS_NAMES, default=["contrastive"],
                                format_func=lambda n: LOSSES[n].title, key="sweep_losses")
        margins_text = st.text_input("Margins", "0.1, 0.25, 0.5, 1, 1.5",
                                     help="Comma-separated; the same list for every loss.")
        epochs = st.slider("Epochs per run", 1, 50, 8, key="sweep_epochs")
        try:
            margins = sorted({float(m) for m in margins_text.replace(";", ",").split(",")
                              if m.strip()})
        except ValueError:
            margins = []
            st.error("Margins must be numbers separated by commas, e.g. 0.25, 0.5, 1.")
        base = ui.config_from_url()
        # The tag groups a sweep's runs in the run store, which every session shares: numbered
        # per session alone, two students' "sweep-1" runs fell into one curve.
        name = f"sweep-{len(st.session_state.get('sweeps', [])) + 1}-{secrets.token_hex(3)}"
        configs = [base.replace(loss=loss, margin=m, epochs=epochs, extra={"sweep": name})
                   for loss in losses for m in margins]
        wrong = sorted({p for c in configs for p in problems(c)})
        if wrong:
            st.error(" ".join(wrong))
        busy = sweep is not None and sweep.active
        if st.button(f"Train {len(configs)} runs", type="primary",
                     disabled=busy or not configs or bool(wrong) or len(configs) > 24):
            sweep = ui.runner().sweep_job(configs, store=store).start()
            st.session_state[SWEEP_KEY] = sweep
            st.session_state.setdefault("sweeps", []).append(name)
            st.rerun()
        if len(configs) > 24:
            st.caption("At most 24 runs per sweep.")
        if busy and st.button("Stop the sweep"):
            sweep.stop()
        st.caption("The other settings (dataset, network, energy, seed ...) are the Train "
                   "page's.")
    with right:
        @st.fragment(run_every=1.5 if sweep is not None and sweep.active else None)
        def sweep_view() -> None:
            current = st.session_state.get(SWEEP_KEY)
            if current is None:
                st.info("No sweep yet.")
                return
            current.heartbeat()
            if busy and not current.active:  # the buttons outside this fragment change
                st.rerun(scope="app")
            st.progress(current.done / max(len(current.configs), 1),
                        text=f"{current.done} of {len(current.configs)} runs trained")
            tag = current.configs[0].extra.get("sweep")
            rows = sweep_rows(store.list(), tag)
            if rows:
                metric = st.radio("Metric", ("eer", "auc"), horizontal=True,
                                  format_func=str.upper, key="sweep_metric")
                ui.show_figure(sweep_plot(rows, metric=metric, presenter=presenter),
                               f"{tag}-{metric}", key="sweep_plot")

        sweep_view()
