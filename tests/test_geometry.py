import math

import numpy as np
import pytest
import torch

from lab.metric.energy import energy_matrix, energy_matrix_np
from lab.metric.geometry import (
    PAIR_LOSSES,
    VERDICT_TABLE,
    check_condition2,
    check_condition3,
    check_conditions,
    descent_field,
    energy_gradient_norm,
    geometry_view,
    gradient_field,
    h_gradient,
    h_grid,
    h_value,
    impostor_gradient_norm,
    margin_line,
    margin_share,
    pair_points,
    pair_points_from_embeddings,
    plateau_curves,
    triplet_grid,
    triplet_regions,
)
from lab.metric.losses import chopra_genuine, chopra_impostor, contrastive_impostor
from lab.metric.mining import semihard_triplets

E_MAX = 4.0


def test_h_is_the_sum_of_the_loss_terms():
    assert h_value("contrastive", 1.0, 0.5, loss_margin=2.0) == pytest.approx(0.5 + 0.5 * 1.5**2)
    assert h_value("chopra", 1.0, 3.0, q=4.0) == pytest.approx(
        chopra_genuine(1.0, 4.0) + chopra_impostor(3.0, 4.0))
    assert h_value("naive", 1.0, 3.0) == pytest.approx(-2.0)
    grid = h_grid("contrastive", E_MAX, n=11, loss_margin=2.0)
    # values[i, j] belongs to (E_G = x[j], E_I = y[i])
    assert grid.values[3, 7] == pytest.approx(
        0.5 * grid.x[7] ** 2 + contrastive_impostor(grid.y[3], 2.0))
    with pytest.raises(ValueError, match="pair losses"):
        h_value("triplet", 1.0, 1.0)


@pytest.mark.parametrize("loss", PAIR_LOSSES)
def test_analytic_gradient_matches_central_differences(loss):
    rng = np.random.default_rng(0)
    e_genuine, e_impostor = rng.uniform(0.05, E_MAX, 50), rng.uniform(0.05, E_MAX, 50)
    e_impostor = e_impostor[np.abs(e_impostor - 1.3) > 1e-3]  # away from the hinge's kink
    e_genuine = e_genuine[: e_impostor.size]
    analytic = h_gradient(loss, e_genuine, e_impostor, loss_margin=1.3, q=E_MAX)
    numeric = h_gradient(loss, e_genuine, e_impostor, loss_margin=1.3, q=E_MAX, numeric=True)
    for exact, approx in zip(analytic, numeric, strict=True):
        assert np.allclose(exact, approx, atol=1e-5)


def test_descent_field_points_downhill():
    field = descent_field("contrastive", E_MAX, n=9, loss_margin=2.0)
    assert field.u.shape == field.e_genuine.shape == (81,)
    assert np.all(field.u <= 0)  # −∂H/∂E_G = −E_G: genuine pairs are pulled together
    assert np.all(field.v >= 0)  # impostors are pushed apart (or left alone beyond m_c)
    assert np.all(field.v[field.e_impostor >= 2.0] == 0)


def test_gradient_field_and_view_fit_the_plot_conventions():
    e_genuine, e_impostor, d_genuine, d_impostor = gradient_field("chopra", E_MAX, n=5, q=E_MAX)
    expected = h_gradient("chopra", e_genuine, e_impostor, q=E_MAX)
    assert np.allclose(d_genuine, expected[0]) and np.allclose(d_impostor, expected[1])
    view = geometry_view("contrastive", 0.5, E_MAX, loss_margin=1.0, n_grid=21)
    assert view.grid.values.shape == (21, 21) and view.conditions.all_ok
    assert all(part.shape == (15 * 15,) for part in view.gradient)


def test_margin_line_inside_the_box():
    e_genuine, e_impostor = margin_line(1.0, E_MAX)
    assert e_genuine.tolist() == [0.0, 3.0] and e_impostor.tolist() == [1.0, 4.0]
    assert margin_line(5.0, E_MAX)[0].size == 0


