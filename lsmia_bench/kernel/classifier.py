"""The classifier protocol that targets, wrapped targets, probes and evaluation models keep."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Classifier(Protocol):
    """The contract of every classifier in lsmia-bench (targets, wrapped targets, probes).

    ``forward(x)`` returns logits ``(B, C)``; ``embed(x)`` the penultimate features
    ``(B, feature_dim)``; ``head`` is the final ``nn.Linear`` (``logits = head(embed(x))`` for
    deterministic models); ``hidden_layers`` names the submodules (``named_modules()``) whose
    outputs are the hidden blocks, first to last, for defenses such as BiDO.
    """

    head: nn.Linear
    feature_dim: int
    hidden_layers: list[str]

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...
