"""ROC curves of runs side by side, and a figure of merit against a swept setting."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from lab.viz.style import BASE_FONT, COLORS, PRESENTER_SCALE, _as_1d, _note, series_color, style

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
