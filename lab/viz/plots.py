"""Figure builders: numpy arrays in, plotly figures out.

Every picture the app draws is made here by a pure function, so each can be unit-tested without a
browser and every page draws the same role in the same colour: genuine pairs are always blue,
impostor pairs always vermillion, the margin always green, the decision threshold always purple
(the Okabe-Ito palette, readable by colour-blind students). `presenter=True` enlarges fonts and
markers for a projector.

Conventions: energy E = distance between two embeddings; a pair is *accepted* as genuine when
E <= threshold (see `far_frr_at`).
"""

from __future__ import annotations

import base64
import io
import math
import threading
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# One colour per role, defined once for every figure of the app.
COLORS: dict[str, str] = {
    "genuine": "#0072B2",  # blue
    "impostor": "#D55E00",  # vermillion
    "margin": "#009E73",  # bluish green
    "threshold": "#7B3294",  # purple
    "seen": "#3B3B3B",  # outline of identities seen in training
    "unseen": "#E69F00",  # outline of identities never seen in training
    "loss": "#332288",  # indigo
    "accent": "#CC79A7",  # reddish purple: "this pair", the selected point
    "overlap": "#7F7F7F",  # grey: genuine and impostor energies mixed up
    "validation": "#56B4E9",  # sky blue
    "easy": "#009E73",
    "semi-hard": "#E69F00",
    "hard": "#D55E00",
    "chance": "#AAAAAA",
    "satisfies": "#1B7837",  # a run's pair of pairs on the right side of the margin line
    "violates": "#B2182B",  # ... and on the wrong side
}

# Qualitative palette for identities (colour i = identity i modulo its length): Plotly's Dark24
# then Alphabet, 50 colours that stay distinguishable on white.
IDENTITY_PALETTE: tuple[str, ...] = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
    "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
    "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
    "#AA0DFE", "#3283FE", "#85660D", "#782AB6", "#565656", "#1C8356", "#16FF32", "#F7E1A0",
    "#E2E2E2", "#1CBE4F", "#C4451C", "#DEA0FD", "#FE00FA", "#325A9B", "#FEAF16", "#F8A19F",
    "#90AD1C", "#F6222E", "#1CFFCE", "#2ED9FF", "#B10DA1", "#C075A6", "#FC1CBF", "#B00068",
    "#FBE426", "#FA0087",
)  # fmt: skip

# Contours of H: white valley (low H) to grey-blue hills, light enough for arrows and shading.
H_COLORSCALE = [[0.0, "#FFFFFF"], [0.5, "#D6E0EA"], [1.0, "#8FA6BF"]]

SEEN_SYMBOL = "circle"
UNSEEN_SYMBOL = "diamond-open"

BASE_FONT = 15  # readable on a laptop; presenter mode multiplies it
PRESENTER_SCALE = 1.6


def series_color(index: int) -> str:
    """Colour of the index-th run or variant of a page: pages give each run one index and pass
    the colour to every figure that draws it, so a run looks the same everywhere."""
    return IDENTITY_PALETTE[int(index) % len(IDENTITY_PALETTE)]


def identity_color(identity: int) -> str:
    """Colour of one identity, the same in every figure."""
    return IDENTITY_PALETTE[int(identity) % len(IDENTITY_PALETTE)]


def style(fig: go.Figure, presenter: bool = False, height: int | None = None) -> go.Figure:
    """Apply the app's template: white background, large fonts; bigger still on a projector."""
    scale = PRESENTER_SCALE if presenter else 1.0
    fig.update_layout(
        template="plotly_white",
        font=dict(size=round(BASE_FONT * scale), family="Arial, Helvetica, sans-serif"),
        title=dict(font=dict(size=round((BASE_FONT + 4) * scale)), x=0.02, xanchor="left"),
        legend=dict(font=dict(size=round((BASE_FONT - 1) * scale))),
        hoverlabel=dict(font=dict(size=round(BASE_FONT * scale))),
        margin=dict(l=60, r=30, t=60 if fig.layout.title.text else 30, b=55),
    )
    if height is not None:
        fig.update_layout(height=round(height * (1.25 if presenter else 1.0)))
    return fig


def _legend_below(fig: go.Figure, presenter: bool = False) -> go.Figure:
    """A horizontal legend under the x axis title. Half-width columns (the live Train view) are
    too narrow for one above the plot (it wrapped onto the title) or at the right (it covered
    the second y axis). Call it last: the offset is in pixels, turned into the paper fraction
    plotly wants from the figure's final height, so a short figure does not hit the axis title."""
    scale = PRESENTER_SCALE if presenter else 1.0
    bottom = round(110 * scale)
    fig.update_layout(margin=dict(b=bottom))
    plot_height = max((fig.layout.height or 450) - (fig.layout.margin.t or 0) - bottom, 40)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-55 * scale / plot_height,
                                  xanchor="left", x=0))
    return fig


