"""Embedding nets: any input shape, the chosen embedding size, unit norm when asked."""

from __future__ import annotations

import pytest
import torch

from lab.core.config import RunConfig
from lab.learn.models import build_model


@pytest.mark.parametrize("network", ["linear", "mlp", "cnn", "resnet"])
@pytest.mark.parametrize("channels,size", [(1, 8), (3, 24), (1, 13)])
def test_shapes_and_normalisation(network, channels, size):
    config = RunConfig(network=network, embedding_dim=12)
    model = build_model(config, channels, size).eval()
    out = model(torch.rand(3, channels, size, size))
    assert out.shape == (3, 12)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_rectangular_images_and_no_normalisation():
    model = build_model(RunConfig(normalize=False, embedding_dim=5), 1, (56, 46)).eval()
    out = model(torch.rand(2, 1, 56, 46))
    assert out.shape == (2, 5) and not torch.allclose(out.norm(dim=1), torch.ones(2))


def test_linear_metric_is_mahalanobis():
    model = build_model(RunConfig(network="linear", embedding_dim=3, normalize=False), 1, 4)
    m = model.mahalanobis_matrix()
    x, y = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    d = (x - y).flatten()
    assert torch.allclose((model(x) - model(y)).pow(2).sum(), d @ m @ d, rtol=1e-4)
    assert torch.linalg.eigvalsh(m).min() > -1e-6  # positive semi-definite


def test_width_from_extra_and_bad_config():
    small = build_model(RunConfig(extra={"width": 8}), 1, 32)
    large = build_model(RunConfig(extra={"width": 32}), 1, 32)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in large.parameters())
    with pytest.raises(ValueError, match="unknown network"):
        build_model(RunConfig(network="vgg"), 1, 32)
    with pytest.raises(ValueError, match="embedding_dim"):
        build_model(RunConfig(embedding_dim=0), 1, 32)


@pytest.mark.parametrize("network", ["linear", "cnn"])
def test_flip_average_makes_a_face_and_its_mirror_one_embedding(network):
    config = RunConfig(network=network, embedding_dim=8, flip_average=True, extra={"width": 4})
    torch.manual_seed(0)
    model = build_model(config, 1, 16)
    plain = build_model(config.replace(flip_average=False), 1, 16)
    assert model.state_dict().keys() == plain.state_dict().keys()  # same weights file
    images = torch.rand(3, 1, 16, 16)
    model.eval()
    assert torch.allclose(model(images), model(images.flip(-1)), atol=1e-6)
    model.train()  # training sees single images: the mirror is a different input there
    assert not torch.allclose(model(images), model(images.flip(-1)), atol=1e-4)
