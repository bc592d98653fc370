"""Small multilayer perceptrons."""

from __future__ import annotations

import torch
from torch import nn


class ToyMLP(nn.Module):
    """Linear(2,h) -> BN -> ReLU -> Linear(h,h) -> BN -> ReLU -> Linear(h,C, no bias).

    The architecture of the paper's toy notebook (h = 20, C = 3). Like every classifier in
    lsmia-bench it exposes ``embed`` (penultimate features), ``head`` (the last linear layer),
    ``feature_dim`` and ``hidden_layers``.
    """

    def __init__(self, in_features: int = 2, hidden: int = 20, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, num_classes, bias=False)
        self.feature_dim = hidden
        #: Outputs of the hidden blocks (after each ReLU), for defenses such as BiDO.
        self.hidden_layers = ["body.2", "body.5"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