def _as_1d(values: object) -> np.ndarray:
    if values is None:
        return np.zeros(0)
    return np.asarray(values, dtype=float).reshape(-1)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _note(fig: go.Figure, text: str) -> None:
    """A message inside the plot area, for empty or partial data."""
    fig.add_annotation(
        text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
        font=dict(color="#555555"), name="note",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Training curves


def loss_curve(
    epochs: Sequence[float],
    losses: Sequence[float],
    *,
    eer: Sequence[float] | None = None,
    active_fraction: Sequence[float] | None = None,
    title: str = "Loss",
    changes: Sequence[tuple[float, str]] | None = None,
    presenter: bool = False,
) -> go.Figure:
    """Training loss per epoch, with validation EER and active fraction on a [0, 1] right axis.

    ``changes``: (epoch, label) of settings changed mid-run (lab.learn.changes.markers), drawn as
    dashed vertical lines where the new setting began.

    Both optional series are fractions, so they share the secondary axis; the loss keeps its own
    scale (it can span decades, e.g. Chopra's exponential impostor term).
    """
    epochs_arr, loss_arr = _as_1d(epochs), _as_1d(losses)
    secondary = eer is not None or active_fraction is not None
    fig = make_subplots(specs=[[{"secondary_y": True}]]) if secondary else go.Figure()
    fig.add_trace(
        go.Scatter(
            x=epochs_arr, y=loss_arr, name="loss", mode="lines+markers",
            line=dict(color=COLORS["loss"], width=3), marker=dict(size=6),
        )
    )  # fmt: skip
    extra = (
        ("validation EER", eer, COLORS["validation"], "solid"),
        ("active fraction", active_fraction, COLORS["accent"], "dot"),
    )
    for name, values, color, dash in extra:
        if values is None:
            continue
        fig.add_trace(
            go.Scatter(
                x=epochs_arr, y=_as_1d(values), name=name, mode="lines+markers",
                line=dict(color=color, width=2, dash=dash), marker=dict(size=5),
            ),
            secondary_y=True,
        )  # fmt: skip
    fig.update_layout(title=dict(text=title), hovermode="x unified")
    fig.update_xaxes(title_text="epoch")
    if secondary:
        fig.update_yaxes(title_text="loss", secondary_y=False)
        fig.update_yaxes(title_text="fraction", range=[0, 1], secondary_y=True, showgrid=False,
                         tickmode="linear", tick0=0, dtick=0.2, tickformat=".0%")  # fmt: skip
    else:
        fig.update_yaxes(title_text="loss")
    for x, label in changes or ():
        fig.add_vline(x=x, line=dict(color=COLORS["threshold"], width=2, dash="dash"),
                      annotation=dict(text=label, textangle=-90, font=dict(
                          color=COLORS["threshold"])), annotation_position="top left")
    if loss_arr.size == 0:
        _note(fig, "No epoch finished yet")
    if secondary:
        return _legend_below(style(fig, presenter, height=400), presenter)
    return style(fig, presenter, height=360)


def active_fraction_curve(
    epochs: Sequence[float],
    active_fraction: Sequence[float],
    *,
    title: str = "Active pairs / triplets",
    presenter: bool = False,
) -> go.Figure:
    """Share of pairs or triplets that still contribute a gradient (non-zero loss) per epoch.

    When it falls to zero the margin is satisfied everywhere in the batch and learning stops.
    """
    fig = go.Figure(
        go.Scatter(
            x=_as_1d(epochs), y=_as_1d(active_fraction), name="active fraction",
            mode="lines+markers", line=dict(color=COLORS["accent"], width=3),
            fill="tozeroy",
        )
    )  # fmt: skip
    fig.update_layout(title=dict(text=title))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="fraction active", range=[0, 1.02])
    return style(fig, presenter, height=260)


def metric_vs_epoch(
    epochs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    metric: str = "EER",
    title: str | None = None,
    presenter: bool = False,
) -> go.Figure:
    """Any per-epoch metrics (e.g. mean genuine and impostor energy), one line per series.

    A series named "genuine", "impostor", "loss" or "margin" takes that role's colour.
    """
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        color = COLORS.get(name, IDENTITY_PALETTE[i % len(IDENTITY_PALETTE)])
        fig.add_trace(
            go.Scatter(
                x=_as_1d(epochs), y=_as_1d(values), name=name, mode="lines+markers",
                line=dict(color=color, width=3),
            )
        )  # fmt: skip
    fig.update_layout(title=dict(text=title or f"{metric} per epoch"), hovermode="x unified")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=metric)
    return style(fig, presenter, height=340)


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
# Energies


