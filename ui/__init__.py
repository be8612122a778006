"""Streamlit glue shared by the pages: the run store, the training job, figure downloads, the
formula-and-code panel and the presenter switch. Presentation only; the work is in `lab`."""

from __future__ import annotations

import inspect

import streamlit as st

from lab.learn.runs import RunError, RunStore
from lab.metric.loss_specs import LOSSES
from lab.viz.export import figure_to_html, figure_to_png, png_export_problem
from ui import icons

JOB_KEY = "training_job"
CONFIG_KEY = "train_config"
PRESENTER_KEY = "presenter_mode"


def run_store() -> RunStore:
    """The run store of this server (METRIC_LAB_RUNS or data/runs), read on every call. A
    RunStore is only its folder (the locks are files), so there is nothing to cache: a cache
    keyed on nothing kept the first folder for the life of the process."""
    return RunStore()


def current_job():
    return st.session_state.get(JOB_KEY)


@st.cache_resource
def runner():
    """Where this server's trainings run (lab.runners): in this process, or on the Ray cluster
    METRIC_LAB_RAY_ADDRESS names (Ray is imported only then)."""
    from lab.runners import select_runner

    return select_runner()


def runner_banner() -> None:
    """Say where trainings run when it is not simply this server (a cluster, or why not)."""
    banner = runner().banner()
    if banner is not None:
        level, text = banner
        if level == "warning":
            st.warning(text, icon=icons.WARNING)
        else:
            st.caption(f"{icons.CLUSTER} {text}")


def presenter() -> bool:
    """The projector switch: hides controls and enlarges figures (kept in the URL).

    The toggle has a fixed key, so it is the same widget whichever way it is set: a toggle
    built with ``value=<the URL's state>`` changes identity when the URL changes, and the next
    click lands on the old widget (switching presenter mode off then took two clicks)."""
    on = st.query_params.get("presenter") == "1"
    if PRESENTER_KEY not in st.session_state:
        st.session_state[PRESENTER_KEY] = on
    value = st.sidebar.toggle("Presenter mode", key=PRESENTER_KEY,
                              help="Hide the controls and enlarge the figures for a projector.")
    if value != on:
        if value:
            st.query_params["presenter"] = "1"
        else:
            st.query_params.pop("presenter", None)
    return value


def show_figure(fig, name: str, key: str | None = None, on_select=None, **kwargs):
    """Draw a figure with its download buttons (interactive HTML, and PNG when possible)."""
    event = st.plotly_chart(fig, width="stretch", key=key, on_select=on_select or "ignore",
                            **kwargs)
    with st.popover("Download", icon=icons.DOWNLOAD, help="Save this figure"):
        st.download_button("Interactive HTML", figure_to_html(fig), f"{name}.html",
                           "text/html", key=f"html-{key or name}")
        problem = png_export_problem()
        if problem:
            st.caption(f"PNG export is not available here: {problem}")
        elif st.button("Make PNG", key=f"png-make-{key or name}"):
            png = figure_to_png(fig)
            if png is None:
                st.caption(f"PNG export failed: {png_export_problem()}")
            else:
                st.download_button("PNG", png, f"{name}.png", "image/png",
                                   key=f"png-{key or name}")
    return event


def loss_formula(loss: str, expanded: bool = False) -> None:
    """The loss's formula (LaTeX), its source, and the real `lab` code behind it."""
    spec = LOSSES[loss]
    st.latex(spec.latex)
    st.caption(spec.source)
    with st.expander("Show the code", expanded=expanded):
        st.code(inspect.getsource(spec.function), language="python")


