"""Embedding maps (one frame, or an animation over epochs) and image grids."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.viz.style import (
    BASE_FONT,
    COLORS,
    PRESENTER_SCALE,
    SEEN_SYMBOL,
    UNSEEN_SYMBOL,
    _finite,
    _note,
    identity_color,
    style,
)

# --------------------------------------------------------------------------------------------
# Embedding maps


def _image_uri(image: np.ndarray) -> str:
    """A [C,H,W] float image in [0, 1] as a PNG data URI (for thumbnails in a figure)."""
    from PIL import Image

    pixels = np.clip(np.asarray(image, dtype=float), 0.0, 1.0)
    pixels = (pixels * 255).round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3):
        pixels = np.moveaxis(pixels, 0, -1)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_uris(images: np.ndarray) -> list[str]:
    """PNG data URIs of [N,C,H,W] images in [0, 1], for the map's thumbnails."""
    return [_image_uri(image) for image in images]


def _map_traces(
    points: np.ndarray,
    labels: np.ndarray,
    seen: np.ndarray,
    names: Sequence[str] | None,
    marker_size: float,
) -> list[go.Scatter]:
    """Two scatter traces, seen and unseen identities; customdata holds each point's index."""
    traces = []
    index = np.arange(len(points))
    for is_seen, label, symbol in ((True, "seen identities", SEEN_SYMBOL),
                                   (False, "unseen identities", UNSEEN_SYMBOL)):  # fmt: skip
        mask = seen if is_seen else ~seen
        ids = labels[mask]
        if names is not None:
            text = [str(names[int(i)]) if 0 <= int(i) < len(names) else str(int(i)) for i in ids]
        else:
            text = [f"identity {int(i)}" for i in ids]
        traces.append(
            go.Scatter(
                x=points[mask, 0], y=points[mask, 1], mode="markers", name=label,
                customdata=index[mask], text=text,
                hovertemplate="%{text}<br>point %{customdata}<extra>" + label + "</extra>",
                marker=dict(
                    symbol=symbol, size=marker_size if is_seen else marker_size + 1,
                    color=[identity_color(i) for i in ids],
                    line=dict(width=0.8 if is_seen else 2,
                              color=COLORS["seen"] if is_seen else None),
                    opacity=0.85,
                ),
            )
        )  # fmt: skip
    # An open marker takes its line colour from marker.color; the outline must not override it.
    traces[1].marker.line.color = None
    return traces


