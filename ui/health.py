"""The health monitor's banner on the Train page (the diagnosis itself is lab.measure.health)."""

from __future__ import annotations

import streamlit as st

from lab.measure.health import diagnose
from ui import icons

ICONS = {"diverged": ":material/error:", "collapse": ":material/compress:",
         "stuck": ":material/block:", "no_active": ":material/bedtime:",
         "exploding": ":material/trending_up:", "overfitting": ":material/target:"}


def health_banner(reports, config) -> list:
    """One line per finding of the run so far (lab.measure.health.diagnose), with its fix; returns
    them.

    Divergence already has its own red box on the page, so it is not repeated here."""
    findings = diagnose([r.record() for r in reports], config)
    for finding in findings:
        if finding.kind == "diverged":
            continue
        st.warning(f"**{finding.message}** Likely fix: {finding.fix}.",
                   icon=ICONS.get(finding.kind, icons.WARNING))
    return findings
