"""The app's icons, in one place: Streamlit's Material Symbols (``:material/name:``).

They ship with Streamlit as a web font, so they draw on any machine. Emoji did not: on a Linux
lab PC without an emoji font the page icons and the Pause/Step/Stop buttons were empty boxes.
Names: https://fonts.google.com/icons (Material Symbols Rounded).
"""

from __future__ import annotations

from pathlib import Path

# The browser tab's icon is a file here: a Material icon as page_icon is fetched from
# fonts.gstatic.com, which an offline classroom cannot reach.
FAVICON = str(Path(__file__).with_name("favicon.png"))
HOME = ":material/home:"
APP = ":material/straighten:"
TRAIN = ":material/model_training:"
EMBEDDINGS = ":material/scatter_plot:"
ENERGIES = ":material/bar_chart:"
GEOMETRY = ":material/architecture:"
COMPARE = ":material/show_chart:"
VERIFY = ":material/badge:"
LESSONS = ":material/school:"
CHALLENGE = ":material/emoji_events:"
LEADERBOARD = ":material/leaderboard:"
LOOK = ":material/visibility:"
PAPER = ":material/description:"
INSPECT = ":material/search:"
SEEDS = ":material/casino:"  # a figure measured over several seeds

RUN = ":material/play_arrow:"
PAUSE = ":material/pause:"
STEP = ":material/skip_next:"
STOP = ":material/stop:"
RESET = ":material/restart_alt:"
DOWNLOAD = ":material/download:"
WAIT = ":material/hourglass_top:"
DISK = ":material/save:"
LOCK = ":material/lock:"
LIVE = ":material/monitoring:"
ERRORS = ":material/report:"
IMAGES = ":material/image:"
EDIT = ":material/edit:"
WARNING = ":material/warning:"
CLUSTER = ":material/hub:"
