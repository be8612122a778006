"""Home: what Metric Lab is, which device trains, which datasets are here, where to start."""

from __future__ import annotations

import streamlit as st

from lab.data import list_datasets
from lab.devices import choose_device
from lab.lessons import LESSONS
from lab.reproducibility import REPRODUCIBLE
from lab.train import describe_device

st.title("📏 Metric Lab")
st.markdown(
    "Deep metric learning you can watch. Pick a loss and a margin, press **Run**, and see a "
    "small siamese network learn an **energy** E = distance that is small for two photos of "
    "the same person (*genuine* pairs) and large for two different people (*impostors*), "
    "measured on people it has never seen. Built around Chopra, Hadsell & LeCun (2005), "
    "FaceNet's triplets and ArcFace."
)

choice = choose_device("auto")
device = choice.device
left, right = st.columns([1, 1.3], gap="large")
with left:
    st.subheader("Start here")
    st.page_link("app_pages/train.py", label="Train a model on synthetic faces", icon="🏋️")
    st.page_link("app_pages/geometry.py", label="Why a margin? The margin geometry", icon="📐")
    st.page_link("app_pages/verify.py", label="Verify two photos", icon="🪪")
    st.metric("Training device", describe_device(device))
    st.caption(choice.reason + (" The default runs take seconds." if device.type == "cpu"
                                else ""))
    st.caption(REPRODUCIBLE)
with right:
    st.subheader("Datasets")
    rows = [{"dataset": d.title, "available": d.availability, "size": d.size,
             "note": d.reason} for d in list_datasets()]
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "dataset": st.column_config.TextColumn(width="medium"),
        "available": st.column_config.TextColumn(width="small"),
        "size": st.column_config.TextColumn(width="medium"),
        "note": st.column_config.TextColumn(width="large")})

st.subheader("🎓 Lessons")
st.caption("Each lesson sets the dataset, loss, margin and seed, says what to look at, and "
           "measures it live.")
columns = st.columns(4)
for index, lesson in enumerate(LESSONS.values()):
    with columns[index % 4], st.container(border=True):
        st.markdown(f"**{index + 1}. {lesson.title}**")
        st.caption(lesson.summary)
        st.page_link("app_pages/lessons.py", label="Open", query_params={"lesson": lesson.key})
