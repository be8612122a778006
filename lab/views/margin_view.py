"""Where a loss's margin is drawn, so that it is drawn where it means something.

The contrastive margin m is an *energy*: an impostor pair with E > m costs nothing, so m is a
line on the energy axis of the genuine/impostor histogram. The triplet margin α is not: the
hinge max(0, d(a,p) − d(a,n) + α) compares two energies sharing an anchor, so an impostor far
beyond α on the energy axis can still be active (when its anchor's positive is farther still),
and one below α can be inactive. α is a line on the *gap* d(a,n) − d(a,p): gaps below 0 are
hard triplets, between 0 and α semi-hard, above α easy (zero loss, zero gradient; FaceNet,
Schroff et al. 2015). ArcFace / CosFace margins are an angle / a cosine between an embedding
and a class centre, neither an energy between two images: no line on either axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from lab.metric.geometry import pair_points
from lab.metric.loss_specs import LOSSES, margin_on_energy_axis
from lab.viz.style import COLORS, style


def energy_margin(loss: str, margin: float) -> float | None:
    """The margin to draw on the energy axis: the margin of a loss whose margin is an energy
    (its spec's ``margin_kind``: the contrastive m); None for every other loss (a triplet's α
    is a gap, drawn on the gap histogram; an ArcFace m is an angle)."""
    return float(margin) if margin_on_energy_axis(loss) else None


def margin_on_gap_axis(loss: str) -> bool:
    """Whether the loss's margin is a gap d(a,n) − d(a,p), drawn on the gap histogram."""
    spec = LOSSES.get(loss)
    return spec is not None and spec.margin_kind == "gap"


def triplet_gaps(energies: np.ndarray, labels: np.ndarray, *, max_points: int = 5000,
                 seed: int = 0) -> np.ndarray:
    """d(a,n) − d(a,p) of (a sample of) every triplet among these images, from their [N, N]
    energy matrix: one genuine and one impostor pair sharing the anchor."""

    points = pair_points(energies, labels, max_points=max_points, seed=seed)
    return points.e_impostor - points.e_genuine


def gap_histogram(gaps: Sequence[float], alpha: float, *, title: str = "Triplet gaps",
                  bins: int = 50, presenter: bool = False, height: int = 360) -> go.Figure:
    """Histogram of the gaps d(a,n) − d(a,p), coloured hard / semi-hard / easy, with the margin
    α and 0 as vertical lines, and the share of each region in the legend."""
    gaps = np.asarray(gaps, dtype=float)
    gaps = gaps[np.isfinite(gaps)]
    fig = go.Figure()
    if gaps.size:
        low, high = min(float(gaps.min()), -0.1 * alpha), max(float(gaps.max()), 1.5 * alpha)
    else:
        low, high = -alpha, 2 * alpha if alpha > 0 else 1.0
    edges = np.linspace(low, high, bins + 1)
    centers, width = 0.5 * (edges[:-1] + edges[1:]), edges[1] - edges[0]
    counts, _ = np.histogram(gaps, bins=edges)
    share = counts / max(gaps.size, 1)
    regions = (("hard", centers < 0), ("semi-hard", (centers >= 0) & (centers < alpha)),
               ("easy", centers >= alpha))
    for name, where in regions:
        total = (np.mean(gaps < 0) if name == "hard" else
                 np.mean((gaps >= 0) & (gaps < alpha)) if name == "semi-hard" else
                 np.mean(gaps >= alpha)) if gaps.size else 0.0
        fig.add_trace(go.Bar(
            x=centers[where], y=share[where], width=width, name=f"{name} {total:.0%}",
            marker=dict(color=COLORS[name], line=dict(width=0)), opacity=0.75,
            hovertemplate=f"{name}<br>gap ≈ %{{x:.3g}}<br>%{{y:.1%}} of triplets<extra></extra>"))
    # the 0 label left of its line, α's right of it: close lines never print on each other
    for x, text, dash, side in ((0.0, "d(a,n) = d(a,p)", "dot", "right"),
                                (alpha, f"α = {alpha:.3g}: loss 0 beyond", "dash", "left")):
        fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper",
                      line=dict(color=COLORS["margin"] if x else "#555555", width=3, dash=dash))
        fig.add_annotation(x=x, y=1, xref="x", yref="paper", text=text, showarrow=False,
                           xanchor=side, yanchor="top", xshift=4 if side == "left" else -4,
                           bgcolor="rgba(255,255,255,0.7)")
    fig.update_layout(title=dict(text=title), barmode="overlay", bargap=0,
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text="gap d(a,n) − d(a,p) of a triplet", range=[low, high])
    fig.update_yaxes(title_text="share of triplets", tickformat=".0%")
    return style(fig, presenter, height=height)
