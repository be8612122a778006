"""Train: pick a dataset, a network, a loss and its margin, press Run, watch it learn."""

from __future__ import annotations

import streamlit as st

import ui
from lab import config as cfg
from lab.jobs import TrainingJob
from lab.losses import LOSSES
from lab.runs import RunError
from lab.urlstate import config_from_query, config_to_query
from lab.views import runs_table
from ui.live import live_view
from ui.reports import run_report_button

LR_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 10.0)
SIZE_CHOICES = (16, 24, 32, 48, 64, 96)
EMBEDDING_CHOICES = (2, 4, 8, 16, 32, 64, 128, 256)
DATASET_TITLES = {
    "synthetic": "Synthetic faces (offline)", "digits": "Digits 8×8 (offline)",
    "att": "AT&T / ORL faces (Chopra 2005)", "olivetti": "Olivetti faces (download)",
    "mnist": "MNIST (download)", "fashion-mnist": "Fashion-MNIST (download)",
    "lfw": "LFW people (download)", "folder": "Your own images (folder or zip)",
}
# Identities each fixed dataset has, so the split sliders never ask for more than there are.
IDENTITY_COUNTS = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "att": 40, "olivetti": 40}
HELP = {
    "network": "linear = a learned Mahalanobis metric (M = WᵀW); mlp; cnn = Chopra-style "
               "LeNet; resnet = a small ResNet.",
    "embedding_dim": "Size of the embedding G_W(X) the energy is measured in.",
    "normalize": "Put every embedding on the unit sphere (FaceNet).",
    "epochs": "Passes over the training identities.",
    "lr": "Adam's step size. 10 makes most runs diverge: a lesson in itself.",
    "p_identities": "P identities per batch (P × K batches give every anchor a genuine pair).",
    "k_images": "K images of each identity per batch.",
    "seed": "Fixes the initial weights, the batches and, unless People seed is set, which people "
            "are train, validation and test.",
    "split_seed": "Which people are train, validation and test (empty: follow Seed). Keep it and "
                  "change Seed to retrain the same people from other initial weights: how much "
                  "of a result is luck?",
    "augment": "Small crops, flips and brightness changes of the training faces.",
    "flip_average": "Embed each face and its mirror image and average the two: the metric then "
                    "ignores which way a face looks (faces only; digits are not symmetric).",
}

st.title("🏋️ Train")
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


def widget(name: str, kind, label: str, *args, **kwargs):
    """A control bound to RunConfig field ``name`` (its value lives in session_state)."""
    return kind(label, *args, key=f"cfg_{name}", help=kwargs.pop("help", HELP.get(name)),
                **kwargs)


