"""Metric Lab: deep metric learning you can watch.

The library behind the Streamlit app. It never imports streamlit: every page asks `lab` for data,
runs and metrics, and draws what comes back with the pure figure builders of `lab.viz`.
"""

__version__ = "0.1.0"
