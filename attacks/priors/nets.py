"""Small DCGAN-style networks of the GMI and KED-MI code, for any image size 4 * 2^k.

Layouts follow the authors' ``generator.py`` / ``discri.py`` (GMI: Zhang et al., CVPR 2020,
github.com/AI-secure/GMI-Attack; KED-MI: Chen et al., ICCV 2021,
github.com/SCccc21/Knowledge-Enriched-DMI): a linear layer to a 4x4 map, transposed 5x5
convolutions with BatchNorm + ReLU doubling the size, sigmoid output in [0, 1]; critics of
strided 5x5 convolutions with InstanceNorm + LeakyReLU(0.2). Their 64 px / width 64 layout is
``ImageGenerator(100, 3, 64, 64)``; the CPU suites use smaller sizes and widths.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _stages(image_size: int) -> int:
    """Number of 2x resolution steps from 4x4 to ``image_size``."""
    stages = math.log2(image_size / 4) if image_size >= 8 else -1
    if stages < 1 or not stages.is_integer():
        raise ValueError(f"image_size must be 4 * 2^k with k >= 1 (8, 16, 32, 64, ...), "
                         f"got {image_size}")
    return int(stages)


class ImageGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, channels, image_size, image_size) in [0, 1]."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64,
                 width: int = 64) -> None:
        super().__init__()
        stages = _stages(image_size)
        self.latent_dim = latent_dim
        start = width * 2 ** (stages - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, start * 16, bias=False), nn.BatchNorm1d(start * 16), nn.ReLU())
        blocks: list[nn.Module] = []
        channels_in = start
        for _ in range(stages - 1):
            blocks += [nn.ConvTranspose2d(channels_in, channels_in // 2, 5, 2, padding=2,
                                          output_padding=1, bias=False),
                       nn.BatchNorm2d(channels_in // 2), nn.ReLU()]
            channels_in //= 2
        blocks += [nn.ConvTranspose2d(channels_in, channels, 5, 2, padding=2, output_padding=1),
                   nn.Sigmoid()]
        self.upsample = nn.Sequential(*blocks)
        self.start = start

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1)).view(z.shape[0], self.start, 4, 4)
        return self.upsample(x)


def _down(channels_in: int, channels_out: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(channels_in, channels_out, 5, 2, 2)]
    if norm:
        # The authors use InstanceNorm in place of LayerNorm (no gradient-penalty-safe BN).
        layers.append(nn.InstanceNorm2d(channels_out, affine=True))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class WGANCritic(nn.Module):
    """images (N, channels, S, S) -> critic scores (N,) (GMI's DGWGAN)."""

    def __init__(self, channels: int = 3, image_size: int = 64, width: int = 64) -> None:
        super().__init__()
        stages = _stages(image_size)
        layers: list[nn.Module] = [_down(channels, width, norm=False)]
        for i in range(stages - 1):
            layers.append(_down(width * 2 ** i, width * 2 ** (i + 1), norm=True))
        layers.append(nn.Conv2d(width * 2 ** (stages - 1), 1, 4))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).view(-1)


class MinibatchDiscrimination(nn.Module):
    """o(x_i)_b = sum_{j != i} exp(-||M_i,b - M_j,b||_1), M = x T (Salimans et al., 2016)."""

    def __init__(self, in_features: int, out_features: int = 64, kernel_dims: int = 50) -> None:
        super().__init__()
        self.out_features, self.kernel_dims = out_features, kernel_dims
        self.T = nn.Parameter(torch.randn(in_features, out_features * kernel_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x @ self.T).view(-1, self.out_features, self.kernel_dims)
        distance = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(dim=3)
        closeness = torch.exp(-distance).sum(dim=0) - 1  # minus the sample itself
        return torch.cat([x, closeness], dim=1)


class KPlusOneDiscriminator(nn.Module):
    """images -> (features (N, F), class logits (N, num_classes)); KED-MI's
    MinibatchDiscriminator: realness is logsumexp of the logits (the "K+1"-th class implicit).

    Minibatch discrimination costs O(N^2 * features * kernel) per batch; the authors use
    64 x 50, CPU suites may pass smaller sizes.
    """

    def __init__(self, num_classes: int, channels: int = 3, image_size: int = 64,
                 width: int = 64, minibatch_features: int = 64, minibatch_kernel: int = 50) -> None:
        super().__init__()
        stages = _stages(image_size)
        widths = [width * 2 ** min(i, 2) for i in range(stages)]
        layers = [_down(channels, widths[0], norm=True)]
        layers += [_down(widths[i - 1], widths[i], norm=True) for i in range(1, stages)]
        self.layers = nn.Sequential(*layers)
        features = widths[-1] * 16
        self.minibatch = MinibatchDiscrimination(features, minibatch_features, minibatch_kernel)
        self.classify = nn.Linear(features + minibatch_features, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.layers(x).flatten(1)
        return features, self.classify(self.minibatch(features))
