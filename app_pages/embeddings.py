"""Embeddings: the map of a run's embedding, epoch by epoch, seen vs never-seen identities."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from lab.measure.project import project_frames, umap_ready
from lab.views.run_view import nearest_neighbours, seen_mask
from lab.viz.maps import embedding_animation, embedding_map, image_grid, image_uris
from lab.viz.style import COLORS
from ui import icons

# Faces drawn on the map at most: 400 take about 0.5 s to build into the figure once encoded,
# and encoding them (0.5 s more) is cached per run (measured on the shared 2-core VM).
MAP_THUMBNAILS = 400

st.title(f"{icons.EMBEDDINGS} Embeddings")
st.caption("Each point is a face image embedded by the network, placed on a 2-D map. Colour = "
           "identity; filled circles are people seen in training, open diamonds people never "
           "seen. Clusters forming for the open diamonds is metric learning working.")
presenter = ui.presenter()

run, history = ui.pick_run_history()

method = st.radio("Map", ("UMAP", "PCA", "t-SNE"), horizontal=True, key="map_method",
                  help="UMAP keeps neighbourhoods; PCA is the linear view; t-SNE is slower.")
chosen = method.lower().replace("-", "")
if chosen == "umap" and not umap_ready():
    st.info("UMAP is warming up (numba compiles once per server start); PCA meanwhile. "
            "This switches by itself in a few seconds.")
    chosen = "pca"


@st.cache_data(show_spinner="Projecting every epoch ...", max_entries=32)
def frames_for(embeddings: np.ndarray, method: str, seed: int) -> list[np.ndarray]:
    return project_frames(list(embeddings), method=method, seed=seed)


@st.cache_data(show_spinner=False, max_entries=8)
def face_uris(pixels: np.ndarray) -> list[str]:
    return image_uris(pixels)


frames = frames_for(history.embeddings, chosen, run.config.seed)
seen = seen_mask(history)
epochs = [int(e) for e in history.epochs]
names = None
tab_slider, tab_play = st.tabs(["Epoch by epoch", f"{icons.RUN} Play"])
with tab_slider:
    round_index = st.select_slider("Epoch", options=list(range(len(epochs))),
                                   value=len(epochs) - 1, format_func=lambda r: str(epochs[r]),
                                   key="map_epoch") if len(epochs) > 1 else 0
    selected = st.session_state.get("map_selected")
    show_faces = st.toggle(f"{icons.IMAGES} Images", key="map_images",
                           help=f"Draw each face at its point, as the Embedding Projector does "
                                f"(up to {MAP_THUMBNAILS} points; an evenly spread subset beyond).")
    faces = None
    if show_faces and (pixels := ui.probe_images(run, history)) is not None:
        faces = face_uris(pixels)
    fig = embedding_map(frames[round_index], history.labels, names, seen,
                              title=f"{method} after epoch {epochs[round_index]}",
                              highlight=selected, images=faces, max_thumbnails=MAP_THUMBNAILS,
                              presenter=presenter)
    event = st.plotly_chart(fig, width="stretch", key="map", on_select="rerun",
                            selection_mode="points")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata") is not None:
        st.session_state["map_selected"] = int(np.ravel(points[0]["customdata"])[0])
        selected = st.session_state["map_selected"]
    if selected is not None and selected < len(history.labels):
        images = ui.probe_images(run, history)
        neighbours = nearest_neighbours(history.at(round_index), selected, run.config.energy)
        st.markdown(f"**Point {selected}**: identity {history.labels[selected]} · its nearest "
                    f"neighbours at this epoch (energy {run.config.energy}):")
        if images is not None:
            picks = [selected] + [i for i, _ in neighbours]
            same = [None] + [COLORS["genuine"] if history.labels[i] ==
                             history.labels[selected] else COLORS["impostor"]
                             for i, _ in neighbours]
            captions = ["clicked"] + [f"E = {e:.3f}" for _, e in neighbours]
            st.plotly_chart(image_grid(images[picks], captions, border_colors=same),
                            width="stretch", key="neighbours")
            st.caption("Blue border: same identity (genuine); vermillion: another identity.")
    else:
        st.caption("Click a point to see its image and its nearest neighbours (hovering "
                   "cannot show it: Streamlit's plotly chart tells the server of clicks and "
                   "selections, never of hovers; the Images toggle draws every face at once).")
with tab_play:
    fig = embedding_animation(frames, history.labels, seen, epochs, presenter=presenter)
    ui.show_figure(fig, f"{run.id}-embedding-animation", key="animation")
