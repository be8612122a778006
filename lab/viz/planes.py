"""The planes of the margin geometry (Chopra, Hadsell & LeCun 2005): (E_G, E_I), triplets and
the miner's view."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from lab.viz.style import COLORS, H_COLORSCALE, _as_1d, _finite, _legend_below, _note, style

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