def far_frr_at(
    threshold: float | np.ndarray, genuine: Sequence[float], impostor: Sequence[float]
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """False accept and false reject rates when pairs with energy E <= threshold are accepted.

    FAR = share of impostor energies <= threshold; FRR = share of genuine energies > threshold.
    Vectorised over `threshold`; a rate over an empty set is nan.
    """
    genuine_sorted = np.sort(_finite(_as_1d(genuine)))
    impostor_sorted = np.sort(_finite(_as_1d(impostor)))
    t = np.asarray(threshold, dtype=float)
    accepted_impostor = np.searchsorted(impostor_sorted, t, side="right")
    accepted_genuine = np.searchsorted(genuine_sorted, t, side="right")
    with np.errstate(invalid="ignore", divide="ignore"):
        far = accepted_impostor / impostor_sorted.size if impostor_sorted.size else t * np.nan
        frr = (
            (genuine_sorted.size - accepted_genuine) / genuine_sorted.size
            if genuine_sorted.size
            else t * np.nan
        )
    if t.ndim == 0:
        return float(far), float(frr)
    return np.asarray(far, dtype=float), np.asarray(frr, dtype=float)


def _vline(fig: go.Figure, x: float, name: str, color: str, text: str, dash: str, y: float,
           left: bool = False) -> None:
    """A vertical line with its label beside it: right of the line, or left when ``left`` (near
    the right edge a label to the right was cut: "margin m = (")."""
    fig.add_shape(
        type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper", name=name,
        line=dict(color=color, width=3, dash=dash),
    )  # fmt: skip
    fig.add_annotation(
        x=x, y=y, xref="x", yref="paper", text=text, showarrow=False, name=name,
        font=dict(color=color), xanchor="right" if left else "left", yanchor="top",
        xshift=-4 if left else 4, bgcolor="rgba(255,255,255,0.7)",
    )  # fmt: skip


def _label_left(x: float, low: float, high: float) -> bool:
    """Labels of lines in the right third of the axis go to the left of their line."""
    return x > low + 0.62 * (high - low)


def _side(x: float, low: float, high: float, prefer_left: bool) -> bool:
    """Label left of its line? ``prefer_left`` unless an edge leaves no room: a label needs
    about a third of a half-page plot (left of a pair at E = 0.14 it printed "air: E = 0.144")."""
    if x < low + 0.38 * (high - low):
        return False
    return True if _label_left(x, low, high) else prefer_left


def _threshold_text(threshold: float, genuine: np.ndarray, impostor: np.ndarray) -> str:
    far, frr = far_frr_at(threshold, genuine, impostor)
    rates = "" if math.isnan(far) or math.isnan(frr) else f"<br>FAR {far:.1%} · FRR {frr:.1%}"
    return f"threshold τ = {threshold:.3g}{rates}"


def _threshold_slider(fig: go.Figure, steps: Sequence[float], start: float,
                      genuine: np.ndarray, impostor: np.ndarray, presenter: bool) -> None:
    """A plotly slider that moves the threshold line in the browser: each step is a relayout
    of the line and of its label, with FAR and FRR precomputed here, so moving it needs no
    round trip to the server (it took 1-2 s as a Streamlit slider)."""
    shape = next(k for k, s in enumerate(fig.layout.shapes) if s.name == "threshold")
    note = next(k for k, a in enumerate(fig.layout.annotations) if a.name == "threshold")
    values = sorted({float(t) for t in steps if math.isfinite(float(t))})
    if not values:
        return
    active = int(np.argmin([abs(t - start) for t in values]))
    low, high = fig.layout.xaxis.range
    # Below the legend (call this after _legend_below): the figure grows by the slider's
    # height, so the plot keeps its size.
    scale = PRESENTER_SCALE if presenter else 1.0
    extra, bottom = round(95 * scale), fig.layout.margin.b or 0
    height = (fig.layout.height or 440) + extra
    plot_height = max(height - (fig.layout.margin.t or 0) - bottom - extra, 40)
    fig.update_layout(height=height, margin=dict(b=bottom + extra))
    fig.update_layout(sliders=[dict(
        active=active, x=0, len=1.0, y=-bottom / plot_height, yanchor="top", pad=dict(t=0),
        currentvalue=dict(prefix="threshold τ = ", font=dict(color=COLORS["threshold"])),
        steps=[dict(label=f"{t:.3g}", method="relayout", args=[{
            f"shapes[{shape}].x0": t, f"shapes[{shape}].x1": t,
            f"annotations[{note}].x": t,
            f"annotations[{note}].text": _threshold_text(t, genuine, impostor),
            f"annotations[{note}].xanchor": "right" if _label_left(t, low, high) else "left",
            f"annotations[{note}].xshift": -4 if _label_left(t, low, high) else 4,
        }]) for t in values],
    )])  # fmt: skip


def energy_histogram(
    genuine: Sequence[float],
    impostor: Sequence[float],
    margin: float | None = None,
    threshold: float | None = None,
    dprime: float | None = None,
    eer: float | None = None,
    pair_energy: float | None = None,
    *,
    bins: int = 40,
    density: bool = True,
    x_range: tuple[float, float] | None = None,
    title: str = "Genuine vs impostor energies",
    energy_label: str = "energy E (distance)",
    presenter: bool = False,
    height: int = 440,
    threshold_steps: Sequence[float] | None = None,
) -> go.Figure:
    """Overlaid histograms of genuine and impostor energies on shared bins.

    The grey hatched area is the overlap (min of the two densities): the pairs no threshold can
    separate. The margin m of the loss and the decision threshold are vertical lines; d′ and EER
    are printed; `pair_energy` marks one pair (the verify page). Pass a fixed `x_range` to keep
    the axis still while an epoch slider moves. `threshold_steps` (with `threshold`) adds a
    slider under the plot that moves the threshold in the browser (:func:`_threshold_slider`).
    """
    g, i = _finite(_as_1d(genuine)), _finite(_as_1d(impostor))
    both = np.concatenate([g, i])
    extra = [v for v in (margin, threshold, pair_energy) if v is not None and math.isfinite(v)]
    if x_range is not None:
        low, high = float(x_range[0]), float(x_range[1])
    elif both.size:
        low, high = float(both.min()), float(both.max())
        if extra:
            low, high = min(low, *extra), max(high, *extra)
        low = min(low, 0.0) if low >= 0 and low < 0.15 * max(high, 1e-12) else low
    else:
        low, high = 0.0, max([1.0, *extra])
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    centers, width = 0.5 * (edges[:-1] + edges[1:]), edges[1] - edges[0]
    norm = "probability density" if density else ""

    def counts(values: np.ndarray) -> np.ndarray:
        hist, _ = np.histogram(np.clip(values, low, high), bins=edges)
        if density and values.size:
            return hist / (values.size * width)
        return hist.astype(float)

    fig = go.Figure()
    g_hist, i_hist = counts(g), counts(i)
    for name, hist, values in (("genuine", g_hist, g), ("impostor", i_hist, i)):
        fig.add_trace(
            go.Bar(
                x=centers, y=hist, width=width, name=f"{name} ({values.size})",
                marker=dict(color=COLORS[name], line=dict(width=0)), opacity=0.55,
                hovertemplate=f"{name}<br>E ≈ %{{x:.3g}}<br>%{{y:.3g}}<extra></extra>",
            )
        )  # fmt: skip
    overlap = np.minimum(g_hist, i_hist)
    if g.size and i.size and overlap.any():
        step_x = np.repeat(edges, 2)[1:-1]
        step_y = np.repeat(overlap, 2)
        fig.add_trace(
            go.Scatter(
                x=step_x, y=step_y, name="overlap", mode="lines", fill="tozeroy",
                line=dict(color=COLORS["overlap"], width=1),
                fillpattern=dict(shape="/", fgcolor=COLORS["overlap"], bgcolor="rgba(0,0,0,0)"),
                hoverinfo="skip",
            )
        )  # fmt: skip
    if margin is not None and math.isfinite(margin):
        _vline(fig, margin, "margin", COLORS["margin"], f"margin m = {margin:.3g}", "dash", 1.0,
               left=_label_left(margin, low, high))
    has_threshold = threshold is not None and math.isfinite(threshold)
    has_pair = pair_energy is not None and math.isfinite(pair_energy)
    if has_threshold:
        # With "this pair" beside it, the two labels go to opposite sides of their lines where
        # there is room (they also sit at different heights, so near an edge both may share one).
        left = (_side(threshold, low, high, pair_energy > threshold) if has_pair
                else _label_left(threshold, low, high))
        _vline(fig, threshold, "threshold", COLORS["threshold"],
               _threshold_text(threshold, g, i), "solid", 0.86, left=left)
    if has_pair:
        left = (_side(pair_energy, low, high, pair_energy < threshold) if has_threshold
                else _label_left(pair_energy, low, high))
        _vline(fig, pair_energy, "pair", COLORS["accent"], f"this pair: E = {pair_energy:.3g}",
               "dot", 0.5, left=left)  # fmt: skip
    stats = []
    if dprime is not None and math.isfinite(dprime):
        stats.append(f"d′ = {dprime:.2f}")
    if eer is not None and math.isfinite(eer):
        stats.append(f"EER = {eer:.1%}")
    scale = PRESENTER_SCALE if presenter else 1.0
    if stats:
        # Its own row between the title and the plot: inside the plot, at the top right, it sat
        # on the margin line's label whenever the margin fell in the right half.
        fig.add_annotation(
            text=" · ".join(stats), xref="paper", yref="paper", x=0, y=1, showarrow=False,
            xanchor="left", yanchor="bottom", yshift=4, name="stats",
            font=dict(size=round((BASE_FONT + 1) * scale), color="#444"),
        )  # fmt: skip
    fig.update_layout(title=dict(text=title), barmode="overlay", bargap=0)
    fig.update_xaxes(title_text=energy_label, range=[low, high])
    fig.update_yaxes(title_text="density" if norm else "pairs")
    if both.size == 0:
        _note(fig, "No pairs to draw yet")
    elif g.size == 0 or i.size == 0:
        _note(fig, "Only " + ("impostor" if g.size == 0 else "genuine") + " pairs here")
    style(fig, presenter, height=height)
    if stats:
        fig.update_layout(margin=dict(t=round(88 * scale)))
    _legend_below(fig, presenter)
    if threshold_steps is not None and has_threshold:
        _threshold_slider(fig, threshold_steps, threshold, g, i, presenter)
    return fig


# --------------------------------------------------------------------------------------------
# ROC and comparison


def roc_curves(
    curves: Sequence[Mapping[str, object]],
    log_far: bool = False,
    *,
    title: str = "ROC: verification of unseen identities",
    presenter: bool = False,
) -> go.Figure:
    """ROC curves overlaid: x = FAR (false accept rate), y = TAR = 1 − FRR.

    Each curve is a dict with name, fpr, tpr and optionally auc, eer, color (the run's colour in
    the page's other figures: :func:`series_color`) and key (what identifies it: a run id; two
    runs may share a name); the EER point (where FAR = FRR) is marked on its curve. `log_far`
    shows the low-FAR end that face verification cares about (TAR at FAR = 1e-3).
    """
    fig = go.Figure()
    smallest = 1.0
    for k, curve in enumerate(curves):
        color = str(curve.get("color") or series_color(k))
        fpr, tpr = _as_1d(curve.get("fpr")), _as_1d(curve.get("tpr"))
        label = str(curve.get("name", f"run {k + 1}"))
        group = str(curve.get("key", f"curve-{k}"))
        auc, eer = curve.get("auc"), curve.get("eer")
        parts = []
        if auc is not None and math.isfinite(float(auc)):
            parts.append(f"AUC {float(auc):.3f}")
        if eer is not None and math.isfinite(float(eer)):
            parts.append(f"EER {float(eer):.1%}")
        full = f"{label} ({', '.join(parts)})" if parts else label
        if log_far:
            keep = fpr > 0
            fpr, tpr = fpr[keep], tpr[keep]
        if fpr.size:
            smallest = min(smallest, float(fpr.min()))
        fig.add_trace(
            go.Scatter(
                x=fpr, y=tpr, name=full, mode="lines", legendgroup=group,
                line=dict(color=color, width=3), hovertemplate="FAR %{x:.2g}<br>TAR %{y:.3f}",
            )
        )  # fmt: skip
        if eer is not None and math.isfinite(float(eer)) and (not log_far or float(eer) > 0):
            fig.add_trace(
                go.Scatter(
                    x=[float(eer)], y=[1 - float(eer)], mode="markers", legendgroup=group,
                    name=f"EER {label}", showlegend=False,
                    marker=dict(color=color, size=12, symbol="x", line=dict(width=1)),
                    hovertemplate="EER %{x:.1%}<extra>" + label + "</extra>",
                )
            )  # fmt: skip
    low = max(min(smallest, 1e-3), 1e-6)
    diagonal = np.logspace(np.log10(low), 0, 50) if log_far else np.array([0.0, 1.0])
    fig.add_trace(
        go.Scatter(
            x=diagonal, y=diagonal, name="chance", mode="lines", hoverinfo="skip",
            line=dict(color=COLORS["chance"], dash="dash", width=2),
        )
    )  # fmt: skip
    fig.update_layout(title=dict(text=title))
    if log_far:
        fig.update_xaxes(type="log", range=[math.log10(low), 0], title_text="FAR (log scale)")
    else:
        fig.update_xaxes(range=[0, 1], title_text="FAR (false accept rate)")
    fig.update_yaxes(range=[0, 1.01], title_text="TAR (true accept rate)")
    if not curves:
        _note(fig, "Select one or more runs")
    style(fig, presenter, height=420)
    return _legend_rows_below(fig, len(curves) + 1, presenter)


def _legend_rows_below(fig: go.Figure, entries: int, presenter: bool = False) -> go.Figure:
    """A legend of one entry per row under the x axis title, the figure grown to hold it, so
    the plot keeps its size (inside the plot, the ROC legend covered the curves)."""
    scale = PRESENTER_SCALE if presenter else 1.0
    row = round((BASE_FONT + 16) * scale)  # plotly's row for one legend entry, measured
    below = round(70 * scale)  # the x axis and its title
    extra = row * entries + round(10 * scale)
    plot_height = max((fig.layout.height or 450) - (fig.layout.margin.t or 0)
                      - (fig.layout.margin.b or 0), 40)
    fig.update_layout(
        height=(fig.layout.height or 450) + below + extra - (fig.layout.margin.b or 0),
        margin=dict(b=below + extra),
        legend=dict(orientation="v", yanchor="top", y=-below / plot_height, xanchor="left", x=0),
    )
    return fig


def sweep_plot(
    rows: Sequence[Mapping[str, object]],
    metric: str = "eer",
    *,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
    presenter: bool = False,
) -> go.Figure:
    """A metric against the margin, one line per loss: "as the loss and margin are varied".

    `colors` maps a line (its "loss" value) to the colour the page gives it elsewhere."""
    labels = {"eer": "EER (lower is better)", "auc": "AUC (higher is better)"}
    by_loss: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        value = row.get(metric)
        if value is None:
            continue
        by_loss.setdefault(str(row.get("loss", "?")), []).append(
            (float(row["margin"]), float(value))
        )
    fig = go.Figure()
    for k, (loss, pairs) in enumerate(sorted(by_loss.items())):
        pairs.sort()
        color = (colors or {}).get(loss) or series_color(k)
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pairs], y=[p[1] for p in pairs], name=loss,
                mode="lines+markers", line=dict(color=color, width=3),
                marker=dict(size=9),
            )
        )  # fmt: skip
    fig.update_layout(title=dict(text=title or f"{metric.upper()} vs margin"))
    fig.update_xaxes(title_text="margin m")
    fig.update_yaxes(title_text=labels.get(metric, metric))
    if metric in ("eer", "auc"):
        values = [v for pairs in by_loss.values() for _, v in pairs]
        digits = _tick_digits(values, percent=metric == "eer")
        fig.update_yaxes(tickformat=f".{digits}~%" if metric == "eer" else f".{digits}~f")
    if not by_loss:
        _note(fig, "No finished sweep runs yet")
    return style(fig, presenter, height=400)


