"""Train: pick a dataset, a network, a loss and its margin, press Run, watch it learn."""

from __future__ import annotations

import streamlit as st

import ui
import ui.challenge as challenge_ui
from lab.core import config as cfg
from lab.core import fields
from lab.learn.jobs import TrainingJob
from lab.learn.runs import RunError
from lab.metric.loss_specs import LOSSES
from lab.views.run_view import runs_table
from lab.views.urlstate import config_from_query, config_to_query
from ui import icons
from ui.changes import change_settings
from ui.inspector import inspector_for_job
from ui.live import live_view
from ui.reports import run_report_button

DATASET_TITLES = {
    "synthetic": "Synthetic faces (offline)", "digits": "Digits 8×8 (offline)",
    "att": "AT&T / ORL faces (Chopra 2005)", "olivetti": "Olivetti faces (download)",
    "mnist": "MNIST (download)", "fashion-mnist": "Fashion-MNIST (download)",
    "lfw": "LFW people (download)", "folder": "Your own images (folder or zip)",
}
# Identities each fixed dataset has, so the split sliders never ask for more than there are.
IDENTITY_COUNTS = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "att": 40, "olivetti": 40}

st.title(f"{icons.TRAIN} Train")
show_controls = not ui.presenter()

# ---- the configuration: from the URL once, then from the widgets ----------------------------
# Widget values are forgotten when the user visits another page, so the config itself is kept
# in the session (and the URL) and the widgets are refilled from it.
if ui.CONFIG_KEY not in st.session_state:
    url_config, warnings = config_from_query(st.query_params.to_dict())
    st.session_state[ui.CONFIG_KEY] = url_config
    for warning in warnings:
        st.warning(warning)
for name, value in st.session_state[ui.CONFIG_KEY].to_dict().items():
    st.session_state.setdefault(f"cfg_{name}", value)
challenge_ui.lock_train_widgets()  # a class challenge's fixed settings win over URL and session


def widget(name: str, kind, label: str, **kwargs):
    """A control bound to RunConfig field ``name`` (its value lives in session_state), its
    range, options and help from lab.core.fields: a slider's range is widened to hold any allowed
    value a link or a lesson carries, so no allowed config can make the widget raise."""
    spec = fields.FIELDS[name]
    value = st.session_state.get(f"cfg_{name}")
    if kind is st.slider:
        low, high, step = spec.slider(value, st.session_state.get("cfg_loss"))
        low, high = kwargs.pop("min_value", low), max(kwargs.pop("max_value", high), low)
        if value is not None and not low <= value <= high:
            st.session_state[f"cfg_{name}"] = value = min(max(value, low), high)
        kwargs.update(min_value=low, max_value=high, step=step)
    elif kind is st.select_slider:
        kwargs["options"] = spec.options_for(value)
    elif kind is st.number_input:
        kwargs.setdefault("min_value", spec.low if spec.kind == "float" else int(spec.low))
        kwargs.setdefault("max_value", spec.high if spec.kind == "float" else int(spec.high))
    elif kind is st.selectbox:
        kwargs.setdefault("options", list(spec.choices))
    kwargs.setdefault("disabled", challenge_ui.locked(name))
    return kind(label, key=f"cfg_{name}", help=kwargs.pop("help", None) or spec.help, **kwargs)


def apply_loss_defaults() -> None:
    """A new loss brings its own energy and margin (lab.metric.loss_specs.LOSS_DEFAULTS), as in the
    CLI, the URL and RunConfig: ArcFace never trains with the contrastive m = 1."""
    for name, value in fields.loss_defaults(st.session_state["cfg_loss"]).items():
        st.session_state[f"cfg_{name}"] = value


