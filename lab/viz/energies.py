"""Genuine and impostor energy histograms with the margin and the threshold; FAR/FRR at a
threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from lab.viz.style import (
    BASE_FONT,
    COLORS,
    PRESENTER_SCALE,
    _as_1d,
    _finite,
    _label_left,
    _legend_below,
    _note,
    _side,
    style,
)

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
