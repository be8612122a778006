"""Home: what Metric Lab is, which device trains, which datasets are here, where to start."""

from __future__ import annotations

import streamlit as st

from lab.data import list_datasets
from lab.learn.devices import choose_device, describe_device
from lab.learn.reproducibility import REPRODUCIBLE
from lab.views.lessons import LESSONS
from ui import icons

st.title(f"{icons.APP} Metric Lab")
st.markdown(
    "Deep metric learning you can watch. Pick a loss and a margin, press **Run**, and see a "
    "small siamese network learn an **energy** E = distance that is small for two photos of "
    "the same person (*genuine* pairs) and large for two different people (*impostors*), "
    "measured on people it has never seen. Built around Chopra, Hadsell & LeCun (2005), "
    "FaceNet's triplets and ArcFace."
)

choice = choose_device("auto")
device = choice.device
st.subheader("Start here")
links, hardware = st.columns([1, 1.3], gap="large")
with links:
    st.page_link("app_pages/train.py", label="Train a model on synthetic faces", icon=icons.TRAIN)
    st.page_link("app_pages/geometry.py", label="Why a margin? The margin geometry",
                 icon=icons.GEOMETRY)
    st.page_link("app_pages/verify.py", label="Verify two photos", icon=icons.VERIFY)
with hardware:
    st.metric("Training device", describe_device(device))
    st.caption(choice.reason + (" The default runs take seconds." if device.type == "cpu"
                                else ""))
    st.caption(REPRODUCIBLE)

# The full width, and a table that wraps: beside "Start here", a scrolling grid cut its note
# column off at 1400 px ("needs down…").
st.subheader("Datasets")
st.table([{"dataset": d.title, "available": d.availability, "size": d.size, "note": d.reason}
          for d in list_datasets()])

st.subheader(f"{icons.LESSONS} Lessons")
st.caption("Each lesson sets the dataset, loss, margin and seed, says what to look at, and "
           "measures it live.")
columns = st.columns(4)
for index, lesson in enumerate(LESSONS.values()):
    with columns[index % 4], st.container(border=True):
        st.markdown(f"**{index + 1}. {lesson.title}**")
        st.caption(lesson.summary)
        st.page_link("app_pages/lessons.py", label="Open", query_params={"lesson": lesson.key})
