"""Margins are drawn where they mean something: m on the energy axis, α on the triplet gap."""

import numpy as np
import pytest

from lab.views.margin_view import energy_margin, gap_histogram, triplet_gaps


def test_only_the_contrastive_margin_is_an_energy_line():
    assert energy_margin("contrastive", 1.0) == 1.0
    for loss in ("triplet", "arcface", "cosface", "chopra", "naive", "softmax"):
        assert energy_margin(loss, 0.2) is None


def test_gaps_are_d_an_minus_d_ap_of_every_triplet():
    # 1-D points: identity 0 at 0 and 1, identity 1 at 3. Triplets (a, p, n):
    # (0, 1, 2): d(a,n) − d(a,p) = 3 − 1 = 2; (1, 0, 2): 2 − 1 = 1.
    x = np.array([0.0, 1.0, 3.0])
    energies = np.abs(x[:, None] - x[None, :])
    gaps = triplet_gaps(energies, np.array([0, 0, 1]))
    assert sorted(gaps.tolist()) == [1.0, 2.0]


def test_an_impostor_beyond_alpha_can_still_be_an_active_triplet():
    """Why α is not an energy line: d(a,n) = 5 > α = 0.2, yet d(a,p) = 6 makes the triplet
    hard (gap −1 < 0), and the figure counts it as hard."""
    gaps = np.array([-1.0, 0.1, 0.5])
    fig = gap_histogram(gaps, 0.2)
    names = [trace.name for trace in fig.data]
    assert names == ["hard 33%", "semi-hard 33%", "easy 33%"]
    assert sum(float(np.sum(trace.y)) for trace in fig.data) == pytest.approx(1.0)
    assert [shape.x0 for shape in fig.layout.shapes] == [0.0, 0.2]
