"""Viz: figure builders, pure functions from numbers to plotly figures."""
