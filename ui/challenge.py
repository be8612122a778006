"""Streamlit glue of class challenges: which challenge this browser joined, the teacher key the
person typed, the student's session token, and the Train page's limits. The rules are in
lab.views.challenge; everything here only reads them or passes what the user typed to them."""

from __future__ import annotations

import secrets

import streamlit as st

import ui
from lab.views import challenge as ch
from ui import icons

JOINED_KEY = "challenge_joined"
TEACHER_STATE = "challenge_teacher_key"
TEACHER_KEPT = "challenge_teacher_kept"
TOKEN_KEY = "challenge_student_token"


def challenge_store() -> ch.ChallengeStore:
    """The class challenges beside the run store (METRIC_LAB_CHALLENGES), read on every call
    like ``ui.run_store``: a store is only its folder, its locks are files."""
    return ch.ChallengeStore(ch.default_root(ui.run_store().root))


@st.cache_resource
def announce_teacher_key() -> bool:
    """Called by app.py: the key is generated (and printed in the console) when the server
    answers its first page, unless METRIC_LAB_TEACHER_KEY chose it."""
    ch.teacher_key()
    return True


def student_token() -> str:
    """A random token per browser session: who submitted what, and the per-minute limit."""
    return st.session_state.setdefault(TOKEN_KEY, secrets.token_urlsafe(16))


def owner() -> str:
    return ch.student_hash(student_token())


def teacher_key_typed() -> str | None:
    """The teacher key this session typed, when it is the right one. It is kept outside the
    widget's state: Streamlit forgets a widget's value on a page that does not draw it."""
    typed = st.session_state.get(TEACHER_STATE)
    if typed and ch.is_teacher(typed):
        st.session_state[TEACHER_KEPT] = typed
    kept = st.session_state.get(TEACHER_KEPT)
    return kept if ch.is_teacher(kept) else None


def joined() -> ch.Challenge | None:
    """The challenge this browser joined (from a ``?join=`` link, kept for the session)."""
    wanted = st.query_params.get("join")
    if wanted:
        st.session_state[JOINED_KEY] = str(wanted)[:32]
    challenge_id = st.session_state.get(JOINED_KEY)
    if not challenge_id:
        return None
    try:
        return challenge_store().load(challenge_id)
    except ch.ChallengeError:
        st.session_state.pop(JOINED_KEY, None)
        return None


def leave() -> None:
    st.session_state.pop(JOINED_KEY, None)
    st.query_params.pop("join", None)


# ---- the Train page ---------------------------------------------------------------------------

def lock_train_widgets() -> None:
    """Before the Train page draws its widgets: every setting students may not change is put
    back to the challenge's value (whatever the URL or the session said)."""
    challenge = joined()
    if challenge is None:
        return
    for name, value in challenge.base.to_dict().items():
        if name not in challenge.editable and f"cfg_{name}" in st.session_state:
            st.session_state[f"cfg_{name}"] = value


def locked(name: str) -> bool:
    challenge = joined()
    return challenge is not None and name not in challenge.editable


def constrain(config):
    """The config the Train page will run: the challenge's (with its hidden people held out)
    when this browser joined one."""
    challenge = joined()
    return config if challenge is None else challenge.student_config(config, owner())


def time_budget() -> float | None:
    challenge = joined()
    return None if challenge is None else challenge.time_budget


def train_banner() -> None:
    challenge = joined()
    if challenge is None:
        return
    state = " (closed)" if challenge.closed else ""
    st.info(f"{icons.CHALLENGE} **Challenge: {plain_md(challenge.title)}**{state}. "
            + " ".join(challenge.limits_text())
            + " What this page shows is measured on the challenge's validation people; the "
            "leaderboard scores your run on hidden people nobody sees.")
    st.page_link("app_pages/challenge.py", label="Submit a run to the challenge",
                 icon=icons.CHALLENGE)


def plain_md(text: str) -> str:
    """A user string inside Markdown: every Markdown or HTML character escaped."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~$&" else c for c in text)
