"""lab.viz: each builder draws what it promises, for small hand-made inputs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from lab.viz.curves import active_fraction_curve, loss_curve, metric_vs_epoch
from lab.viz.energies import energy_histogram, far_frr_at
from lab.viz.export import figure_to_html, figure_to_png, png_export_problem
from lab.viz.maps import embedding_animation, embedding_map, image_grid, image_uris
from lab.viz.planes import geometry_plane, plateau_plot, triplet_plane, triplet_regions
from lab.viz.roc import roc_curves, sweep_plot
from lab.viz.style import COLORS, IDENTITY_PALETTE, identity_color, series_color


def shapes_named(fig: go.Figure, name: str) -> list:
    return [s for s in fig.layout.shapes if s.name == name]


def annotations_named(fig: go.Figure, name: str) -> list:
    return [a for a in fig.layout.annotations if a.name == name]


def trace(fig: go.Figure, name: str):
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace {name!r} in {[t.name for t in fig.data]}"
    return found[0]


def test_colors_define_every_role_once() -> None:
    for role in ("genuine", "impostor", "margin", "threshold", "seen", "unseen", "loss", "accent"):
        assert COLORS[role].startswith("#")
    roles = ("genuine", "impostor", "margin", "threshold", "loss")
    assert len({COLORS[r] for r in roles}) == len(roles)
    assert identity_color(3) == identity_color(3 + len(IDENTITY_PALETTE))


# --- far_frr_at ---------------------------------------------------------------------------


def test_far_frr_at_matches_hand_counts() -> None:
    genuine = [0.1, 0.2, 0.3, 0.9]
    impostor = [0.25, 0.5, 0.8, 1.2, 1.5]
    # threshold 0.3: accepted genuine 3/4 -> FRR 1/4; accepted impostors {0.25} -> FAR 1/5
    assert far_frr_at(0.3, genuine, impostor) == pytest.approx((0.2, 0.25))
    assert far_frr_at(0.0, genuine, impostor) == pytest.approx((0.0, 1.0))
    assert far_frr_at(2.0, genuine, impostor) == pytest.approx((1.0, 0.0))
    # E == threshold is accepted
    assert far_frr_at(0.5, genuine, impostor) == pytest.approx((0.4, 0.25))
    far, frr = far_frr_at(np.array([0.3, 2.0]), genuine, impostor)
    np.testing.assert_allclose(far, [0.2, 1.0])
    np.testing.assert_allclose(frr, [0.25, 0.0])
    far, frr = far_frr_at(0.5, [], impostor)
    assert far == pytest.approx(0.4) and np.isnan(frr)


# --- curves -------------------------------------------------------------------------------


def test_loss_curve_with_secondary_axis() -> None:
    fig = loss_curve([1, 2, 3], [2.0, 1.0, 0.5], eer=[0.4, 0.3, 0.2],
                           active_fraction=[0.9, 0.5, 0.2])  # fmt: skip
    assert [t.name for t in fig.data] == ["loss", "validation EER", "active fraction"]
    assert trace(fig, "loss").line.color == COLORS["loss"]
    assert trace(fig, "validation EER").yaxis == "y2"
    assert tuple(fig.layout.yaxis2.range) == (0, 1)
    assert len(loss_curve([], []).layout.annotations) == 1  # "no epoch yet" note


def test_active_fraction_and_metric_curves() -> None:
    fig = active_fraction_curve([1, 2], [0.8, 0.3])
    assert list(fig.data[0].y) == [0.8, 0.3]
    fig = metric_vs_epoch([1, 2], {"genuine": [0.2, 0.1], "impostor": [0.5, 0.9]},
                                metric="mean energy")  # fmt: skip
    assert trace(fig, "genuine").line.color == COLORS["genuine"]
    assert trace(fig, "impostor").line.color == COLORS["impostor"]


# --- embedding maps -----------------------------------------------------------------------


def test_embedding_map_seen_and_unseen_differ_and_customdata_is_index() -> None:
    points = np.arange(12, dtype=float).reshape(6, 2)
    labels = [0, 0, 1, 1, 2, 2]
    seen = [True, True, True, True, False, False]
    fig = embedding_map(points, labels, names=["ann", "bob", "cy"], seen_mask=seen)
    seen_trace, unseen_trace = trace(fig, "seen identities"), trace(fig, "unseen identities")
    assert seen_trace.marker.symbol != unseen_trace.marker.symbol
    assert list(seen_trace.customdata) == [0, 1, 2, 3]
    assert list(unseen_trace.customdata) == [4, 5]
    assert list(unseen_trace.text) == ["cy", "cy"]
    assert seen_trace.marker.color[2] == identity_color(1)
    assert fig.layout.xaxis.range is not None


def test_embedding_map_thumbnails_highlight_and_mismatch() -> None:
    points = np.random.default_rng(0).normal(size=(4, 2))
    images = np.random.default_rng(1).uniform(size=(4, 1, 8, 8))
    fig = embedding_map(points, [0, 1, 2, 3], images=images, highlight=2)
    assert len(fig.layout.images) == 4
    assert fig.layout.images[0].source.startswith("data:image/png;base64,")
    assert trace(fig, "selected").x[0] == points[2, 0]
    with pytest.raises(ValueError, match="labels"):
        embedding_map(points, [0, 1])


def test_embedding_animation_frames_and_fixed_ranges() -> None:
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(8, 2)) * (k + 1) for k in range(5)]
    epochs = [2, 4, 6, 8, 10]
    fig = embedding_animation(frames, labels=[0, 0, 1, 1, 2, 2, 3, 3],
                                    seen_mask=[True] * 4 + [False] * 4, epochs=epochs)  # fmt: skip
    assert len(fig.frames) == len(epochs)
    assert [f.name for f in fig.frames] == [str(e) for e in epochs]
    assert len(fig.layout.sliders[0].steps) == len(epochs)
    assert fig.layout.updatemenus[0].buttons[0].method == "animate"
    assert fig.layout.xaxis.autorange is False and fig.layout.yaxis.autorange is False
    low, high = fig.layout.xaxis.range
    everything = np.concatenate(frames)
    assert low <= everything[:, 0].min() and high >= everything[:, 0].max()
    with pytest.raises(ValueError, match="epochs"):
        embedding_animation(frames, [0] * 8, epochs=[1, 2])


# --- energies -----------------------------------------------------------------------------


def test_energy_histogram_lines_overlap_and_stats() -> None:
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(0.5, 0.2, 200), rng.normal(1.2, 0.3, 300)
    fig = energy_histogram(genuine, impostor, margin=1.0, threshold=0.8, dprime=2.5,
                                 eer=0.07, pair_energy=0.6)  # fmt: skip
    assert trace(fig, "genuine (200)").marker.color == COLORS["genuine"]
    assert trace(fig, "impostor (300)").marker.color == COLORS["impostor"]
    assert trace(fig, "overlap").fill == "tozeroy"
    (margin,) = shapes_named(fig, "margin")
    assert margin.x0 == margin.x1 == 1.0 and margin.line.color == COLORS["margin"]
    (threshold,) = shapes_named(fig, "threshold")
    assert threshold.x0 == 0.8 and threshold.line.color == COLORS["threshold"]
    far, frr = far_frr_at(0.8, genuine, impostor)
    assert f"FAR {far:.1%}" in annotations_named(fig, "threshold")[0].text
    assert shapes_named(fig, "pair")[0].x0 == 0.6
    stats = annotations_named(fig, "stats")[0].text
    assert "d′ = 2.50" in stats and "EER = 7.0%" in stats
    # densities integrate to one on shared bins
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    for bar in bars:
        assert float(np.sum(bar.y) * bar.width) == pytest.approx(1.0)


def test_energy_histogram_without_options_and_empty() -> None:
    fig = energy_histogram([0.1, 0.2], [0.9, 1.0])
    assert len(fig.layout.shapes) == 0
    assert "overlap" not in [t.name for t in fig.data]  # separated: nothing to shade
    empty = energy_histogram([], [], threshold=0.5)
    assert annotations_named(empty, "note")


# --- ROC and sweep ------------------------------------------------------------------------


def test_roc_curves_linear_and_log() -> None:
    curves = [
        dict(name="contrastive", fpr=[0, 0.1, 0.5, 1], tpr=[0, 0.7, 0.95, 1], auc=0.9, eer=0.15),
        dict(name="pixels", fpr=[0, 0.5, 1], tpr=[0, 0.6, 1], auc=0.6, eer=0.45),
    ]
    fig = roc_curves(curves)
    names = [t.name for t in fig.data]
    assert "contrastive (AUC 0.900, EER 15.0%)" in names and "chance" in names
    eer_point = trace(fig, "EER contrastive")
    assert eer_point.x[0] == pytest.approx(0.15) and eer_point.y[0] == pytest.approx(0.85)
    log = roc_curves(curves, log_far=True)
    assert log.layout.xaxis.type == "log"
    assert min(trace(log, "contrastive (AUC 0.900, EER 15.0%)").x) > 0
    assert roc_curves([]).layout.annotations


def test_sweep_plot_one_line_per_loss_sorted_by_margin() -> None:
    rows = [
        dict(loss="contrastive", margin=1.0, eer=0.1, auc=0.95),
        dict(loss="contrastive", margin=0.5, eer=0.2, auc=0.9),
        dict(loss="triplet", margin=0.2, eer=0.15, auc=0.93),
    ]
    fig = sweep_plot(rows)
    assert [t.name for t in fig.data] == ["contrastive", "triplet"]
    assert list(trace(fig, "contrastive").x) == [0.5, 1.0]
    assert list(trace(fig, "contrastive").y) == [0.2, 0.1]
    assert list(sweep_plot(rows, metric="auc").data[0].y) == [0.9, 0.95]


# --- geometry -----------------------------------------------------------------------------


def contrastive_plane(n: int = 41, margin_c: float = 2.0):
    axis = np.linspace(0, 3, n)
    e_g, e_i = np.meshgrid(axis, axis)
    h = 0.5 * e_g**2 + 0.5 * np.maximum(margin_c - e_i, 0) ** 2
    coarse = np.linspace(0, 3, 7)
    c_g, c_i = np.meshgrid(coarse, coarse)
    gradient = (c_g, c_i, c_g, -np.maximum(margin_c - c_i, 0))
    return axis, h, gradient


def test_geometry_plane_margin_line_half_plane_arrows_and_points() -> None:
    axis, h, gradient = contrastive_plane()
    points = (np.array([0.1, 1.0, 0.5]), np.array([2.0, 1.2, 0.4]))
    fig = geometry_plane(axis, axis, h, gradient, margin=0.5, points=points,
                               title="contrastive")  # fmt: skip
    contour = fig.data[0]
    assert isinstance(contour, go.Contour) and np.shape(contour.z) == (41, 41)
    line = trace(fig, "margin line E_I = E_G + 0.5")
    np.testing.assert_allclose(np.array(line.y) - np.array(line.x), 0.5)
    region = trace(fig, "E_G + m < E_I")
    assert region.fill == "toself"
    corners = set(zip(region.x, region.y, strict=True))
    assert corners == {(0.0, 0.5), (2.5, 3.0), (0.0, 3.0)}  # the triangle above the line
    arrows = trace(fig, "−∇H")
    xs = [v for v in arrows.x if v is not None]
    assert len(xs) > 0 and min(xs) >= -0.5
    # arrows point down the gradient: at (E_G=3, E_I=0) −∇H = (−3, +2) -> shaft goes left/up
    shafts = [(arrows.x[k], arrows.y[k], arrows.x[k + 1], arrows.y[k + 1])
              for k in range(0, len(arrows.x) - 2, 3)
              if arrows.x[k] == 3.0 and arrows.y[k] == 0.0]  # fmt: skip
    assert shafts and shafts[0][2] < 3.0 and shafts[0][3] > 0.0
    assert list(trace(fig, "pairs with E_G + m < E_I").x) == [0.1]
    assert list(trace(fig, "pairs violating it").x) == [1.0, 0.5]
    assert "33%" in annotations_named(fig, "condition1")[0].text
    with pytest.raises(ValueError, match="meshgrid"):
        geometry_plane(axis, axis[:10], h, None, margin=0.5)


def test_geometry_plane_log_contours_for_exponential_loss() -> None:
    axis = np.linspace(0, 5, 21)
    e_g, e_i = np.meshgrid(axis, axis)
    h = e_g**2 + 1e6 * np.exp(-6 * e_i) + 1e-9
    fig = geometry_plane(axis, axis, h, None, margin=1.0, condition1_share=0.25)
    assert fig.data[0].colorbar.title.text == "log₁₀ H"
    assert "25%" in annotations_named(fig, "condition1")[0].text


def test_triplet_plane_regions_and_points() -> None:
    d_ap = np.array([0.5, 0.5, 0.5, 0.5])
    d_an = np.array([0.3, 0.6, 0.9, 0.5])
    np.testing.assert_array_equal(triplet_regions(d_ap, d_an, 0.2),
                                  ["hard", "semi-hard", "easy", "hard"])  # fmt: skip
    fig = triplet_plane(d_ap, d_an, alpha=0.2, extent=2.0)
    for name in ("hard", "semi-hard", "easy"):
        region = trace(fig, name)
        assert region.fill == "toself"
    hinge = trace(fig, "d(a,n) = d(a,p) + α  (α = 0.2)")
    np.testing.assert_allclose(np.array(hinge.y) - np.array(hinge.x), 0.2)
    assert list(trace(fig, "easy").y) == [0.2, 2.0, 2.0]
    assert "hard 50%" in annotations_named(fig, "shares")[0].text
    empty = triplet_plane(None, None, alpha=0.3)
    assert "mined triplets" not in [t.name for t in empty.data]


def test_plateau_plot_draws_both_energies() -> None:
    energies = np.linspace(0, 1, 11)
    fig = plateau_plot(energies, np.ones(11), 2 * energies)
    assert [t.name for t in fig.data] == ["L1 energy", "squared L2 energy"]
    assert list(fig.data[1].y)[0] == 0.0


# --- images and style ---------------------------------------------------------------------


def test_image_grid_grayscale_and_rgb() -> None:
    gray = np.random.default_rng(0).uniform(size=(5, 1, 6, 6))
    fig = image_grid(gray, captions=["query", "E=0.1", "E=0.2", "E=0.3", "E=0.4"],
                           columns=3, border_colors=[None, COLORS["genuine"]])  # fmt: skip
    images = [t for t in fig.data if isinstance(t, go.Image)]
    assert len(images) == 5 and np.shape(images[0].z) == (6, 6, 3)
    assert fig.layout.annotations[1].font.color == COLORS["genuine"]
    rgb = image_grid(np.zeros((2, 3, 4, 4)))
    assert len(rgb.data) == 2
    assert image_grid(np.zeros((0, 1, 4, 4))).layout.annotations


def test_presenter_mode_enlarges_fonts() -> None:
    normal = sweep_plot([dict(loss="a", margin=1, eer=0.1)])
    big = sweep_plot([dict(loss="a", margin=1, eer=0.1)], presenter=True)
    assert big.layout.font.size > normal.layout.font.size


def test_figure_to_html_is_self_contained() -> None:
    html = figure_to_html(loss_curve([1, 2], [1.0, 0.5]))
    assert b"<html>" in html[:200] and b"plotly" in html and len(html) > 1_000_000


@pytest.mark.slow
def test_figure_to_png_returns_png_or_says_why() -> None:
    data = figure_to_png(loss_curve([1, 2], [1.0, 0.5]))
    if data is None:
        assert png_export_problem()
        pytest.skip(f"PNG export unavailable here: {png_export_problem()}")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_embedding_map_draws_an_even_subset_of_faces_beyond_the_cap() -> None:
    points = np.random.default_rng(0).normal(size=(10, 2))
    images = np.random.default_rng(1).uniform(size=(10, 1, 8, 8))
    fig = embedding_map(points, list(range(10)), images=images, max_thumbnails=4)
    # points 0, 3, 6, 9: evenly spread, each face centred on its point
    centres = [im.x for im in fig.layout.images]
    assert centres == pytest.approx(points[[0, 3, 6, 9], 0])
    uris = image_uris(images)
    again = embedding_map(points, list(range(10)), images=uris, max_thumbnails=4)
    assert [im.source for im in again.layout.images] == [uris[k] for k in (0, 3, 6, 9)]


# --- issue 15: figures that agree with themselves ------------------------------------------


def test_threshold_slider_moves_the_line_with_far_and_frr_worked_out_by_hand() -> None:
    genuine = [0.1, 0.2, 0.3, 0.9]
    impostor = [0.25, 0.5, 0.8, 1.2, 1.5]
    fig = energy_histogram(genuine, impostor, threshold=0.5, x_range=(0, 2),
                                 threshold_steps=[0.0, 0.3, 1.0])
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["0", "0.3", "1"]
    assert slider.active == 1  # the step nearest the threshold it starts at (0.5)
    shape = [k for k, s in enumerate(fig.layout.shapes) if s.name == "threshold"][0]
    note = [k for k, a in enumerate(fig.layout.annotations) if a.name == "threshold"][0]
    step = slider.steps[1].args[0]
    assert step[f"shapes[{shape}].x0"] == step[f"shapes[{shape}].x1"] == 0.3
    # τ = 0.3: impostors ≤ 0.3 are {0.25} -> FAR 1/5; genuine > 0.3 are {0.9} -> FRR 1/4.
    assert "FAR 20.0% · FRR 25.0%" in step[f"annotations[{note}].text"]
    # τ = 1: impostors {0.25, 0.5, 0.8} -> FAR 3/5; no genuine above 1 -> FRR 0.
    assert "FAR 60.0% · FRR 0.0%" in slider.steps[2].args[0][f"annotations[{note}].text"]


def test_labels_near_the_right_edge_go_left_and_this_pair_sits_apart_from_the_threshold():
    fig = energy_histogram([0.1, 0.2], [0.8, 0.9], margin=0.95, threshold=0.5,
                                 pair_energy=0.45, x_range=(0, 1))
    (margin,) = annotations_named(fig, "margin")
    (threshold,) = annotations_named(fig, "threshold")
    (pair,) = annotations_named(fig, "pair")
    assert margin.xanchor == "right"  # it was cut at the plot's right edge
    assert pair.xanchor == "right" and threshold.xanchor == "left"  # opposite sides
    assert pair.y < threshold.y
    # a pair near the left edge has no room on its left: its label goes right, under the
    # threshold's (different heights), not off the plot
    near = energy_histogram([0.1, 0.2], [0.8, 0.9], threshold=0.5, pair_energy=0.07,
                                  x_range=(0, 1.9))
    assert annotations_named(near, "pair")[0].xanchor == "left"


def test_roc_keeps_two_runs_of_one_name_apart_in_the_colours_it_is_given() -> None:
    curve = {"name": "contrastive on synthetic", "fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]}
    fig = roc_curves([{**curve, "key": "run-a", "color": "#111111"},
                            {**curve, "key": "run-b", "color": "#222222"}])
    lines = [t for t in fig.data if t.mode == "lines" and t.name != "chance"]
    assert [t.legendgroup for t in lines] == ["run-a", "run-b"]
    assert [t.line.color for t in lines] == ["#111111", "#222222"]


def test_sweep_plot_takes_the_page_colours_and_its_ticks_read_apart() -> None:
    rows = [{"loss": "a", "margin": 0.5, "eer": 0.182}, {"loss": "a", "margin": 1.0, "eer": 0.194},
            {"loss": "b", "margin": 0.5, "eer": 0.188}]
    fig = sweep_plot(rows, "eer", colors={"a": "#123456"})
    assert trace(fig, "a").line.color == "#123456"
    assert trace(fig, "b").line.color == series_color(1)
    # Five ticks over 18.2-19.4 % are 0.24 % apart: one decimal tells them apart ("18.2%").
    assert fig.layout.yaxis.tickformat == ".1~%"
    wide = sweep_plot([{**rows[0], "eer": 0.1}, {**rows[1], "eer": 0.4}], "eer")
    assert wide.layout.yaxis.tickformat == ".0~%"
    ticks = np.arange(0.182, 0.1941, 0.0024)
    assert len({f"{100 * t:.1f}%" for t in ticks}) == len(ticks)


def test_image_grid_draws_the_borders_its_caption_describes() -> None:
    images = np.zeros((3, 1, 4, 4))
    fig = image_grid(images, ["clicked", "a", "b"],
                           border_colors=[None, "#0000ff", "#ff0000"])
    borders = [s for s in fig.layout.shapes if s.name == "border"]
    assert [b.line.color for b in borders] == ["#0000ff", "#ff0000"]
    assert [b.xref for b in borders] == ["x2 domain", "x3 domain"]


def test_lesson_variants_plot_shows_today_beside_the_spread():
    from lab.viz.roc import lesson_variants_plot

    spread = {"a": {"mean": 0.1, "std": 0.02, "min": 0.07, "max": 0.13},
              "b": {"mean": 0.2, "std": 0.01, "min": 0.19, "max": 0.22}}
    fig = lesson_variants_plot(["a", "b"], {"a": 0.09, "b": None}, spread, "eer", seeds=8,
                               colors={"a": "#123456"})
    today = [t for t in fig.data if t.name == "a"]
    assert len(today) == 1 and list(today[0].y) == [0.09] and today[0].marker.color == "#123456"
    assert not [t for t in fig.data if t.name == "b"]  # no live figure: no dot
    (grey,) = [t for t in fig.data if t.name == "8 seeds: mean ± std"]
    assert list(grey.y) == [0.1, 0.2] and list(grey.error_y.array) == [0.02, 0.01]
    (bars,) = [t for t in fig.data if t.name == "min to max"]
    assert list(bars.y) == [0.07, 0.13, None, 0.19, 0.22, None]
    assert list(fig.layout.xaxis.ticktext) == ["a", "b"]
    assert fig.layout.title.text.startswith("EER per variant")
    assert not [t for t in lesson_variants_plot(["a"], {"a": 0.1}).data if "seeds" in t.name]
