"""Leaderboard of a class challenge: ranked by EER on the hidden people, updating while the
class submits; the teacher hides entries, closes it, downloads the table. Presenter mode draws
it large for the projector."""

from __future__ import annotations

import html

import streamlit as st

import ui
import ui.challenge as challenge_ui
from lab.views import challenge as ch
from lab.views.report import leaderboard_report
from ui import icons
from ui.reports import report_button

st.title(f"{icons.LEADERBOARD} Leaderboard")
presenter = ui.presenter()
store = challenge_ui.challenge_store()
key = challenge_ui.teacher_key_typed()

wanted = st.query_params.get("c")
joined = challenge_ui.joined()
challenge_id = wanted or (joined.id if joined else None)
if challenge_id is None and key is not None:
    challenges = store.list()
    if challenges:
        challenge_id = st.selectbox("Challenge", [c.id for c in challenges],
                                    format_func=lambda i: next(c.title for c in challenges
                                                               if c.id == i))
if challenge_id is None:
    st.info("Open a challenge's link (or its leaderboard from the Class challenge page).")
    st.page_link("app_pages/challenge.py", label="Class challenge", icon=icons.CHALLENGE)
    st.stop()
try:
    challenge = store.load(str(challenge_id))
except ch.ChallengeError as error:
    st.error(str(error))
    st.stop()

def big_table(rows: list[dict]) -> None:
    """The projector's table: every cell escaped, so a name is always text."""
    columns = ("rank", "name", "EER %", "TAR@FAR 1 %", "loss", "margin", "miner", "network",
               "train s")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(
            "<td>"
            f"{html.escape('—' if row.get(c) is None else str(row.get(c)))}</td>"
            for c in columns) + "</tr>" for row in rows)
    st.html("<style>.lb{width:100%;border-collapse:collapse;font-size:1.9rem}"
            ".lb th,.lb td{padding:.35rem .8rem;border-bottom:1px solid #ddd;text-align:left}"
            ".lb th{font-size:1.2rem;color:#555}.lb td:first-child{white-space:nowrap}</style>"
            f'<table class="lb"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


@st.fragment(run_every=3.0)
def board() -> None:
    current = store.load(challenge.id)
    rows = ch.leaderboard(current, include_hidden=key is not None)
    state = "closed, no more submissions" if current.closed else "open"
    st.subheader(f"{challenge_ui.plain_md(current.title)} ({state})", anchor=False)
    st.caption(f"{len(rows)} entries · ranked by EER on {current.hidden_count} hidden people "
               "nobody trained or tuned on · updates by itself")
    if not rows:
        st.info("No submissions yet.")
        return
    if all(r["TAR@FAR 1 %"] is None for r in rows):
        st.caption("TAR at FAR 1 % needs about 1,000 impostor pairs among the hidden people's "
                   "images; this challenge hides too few for it (—).")
    if presenter:
        big_table([r for r in rows if not r.get("hidden")])
    else:
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_order=(*ch.COLUMNS, *(("hidden",) if key else ())))


board()

if key is not None and not presenter:
    st.divider()
    st.subheader("Teacher", anchor=False)
    current = store.load(challenge.id)
    left, middle, right = st.columns([2, 1, 1])
    with left:
        if current.entries:
            entry = st.selectbox("Entry", current.entries, format_func=lambda e: (
                f"{e.name} · {100 * e.eer:.2f} % · {e.run_id}"
                + (" (hidden)" if e.hidden else "")))
            label = "Show this entry again" if entry.hidden else "Hide this entry"
            if st.button(label):
                store.set_hidden(current.id, entry.run_id, not entry.hidden, key)
                st.rerun()
    with middle:
        if st.button("Reopen the challenge" if current.closed else "Close the challenge",
                     type="primary"):
            store.set_closed(current.id, not current.closed, key)
            st.rerun()
    with right:
        rows = ch.leaderboard(current, include_hidden=True)
        st.download_button("CSV", ch.to_csv(rows), f"leaderboard-{current.id}.csv",
                           "text/csv", icon=icons.DOWNLOAD)
        shown = [r for r in rows if not r["hidden"]]
        report_button("Report (HTML)", lambda: leaderboard_report(
            current.title, shown, ch.COLUMNS,
            [("dataset", current.base.dataset), ("hidden people", current.hidden_count),
             ("time budget (s)", current.time_budget),
             ("students could change", ", ".join(current.editable))]),
            f"leaderboard-{current.id}.html", key="report-leaderboard")
