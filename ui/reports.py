"""Download buttons for the self-contained HTML reports of lab.views.report (built only when
clicked)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from ui import icons


def report_button(label: str, make: Callable[[], object], file_name: str, key: str,
                  help: str | None = None) -> None:
    """A download button whose report (a lab.views.report.Report) is made when it is pressed: a
    run's report embeds 2 MB of plotly.js, so it is not rebuilt on every rerun."""

    def build() -> bytes:
        return make().html().encode("utf-8")

    st.download_button(label, build, file_name, "text/html", key=key, on_click="ignore",
                       icon=icons.DOWNLOAD,
                       help=help or "One HTML file with the configuration, the loss, the "
                       "figures of merit, the command that reproduces it and interactive "
                       "figures; it opens offline in any recent browser.")


def run_report_button(store, run_ids: list[str], key: str, label: str = "Report (HTML)"
                      ) -> None:
    from lab.views.report import run_report

    if not run_ids:
        return
    name = run_ids[0] if len(run_ids) == 1 else f"compare-{len(run_ids)}-runs"
    report_button(label, lambda: run_report([store.load(i) for i in run_ids]),
                  f"{name}.html", key=key)
