"""Lighting augmentation: the same face under light it was never photographed in.

AT&T's 40 people were photographed in one lab under soft, even light; an upload is lit from a
window on one side, by a desk lamp, or by a phone's flash. A network that never saw one face lit
two ways learns brightness patterns as identity. Each training image here gets, with its own
random draws (from the trainer's generator, so a run is reproducible):

- a directional light gradient: brightness times 1 + a (x cos t + y sin t), a in [0, 0.6],
  the light coming from any angle t (x, y in [-1, 1] across the image), with probability 0.7;
- gamma: x ** g, log g uniform in [log 0.6, log 1.6] (a camera's tone curve, under/over exposure);
- contrast: (x - mean) c + mean, c in [0.6, 1.4];
- a shadow on one half of the face, with probability 0.3: the left or right half (soft edge,
  a sigmoid 0.08 of the width wide, its centre within 15 % of the middle) times s in [0.3, 0.7],
  the side lighting that hides half a face.

Applied to the network input (after lab.faces.facepipe's pipeline, which is cached once per
dataset), on whatever device the batch is on. With a light normalisation in the pipeline (Tan &
Triggs, CLAHE) it perturbs the normalised image, which is then a milder, different test of
robustness.
"""

from __future__ import annotations

import math

import torch

GRADIENT_P, SHADOW_P = 0.7, 0.3


def light_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] -> the same faces under random light, in [0, 1]."""
    n, _, height, width = images.shape
    draws = torch.rand(n, 9, generator=generator, device=generator.device).cpu()
    draws = draws.to(images.device, torch.float32)
    ys = torch.linspace(-1.0, 1.0, height, device=images.device)[None, :, None]
    xs = torch.linspace(-1.0, 1.0, width, device=images.device)[None, None, :]

    angle = 2 * math.pi * draws[:, 0, None, None]
    strength = 0.6 * draws[:, 1, None, None] * (draws[:, 2, None, None] < GRADIENT_P)
    gradient = 1.0 + strength * (xs * torch.cos(angle) + ys * torch.sin(angle))

    side = torch.where(draws[:, 3] < 0.5, -1.0, 1.0)[:, None, None]
    centre = 0.15 * (2 * draws[:, 4, None, None] - 1)
    dark = 0.3 + 0.4 * draws[:, 5, None, None]
    shadow_on = (draws[:, 6, None, None] < SHADOW_P).float()
    in_shadow = torch.sigmoid(side * (xs - centre) / 0.08)  # 1 on the shadowed half
    shadow = 1.0 - shadow_on * in_shadow * (1.0 - dark)

    out = (images.float() * (gradient * shadow)[:, None]).clamp(0.0, 1.0)
    gamma = torch.exp(math.log(0.6) + (math.log(1.6) - math.log(0.6)) * draws[:, 7])
    out = out.clamp_min(1e-6) ** gamma[:, None, None, None]
    contrast = (0.6 + 0.8 * draws[:, 8])[:, None, None, None]
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean).clamp(0.0, 1.0).to(images.dtype)