@pytest.mark.parametrize("m", [0.1, 0.5, 0.99, 1.4999])
def test_contrastive_satisfies_conditions_below_its_margin(m):
    checks = check_conditions("contrastive", m, E_MAX, loss_margin=1.5)
    assert checks.condition1.ok and checks.condition2.ok and checks.condition3.ok
    assert checks.all_ok


@pytest.mark.parametrize("m", [1.5, 1.6, 2.5])
def test_contrastive_fails_condition2_at_or_above_its_margin(m):
    check = check_condition2("contrastive", m, E_MAX, loss_margin=1.5)
    assert not check.ok and "outside the half-plane" in check.reason
    assert not check_condition3("contrastive", m, E_MAX, loss_margin=1.5).ok


def test_contrastive_exact_margin_off_the_grid():
    """m_c = 1/3 is not a grid point; the analytic minimiser (0, m_c) still decides."""
    assert check_condition2("contrastive", 1 / 3 - 1e-9, 1.0, loss_margin=1 / 3).ok
    assert not check_condition2("contrastive", 1 / 3, 1.0, loss_margin=1 / 3).ok


def _hand_h(loss: str, e_genuine: float, e_impostor: float, mc: float = 1.0,
            q: float = 2.0) -> float:
    """H written out from the papers' formulas, independent of lab.metric.losses."""
    if loss == "contrastive":
        return 0.5 * e_genuine**2 + 0.5 * max(0.0, mc - e_impostor) ** 2
    if loss == "chopra":
        return 2 / q * e_genuine**2 + 2 * q * math.exp(-2.77 * e_impostor / q)
    return e_genuine - e_impostor


# Hand-computed H at chosen points of the box [0, 2]² (m_c = 1, Q = 2), with the minimiser the
# derivation in lab/metric/geometry.py names: the verdict of condition 2 must follow from them.
HAND = {
    "contrastive": {(0.0, 1.0): 0.0, (0.0, 2.0): 0.0, (0.5, 0.5): 0.25, (0.0, 0.5): 0.125},
    "chopra": {(0.0, 2.0): 4 * math.exp(-2.77), (0.0, 0.0): 4.0,
               (1.0, 1.0): 1 + 4 * math.exp(-1.385), (0.0, 1.9): 4 * math.exp(-2.6315)},
    "naive": {(0.0, 2.0): -2.0, (0.0, 1.9): -1.9, (0.1, 2.0): -1.9, (1.0, 1.0): 0.0},
}


@pytest.mark.parametrize("loss", PAIR_LOSSES)
def test_h_matches_the_hand_computed_values(loss):
    for (e_genuine, e_impostor), value in HAND[loss].items():
        assert _hand_h(loss, e_genuine, e_impostor) == pytest.approx(value)
        assert h_value(loss, e_genuine, e_impostor, loss_margin=1.0, q=2.0) == pytest.approx(
            value, rel=1e-3)


@pytest.mark.parametrize("loss", ["chopra", "naive"])
def test_in_a_bounded_box_chopra_and_naive_share_their_minimum(loss):
    """Both are smallest at the corner (0, E_max): H there is below every other hand point,
    so condition 2 holds for any m < E_max, for the naive loss as for Chopra's."""
    corner = HAND[loss][(0.0, 2.0)]
    assert all(corner < value for point, value in HAND[loss].items() if point != (0.0, 2.0))
    for m in (0.5, 1.9):
        check = check_condition2(loss, m, 2.0, q=2.0)
        assert check.ok and "(0, 2)" in check.reason, check.reason
    assert check_conditions(loss, 0.5, 2.0, q=2.0).all_ok


