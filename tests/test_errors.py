"""Error gallery: the worst false accepts and false rejects at a threshold, unseen people only."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st

from lab.errors import worst_errors


def test_worst_errors_are_the_closest_impostors_and_farthest_genuine_pairs():
    # 1-D: identity 0 at 0.0 and 0.9, identity 1 at 0.5 and 1.0, identity 2 (seen) at 0.01
    emb = np.array([[0.0], [0.9], [0.5], [1.0], [0.01]])
    labels = np.array([0, 0, 1, 1, 2])
    is_test = np.array([True, True, True, True, True])
    seen = np.array([False, False, False, False, True])
    accepts, rejects = worst_errors(emb, labels, is_test, "l2", threshold=0.45, is_seen=seen)
    # impostor pairs below 0.45: (1, 3) at 0.1, (1, 2) at 0.4, both people 0 and 1: the worst
    # of them once; the seen image 4 is left out
    assert [(a.first, a.second) for a in accepts] == [(1, 3)]
    assert [a.energy for a in accepts] == pytest.approx([0.1])
    # genuine pairs above 0.45: (0, 1) at 0.9, (2, 3) at 0.5
    assert [(r.first, r.second) for r in rejects] == [(0, 1), (2, 3)]
    assert worst_errors(emb, labels, ~is_test, "l2", 0.45) == ([], [])


@pytest.mark.slow
def test_energies_page_shows_the_error_gallery(run_root):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from lab.config import RunConfig
    from lab.runs import RunStore
    from lab.train import train_run

    st.cache_resource.clear()
    st.cache_data.clear()
    train_run(RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=1,
                        test_identities=3, val_identities=2, p_identities=5, k_images=4,
                        steps_per_epoch=4, seed=3), store=RunStore(run_root))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"),
                           default_timeout=120)
    at.switch_page("app_pages/energies.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Error gallery" in s.value for s in at.subheader)
    text = " ".join(m.value for m in at.markdown)
    assert "Worst false accepts" in text and "Worst false rejects" in text
