"""The live part of the Train page: polls the background job and redraws in place."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from lab.learn.changes import markers, setting_at
from lab.metric.energy import energy_bound, energy_matrix_np
from lab.views.margin_view import energy_margin, gap_histogram, margin_on_gap_axis, triplet_gaps
from lab.views.run_view import (
    eta_seconds,
    live_map,
    pair_energies,
    short_number,
    training_seconds,
    verification_of,
)
from lab.viz.curves import loss_curve
from lab.viz.energies import energy_histogram
from lab.viz.maps import embedding_map
from lab.viz.roc import roc_curves
from ui import icons
from ui.health import health_banner


def _final_curves(job, config):
    """ROC of the finished run on its test identities, from the last probe embeddings."""
    report = job.latest
    labels, is_test = job.probe_labels, job.probe_is_test
    if report is None or report.probe_embeddings is None or labels is None:
        return None
    return verification_of(report.probe_embeddings, labels, is_test, config.energy,
                           config.data_seed)


@st.cache_resource
def _training_warm_up_thread():
    """Once per server process, when the Train page is first drawn: the first training's
    one-time costs (torch._dynamo import, oneDNN set-up; seconds on a laptop CPU) are paid in
    the background before Run is pressed (lab.learn.training_run.warm_up; measured by `lab bench
    dashboard`)."""
    import threading

    from lab.learn.training_run import warm_up

    thread = threading.Thread(target=warm_up, name="train-warm-up", daemon=True)
    thread.start()
    return thread


def _cards(latest, unseen) -> None:
    """Four numbers, each saying whose it is (short labels: a longer one is cut with an ellipsis
    in the half-width live view; the help says the rest): the loss and the share of active pairs
    are of the training batches; the mean energies are of the unseen people the histogram beside
    them draws (the training batches' means read 1.27 while those people sat at 0.1-0.6)."""
    cards = st.columns(4)
    cards[0].metric("Training loss", short_number(latest.loss),
                    help="Mean loss over this epoch's training batches.")
    cards[1].metric("Active in training", f"{100 * latest.active_fraction:.0f}%",
                    help="Share of the training batches' pairs or triplets that still add to "
                         "the loss.")
    if unseen is None:
        cards[2].metric("Training genuine E", short_number(latest.mean_genuine))
        cards[3].metric("Training impostor E", short_number(latest.mean_impostor))
        return
    genuine, impostor = unseen
    cards[2].metric("Unseen genuine E", short_number(np.mean(genuine)),
                    help=f"Mean energy of {len(genuine)} pairs of the same person, among people "
                         "never seen in training (the histogram's blue bars).")
    cards[3].metric("Unseen impostor E", short_number(np.mean(impostor)),
                    help=f"Mean energy of {len(impostor)} pairs of two different people never "
                         "seen in training (the histogram's vermillion bars).")


def live_view(job, config, presenter: bool = False) -> None:
    _training_warm_up_thread()
    if job is None:
        where = "" if presenter else " with the settings on the left"
        st.info(f"Press **{icons.RUN} Run** to train{where}, or **{icons.STEP} Step** to "
                "train one epoch at a time. The loss curve, the embedding map of unseen "
                "identities and their energy histograms appear here as it learns.")
        return

    # A queued page polls gently (a class of 30 waiting must not load the server); a training
    # page once a second; a finished one not at all.
    @st.fragment(run_every=(3.0 if job.status == "queued" else 1.0) if job.active else None)
    def _live() -> None:
        job.heartbeat()
        cache = st.session_state.setdefault("live_cache", {"epoch": None, "points": None})
        # The buttons and the polling rate live outside this fragment: redraw the whole page
        # when the job changes state (queued -> running, running <-> paused, finished).
        previous, cache["status"] = cache.get("status"), job.status
        if previous is not None and previous != job.status:
            st.rerun(scope="app")
        reports = job.snapshot()
        latest = reports[-1] if reports else None
        if job.status == "queued":
            st.info(f"{icons.WAIT} Every training slot is busy{_slots_in_words(job)}. You are "
                    f"number {job.queue_position or 1} in the queue; training starts by itself.")
            st.button("Cancel", on_click=job.stop, key="cancel-queued")
            return
        if latest is None:
            if job.active:
                st.info("Preparing the data and the network ...")
            else:
                st.error(job.message or f"Training {job.status}.")
            return
        eta = eta_seconds(reports)
        text = (f"Epoch {latest.epoch}/{latest.epochs} · {latest.images_per_second:,.0f} "
                f"images/s · {training_seconds(reports):.1f} s")
        if job.active and eta is not None:
            text += f" · about {eta:.0f} s left"
        if getattr(job, "where", ""):  # a run on a cluster says on which node
            text += f" · on {job.where}"
        st.progress(min(1.0, latest.epoch / max(latest.epochs, 1)), text=text)
        if job.status == "paused":
            st.caption(f"{icons.PAUSE} Paused. Resume, Step one epoch, or Stop.")
        if job.status == "diverged":
            st.error(f"**The run diverged.** {latest.message}")
        elif job.status in ("failed", "cancelled", "interrupted"):
            st.error(job.message)
        elif job.status == "stopped":
            st.warning(f"Stopped: what was learnt is kept. {latest.message}".strip())
        health_banner(reports, job.config)
        emb = latest.probe_embeddings
        labels = job.probe_labels
        unseen = None
        if emb is not None and labels is not None:
            unseen = pair_energies(emb, labels, config.energy, 5000, config.data_seed)
        _cards(latest, unseen)

        # Loss and energies side by side, the map wide below: three plots in a row were too
        # cramped to read on a projector.
        left, right = st.columns(2)
        middle = st.container()
        epochs = [r.epoch for r in reports]
        with left:
            fig = loss_curve(epochs, [r.loss for r in reports],
                                   active_fraction=[r.active_fraction for r in reports],
                                   changes=markers([r.record() for r in reports]),
                                   presenter=presenter)
            st.plotly_chart(fig, width="stretch", key="live-loss")
        if unseen is not None:
            map_emb, map_labels, seen = emb, labels, np.zeros(len(labels), dtype=bool)
            if latest.seen_embeddings is not None and job.seen_labels is not None:
                map_emb = np.concatenate([emb, latest.seen_embeddings])
                map_labels = np.concatenate([labels, job.seen_labels])
                seen = np.concatenate([seen, np.ones(len(job.seen_labels), dtype=bool)])
            if cache["epoch"] != latest.epoch:
                cache["points"] = live_map(map_emb, cache["points"], seed=config.seed)
                cache["epoch"] = latest.epoch
            with middle:
                fig = embedding_map(cache["points"], map_labels, seen_mask=seen,
                                          title=f"Embedding after epoch {latest.epoch} (PCA)",
                                          presenter=presenter)
                st.plotly_chart(fig, width="stretch", key="live-map")
            genuine, impostor = unseen
            bound = energy_bound(config.energy, emb.shape[1]) if config.normalize else None
            # α is not an energy (triplet: gaps); a margin changed mid-run is the one drawn
            records = [r.record() for r in reports]
            now = setting_at(config, records, latest.epoch, "margin")
            margin = energy_margin(config.loss, now)
            with right:
                fig = energy_histogram(genuine, impostor, margin=margin,
                                             x_range=(0, bound) if bound else None,
                                             title=f"Energies, epoch "
                                             f"{latest.epoch}", presenter=presenter)
                st.plotly_chart(fig, width="stretch", key="live-hist")
                if margin_on_gap_axis(config.loss):
                    gaps = triplet_gaps(energy_matrix_np(emb, config.energy), labels,
                                        max_points=3000, seed=config.data_seed)
                    st.plotly_chart(gap_histogram(gaps, now, presenter=presenter,
                                                  title="Triplet gaps d(a,n) − d(a,p) vs α",
                                                  height=300),
                                    width="stretch", key="live-gaps")
        if not job.active:
            result = _final_curves(job, config)
            if result is not None:
                st.subheader("Verification of people never seen in training")
                cols = st.columns(5)
                cols[0].metric("EER", f"{100 * result.eer:.1f}%")
                cols[1].metric("AUC", f"{result.auc:.3f}")
                tar = result.tar_at_far.get(0.01)
                cols[2].metric("TAR @ FAR 1%", "n/a" if tar is None else f"{100 * tar:.1f}%")
                cols[3].metric("d′", f"{result.dprime:.2f}")
                cols[4].metric("Rank-1", "n/a" if result.rank1 is None
                               else f"{100 * result.rank1:.0f}%")
                roc = roc_curves([{"name": config.loss, "fpr": result.fpr,
                                         "tpr": result.tpr, "auc": result.auc,
                                         "eer": result.eer}], presenter=presenter)
                ui.show_figure(roc, "roc", key="live-roc")
                st.page_link("app_pages/embeddings.py", label="Explore the embedding",
                             icon=icons.EMBEDDINGS)
                st.page_link("app_pages/energies.py", label="Energies epoch by epoch",
                             icon=icons.ENERGIES)

    _live()


def _slots_in_words(job) -> str:
    """' (2 trainings at once on the Ray cluster)': why a student waits, and for what."""
    slots = getattr(getattr(job, "limiter", None), "slots", None)
    if not slots:
        return ""
    on = (" on the Ray cluster" if getattr(getattr(job, "launcher", None), "kind", "") == "ray"
          else " on this server")
    return f" ({slots} training{'' if slots == 1 else 's'} at once{on})"