def fit_split_to_dataset() -> None:
    """A 10-class dataset cannot hold out 10 test identities: pick a split that fits."""
    count = IDENTITY_COUNTS.get(st.session_state["cfg_dataset"])
    if count is not None and count <= 10:
        st.session_state["cfg_test_identities"] = 3
        st.session_state["cfg_val_identities"] = 2
    elif count is not None:
        st.session_state["cfg_test_identities"] = min(10, count // 4)


def controls() -> None:
    st.subheader("Data")
    widget("dataset", st.selectbox, "Dataset", options=cfg.DATASETS,
           format_func=lambda name: DATASET_TITLES.get(name, name),
           on_change=fit_split_to_dataset)
    dataset = st.session_state["cfg_dataset"]
    if dataset == "synthetic":
        widget("num_identities", st.slider, "Identities", 10, 200, step=5,
               help="How many different synthetic people.")
        widget("images_per_identity", st.slider, "Images per identity", 2, 50)
        widget("difficulty", st.slider, "Difficulty", 0.0, 2.0, step=0.25,
               help="Nuisance: pose, lighting, expression, glasses and noise.")
    if dataset not in ("digits",):
        widget("image_size", st.select_slider, "Image size (pixels)", options=SIZE_CHOICES)
    count = IDENTITY_COUNTS.get(dataset)
    most = 40 if count is None else count - st.session_state["cfg_val_identities"] - 2
    st.session_state["cfg_test_identities"] = min(st.session_state["cfg_test_identities"], most)
    widget("test_identities", st.slider, "Unseen test identities", 2, most,
           help="People never seen in training, on whom the ROC is measured.")
    st.subheader("Network")
    widget("network", st.selectbox, "Network", options=cfg.NETWORKS)
    widget("embedding_dim", st.select_slider, "Embedding size", options=EMBEDDING_CHOICES)
    widget("normalize", st.checkbox, "L2-normalise embeddings")
    st.subheader("Loss")
    widget("loss", st.selectbox, "Loss", options=cfg.LOSSES,
           format_func=lambda name: LOSSES[name].title)
    spec = LOSSES[st.session_state["cfg_loss"]]
    if "energy" in spec.params:
        widget("energy", st.selectbox, "Energy E", options=cfg.ENERGIES,
               help=spec.param_help["energy"])
    if "margin" in spec.params:
        widget("margin", st.slider, "Margin", 0.0, 4.0 if spec.kind != "classifier" else 1.5,
               step=0.05, help=spec.param_help["margin"])
    if "scale" in spec.params:
        widget("scale", st.slider, "Scale s", 1.0, 64.0, step=1.0, help=spec.param_help["scale"])
    if "chopra_q" in spec.params:
        widget("chopra_q", st.number_input, "Q (empty = automatic bound)", min_value=0.01,
               max_value=1000.0, help=spec.param_help["chopra_q"])
    if "miner" in spec.params:
        widget("miner", st.selectbox, "Mining", options=cfg.MINERS, help=spec.param_help["miner"])
    st.subheader("Optimisation")
    widget("epochs", st.slider, "Epochs", 1, 100)
    widget("lr", st.select_slider, "Learning rate", options=LR_CHOICES)
    left, right = st.columns(2)
    with left:
        widget("p_identities", st.number_input, "P identities", min_value=2, max_value=64)
    with right:
        widget("k_images", st.number_input, "K images", min_value=2, max_value=32)
    left, right = st.columns(2)
    with left:
        widget("seed", st.number_input, "Seed", min_value=0, max_value=2**31 - 1)
    with right:
        widget("split_seed", st.number_input, "People seed", min_value=0,
               max_value=2**31 - 1)
    widget("augment", st.checkbox, "Augment faces")
    widget("flip_average", st.checkbox, "Average with the mirror image")


def current_config() -> cfg.RunConfig:
    values = {k[4:]: v for k, v in st.session_state.items() if k.startswith("cfg_")}
    config = cfg.RunConfig.from_dict(values)
    if config.lr not in LR_CHOICES:
        config = config.replace(lr=min(LR_CHOICES, key=lambda lr: abs(lr - config.lr)))
    return config


if show_controls:
    panel, stage = st.columns([1, 2.6], gap="large")
    with panel, st.container(height=780, border=False):
        controls()
else:
    stage = st.container()

config = current_config()
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
    new_job = TrainingJob(config, store=ui.run_store(), start_paused=paused)
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
               "together, impostors pushed beyond the margin. Everything below is measured on "
               "identities the network never sees in training.")
    buttons = st.columns(5)
    running = job is not None and job.active and not job.paused
    buttons[0].button("▶ Run" if not (job and job.paused) else "▶ Resume", on_click=on_run,
                      type="primary", disabled=running, width="stretch")
    buttons[1].button("⏸ Pause", on_click=lambda: job.pause(), disabled=not running,
                      width="stretch")
    buttons[2].button("⏭ Step", on_click=on_step, help="Train one epoch, then pause.",
                      disabled=running, width="stretch")
    buttons[3].button("⏹ Stop", on_click=on_stop, help="Stop now and keep what was learnt.",
                      disabled=job is None or not job.active, width="stretch")
    buttons[4].button("↺ Reset", on_click=on_reset, help="Forget this training on the page "
                      "(saved runs stay in the table below).", width="stretch")
    if "train_error" in st.session_state:
        st.error(st.session_state.pop("train_error"))
    if job is not None and not job.saved and job.run is not None:
        st.warning(f"💾 {job.run.save_error}. Free some disk space (or make data/runs "
                   "writable) to keep the next runs.")
    if job is not None and job.retry_note:
        st.info(job.retry_note)
    live_view(job, config, presenter=not show_controls)
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
        rows = runs_table(infos)
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_order=("name", "status", "dataset", "loss", "margin", "energy",
                                   "epochs", "EER %", "AUC", "rank-1 %", "train s", "message"))
        chosen = st.selectbox("Run", infos, format_func=lambda i: f"{i.name} ({i.id})",
                              key="table_run")
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
    upload = st.file_uploader("Import a run (zip exported from Metric Lab)", type=["zip"],
                              key="import_run")
    if upload is not None and st.session_state.get("imported") != upload.file_id:
        try:
            info = store.import_zip(upload.getvalue())
            st.session_state["imported"] = upload.file_id
            st.success(f"Imported run {info.name}.")
        except RunError as error:
            st.error(f"Not imported: {error}")