def lesson_variants_plot(
    labels: Sequence[str],
    live: Mapping[str, float | None],
    spread: Mapping[str, Mapping[str, float] | None] | None = None,
    metric: str = "eer",
    *,
    seeds: int | None = None,
    colors: Mapping[str, str] | None = None,
    presenter: bool = False,
) -> go.Figure:
    """One lesson's figure per variant: today's live run (a coloured dot per variant) beside the
    spread the bench measured over seeds (grey: mean, bar ± one standard deviation, a thin bar
    min to max), so a class sees at once whether today's run sits inside the usual range."""
    names = {"eer": "EER (lower is better)", "active_fraction": "active triplets",
             "auc": "AUC (higher is better)"}
    fig = go.Figure()
    for k, label in enumerate(labels):
        value = live.get(label)
        if value is None:
            continue
        fig.add_trace(go.Scatter(
            x=[k - 0.12], y=[float(value)], mode="markers", name=label,
            marker=dict(size=12, color=(colors or {}).get(label) or series_color(k)),
            showlegend=False, hovertemplate=f"{label}, today: %{{y}}<extra></extra>"))
    measured = [(k, (spread or {}).get(label)) for k, label in enumerate(labels)]
    measured = [(k, s) for k, s in measured if s]
    if measured:
        name = f"{seeds} seeds: mean ± std" if seeds else "over seeds: mean ± std"
        fig.add_trace(go.Scatter(
            x=[k + 0.12 for k, _ in measured], y=[s["mean"] for _, s in measured],
            mode="markers", name=name, marker=dict(size=10, color="#6b7280", symbol="diamond"),
            error_y=dict(type="data", array=[s["std"] for _, s in measured], color="#6b7280",
                         thickness=2, width=6)))
        fig.add_trace(go.Scatter(
            x=[k + 0.12 for k, _ in measured for _ in (0, 1, 2)],
            y=[v for _, s in measured for v in (s["min"], s["max"], None)],
            mode="lines", name="min to max", line=dict(color="#9ca3af", width=1)))
    fig.update_xaxes(title_text="variant", tickmode="array", tickvals=list(range(len(labels))),
                     ticktext=list(labels), range=[-0.5, len(labels) - 0.5])
    fig.update_yaxes(title_text=names.get(metric, metric))
    if metric in ("eer", "active_fraction"):
        values = [float(v) for v in live.values() if v is not None]
        values += [s[key] for _, s in measured for key in ("min", "max")]
        fig.update_yaxes(tickformat=f".{_tick_digits(values or [0.0], percent=True)}~%")
    title = names.get(metric, metric).split(" (")[0]
    title = title[:1].upper() + title[1:]
    over = f"{seeds} seeds" if seeds else "seeds"
    fig.update_layout(title=dict(text=f"{title} per variant<br><sup>today (colour) · {over} "
                                      "(grey)</sup>"),
                      legend=dict(orientation="h", y=-0.25))
    return style(fig, presenter, height=400)


