import math

import numpy as np
import pytest
import torch

from lab.metric.energy import (
    ENERGIES,
    energy_bound,
    energy_matrix,
    energy_matrix_np,
    pairwise_energy,
    pairwise_energy_np,
)


def test_hand_computed_values():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert pairwise_energy(a, b, "l1").tolist() == [7.0, 3.0]
    assert pairwise_energy(a, b, "l2").tolist() == pytest.approx([5.0, math.sqrt(5.0)])
    assert pairwise_energy(a, b, "sqeuclidean").tolist() == [25.0, 5.0]
    cosine = pairwise_energy(a[1:], b[1:], "cosine")
    assert cosine.item() == pytest.approx(1.0)  # orthogonal
    opposite = pairwise_energy(torch.tensor([[1.0, 1.0]]), torch.tensor([[-2.0, -2.0]]), "cosine")
    assert opposite.item() == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ENERGIES)
def test_matrix_pairwise_and_numpy_twins_agree(kind):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    matrix = energy_matrix(x, kind, y)
    assert matrix.shape == (7, 4)
    for i in range(7):
        row = pairwise_energy(x[i].expand(4, 5), y, kind)
        assert torch.allclose(matrix[i], row)
    assert np.allclose(energy_matrix_np(x.numpy(), kind, y.numpy()), matrix.numpy())
    assert np.allclose(pairwise_energy_np(x[:4].numpy(), y.numpy(), kind),
                       pairwise_energy(x[:4], y, kind).numpy())
    square = energy_matrix(x, kind)
    assert torch.allclose(square, square.T)
    assert torch.allclose(torch.diagonal(square), torch.zeros(7, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("kind", ENERGIES)
def test_no_nan_gradient_when_embeddings_coincide(kind):
    x = torch.tensor([[0.3, -0.2, 0.5], [0.3, -0.2, 0.5], [1.0, 0.0, 0.0]], requires_grad=True)
    loss = pairwise_energy(x[:1], x[1:2], kind).sum() + energy_matrix(x, kind).sum()
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert pairwise_energy(x[:1], x[1:2], kind).item() == pytest.approx(0.0, abs=1e-6)


def test_l2_gradient_away_from_zero_is_the_unit_difference():
    a = torch.tensor([[3.0, 4.0]], requires_grad=True)
    pairwise_energy(a, torch.zeros(1, 2), "l2").sum().backward()
    assert a.grad[0].tolist() == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize("kind", ENERGIES)
def test_bound_holds_for_unit_vectors_and_is_reached(kind):
    dim = 16
    generator = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(50, dim, generator=generator), dim=1)
    assert energy_matrix(x, kind).max().item() <= energy_bound(kind, dim) + 1e-5
    worst = torch.full((1, dim), 1.0 / math.sqrt(dim))
    assert pairwise_energy(worst, -worst, kind).item() == pytest.approx(energy_bound(kind, dim))


def test_unknown_energy_is_refused():
    with pytest.raises(ValueError, match="unknown energy"):
        pairwise_energy(torch.zeros(1, 2), torch.zeros(1, 2), "manhattan")
    with pytest.raises(ValueError, match="equal shapes"):
        pairwise_energy(torch.zeros(2, 2), torch.zeros(1, 2), "l1")
