"""lab.measure.project: 2-D maps, Procrustes alignment, warm-started frames, lazy umap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.measure import project as P

REPO = Path(__file__).resolve().parents[1]


def clusters(n_per: int = 10, k: int = 4, dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 4
    return (np.repeat(centres, n_per, axis=0) + rng.normal(size=(k * n_per, dim))).astype(
        np.float32
    )


def test_align_to_recovers_rotated_reflected_scaled_shifted_copy() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(30, 2))
    angle = 1.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    reflection = np.diag([1.0, -1.0])
    current = 3.7 * reference @ rotation @ reflection + np.array([5.0, -2.0])
    aligned = P.align_to(reference, current)
    np.testing.assert_allclose(aligned, reference, atol=1e-10)


def test_align_to_degenerate_and_mismatched_inputs() -> None:
    reference = np.array([[0.0, 0.0], [1.0, 1.0]])
    same_spot = np.ones((2, 2))
    np.testing.assert_allclose(P.align_to(reference, same_spot), np.full((2, 2), 0.5))
    assert P.align_to(np.zeros((0, 2)), np.zeros((0, 2))).shape == (0, 2)
    with pytest.raises(ValueError, match="shapes must match"):
        P.align_to(reference, np.zeros((3, 2)))


def test_pca_is_deterministic_and_separates_clusters() -> None:
    x = clusters()
    a, b = P.project(x, "pca"), P.project(x, "pca", seed=5)
    assert a.shape == (40, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)
    # first axis carries the largest variance
    assert a[:, 0].var() >= a[:, 1].var()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_small_and_degenerate_inputs(method: str) -> None:
    assert P.project(np.zeros((0, 4)), method).shape == (0, 2)
    assert P.project(np.ones((1, 4)), method).shape == (1, 2)
    few = P.project(np.arange(12, dtype=float).reshape(3, 4), method)
    assert few.shape == (3, 2) and np.isfinite(few).all()
    identical = P.project(np.ones((20, 6)), method)
    np.testing.assert_array_equal(identical, np.zeros((20, 2)))
    one_dim = P.project(np.linspace(0, 1, 12)[:, None], method)
    assert one_dim.shape == (12, 2) and np.isfinite(one_dim).all()


def test_tsne_returns_finite_map_and_warm_start() -> None:
    x = clusters(n_per=8)
    first = P.project(x, "tsne", seed=0)
    assert first.shape == (32, 2) and np.isfinite(first).all()
    again = P.project(x + 0.01, "tsne", seed=0, init=first)
    assert again.shape == (32, 2) and np.isfinite(again).all()


def test_project_rejects_bad_input() -> None:
    x = clusters()
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        P.project(x, "pca")
    with pytest.raises(ValueError, match="unknown projection"):
        P.project(clusters(), "mds")
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        P.project(np.zeros((2, 3, 4)), "pca")


def test_project_frames_are_aligned_to_each_other() -> None:
    x = clusters()
    rng = np.random.default_rng(3)
    # The same cloud rotated: PCA frames could flip, alignment must keep them on top of each other.
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    frames = P.project_frames([x, x @ rotation, x @ rotation * 2.0], "pca")
    assert len(frames) == 3
    for frame in frames[1:]:
        np.testing.assert_allclose(frame, frames[0], atol=1e-6)


def test_exact_knn_puts_self_first_even_among_duplicates() -> None:
    x = np.vstack([np.zeros((3, 2)), np.ones((4, 2))]).astype(np.float32)
    idx, dist = P.exact_knn(x, 3)
    np.testing.assert_array_equal(idx[:, 0], np.arange(7))
    assert dist.dtype == np.float32 and (dist[:, 0] == 0).all()
    np.testing.assert_allclose(dist[0], [0, 0, 0])


def test_exact_knn_blocks_match_brute_force() -> None:
    x = clusters(n_per=5, k=3)
    brute = np.linalg.norm(x[:, None] - x[None], axis=-1)
    idx, dist = P.exact_knn(x, 4, block=4)
    np.testing.assert_array_equal(idx[:, 0], np.arange(15))
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :4], atol=1e-4)


def test_numba_cache_dir_follows_metric_lab_data(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("METRIC_LAB_DATA", str(tmp_path))
    assert P.numba_cache_dir() == tmp_path / "cache" / "numba"
    monkeypatch.delenv("METRIC_LAB_DATA")
    assert P.numba_cache_dir() == REPO / "data" / "cache" / "numba"


def test_importing_lab_project_does_not_import_umap() -> None:
    code = (
        "import sys, lab.measure.project, lab.viz.maps; "
        "print('umap' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_umap_map_small_data_warm_start_and_cache(tmp_path) -> None:
    """Runs in a fresh process (the first UMAP fit compiles numba code, cached under
    data/cache/numba): checks the cache dir is set before import, maps are [N,2] and finite,
    deterministic for a seed, and the degenerate inputs fall back."""
    code = """
import os, sys, numpy as np
from lab.measure import project as P
P.warm_up_umap()
assert os.environ["NUMBA_CACHE_DIR"].endswith(os.path.join("cache", "numba")), os.environ
rng = np.random.default_rng(0)
x = (np.repeat(rng.normal(size=(5, 16)) * 4, 12, axis=0) + rng.normal(size=(60, 16))).astype("f4")
a, b = P.project(x, "umap", seed=1), P.project(x, "umap", seed=1)
assert a.shape == (60, 2) and np.isfinite(a).all()
assert np.allclose(a, b)
frames = P.project_frames([x, x + 0.05, x * 1.1], "umap")
assert len(frames) == 3 and all(np.isfinite(f).all() and f.shape == (60, 2) for f in frames)
assert P.project(np.ones((30, 4)), "umap").shape == (30, 2)
assert P.project(x[:6], "umap").shape == (6, 2)
assert P.project(x[:3], "umap").shape == (3, 2)
print("ok")
"""
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
    assert any(P.numba_cache_dir().rglob("*.nbi"))


def test_cli_parser_has_warm_up_and_bench() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    P.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["project", "bench", "--sizes", "50", "--json", "out.json"])
    assert args.sizes == [50] and args.json_out == "out.json" and callable(args.func)
    assert parser.parse_args(["project", "warm-up"]).func is P._cli_warm_up


@pytest.mark.slow
def test_bench_writes_valid_json(tmp_path) -> None:
    import json

    out = tmp_path / "umap.json"
    subprocess.run(
        [sys.executable, "-m", "lab", "project", "bench", "--sizes", "60", "--repeats", "1",
         "--json", str(out)],
        cwd=REPO, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["bench"] == "umap" and set(result["warm"]) == {"umap_60", "pca_60", "tsne_60"}
    assert "first_map_2000_s" in result["first_map_cached"]
