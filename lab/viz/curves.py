"""Training curves: the loss, the share of active pairs and any metric, epoch by epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.viz.style import COLORS, IDENTITY_PALETTE, _as_1d, _legend_below, _note, style

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