def _tick_digits(values: Sequence[float], percent: bool) -> int:
    """Decimals a tick label needs to tell ticks apart: plotly puts about five ticks over the
    span, so one tick step is span / 5. Rounded to ".0%" an EER axis from 18.2 % to 19.4 % read
    "19 %, 19 %, 18 %, 18 %"."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    span = (max(finite) - min(finite)) if len(finite) > 1 else 0.0
    step = span * (100 if percent else 1) / 5
    if step <= 0:
        return 1 if percent else 2
    return int(min(4, max(0, math.ceil(-math.log10(step)))))


# --------------------------------------------------------------------------------------------
# Margin geometry (Chopra, Hadsell & LeCun 2005)


def _arrow_segments(
    x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, cell: float
) -> tuple[list[float | None], list[float | None]]:
    """Line segments (shaft + two head strokes, None-separated) for a quiver of (u, v) at (x, y).

    Length ∝ √|(u, v)| so both the steep and the nearly flat parts of the field stay visible;
    the longest arrow is 0.9 cell.
    """
    magnitude = np.hypot(u, v)
    top = np.nanmax(magnitude) if magnitude.size and np.isfinite(magnitude).any() else 0.0
    xs: list[float | None] = []
    ys: list[float | None] = []
    if not top > 0:
        return xs, ys
    for x0, y0, du, dv, mag in zip(x, y, u, v, magnitude, strict=True):
        if not (np.isfinite(mag) and mag > 0):
            continue
        length = 0.9 * cell * math.sqrt(mag / top)
        ux, uy = du / mag, dv / mag
        x1, y1 = x0 + ux * length, y0 + uy * length
        head = 0.35 * length
        # two strokes at ±25° back from the tip
        for angle in (0.436, -0.436):
            c, s = math.cos(angle), math.sin(angle)
            hx, hy = -(ux * c - uy * s), -(ux * s + uy * c)
            xs += [x1, x1 + hx * head, None]
            ys += [y1, y1 + hy * head, None]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return xs, ys


def _above_line_in_box(
    offset: float, x_low: float, x_high: float, y_low: float, y_high: float
) -> tuple[list[float], list[float]]:
    """Polygon of {y >= x + offset} inside the box (Sutherland-Hodgman against one edge)."""
    box = [(x_low, y_low), (x_high, y_low), (x_high, y_high), (x_low, y_high)]
    inside = [y - x - offset >= 0 for x, y in box]
    out: list[tuple[float, float]] = []
    for k, (point, keep) in enumerate(zip(box, inside, strict=True)):
        nxt, keep_next = box[(k + 1) % 4], inside[(k + 1) % 4]
        if keep:
            out.append(point)
        if keep != keep_next:
            (x0, y0), (x1, y1) = point, nxt
            f0, f1 = y0 - x0 - offset, y1 - x1 - offset
            t = f0 / (f0 - f1)
            out.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
    return [p[0] for p in out], [p[1] for p in out]


def geometry_plane(
    e_genuine: np.ndarray,
    e_impostor: np.ndarray,
    energy_h: np.ndarray,
    gradient: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
    margin: float,
    points: tuple[np.ndarray, np.ndarray] | None = None,
    condition1_share: float | None = None,
    title: str = "H(E_G, E_I)",
    *,
    log_h: bool | None = None,
    presenter: bool = False,
) -> go.Figure:
    """The (E_G, E_I) plane of Chopra et al. 2005 for one loss.

    - contours of H(E_G, E_I) = L_G(E_G) + L_I(E_I); `energy_h[i, j]` is H at
      (E_G = e_genuine[j], E_I = e_impostor[i]), i.e. evaluated on np.meshgrid(e_genuine,
      e_impostor);
    - the margin line E_I = E_G + m, and the half-plane above it (condition 1 holds there) shaded;
    - arrows of −∇H: `gradient = (E_G, E_I, ∂H/∂E_G, ∂H/∂E_I)` arrays of one shape (a coarser
      grid); the figure negates the gradient itself;
    - the run's (genuine, impostor) energy pairs as points, split into those that satisfy
      condition 1 (E_G + m < E_I) and those that do not, with the share printed.
    `log_h` contours log10(H) (auto when H ≥ 0 spans more than three decades).
    """
    eg, ei = _as_1d(e_genuine), _as_1d(e_impostor)
    h = np.asarray(energy_h, dtype=float)
    if h.shape != (ei.size, eg.size):
        raise ValueError(
            f"energy_h has shape {h.shape}; expected (len(e_impostor), len(e_genuine)) = "
            f"({ei.size}, {eg.size}), as np.meshgrid(e_genuine, e_impostor) gives"
        )
    finite_h = _finite(h.reshape(-1))
    if log_h is None:
        log_h = bool(
            finite_h.size
            and finite_h.min() >= 0
            and finite_h.max() > 1e3 * max(np.median(finite_h), 1e-12)
        )
    z = np.log10(np.maximum(h, 1e-12)) if log_h else h
    x_low, x_high = float(eg.min()), float(eg.max())
    y_low, y_high = float(ei.min()), float(ei.max())
    fig = go.Figure()
    fig.add_trace(
        go.Contour(
            x=eg, y=ei, z=z, name="H", colorscale=H_COLORSCALE, ncontours=24,
            contours=dict(coloring="heatmap", showlines=True), line=dict(width=0.6),
            colorbar=dict(title=dict(text="log₁₀ H" if log_h else "H"), thickness=14),
            hovertemplate="E_G %{x:.3g}<br>E_I %{y:.3g}<br>H %{z:.3g}<extra></extra>",
            opacity=0.9,
        )
    )  # fmt: skip
    # Half-plane E_I > E_G + m, clipped to the drawn box.
    line_x = np.array([x_low, x_high])
    line_y = line_x + margin
    polygon_x, polygon_y = _above_line_in_box(margin, x_low, x_high, y_low, y_high)
    fig.add_trace(
        go.Scatter(
            x=polygon_x, y=polygon_y, fill="toself", mode="none", name="E_G + m < E_I",
            fillcolor="rgba(0,158,115,0.20)", hoverinfo="skip",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=line_x, y=line_y, mode="lines", name=f"margin line E_I = E_G + {margin:.3g}",
            line=dict(color=COLORS["margin"], width=4, dash="dash"), hoverinfo="skip",
        )
    )  # fmt: skip
    if gradient is not None:
        g_x, g_y, d_g, d_i = (np.asarray(a, dtype=float).reshape(-1) for a in gradient)
        cells = [np.diff(np.unique(g_x)), np.diff(np.unique(g_y))]
        cell = min([float(c.min()) for c in cells if c.size] or [0.1 * (x_high - x_low)])
        xs, ys = _arrow_segments(g_x, g_y, -d_g, -d_i, cell)
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", name="−∇H", hoverinfo="skip",
                line=dict(color="#1A1A1A", width=1.5),
            )
        )  # fmt: skip
    if points is not None:
        p_g, p_i = _as_1d(points[0]), _as_1d(points[1])
        ok = p_g + margin < p_i
        for mask, label, color in ((ok, "pairs with E_G + m < E_I", COLORS["satisfies"]),
                                   (~ok, "pairs violating it", COLORS["violates"])):  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=p_g[mask], y=p_i[mask], mode="markers", name=label,
                    marker=dict(color=color, size=7, line=dict(width=0.8, color="white")),
                    hovertemplate="E_G %{x:.3g}<br>E_I %{y:.3g}",
                )
            )  # fmt: skip
        if condition1_share is None and p_g.size:
            condition1_share = float(ok.mean())
    if condition1_share is not None and math.isfinite(condition1_share):
        fig.add_annotation(
            text=f"{condition1_share:.0%} of pairs satisfy condition 1 (E_G + m < E_I)",
            xref="paper", yref="paper", x=0.01, y=0.99, xanchor="left", yanchor="top",
            showarrow=False, bgcolor="rgba(255,255,255,0.85)", name="condition1",
        )  # fmt: skip
    fig.update_layout(
        title=dict(text=title),
        legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0),
    )  # fmt: skip
    fig.update_xaxes(title_text="E_G (genuine pair energy)", range=[x_low, x_high],
                     constrain="domain")  # fmt: skip
    fig.update_yaxes(title_text="E_I (impostor pair energy)", range=[y_low, y_high],
                     scaleanchor="x", scaleratio=1, constrain="domain")  # fmt: skip
    return style(fig, presenter, height=600)


def triplet_regions(d_ap: np.ndarray, d_an: np.ndarray, alpha: float) -> np.ndarray:
    """Region of each triplet (FaceNet, Schroff et al. 2015): "hard" when d(a,n) <= d(a,p),
    "easy" when d(a,n) >= d(a,p) + α (zero loss), "semi-hard" in between (as
    lab.metric.geometry)."""
    ap, an = _as_1d(d_ap), _as_1d(d_an)
    return np.where(an <= ap, "hard", np.where(an < ap + alpha, "semi-hard", "easy"))


def triplet_plane(
    d_ap: Sequence[float] | None,
    d_an: Sequence[float] | None,
    alpha: float,
    *,
    extent: float | None = None,
    title: str = "Triplets: d(a,p) vs d(a,n)",
    presenter: bool = False,
) -> go.Figure:
    """The triplet plane: x = d(a,p), y = d(a,n), the hinge line d(a,n) = d(a,p) + α.

    Regions: hard (below the diagonal, the negative is closer than the positive), semi-hard
    (between the diagonal and the hinge line: still a loss, but ordered right), easy (above the
    line: zero loss, zero gradient). The run's mined triplets are drawn as points.
    """
    ap, an = _as_1d(d_ap), _as_1d(d_an)
    data_max = float(np.max(np.concatenate([ap, an]))) if ap.size + an.size else 0.0
    side = extent if extent is not None else max(1.05 * data_max, 1.5 * alpha, 1e-3)
    a = min(alpha, side)
    regions = {
        "hard": ([0, side, side], [0, 0, side]),
        "semi-hard": ([0, side, side, max(side - a, 0), 0], [0, side, side, side, a]),
        "easy": ([0, 0, max(side - a, 0)], [a, side, side]),
    }
    fig = go.Figure()
    for name, (xs, ys) in regions.items():
        color = COLORS[name]
        red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, fill="toself", mode="none", name=name, hoverinfo="name",
                fillcolor=f"rgba({red},{green},{blue},0.22)",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[0, side], y=[0, side], mode="lines", name="d(a,n) = d(a,p)", hoverinfo="skip",
            line=dict(color="#555555", width=2, dash="dot"),
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[0, max(side - a, 0)], y=[a, side], mode="lines", hoverinfo="skip",
            name=f"d(a,n) = d(a,p) + α  (α = {alpha:.3g})",
            line=dict(color=COLORS["margin"], width=4, dash="dash"),
        )
    )  # fmt: skip
    if ap.size and an.size:
        kinds = triplet_regions(ap, an, alpha)
        fig.add_trace(
            go.Scatter(
                x=ap, y=an, mode="markers", name="mined triplets", text=kinds,
                marker=dict(color="#1A1A1A", size=6, opacity=0.7),
                hovertemplate="d(a,p) %{x:.3g}<br>d(a,n) %{y:.3g}<br>%{text}<extra></extra>",
            )
        )  # fmt: skip
        shares = " · ".join(f"{k} {np.mean(kinds == k):.0%}" for k in ("hard", "semi-hard", "easy"))
        fig.add_annotation(
            text=shares, xref="paper", yref="paper", x=0.01, y=0.99, xanchor="left",
            yanchor="top", showarrow=False, bgcolor="rgba(255,255,255,0.85)", name="shares",
        )  # fmt: skip
    fig.update_layout(title=dict(text=title))
    fig.update_xaxes(title_text="d(a,p) anchor–positive energy", range=[0, side],
                     constrain="domain")  # fmt: skip
    fig.update_yaxes(title_text="d(a,n) anchor–negative energy", range=[0, side],
                     scaleanchor="x", scaleratio=1, constrain="domain")  # fmt: skip
    return style(fig, presenter, height=560)


def plateau_plot(
    energies: Sequence[float],
    grad_l1: Sequence[float],
    grad_sq: Sequence[float],
    *,
    title: str = "Gradient of the impostor term vs energy",
    log_y: bool = False,
    presenter: bool = False,
) -> go.Figure:
    """Chopra 2005's plateau argument: with the squared L2 energy the gradient that pushes an
    impostor pair apart vanishes as its energy goes to zero, so collapsed impostors stay
    collapsed; with the L1 energy it does not."""
    e = _as_1d(energies)
    fig = go.Figure()
    for name, values, color, dash in (
        ("L1 energy", grad_l1, COLORS["margin"], "solid"),
        ("squared L2 energy", grad_sq, COLORS["impostor"], "dash"),
    ):
        fig.add_trace(
            go.Scatter(
                x=e, y=np.abs(_as_1d(values)), name=name, mode="lines",
                line=dict(color=color, width=4, dash=dash),
            )
        )  # fmt: skip
    fig.update_layout(title=dict(text=title), hovermode="x unified")
    fig.update_xaxes(title_text="energy of the impostor pair")
    fig.update_yaxes(title_text="|gradient| pushing the pair apart", type="log" if log_y else None)
    return style(fig, presenter, height=380)


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


# --------------------------------------------------------------------------------------------
# Export


def figure_to_html(fig: go.Figure) -> bytes:
    """A self-contained interactive HTML page of the figure (plotly.js inlined: works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")


_PNG_PROBLEM: str | None = None


def png_export_problem() -> str | None:
    """Why PNG export failed last time (None when it works or was not tried), for the page."""
    return _PNG_PROBLEM


def _find_chrome() -> str | None:
    import os
    import shutil

    for candidate in (os.environ.get("BROWSER_PATH"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome"), shutil.which("chrome")):  # fmt: skip
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_PNG_LOCK = threading.Lock()  # kaleido's sync server answers one request at a time, in order
_png_server_started = False


def figure_to_png(
    fig: go.Figure,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
    keep_browser: bool = True,
) -> bytes | None:
    """The figure as PNG bytes through kaleido (which drives a headless Chrome/Chromium), or None
    when no browser or kaleido is available; `png_export_problem()` then says why.

    kaleido 1.x does not ship a browser: we point it at Debian's /usr/bin/chromium (or
    $BROWSER_PATH) rather than let it download one, so this works offline. `keep_browser` keeps
    one headless browser running after the first export (about 7 s to start on a 2-core CPU,
    then well under a second per figure); calls are serialised by a lock.
    """
    global _PNG_PROBLEM, _png_server_started
    import os

    chrome = _find_chrome()
    if chrome is None:
        _PNG_PROBLEM = "no Chrome/Chromium found (install chromium or set BROWSER_PATH)"
        return None
    os.environ.setdefault("BROWSER_PATH", chrome)
    size = dict(width=width or fig.layout.width or 900, height=height or fig.layout.height or 520)
    with _PNG_LOCK:
        try:
            if keep_browser and not _png_server_started:
                import kaleido

                kaleido.start_sync_server(silence_warnings=True)
                _png_server_started = True
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "kopts ignored when using a server"
                data = fig.to_image(format="png", scale=scale, **size)
        except Exception as error:  # kaleido raises many kinds; any of them means "no PNG"
            _PNG_PROBLEM = f"PNG export failed: {type(error).__name__}: {error}"[:300]
            return None
    _PNG_PROBLEM = None
    return data


# --------------------------------------------------------------------------------------------
# Miner inspector


def miner_plane(
    before: np.ndarray,
    after: np.ndarray | None,
    boundary,
    *,
    x_label: str,
    y_label: str,
    margin_label: str,
    arrows: Sequence[int] | None = None,
    title: str = "The batch on the margin plane",
    presenter: bool = False,
) -> go.Figure:
    """Mined items of one batch on a plane with the loss's margin line (lab.views.inspector).

    ``before``/``after`` are [T, 2] coordinates of the same items before and after one Step;
    ``boundary(x)`` is the margin line's y. Shading: hard (below the diagonal), semi-hard
    (between the diagonal and the line), easy (beyond the line), in the colours of the triplet
    plane. Points are coloured by their region before the Step; ``arrows`` (item indices) get a
    line to where the Step moved them, and the moved points are drawn as open circles.
    """
    first = np.asarray(before, dtype=float).reshape(-1, 2)
    second = None if after is None else np.asarray(after, dtype=float).reshape(-1, 2)
    values = first if second is None else np.concatenate([first, second])
    values = values[np.isfinite(values).all(axis=1)]
    side = float(values.max()) * 1.08 if values.size else 1.0
    side = max(side, 1e-3)
    xs = np.linspace(0.0, side, 200)
    line = np.asarray(boundary(xs), dtype=float)
    fig = go.Figure()

    def shade(name: str, x, y) -> None:
        red, green, blue = (int(COLORS[name][i : i + 2], 16) for i in (1, 3, 5))
        fig.add_trace(go.Scatter(x=x, y=y, fill="toself", mode="none", name=name,
                                 hoverinfo="skip", fillcolor=f"rgba({red},{green},{blue},0.16)",
                                 showlegend=False))  # fmt: skip

    shade("hard", [0, side, side, 0], [0, 0, side, 0])
    inside = line <= side
    exit_x = float(xs[inside][-1]) if inside.any() else 0.0  # where the line leaves the top
    shade("semi-hard", np.concatenate([[0.0, side, exit_x], xs[inside][::-1]]),
          np.concatenate([[0.0, side, side], line[inside][::-1]]))
    if inside.any():
        shade("easy", np.concatenate([xs[inside], [exit_x, 0.0]]),
              np.concatenate([line[inside], [side, side]]))
    fig.add_trace(go.Scatter(x=[0, side], y=[0, side], mode="lines", hoverinfo="skip",
                             name="diagonal (hard below)",
                             line=dict(color="#555555", width=1.5, dash="dot")))  # fmt: skip
    fig.add_trace(go.Scatter(x=xs[inside], y=line[inside], mode="lines", hoverinfo="skip",
                             name=margin_label,
                             line=dict(color=COLORS["margin"], width=4, dash="dash")))  # fmt: skip
    kinds = np.where(first[:, 1] <= first[:, 0], "hard",
                     np.where(first[:, 1] < np.asarray(boundary(first[:, 0])), "semi-hard",
                              "easy"))  # fmt: skip
    index = np.arange(len(first))
    for name in ("easy", "semi-hard", "hard"):
        mask = kinds == name
        if not mask.any():
            continue
        fig.add_trace(go.Scattergl(
            x=first[mask, 0], y=first[mask, 1], mode="markers", name=f"{name} ({mask.mean():.0%})",
            customdata=index[mask],
            marker=dict(color=COLORS[name], size=6, opacity=0.75,
                        line=dict(width=0.5, color="#FFFFFF")),
            hovertemplate=f"{name}<br>x %{{x:.3g}}<br>y %{{y:.3g}}<br>item %{{customdata}}"
                          "<extra>before the Step</extra>"))  # fmt: skip
    chosen = [int(k) for k in (arrows if arrows is not None else []) if 0 <= int(k) < len(first)]
    if second is not None and chosen:
        lx: list[float | None] = []
        ly: list[float | None] = []
        for k in chosen:
            lx += [first[k, 0], second[k, 0], None]
            ly += [first[k, 1], second[k, 1], None]
        fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name="one Step moves it",
                                 hoverinfo="skip",
                                 line=dict(color=COLORS["accent"], width=2)))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=second[chosen, 0], y=second[chosen, 1], mode="markers", name="after the Step",
            customdata=chosen,
            marker=dict(symbol="circle-open", size=10, color=COLORS["accent"],
                        line=dict(width=2.5)),
            hovertemplate="after<br>x %{x:.3g}<br>y %{y:.3g}<br>item %{customdata}"
                          "<extra></extra>"))  # fmt: skip
    if first.size == 0:
        _note(fig, "The miner gave the loss nothing in this batch")
    fig.update_layout(title=dict(text=title))
    fig.update_xaxes(title_text=x_label, range=[0, side], constrain="domain")
    fig.update_yaxes(title_text=y_label, range=[0, side], scaleanchor="x", scaleratio=1,
                     constrain="domain")  # fmt: skip
    return _legend_below(style(fig, presenter, height=560), presenter)


def region_shares_bar(
    before: Mapping[str, float],
    after: Mapping[str, float] | None = None,
    *,
    title: str = "Share of the mined items",
    presenter: bool = False,
) -> go.Figure:
    """Stacked horizontal bars: the share of hard / semi-hard / easy items, before and after."""
    rows = [("before the Step", before)] + ([("after the Step", after)] if after else [])
    fig = go.Figure()
    for name in ("hard", "semi-hard", "easy"):
        fig.add_trace(go.Bar(
            y=[r for r, _ in rows], x=[100 * float(s.get(name, 0.0)) for _, s in rows],
            name=name, orientation="h", marker_color=COLORS[name],
            text=[f"{100 * float(s.get(name, 0.0)):.0f}%" for _, s in rows],
            textposition="inside", hovertemplate=f"{name} %{{x:.1f}}%<extra></extra>"))  # fmt: skip
    fig.update_layout(barmode="stack", title=dict(text=title))
    fig.update_xaxes(title_text="% of the mined items", range=[0, 100])
    fig.update_yaxes(autorange="reversed")
    return _legend_below(style(fig, presenter, height=300), presenter)
