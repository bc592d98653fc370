"""Small multilayer perceptrons."""

from __future__ import annotations

import torch
from torch import nn


class ToyMLP(nn.Module):
    """Linear(2,h) -> BN -> ReLU -> Linear(h,h) -> BN -> ReLU -> Linear(h,C, no bias).

    The architecture of the paper's toy notebook (h = 20, C = 3).
    """

    def __init__(self, in_features: int = 2, hidden: int = 20, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, num_classes, bias=False)
        self.feature_dim = hidden

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
