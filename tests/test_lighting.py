"""lab.learn.lighting: the lighting augmentation, and that the trainer applies it when asked."""

from __future__ import annotations

import torch

from lab.core.config import RunConfig
from lab.learn import lighting


def flat(n: int = 400) -> torch.Tensor:
    return torch.full((n, 1, 24, 24), 0.5)


def test_same_generator_same_light_and_range():
    a = lighting.light_batch(flat(), torch.Generator().manual_seed(3))
    b = lighting.light_batch(flat(), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (400, 1, 24, 24)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_light_comes_from_a_side_and_sometimes_hides_half_a_face():
    out = lighting.light_batch(flat(), torch.Generator().manual_seed(0))[:, 0]
    left, right = out[:, :, :8].mean(dim=(1, 2)), out[:, :, -8:].mean(dim=(1, 2))
    top, bottom = out[:, :8].mean(dim=(1, 2)), out[:, -8:].mean(dim=(1, 2))
    lopsided = ((left - right).abs() > 0.05) | ((top - bottom).abs() > 0.05)
    # gradient (p 0.7) or shadow (p 0.3): about 0.7 + 0.3 * 0.3 = 79 % of images are lopsided
    assert 0.65 < lopsided.float().mean() < 0.92
    # a half-face shadow darkens one side by 30-70 %: a left/right ratio no gradient of
    # strength <= 0.6 reaches with contrast and gamma alone in more than a few images
    ratio = torch.maximum(left, right) / torch.minimum(left, right).clamp_min(1e-3)
    assert (ratio > 1.8).float().mean() > 0.1
    means = out.mean(dim=(1, 2))
    assert means.std() > 0.05  # gamma and contrast move the overall brightness too


def test_trainer_applies_lighting_only_when_asked(monkeypatch):
    from lab.learn import train

    calls: list[int] = []
    real = train.light_batch

    def counting(images, generator):
        calls.append(len(images))
        return real(images, generator)

    monkeypatch.setattr(train, "light_batch", counting)
    config = RunConfig(num_identities=8, images_per_identity=4, image_size=16,
                       val_identities=2, test_identities=2, epochs=1, p_identities=4,
                       k_images=2, extra={"width": 4}, device="cpu")
    list(train.Trainer(config, probes=False, evaluate=False).fit())
    assert calls == []
    list(train.Trainer(config.replace(lighting=True), probes=False, evaluate=False).fit())
    assert calls and all(n == 8 for n in calls)