def test_with_unbounded_energies_only_the_contrastive_loss_has_a_minimum():
    # naive: H(0, E) = −E, lower at every larger E (no minimum)
    assert _hand_h("naive", 0, 10) > _hand_h("naive", 0, 100) > _hand_h("naive", 0, 1e4)
    naive = check_condition2("naive", 0.5, 2.0, bounded=False)
    assert not naive.ok and "−∞" in naive.reason
    # Chopra: H(0, E) = 4 e^{−1.385 E} > 0, falling towards 0 but never reaching it
    assert 0 < _hand_h("chopra", 0, 20) < _hand_h("chopra", 0, 10)
    chopra = check_condition2("chopra", 0.5, 2.0, q=2.0, bounded=False)
    assert not chopra.ok and "never reaches" in chopra.reason
    # contrastive: H(0, E) = 0 for every E ≥ m_c = 1, so the minimum is reached at (0, 1)
    assert _hand_h("contrastive", 0, 1) == _hand_h("contrastive", 0, 50) == 0
    assert check_condition2("contrastive", 0.5, 2.0, loss_margin=1.0, bounded=False).ok
    assert not check_condition2("contrastive", 1.0, 2.0, loss_margin=1.0, bounded=False).ok
    # conditions 1 and 3 do not depend on the bound: L_G′ − L_I′ is 2 (naive), > 0 (Chopra)
    for loss in PAIR_LOSSES:
        unbounded = check_conditions(loss, 0.5, 2.0, loss_margin=1.0, q=2.0, bounded=False)
        assert unbounded.condition1.ok and unbounded.condition3.ok


def test_the_verdict_table_matches_the_checks():
    """The page's table (lab.metric.geometry.VERDICT_TABLE) says what the checks find at m = 0.5,
    m_c = 1, Q = E_max = 2."""
    for loss, number, bounded_text, unbounded_text in VERDICT_TABLE:
        for bounded, text in ((True, bounded_text), (False, unbounded_text)):
            checks = check_conditions(loss, 0.5, 2.0, loss_margin=1.0, q=2.0, bounded=bounded)
            found = (checks.condition1, checks.condition2, checks.condition3)[number - 1].ok
            assert text.startswith("✓") == found, (loss, number, bounded)


@pytest.mark.parametrize("m", [0.2, 1.0, 3.9])
def test_chopra_conditions_with_q_the_energy_bound(m):
    checks = check_conditions("chopra", m, E_MAX, q=E_MAX)
    assert checks.all_ok, checks
    assert "(0, 4)" in checks.condition2.reason  # the minimum is the corner E_G = 0, E_I = Q


def test_chopra_condition3_holds_everywhere_analytically():
    e_genuine = np.linspace(0, E_MAX, 50)
    d_genuine, d_impostor = h_gradient("chopra", e_genuine, e_genuine + 0.7, q=E_MAX)
    expected = 4 * e_genuine / E_MAX + 2 * 2.77 * np.exp(-2.77 * (e_genuine + 0.7) / E_MAX)
    assert np.allclose(d_genuine - d_impostor, expected)


@pytest.mark.parametrize("loss", PAIR_LOSSES)
@pytest.mark.parametrize("m", [0.0, -1.0, E_MAX, 5.0])
def test_no_margin_outside_the_box(loss, m):
    checks = check_conditions(loss, m, E_MAX, q=E_MAX)
    assert not checks.condition1.ok
    assert checks.condition1.reason.endswith(".")
    if m >= E_MAX:
        assert not checks.condition3.ok and not checks.condition2.ok


# --- points from a run ---------------------------------------------------------------------

def _embedding(seed=0, labels=(0, 0, 0, 1, 1, 2, 2, 2, 2)):
    rng = np.random.default_rng(seed)
    labels = np.array(labels)
    return rng.normal(size=(labels.size, 3)), labels


def test_pair_points_all_triplets_brute_force():
    embeddings, labels = _embedding()
    energies = energy_matrix_np(embeddings, "l1")
    points = pair_points(energies, labels, max_points=10_000)
    n = labels.size
    expected = sorted((a, p, q) for a in range(n) for p in range(n) for q in range(n)
                      if a != p and labels[a] == labels[p] and labels[q] != labels[a])
    got = sorted(zip(points.anchor.tolist(), points.positive.tolist(), points.negative.tolist(),
                     strict=True))
    assert got == expected
    assert np.allclose(points.e_genuine, energies[points.anchor, points.positive])
    assert np.allclose(points.e_impostor, energies[points.anchor, points.negative])


