"""The style every figure shares: one colour per role, the identity palette, fonts, legends.

Every picture the app draws is made in lab.viz by a pure function (numbers in, a plotly figure
out), so each can be unit-tested without a browser and every page draws the same role in the
same colour: genuine pairs are always blue, impostor pairs always vermillion, the margin always
green, the decision threshold always purple (the Okabe-Ito palette, readable by colour-blind
students). `presenter=True` enlarges fonts and markers for a projector.

Conventions: energy E = distance between two embeddings; a pair is *accepted* as genuine when
E <= threshold (see lab.viz.energies.far_frr_at).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

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


def _label_left(x: float, low: float, high: float) -> bool:
    """Labels of lines in the right third of the axis go to the left of their line."""
    return x > low + 0.62 * (high - low)


def _side(x: float, low: float, high: float, prefer_left: bool) -> bool:
    """Label left of its line? ``prefer_left`` unless an edge leaves no room: a label needs
    about a third of a half-page plot (left of a pair at E = 0.14 it printed "air: E = 0.144")."""
    if x < low + 0.38 * (high - low):
        return False
    return True if _label_left(x, low, high) else prefer_left


_PNG_PROBLEM: str | None = None
_png_server_started = False
