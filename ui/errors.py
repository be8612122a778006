"""The Energies page's error gallery (the search is lab.errors)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lab import plots
from lab.errors import worst_errors
from lab.views import nearest_neighbours

NEIGHBOURS = 2


def error_gallery(run, history, round_index: int, threshold: float, images,
                  presenter: bool = False) -> None:
    """Worst false accepts and false rejects at ``threshold``: both photos, the energy, and each
    photo's nearest neighbours (blue: same person, vermillion: another)."""
    embeddings = history.at(round_index)
    accepts, rejects = worst_errors(embeddings, history.labels, history.is_test,
                                    run.config.energy, threshold, is_seen=history.is_seen)
    if images is None:
        st.caption("The images of this run's dataset are not available here.")
        return
    for title, errors, empty in (
            ("Worst false accepts: two people taken for one", accepts,
             "No impostor pair is accepted at this threshold."),
            ("Worst false rejects: one person taken for two", rejects,
             "No genuine pair is rejected at this threshold.")):
        st.markdown(f"**{title}**")
        if not errors:
            st.caption(empty)
            continue
        for k, error in enumerate(errors):
            picks = [error.first, error.second]
            captions = [f"id {history.labels[error.first]}", f"id {history.labels[error.second]}"]
            colours: list[str | None] = [None, None]
            for who, name in ((error.first, "left"), (error.second, "right")):
                near = [(o, e) for o, e in nearest_neighbours(
                    embeddings, who, run.config.energy, NEIGHBOURS + 1)
                    if o not in (error.first, error.second)][:NEIGHBOURS]
                for other, e in near:
                    picks.append(other)
                    captions.append(f"near {name}: E {e:.2f}")
                    colours.append(plots.COLORS["genuine"] if history.labels[other] ==
                                   history.labels[who] else plots.COLORS["impostor"])
            st.plotly_chart(plots.image_grid(
                np.asarray(images)[picks], captions, columns=len(picks),
                title=f"{error.kind}: E = {error.energy:.3f} (threshold {threshold:.3f})",
                border_colors=colours, presenter=presenter), width="stretch",
                key=f"error-{error.kind}-{k}")