def pick_run(label: str = "Run", key: str = "run", statuses: tuple[str, ...] | None = None,
             prefer=None):
    """A run picker; tells the user what to do when there is no run yet. Returns (info, run).
    prefer: reorders the runs (the first is the default), e.g. lab.measure.trust.photo_order."""
    from lab.views.run_view import run_labels

    store = run_store()
    infos = [i for i in store.list() if i.status != "corrupt"
             and (statuses is None or i.status in statuses)]
    if prefer is not None:
        infos = prefer(infos)
    if not infos:
        st.info("No trained run yet. Train one first: it takes a few seconds.")
        st.page_link("app_pages/train.py", label="Go to Train", icon=icons.TRAIN)
        return None, None
    wanted = st.query_params.get("run")
    ids = [i.id for i in infos]
    index = ids.index(wanted) if wanted in ids else 0
    labels = run_labels(infos)  # ids are the options: two runs may share a name
    # labels.get(v, v): AppTest's select_index hands format_func the label itself.
    chosen = st.selectbox(label, ids, index=index, format_func=lambda v: labels.get(v, v),
                          key=key)
    info = infos[ids.index(chosen)]
    if info.id != wanted:
        st.query_params["run"] = info.id
    try:
        return info, store.load(info.id)
    except RunError as error:
        st.error(f"This run cannot be opened: {error}")
        return info, None


def sidebar_status() -> None:
    """A small live line in the sidebar of every page while a training runs, which also tells
    the job that this browser session is still there."""
    job = current_job()
    if job is None:
        return
    interval = 3.0 if job.status == "queued" else 2.0  # a waiting class polls gently

    @st.fragment(run_every=interval if job.active else None)
    def _status() -> None:
        job.heartbeat()
        latest = job.latest
        if job.status == "queued":
            st.caption(f"{icons.WAIT} Waiting for a free training slot: place "
                       f"{job.queue_position or 1}")
        elif job.active and latest is not None:
            st.caption(f"{icons.TRAIN} Training: epoch {latest.epoch}/{latest.epochs} "
                       f"({job.status})")
        elif job.active:
            st.caption(f"{icons.TRAIN} Preparing the data ...")

    with st.sidebar:
        _status()


@st.cache_resource
def _umap_warm_up_thread():
    """Started once per server process: compiles UMAP's numba code in the background."""
    import threading

    from lab.measure.project import warm_up_umap

    thread = threading.Thread(target=warm_up_umap, name="umap-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up_umap_in_background() -> None:
    _umap_warm_up_thread()


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset ...")
def dataset_for(config_json: str):
    """The dataset a run was trained on (kept in memory, shared by all sessions)."""
    from lab.core.config import RunConfig
    from lab.data import load_for_config

    return load_for_config(RunConfig.from_json(config_json))


def probe_images(run, history):
    """The images behind a run's probe embeddings ([P, C, H, W] numpy), or None."""
    from lab.data import DatasetError

    if history.indices is None:
        return None
    try:
        faces = dataset_for(run.config.to_json())
    except (DatasetError, OSError) as error:
        st.caption(f"The images of this run's dataset are not available here: {error}")
        return None
    return faces.images[history.indices].numpy()


def config_from_url():
    """The Train page's configuration as the URL (or this session's widgets) holds it."""
    from lab.core.config import RunConfig
    from lab.views.urlstate import config_from_query

    if CONFIG_KEY in st.session_state:
        return st.session_state[CONFIG_KEY]
    return config_from_query(st.query_params.to_dict())[0] if st.query_params else RunConfig()


def pick_run_history():
    """A run picker for the pages that draw epochs: (run, its probe history), or stop the page
    with a sentence saying what to do first."""
    from lab.views.run_view import probe_history

    _, run = pick_run()
    if run is None:
        st.stop()
    history = probe_history(run)
    if history is None:
        st.info("This run has no saved epochs yet. Let it train for an epoch, then come back.")
        st.stop()
    return run, history


def _cell(value) -> str:
    """A table figure as people read it: 20 not 20.000000, 136,591 not 136591.000000."""
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:.6g}"


def table(rows: list[dict], **kwargs) -> None:
    """st.dataframe of ``rows`` with a dash where a figure is missing (a run still training, a
    TAR the test pairs cannot reach): Streamlit writes the word 'None' in such cells, whatever
    a pandas Styler says, so a column with a gap is drawn as text; the others stay numbers."""
    st.dataframe(readable(rows), **kwargs)


def readable(rows: list[dict]):
    """The DataFrame :func:`table` draws: a column with a missing figure becomes text ("–"
    there, the numbers as :func:`_cell` writes them)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        missing = frame[column].isna()
        if not missing.any():
            continue
        frame[column] = ["–" if gap else (_cell(v) if isinstance(v, int | float)
                                          and not isinstance(v, bool) else str(v))
                         for v, gap in zip(frame[column], missing, strict=True)]
    return frame
