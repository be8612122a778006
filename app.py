"""Metric Lab: the Streamlit entry point. It only wires the pages together; each page is thin."""

import streamlit as st

import ui
import ui.challenge as challenge_ui
from ui import icons

st.set_page_config(page_title="Metric Lab", page_icon=icons.FAVICON, layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=icons.HOME, url_path="home", default=True),
    st.Page("app_pages/train.py", title="Train", icon=icons.TRAIN, url_path="train"),
    st.Page("app_pages/embeddings.py", title="Embeddings", icon=icons.EMBEDDINGS,
            url_path="embeddings"),
    st.Page("app_pages/energies.py", title="Energies", icon=icons.ENERGIES, url_path="energies"),
    st.Page("app_pages/geometry.py", title="Margin geometry", icon=icons.GEOMETRY,
            url_path="geometry"),
    st.Page("app_pages/compare.py", title="ROC & compare", icon=icons.COMPARE, url_path="compare"),
    st.Page("app_pages/verify.py", title="Verify a pair", icon=icons.VERIFY, url_path="verify"),
    st.Page("app_pages/lessons.py", title="Lessons", icon=icons.LESSONS, url_path="lessons"),
    st.Page("app_pages/challenge.py", title="Class challenge", icon=icons.CHALLENGE,
            url_path="challenge"),
    st.Page("app_pages/leaderboard.py", title="Leaderboard", icon=icons.LEADERBOARD,
            url_path="leaderboard"),
]

page = st.navigation(PAGES)
challenge_ui.announce_teacher_key()  # printed in the console, like a notebook's token
ui.warm_up_umap_in_background()  # numba compiles while the user reads the home page
if page.url_path != "train":  # Train shows (and polls) the same job in its own live view
    ui.sidebar_status()
page.run()
