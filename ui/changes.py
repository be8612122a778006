"""Change the learning rate or the margin of a paused run (the work is lab.learn.changes)."""

from __future__ import annotations

import streamlit as st

from lab.core import fields
from lab.metric.loss_specs import LOSSES
from ui import icons


def change_settings(job) -> None:
    """A small form under the buttons while the run is paused; applied when it goes on. The
    ranges are the Train controls' (lab.core.fields)."""
    config = job.config
    spec = LOSSES[config.loss]
    with st.expander(f"{icons.EDIT} Change a setting, then Resume or Step"), \
            st.form("change-settings", border=False):
        lr = st.select_slider("Learning rate from the next epoch",
                              options=fields.FIELDS["lr"].options_for(config.lr),
                              value=config.lr, key="change_lr")
        margin = None
        if "margin" in spec.params:
            low, high, step = fields.FIELDS["margin"].slider(config.margin, config.loss)
            margin = st.slider("Margin from the next epoch", low, high,
                               value=float(config.margin), step=step, key="change_margin")
        if not st.form_submit_button("Apply when the run goes on"):
            return
        wanted = {"lr": lr} if lr != config.lr else {}
        if margin is not None and abs(margin - config.margin) > 1e-12:
            wanted["margin"] = margin
        if not wanted:
            st.info("Nothing changed.")
            return
        try:
            done = job.change(**wanted)
        except ValueError as error:
            st.error(str(error))
            return
        st.success("From the next epoch: " + ", ".join(f"{k} = {v:g}" for k, v in done.items())
                   + ". It is marked on the loss curve and kept in the run's history.")