def _map_inputs(
    points2d: np.ndarray, labels: Sequence[int], seen_mask: Sequence[bool] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points = np.asarray(points2d, dtype=float).reshape(-1, 2)
    label_arr = np.asarray(labels).astype(int).reshape(-1)
    if len(label_arr) != len(points):
        raise ValueError(f"{len(points)} points but {len(label_arr)} labels: they must match")
    if seen_mask is None:
        seen = np.ones(len(points), dtype=bool)
    else:
        seen = np.asarray(seen_mask, dtype=bool).reshape(-1)
        if len(seen) != len(points):
            raise ValueError(f"{len(points)} points but seen_mask has {len(seen)} entries")
    return points, label_arr, seen


def _padded_range(values: np.ndarray, pad: float = 0.06) -> list[float]:
    values = _finite(values)
    if values.size == 0:
        return [-1.0, 1.0]
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else max(abs(high), 1.0)
    return [low - pad * span, high + pad * span]


def embedding_map(
    points2d: np.ndarray,
    labels: Sequence[int],
    names: Sequence[str] | None = None,
    seen_mask: Sequence[bool] | None = None,
    title: str = "Embedding map",
    images: np.ndarray | None = None,
    *,
    highlight: int | None = None,
    max_thumbnails: int = 120,
    presenter: bool = False,
) -> go.Figure:
    """2-D map of embeddings: colour = identity, filled circle = seen in training, open diamond =
    never seen (the open-world test). Each point's customdata is its row index, so a page can show
    the clicked image. With `images` ([N,C,H,W] in [0,1]) tiny thumbnails are drawn centred on
    the points (as the Embedding Projector does): all of them up to `max_thumbnails`, an evenly
    spread subset beyond; `images` may also hold their data URIs (:func:`image_uris`, which a
    page can cache: encoding is most of the cost); `highlight` rings one point.
    """
    points, label_arr, seen = _map_inputs(points2d, labels, seen_mask)
    size = 9 * (1.4 if presenter else 1.0)
    fig = go.Figure(_map_traces(points, label_arr, seen, names, size))
    if highlight is not None and 0 <= highlight < len(points):
        fig.add_trace(
            go.Scatter(
                x=[points[highlight, 0]], y=[points[highlight, 1]], mode="markers",
                name="selected", hoverinfo="skip",
                marker=dict(symbol="circle-open", size=size * 2.6,
                            line=dict(width=3, color=COLORS["accent"])),
            )
        )  # fmt: skip
    x_range, y_range = _padded_range(points[:, 0]), _padded_range(points[:, 1])
    if images is not None and len(points) > 0 and max_thumbnails > 0:
        # Beyond max_thumbnails an evenly spread subset of the points gets its face; the layout
        # images are set in one update (adding them one by one re-validates the whole layout).
        shown = np.unique(np.linspace(0, len(points) - 1, min(len(points), max_thumbnails))
                          .round().astype(int))
        width = 0.045 * (x_range[1] - x_range[0])
        height = 0.045 * (y_range[1] - y_range[0])
        fig.update_layout(images=[
            dict(source=images[i] if isinstance(images[i], str) else _image_uri(images[i]),
                 xref="x", yref="y", x=points[i, 0], y=points[i, 1], sizex=width,
                 sizey=height, xanchor="center", yanchor="middle", layer="above", opacity=0.9)
            for i in shown])  # fmt: skip
    fig.update_layout(
        title=dict(text=title), clickmode="event+select", dragmode="pan",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )  # fmt: skip
    fig.update_xaxes(range=x_range, showticklabels=False, title_text="", zeroline=False)
    fig.update_yaxes(range=y_range, showticklabels=False, title_text="", zeroline=False)
    if len(points) == 0:
        _note(fig, "No embeddings to draw yet")
    return style(fig, presenter, height=520)


def embedding_animation(
    frames: Sequence[np.ndarray],
    labels: Sequence[int],
    seen_mask: Sequence[bool] | None = None,
    epochs: Sequence[int] | None = None,
    *,
    names: Sequence[str] | None = None,
    title: str = "Embedding map during training",
    frame_ms: int = 600,
    presenter: bool = False,
) -> go.Figure:
    """The embedding map animated across epochs (Play button and epoch slider).

    Axis ranges are fixed over all frames, so clusters visibly form instead of the axes
    re-zooming; the frames should come from `lab.measure.project.project_frames` (aligned,
    warm-started).
    """
    if len(frames) == 0:
        raise ValueError("embedding_animation needs at least one frame")
    stacked = [np.asarray(f, dtype=float).reshape(-1, 2) for f in frames]
    epoch_list = list(range(1, len(stacked) + 1)) if epochs is None else list(epochs)
    if len(epoch_list) != len(stacked):
        raise ValueError(f"{len(stacked)} frames but {len(epoch_list)} epochs: they must match")
    _, label_arr, seen = _map_inputs(stacked[0], labels, seen_mask)
    size = 9 * (1.4 if presenter else 1.0)
    all_points = np.concatenate(stacked)
    x_range, y_range = _padded_range(all_points[:, 0]), _padded_range(all_points[:, 1])
    plotly_frames = []
    for epoch, points in zip(epoch_list, stacked, strict=True):
        traces = _map_traces(points, label_arr, seen, names, size)
        plotly_frames.append(
            go.Frame(data=traces, name=str(epoch),
                     layout=dict(title_text=f"{title} · epoch {epoch}"))
        )
    fig = go.Figure(data=plotly_frames[0].data, frames=plotly_frames)
    # redraw=True: without it plotly moves the points but leaves the title it drew first (the
    # title read "epoch 0" while epochs 1-10 played, seen in chromium).
    play_args = dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True,
                     transition=dict(duration=frame_ms * 0.8, easing="cubic-in-out"))  # fmt: skip
    fig.update_layout(
        title=dict(text=f"{title} · epoch {epoch_list[0]}"),
        updatemenus=[dict(
            type="buttons", direction="left", x=0.0, y=-0.06, xanchor="left", yanchor="top",
            showactive=False, pad=dict(r=10, t=10),
            buttons=[
                dict(label="▶ Play", method="animate", args=[None, play_args]),
                dict(label="❚❚ Pause", method="animate",
                     args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")]),
            ],
        )],
        sliders=[dict(
            active=0, x=0.3, len=0.7, y=-0.02, yanchor="top", currentvalue=dict(prefix="epoch "),
            steps=[dict(label=str(epoch), method="animate",
                        args=[[str(epoch)], dict(mode="immediate",
                                                 frame=dict(duration=0, redraw=True),
                                                 transition=dict(duration=0))])
                   for epoch in epoch_list],
        )],
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )  # fmt: skip
    fig.update_xaxes(range=x_range, autorange=False, showticklabels=False, zeroline=False)
    fig.update_yaxes(range=y_range, autorange=False, showticklabels=False, zeroline=False)
    fig = style(fig, presenter, height=580)
    fig.update_layout(margin=dict(b=110))
    return fig


# --------------------------------------------------------------------------------------------
# Images


def image_grid(
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    title: str | None = None,
    border_colors: Sequence[str | None] | None = None,
    presenter: bool = False,
) -> go.Figure:
    """A grid of [N,C,H,W] float images in [0, 1] with captions (query + nearest neighbours).

    `border_colors` outline an image's role, e.g. COLORS["genuine"] for a neighbour of the
    same identity and COLORS["impostor"] otherwise (a frame round the image, and its caption
    in that colour).
    """
    stack = np.asarray(images, dtype=float)
    if stack.ndim == 3:
        stack = stack[:, None]
    n = len(stack)
    if n == 0:
        fig = go.Figure()
        _note(fig, "No images")
        return style(fig, presenter, height=200)
    cols = columns or min(n, 8)
    rows = math.ceil(n / cols)
    texts = [str(c) for c in captions] if captions is not None else [""] * n
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=texts + [""] * (rows * cols - n),
                        horizontal_spacing=0.01, vertical_spacing=0.08 if rows > 1 else 0.02)
    for k in range(n):
        pixels = np.clip(stack[k], 0.0, 1.0)
        if pixels.shape[0] == 1:
            pixels = np.repeat(pixels, 3, axis=0)
        rgb = np.moveaxis(pixels[:3], 0, -1) * 255
        fig.add_trace(go.Image(z=rgb, hovertemplate=texts[k] + "<extra></extra>"),
                      row=k // cols + 1, col=k % cols + 1)  # fmt: skip
    if border_colors is not None:  # a frame round the image, and its caption in that colour
        for k, (annotation, color) in enumerate(zip(fig.layout.annotations, border_colors,
                                                    strict=False)):
            if color:
                annotation.font.color = color
                axis = "" if k == 0 else str(k + 1)
                fig.add_shape(type="rect", xref=f"x{axis} domain", yref=f"y{axis} domain",
                              x0=0, y0=0, x1=1, y1=1, name="border",
                              line=dict(color=color, width=4))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(title=dict(text=title or ""))
    scale = PRESENTER_SCALE if presenter else 1.0
    fig = style(fig, presenter, height=int(rows * 150 + (40 if title else 10)))
    for annotation in fig.layout.annotations:
        annotation.font.size = round((BASE_FONT - 3) * scale)
    return fig
