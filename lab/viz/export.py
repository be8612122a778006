"""Figures out of the app: self-contained HTML, and PNG through kaleido and Chromium."""

from __future__ import annotations

import threading
import warnings

import plotly.graph_objects as go

from lab.viz.style import _PNG_PROBLEM, _png_server_started

# --------------------------------------------------------------------------------------------
# Export


def figure_to_html(fig: go.Figure) -> bytes:
    """A self-contained interactive HTML page of the figure (plotly.js inlined: works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")


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
