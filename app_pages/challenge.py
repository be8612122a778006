"""Class challenge: the teacher sets one up and shares its link; students submit their runs."""

from __future__ import annotations

import streamlit as st

import ui
import ui.challenge as challenge_ui
from lab.core.config import RunConfig
from lab.learn.runs import RunError
from lab.views import challenge as ch
from ui import icons

DATASET_TITLES = {"synthetic": "Synthetic faces (offline)", "digits": "Digits 8×8 (offline)",
                  "att": "AT&T / ORL faces (40 people)", "olivetti": "Olivetti faces (cached)"}

st.title(f"{icons.CHALLENGE} Class challenge")
store = challenge_ui.challenge_store()
joined = challenge_ui.joined()


def link_to(challenge: ch.Challenge) -> str:
    base = (st.context.url or "").split("?")[0].rsplit("/", 1)[0]
    return f"{base}/challenge?join={challenge.id}"


# ---- students ----------------------------------------------------------------------------------
def student_panel(challenge: ch.Challenge) -> None:
    st.subheader(challenge_ui.plain_md(challenge.title), anchor=False)
    for line in challenge.limits_text():
        st.text(line)
    st.caption("Train on the Train page (it shows these limits and holds to them), look at your "
               "results there: they are measured on the challenge's validation people. Then "
               "submit your best run here: the server scores it on hidden people.")
    cols = st.columns(3)
    cols[0].page_link("app_pages/train.py", label="Train within the limits", icon=icons.TRAIN)
    cols[1].page_link("app_pages/leaderboard.py", label="Leaderboard", icon=icons.LEADERBOARD,
                      query_params={"c": challenge.id})
    cols[2].button("Leave this challenge", on_click=challenge_ui.leave)
    if challenge.closed:
        st.warning("This challenge is closed: the teacher no longer takes submissions.")
        return
    mine = [info for info in ui.run_store().list()
            if info.config is not None and info.status in ch.FINISHED
            and (info.config.extra or {}).get("challenge") == challenge.id
            and (info.config.extra or {}).get("challenge_owner") == challenge_ui.owner()]
    entered = {e.run_id for e in challenge.entries}
    if not mine:
        st.info("You have no finished run in this challenge yet: train one first.")
        return
    with st.form("submit_run"):
        info = st.selectbox("Your run", mine, format_func=lambda i: (
            f"{i.name} · {i.config.loss}, m={i.config.margin:g} · "
            + ("already entered" if i.id in entered else i.id)))
        name = st.text_input("Your name on the leaderboard", max_chars=ch.MAX_NAME_CHARS,
                             key="challenge_name")
        sent = st.form_submit_button("Submit to the challenge", type="primary")
    if sent:
        try:
            run = ui.run_store().load(info.id)
            entry = store.submit(challenge.id, run, name, challenge_ui.student_token())
            st.success(f"Entered with {100 * entry.eer:.2f} % EER on the hidden people.")
        except (ch.ChallengeError, RunError) as error:
            st.error(str(error))


# ---- the teacher -------------------------------------------------------------------------------
def setup_form(key: str) -> None:
    st.subheader("Set a challenge", anchor=False)
    with st.form("new_challenge"):
        title = st.text_input("Title", value="Lowest error on people nobody has seen",
                              max_chars=ch.MAX_TITLE_CHARS)
        left, right = st.columns(2)
        with left:
            dataset = st.selectbox("Dataset", ch.DATASETS, format_func=DATASET_TITLES.get)
            identities = st.number_input("Identities (synthetic faces)", 10, 200, 40, step=5)
            images = st.number_input("Images per identity (synthetic faces)", 2, 50, 10)
            image_size = st.select_slider("Image size", (16, 24, 32, 48, 64), value=32)
        with right:
            hidden = st.number_input("Hidden people (score the leaderboard)", 2, 100, 10,
                                     help="Nobody trains, tunes or sees them.")
            visible = st.number_input("Validation people (students tune on them)", 2, 100, 10)
            people_seed = st.number_input("People seed (who is train / validation)", 0,
                                          2**31 - 1, 0)
            budget = st.number_input("Time budget per run (seconds)", 5, 3600, 60, step=5)
        editable = st.multiselect("Settings students may change", ch.EDITABLE,
                                  default=list(ch.DEFAULT_EDITABLE),
                                  help="Each within the range the Train page allows; every "
                                       "other setting stays as set here.")
        made = st.form_submit_button("Create the challenge", type="primary")
    if made:
        base = RunConfig(dataset=dataset, num_identities=int(identities),
                         images_per_identity=int(images), image_size=int(image_size),
                         test_identities=int(visible), split_seed=int(people_seed),
                         val_identities=min(RunConfig().val_identities, int(visible)))
        try:
            with st.spinner("Checking the split on the dataset ..."):
                challenge = store.save_new(ch.new_challenge(key, title, base, editable,
                                                            float(budget), int(hidden)))
            st.session_state["challenge_made"] = challenge.id
        except ch.ChallengeError as error:
            st.error(str(error))


def teacher_panel(key: str) -> None:
    setup_form(key)
    challenges = store.list()
    if not challenges:
        return
    st.subheader("Your challenges", anchor=False)
    for challenge in challenges:
        fresh = st.session_state.get("challenge_made") == challenge.id
        lock = f"{icons.LOCK} " if challenge.closed else ""
        with st.expander(f"{lock}{challenge_ui.plain_md(challenge.title)} · "
                         f"{len(challenge.entries)} entries", expanded=fresh):
            if fresh:
                st.success("Created. Share this link with the class:")
            st.code(link_to(challenge), language=None)
            for line in challenge.limits_text():
                st.text(line)
            st.page_link("app_pages/leaderboard.py", label="Open the leaderboard",
                         icon=icons.LEADERBOARD,
                         query_params={"c": challenge.id})


if joined is not None:
    student_panel(joined)
    st.divider()

with st.expander("Teacher", expanded=joined is None):
    st.text_input("Teacher key", type="password", key=challenge_ui.TEACHER_STATE,
                  help="Printed in the console of the server when it starts (or set with "
                       "METRIC_LAB_TEACHER_KEY).")
    typed = st.session_state.get(challenge_ui.TEACHER_STATE)
    key = challenge_ui.teacher_key_typed()
    if typed and key is None:
        st.error("That is not the teacher key.")
    if key is None and joined is None:
        st.caption("Students: open the link your teacher shares to join a challenge.")

if key is not None:
    teacher_panel(key)
