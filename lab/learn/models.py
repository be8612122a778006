"""Embedding networks: images [N, C, H, W] -> embeddings [N, D].

Four depths of the same idea, so a lesson can show what depth adds:

- ``linear``: one matrix W, the learned Mahalanobis metric of ``deep-metric-learning.md``:
  E(x, y) = ||W x - W y|| = sqrt((x - y)ᵀ M (x - y)) with M = WᵀW.
- ``mlp``: two hidden layers on the flattened pixels.
- ``cnn``: a small LeNet-like convolutional net in the spirit of Chopra, Hadsell & LeCun 2005
  (convolution, pooling, convolution, pooling, then a fully connected projection).
- ``resnet``: a small residual net (He et al. 2016), three stages of basic blocks.

All take any channel count and image size: the convolutional nets end in adaptive pooling, the
flat ones size their first layer from ``in_channels * image_size²``. The embedding size is
``config.embedding_dim``; embeddings are L2-normalised when ``config.normalize`` (FaceNet), which
bounds every energy and keeps the margin meaningful. Classifier losses (ArcFace, CosFace, softmax)
keep their class weights in the loss criterion, never here: the model only embeds.

Width: ``config.width`` (default 32 channels for cnn/resnet, 256 units for mlp).
``config.init_scale`` multiplies the initial head weights (a collapsed start).

``config.flip_average``: at evaluation (eval mode) an image and its left-right mirror are embedded
and their head outputs averaged before normalisation, so the embedding of a face does not depend
on which way it looks. Training sees single images (augmentation flips them); the saved weights
are the same either way, so the switch lives in the config and every use of the model (maps,
metrics, verify a pair) applies it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lab.core.config import NETWORKS, RunConfig
from lab.core.limits import MAX_EMBEDDING_DIM, MAX_IMAGE_SIZE


class EmbeddingNet(nn.Module):
    """A body that maps images to features, a linear head to ``embedding_dim``, then L2 norm."""

    def __init__(self, body: nn.Module, features: int, embedding_dim: int, normalize: bool,
                 network: str, bias: bool = True, flip_average: bool = False):
        super().__init__()
        self.network = network
        self.embedding_dim = embedding_dim
        self.normalize = normalize
        self.flip_average = flip_average
        self.body = body
        self.head = nn.Linear(features, embedding_dim, bias=bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.flip_average and not self.training and images.dim() == 4:
            both = self.head(self.body(torch.cat([images, images.flip(-1)])))
            embeddings = 0.5 * (both[: len(images)] + both[len(images):])
        else:
            embeddings = self.head(self.body(images))
        if self.normalize:
            embeddings = F.normalize(embeddings.float(), dim=1, eps=1e-8)
        return embeddings


class LinearMetric(EmbeddingNet):
    """E(x, y) = ||Wx - Wy||: the learned Mahalanobis metric M = WᵀW (no bias, no depth)."""

    def __init__(self, in_features: int, embedding_dim: int, normalize: bool):
        super().__init__(nn.Flatten(), in_features, embedding_dim, normalize, "linear", bias=False)

    def mahalanobis_matrix(self) -> torch.Tensor:
        """M = WᵀW [F, F], positive semi-definite by construction (rank <= embedding_dim)."""
        weight = self.head.weight.detach()
        return weight.T @ weight


def _mlp_body(in_features: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, width), nn.ReLU(inplace=True),
        nn.Linear(width, width), nn.ReLU(inplace=True),
    )


def adaptive_avg_pool_matmul(x: torch.Tensor, size: int) -> torch.Tensor:
    """F.adaptive_avg_pool2d(x, size) as two matrix products: bin i of a side of n pixels
    averages pixels floor(i n / s) <= k < ceil((i + 1) n / s), the bins PyTorch uses.

    Why: CUDA's adaptive-pooling backward adds gradients with atomics, so two runs with the
    same seed differ in their last bits (and then more); matmul has a deterministic backward.
    """
    def bins(n: int) -> torch.Tensor:
        i = torch.arange(size, device=x.device)[:, None]
        k = torch.arange(n, device=x.device)[None, :]
        start, end = (i * n) // size, ((i + 1) * n + size - 1) // size
        inside = (k >= start) & (k < end)
        return inside.to(x.dtype) / (end - start).to(x.dtype)

    height, width = x.shape[-2:]
    return bins(height) @ x @ bins(width).T


class AdaptiveAvgPool(nn.AdaptiveAvgPool2d):
    """nn.AdaptiveAvgPool2d with a deterministic backward on CUDA (see
    :func:`adaptive_avg_pool_matmul`); on the CPU, PyTorch's own (deterministic there)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and isinstance(self.output_size, int):
            return adaptive_avg_pool_matmul(x, self.output_size)
        return super().forward(x)


def _cnn_body(in_channels: int, width: int) -> nn.Module:
    """Chopra-style: conv 5x5, pool, conv 5x5, pool, conv 3x3, adaptive pool to 4x4.

    Batch normalisation is the one modern addition: it lets the small net train in seconds.
    """
    def block(cin: int, cout: int, kernel: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_channels, width, 5), nn.MaxPool2d(2, ceil_mode=True),
        *block(width, 2 * width, 5), nn.MaxPool2d(2, ceil_mode=True),
        *block(2 * width, 2 * width, 3),
        AdaptiveAvgPool(4), nn.Flatten(),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


def _resnet_body(in_channels: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        BasicBlock(width, width, 1),
        BasicBlock(width, 2 * width, 2),
        BasicBlock(2 * width, 4 * width, 2),
        AdaptiveAvgPool(1), nn.Flatten(),
    )


def build_model(config: RunConfig, in_channels: int, image_size: int | tuple[int, int]
                ) -> EmbeddingNet:
    """The embedding net named by ``config.network`` for images [N, in_channels, H, W]."""
    if config.network not in NETWORKS:
        raise ValueError(f"unknown network {config.network!r}: choose one of {', '.join(NETWORKS)}")
    if not 1 <= config.embedding_dim <= MAX_EMBEDDING_DIM:
        raise ValueError(f"embedding_dim must be between 1 and {MAX_EMBEDDING_DIM}, "
                         f"got {config.embedding_dim}")
    height, width_px = (image_size, image_size) if isinstance(image_size, int) else image_size
    if min(height, width_px) < 4 or max(height, width_px) > 4 * MAX_IMAGE_SIZE:
        raise ValueError(f"image size {height}x{width_px} is outside 4..{4 * MAX_IMAGE_SIZE}")
    dim, normalize = config.embedding_dim, config.normalize
    flat = in_channels * height * width_px
    width = int(config.width or (256 if config.network == "mlp" else 32))
    if config.network == "linear":
        model: EmbeddingNet = LinearMetric(flat, dim, normalize)
    elif config.network == "mlp":
        model = EmbeddingNet(_mlp_body(flat, width), width, dim, normalize, "mlp")
    elif config.network == "cnn":
        model = EmbeddingNet(_cnn_body(in_channels, width), 2 * width * 16, dim, normalize, "cnn")
    else:
        model = EmbeddingNet(_resnet_body(in_channels, width), 4 * width, dim, normalize, "resnet")
    model.flip_average = bool(config.flip_average)
    init_scale = config.init_scale
    if init_scale is not None:
        # A collapsed start (lesson "plateau"): every embedding near 0, so every pair, impostors
        # included, starts at near-zero energy.
        with torch.no_grad():
            model.head.weight.mul_(float(init_scale))
            if model.head.bias is not None:
                model.head.bias.mul_(float(init_scale))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