def test_pair_points_sampled_are_valid_and_seeded():
    embeddings, labels = _embedding(labels=(2, 0, 1, 0, 2, 1, 1, 0, 2, 2, 3))  # unsorted
    points = pair_points_from_embeddings(embeddings, labels, "l2", max_points=50, seed=3)
    assert points.anchor.size == 50
    assert np.all(labels[points.anchor] == labels[points.positive])
    assert np.all(points.anchor != points.positive)
    assert np.all(labels[points.anchor] != labels[points.negative])
    again = pair_points_from_embeddings(embeddings, labels, "l2", max_points=50, seed=3)
    assert np.array_equal(points.negative, again.negative)
    # every negative of an anchor can be drawn
    many = pair_points_from_embeddings(embeddings, labels, "l2", max_points=5000, seed=1)
    anchor0 = many.negative[many.anchor == 0]
    assert set(anchor0.tolist()) == set(np.nonzero(labels != labels[0])[0].tolist())


def test_pair_points_without_genuine_pairs_is_empty():
    embeddings, labels = _embedding(labels=(0, 1, 2))
    points = pair_points_from_embeddings(embeddings, labels)
    assert points.e_genuine.size == 0
    assert math.isnan(margin_share(points.e_genuine, points.e_impostor, 0.5))


def test_margin_share():
    assert margin_share(np.array([0.0, 1.0, 0.5]), np.array([2.0, 1.5, 0.5]), 1.0) == \
        pytest.approx(1 / 3)


# --- triplet view and plateau ----------------------------------------------------------------

def test_triplet_regions_match_the_semihard_miner():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(3)
    embeddings = torch.randn(12, 4, generator=generator)
    energies = energy_matrix(embeddings, "sqeuclidean")
    points = pair_points(energies.numpy(), labels.numpy(), max_points=10_000)
    regions = triplet_regions(points.e_genuine, points.e_impostor, 2.0)
    semihard = {tuple(t) for t in zip(*[x.tolist() for x in semihard_triplets(
        energies, labels, 2.0)], strict=True)}
    mask = regions == "semi-hard"
    got = set(zip(points.anchor[mask].tolist(), points.positive[mask].tolist(),
                  points.negative[mask].tolist(), strict=True))
    assert got == semihard and got


def test_triplet_regions_by_hand():
    regions = triplet_regions([1.0, 1.0, 1.0, 1.0, 1.0], [0.5, 1.0, 1.1, 1.2, 2.0], 0.2)
    assert regions.tolist() == ["hard", "hard", "semi-hard", "easy", "easy"]
    grid = triplet_grid(0.2, 2.0, n=5)
    assert grid.values[0, 4] == pytest.approx(2.2)  # d(a,p) = 2, d(a,n) = 0
    assert grid.values[4, 0] == 0.0


@pytest.mark.parametrize("kind", ["l1", "l2", "sqeuclidean"])
def test_energy_gradient_norm_matches_autograd(kind):
    from lab.metric.energy import pairwise_energy

    dim = 8
    generator = torch.Generator().manual_seed(0)
    delta = torch.randn(20, dim, generator=generator, dtype=torch.float64)
    delta = delta * torch.logspace(-3, 0, 20, dtype=torch.float64)[:, None]
    delta.requires_grad_(True)
    energies = pairwise_energy(delta, torch.zeros_like(delta), kind)
    energies.sum().backward()
    expected = delta.grad.norm(dim=1).numpy()
    got = energy_gradient_norm(kind, energies.detach().numpy(), dim)
    assert np.allclose(got, expected)


def test_plateau_squared_energy_vanishes_l1_does_not():
    energies = np.array([0.0, 1e-4, 1e-2, 1.0])
    curves = plateau_curves(energies, dim=16)
    assert np.allclose(curves["l1"], 4.0)
    assert curves["sqeuclidean"].tolist() == pytest.approx([0.0, 0.02, 0.2, 2.0])
    # what pushes an impostor pair at E ≈ 0 apart: nothing for contrastive on squared L2 ...
    assert impostor_gradient_norm("contrastive", "sqeuclidean", 0.0, 16, loss_margin=1.0) == 0.0
    # ... but 2 · 2.77 · √D for Chopra's loss on L1
    assert impostor_gradient_norm("chopra", "l1", 0.0, 16, q=8.0) == pytest.approx(2 * 2.77 * 4)
    with pytest.raises(ValueError, match="plateau"):
        energy_gradient_norm("cosine", energies, 16)
