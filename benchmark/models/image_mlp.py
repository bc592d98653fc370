"""A multilayer perceptron on flattened images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ImageMLP(nn.Module):
    """Flatten -> [Linear -> BN -> ReLU] per entry of ``hidden`` -> Linear head.

    Without convolutions it sees images differently from the CNN and the ResNet, which makes
    it a candidate evaluation model for small suites.

    Arguments:
        in_channels (int): image channels. (Default: 1)
        image_size (int): height = width of the input. (Default: 32)
        num_classes (int): number of classes. (Default: 10)
        hidden (list of int): widths of the hidden layers; the last is the penultimate
            feature size. (Default: [256, 128])
    """

    def __init__(self, in_channels: int = 1, image_size: int = 32, num_classes: int = 10,
                 hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("hidden must list at least one layer width")
        layers, previous = [], in_channels * image_size * image_size
        for width in hidden:
            layers.append(nn.Sequential(nn.Linear(previous, width), nn.BatchNorm1d(width),
                                        nn.ReLU(inplace=True)))
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(previous, num_classes)
        self.feature_dim = previous
        self.hidden_layers = [f"body.{i}" for i in range(len(hidden))]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (B, feature_dim)."""
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
