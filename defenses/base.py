"""The public defense interface.

A defense is a :class:`benchmark.component.Component`: its pydantic fields are its
hyper-parameters (defaults and allowed ranges included), its class variables its metadata.
It may change the training loss (:meth:`Defense.loss`) and may wrap or change the model
(:meth:`Defense.wrap_model`). The training loop is shared by every defense in a suite, so
the optimiser, schedule, epochs and augmentation are the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.component import Component


@dataclass
class LossInputs:
    """Everything a defense may use to compute the training loss of one batch."""

    logits: torch.Tensor
    """Shape (B, C): the model's output on the batch."""
    targets: torch.Tensor
    """Shape (B,), int64 class indices."""
    inputs: torch.Tensor
    """The (augmented) inputs the logits were computed from."""
    num_classes: int
    progress: float
    """Fraction of training done, in [0, 1): epoch / epochs (or iteration / iterations)."""
    model: nn.Module | None = None
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    """Named intermediate activations requested through :meth:`Defense.feature_layers`."""


class Defense(Component):
    """Base class: no change to the model, cross-entropy loss."""

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Return the model to train (for example with a bottleneck). Default: unchanged."""
        return model

    def feature_layers(self, model: nn.Module) -> list[str]:
        """Names of submodules (``model.named_modules()``) whose outputs :meth:`loss` needs."""
        return []

    def loss(self, batch: LossInputs) -> torch.Tensor:
        """Scalar training loss of one batch. Default: cross-entropy with hard labels."""
        return F.cross_entropy(batch.logits, batch.targets)
