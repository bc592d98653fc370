"""A small convolutional network for small grey or colour images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SmallCNN(nn.Module):
    """[Conv3x3 -> BN -> ReLU -> MaxPool2] per entry of ``channels`` -> flatten ->
    Linear -> ReLU (the penultimate features) -> Linear head.

    A plain MNIST-style network, sized for a CPU. Like every classifier in lsmia-bench it
    exposes ``embed`` (penultimate features), ``head`` (the last linear layer), ``feature_dim``
    and ``hidden_layers`` (outputs of each conv block and of the feature layer).

    Arguments:
        in_channels (int): image channels. (Default: 1)
        image_size (int): height = width of the input; must be divisible by 2**len(channels).
            (Default: 32)
        num_classes (int): number of classes. (Default: 10)
        channels (list of int): output channels of the conv blocks. (Default: [32, 64, 128])
        feature_dim (int): width of the penultimate layer. (Default: 128)
    """

    def __init__(self, in_channels: int = 1, image_size: int = 32, num_classes: int = 10,
                 channels: Sequence[int] = (32, 64, 128), feature_dim: int = 128) -> None:
        super().__init__()
        if not channels or image_size % 2 ** len(channels):
            raise ValueError(f"image_size {image_size} is not divisible by 2**{len(channels)} "
                             f"(one halving per conv block); use fewer channels entries")
        blocks, previous = [], in_channels
        for width in channels:
            blocks.append(nn.Sequential(
                nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True), nn.MaxPool2d(2)))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        spatial = image_size // 2 ** len(channels)
        self.fc = nn.Sequential(nn.Linear(previous * spatial * spatial, feature_dim),
                                nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.hidden_layers = [f"blocks.{i}" for i in range(len(channels))] + ["fc"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (B, feature_dim)."""
        return self.fc(self.blocks(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