def fit_split_to_dataset() -> None:
    """A 10-class dataset cannot hold out 10 test identities: pick a split that fits."""
    count = IDENTITY_COUNTS.get(st.session_state["cfg_dataset"])
    if count is not None and count <= 10:
        st.session_state["cfg_test_identities"] = 3
        st.session_state["cfg_val_identities"] = 2
    elif count is not None:
        st.session_state["cfg_test_identities"] = min(10, count // 4)


def controls() -> None:
    # The learning choices first: the loss and its margin are the point of the app (below the
    # data and the network they sat under the fold).
    st.subheader("Loss")
    widget("loss", st.selectbox, "Loss", format_func=lambda name: LOSSES[name].title,
           on_change=apply_loss_defaults)
    spec = LOSSES[st.session_state["cfg_loss"]]
    # Every input the run reads is shown: the energy scores the test pairs of every loss, and
    # the semi-hard miner of Chopra's and the naive loss reads the margin as its window.
    widget("energy", st.selectbox, "Energy E" if "energy" in spec.params else
           "Energy E (scores the test pairs)", help=spec.param_help.get("energy"))
    miner = st.session_state["cfg_miner"] if "miner" in spec.params else "all"
    if fields.uses_margin(spec.name, miner):
        widget("margin", st.slider, "Margin" if "margin" in spec.params else
               "Semi-hard window m", help=spec.param_help.get("margin"))
    if "scale" in spec.params:
        widget("scale", st.slider, "Scale s", help=spec.param_help["scale"])
    if "chopra_q" in spec.params:
        widget("chopra_q", st.number_input, "Q (empty = automatic bound)",
               help=spec.param_help["chopra_q"])
    if "miner" in spec.params:
        widget("miner", st.selectbox, "Mining", help=spec.param_help["miner"])
    st.subheader("Data")
    widget("dataset", st.selectbox, "Dataset",
           format_func=lambda name: DATASET_TITLES.get(name, name),
           on_change=fit_split_to_dataset)
    dataset = st.session_state["cfg_dataset"]
    if dataset == "synthetic":
        widget("num_identities", st.slider, "Identities")
        widget("images_per_identity", st.slider, "Images per identity")
        widget("difficulty", st.slider, "Difficulty")
    if dataset not in ("digits",):
        widget("image_size", st.select_slider, "Image size (pixels)")
    count = IDENTITY_COUNTS.get(dataset)
    if count is None:
        widget("test_identities", st.slider, "Unseen test identities")
    else:  # a fixed dataset: leave at least 2 validation and 2 training people
        widget("test_identities", st.slider, "Unseen test identities",
               max_value=max(2, count - 2 - min(st.session_state["cfg_val_identities"],
                                                count - 4)))
    st.subheader("Network")
    widget("network", st.selectbox, "Network")
    widget("embedding_dim", st.select_slider, "Embedding size")
    widget("normalize", st.checkbox, "L2-normalise embeddings")
    st.subheader("Optimisation")
    widget("epochs", st.slider, "Epochs")
    widget("lr", st.select_slider, "Learning rate")
    left, right = st.columns(2)
    with left:
        widget("p_identities", st.number_input, "P identities")
    with right:
        widget("k_images", st.number_input, "K images")
    left, right = st.columns(2)
    with left:
        widget("seed", st.number_input, "Seed")
    with right:
        widget("split_seed", st.number_input, "People seed")
    widget("augment", st.checkbox, "Augment faces")
    widget("flip_average", st.checkbox, "Average with the mirror image")
    with st.expander("More settings (optimiser, schedule, width, augmentation, validation "
                     "people, steps, folds, face pipeline, device)"):
        widget("optimizer", st.selectbox, "Optimiser")
        widget("lr_schedule", st.selectbox, "Learning-rate schedule")
        widget("weight_decay", st.number_input, "Weight decay", format="%g", step=1e-4)
        left, right = st.columns(2)
        with left:
            widget("width", st.number_input, "Width (empty = 32, mlp 256)")
        with right:
            widget("init_scale", st.number_input, "Head init scale (empty = as drawn)",
                   format="%g", step=0.01)
        left, right = st.columns(2)
        with left:
            widget("augment_scale", st.slider, "Augment: smallest crop")
        with right:
            widget("augment_brightness", st.slider, "Augment: brightness ±")
        widget("train_images_per_identity", st.number_input,
               "Training images per person (empty = all)")
        widget("val_identities", st.slider, "Validation identities")
        widget("steps_per_epoch", st.number_input, "Steps per epoch (empty = one pass)")
        left, right = st.columns(2)
        with left:
            widget("fold", st.number_input, "Fold (empty = one split)")
        with right:
            widget("folds", st.slider, "Folds")
        widget("pipeline", st.selectbox, "Face pipeline")
        widget("lighting", st.checkbox, "Lighting augmentation")
        widget("device", st.selectbox, "Device")


def current_config() -> cfg.RunConfig:
    values = {k[4:]: v for k, v in st.session_state.items() if k.startswith("cfg_")}
    return cfg.RunConfig.from_dict(values)


if show_controls:
    panel, stage = st.columns([1, 2.6], gap="large")
    with panel:  # no inner scroll box: the page scrolls, once
        controls()
else:
    stage = st.container()

config = challenge_ui.constrain(current_config())
st.session_state[ui.CONFIG_KEY] = config
query = config_to_query(config)
if st.query_params.get("presenter") == "1":
    query["presenter"] = "1"
if dict(st.query_params) != query:
    st.query_params.from_dict(query)

# ---- Run / Pause / Step / Stop / Reset ----------------------------------------------------------
job: TrainingJob | None = ui.current_job()


def start(paused: bool = False) -> None:
    wrong = cfg.problems(config)
    if wrong:
        st.session_state["train_error"] = " ".join(wrong)
        return
    new_job = ui.runner().training_job(config, store=ui.run_store(), start_paused=paused,
                                       time_budget=challenge_ui.time_budget())
    st.session_state[ui.JOB_KEY] = new_job.start()
    st.session_state.pop("live_cache", None)


def on_run() -> None:
    if job is not None and job.paused:
        job.resume()
    elif job is None or not job.active:
        start()


def on_step() -> None:
    if job is not None and job.active:
        job.step()
    else:
        start(paused=True)


def on_stop() -> None:
    if job is not None:
        job.stop()


def on_reset() -> None:
    if job is not None:
        job.stop()
    st.session_state.pop(ui.JOB_KEY, None)
    st.session_state.pop("live_cache", None)


with stage:
    st.caption("Press **Run** and watch a siamese network learn a metric: genuine pairs pulled "
               "together, impostors pushed beyond the margin. The loss and the active pairs "
               "are of the training batches; the energies, the map and the ROC are of people "
               "the network never sees in training (the map also shows a few it trains on).")
    challenge_ui.train_banner()
    buttons = st.columns(5)
    running = job is not None and job.active and not job.paused
    buttons[0].button("Run" if not (job and job.paused) else "Resume", on_click=on_run,
                      icon=icons.RUN,
                      type="primary", disabled=running, width="stretch")
    buttons[1].button("Pause", icon=icons.PAUSE, on_click=lambda: job.pause(),
                      disabled=not running, width="stretch")
    buttons[2].button("Step", icon=icons.STEP, on_click=on_step,
                      help="Train one epoch, then pause.",
                      disabled=running, width="stretch")
    buttons[3].button("Stop", icon=icons.STOP, on_click=on_stop,
                      help="Stop now and keep what was learnt.",
                      disabled=job is None or not job.active, width="stretch")
    buttons[4].button("Reset", icon=icons.RESET, on_click=on_reset,
                      help="Forget this training on the page "
                      "(saved runs stay in the table below).", width="stretch")
    ui.runner_banner()
    if "train_error" in st.session_state:
        st.error(st.session_state.pop("train_error"))
    if job is not None and not job.saved and job.run is not None:
        st.warning(f"{icons.DISK} {job.run.save_error}. Free some disk space (or make data/runs "
                   "writable) to keep the next runs.")
    if job is not None and job.retry_note:
        st.info(job.retry_note)
    if job is not None and job.paused:
        change_settings(job)
    live_tab, inspector_tab = st.tabs([f"{icons.LIVE} Live", f"{icons.INSPECT} Miner inspector"])
    with live_tab:
        live_view(job, config, presenter=not show_controls)
    with inspector_tab:
        inspector_for_job(job, ui.run_store(), ui.dataset_for, presenter=not show_controls)
    if show_controls:
        with st.expander(f"The loss: {LOSSES[config.loss].title}"):
            ui.loss_formula(config.loss)

# ---- the runs table -------------------------------------------------------------------------
if show_controls:
    st.divider()
    st.subheader("Saved runs")
    store = ui.run_store()
    infos = store.list()
    if not infos:
        st.caption("No saved runs yet: each training is saved here as it goes.")
    else:
        rows = runs_table(infos, live={job.run_id: job.status}
                          if job is not None and job.active and job.run_id else None)
        ui.table(rows, hide_index=True, width="stretch",
                 column_order=("name", "status", "dataset", "loss", "margin", "energy",
                               "epochs", "EER %", "AUC", "rank-1 %", "train s", "message"))
        names = {i.id: f"{i.name} ({i.id})" for i in infos}
        chosen_id = st.selectbox("Run", list(names), format_func=lambda v: names.get(v, v),
                                 key="table_run")
        chosen = next(i for i in infos if i.id == chosen_id)
        rename_col, export_col, report_col, delete_col = st.columns([2, 1, 1, 1])
        with rename_col:
            new_name = st.text_input("New name", value=chosen.name, max_chars=80,
                                     key=f"rename-{chosen.id}")
            if st.button("Rename") and new_name != chosen.name:
                try:
                    store.rename(chosen.id, new_name)
                    st.rerun()
                except RunError as error:
                    st.error(str(error))
        with export_col:
            try:
                st.download_button("Export zip", store.export_zip(chosen.id),
                                   f"{chosen.id}.zip", "application/zip")
            except RunError as error:
                st.caption(f"Cannot export: {error}")
        with report_col:
            run_report_button(store, [chosen.id], key=f"report-{chosen.id}")
        with delete_col:
            busy = job is not None and job.active and job.run_id == chosen.id
            if st.button("Delete", disabled=busy, help="Delete this run's folder for good."):
                store.delete(chosen.id)
                st.rerun()
        if chosen.status == "interrupted" and st.button(
                "▶ Resume this run", disabled=job is not None and job.active,
                help="Train its remaining epochs from its last checkpoint, in the same run."):
            resumed = ui.runner().training_job(chosen.config, store=store, resume_id=chosen.id)
            st.session_state[ui.JOB_KEY] = resumed.start()
            st.session_state.pop("live_cache", None)
            st.rerun()
    upload = st.file_uploader("Import a run (zip exported from Metric Lab)", type=["zip"],
                              key="import_run")
    if upload is not None and st.session_state.get("imported") != upload.file_id:
        try:
            info = store.import_zip(upload.getvalue())
            st.session_state["imported"] = upload.file_id
            st.success(f"Imported run {info.name}.")
        except RunError as error:
            st.error(f"Not imported: {error}")
