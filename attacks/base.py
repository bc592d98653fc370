"""The attack interface: target + classes (+ generator prior) -> reconstructions + trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.component import Component


@dataclass
class AttackOutput:
    reconstructions: torch.Tensor
    """Shape (N, *input_shape): the attack's final samples, in the target's input space."""
    labels: torch.Tensor
    """Shape (N,): the class each reconstruction was made for."""
    trace: dict[str, Any] = field(default_factory=dict)
    """Optimisation trace: ``gradients`` (T, ...) of one run, ``loss`` per step, and so on."""


class Attack(Component):
    """Base of every attack. Hyper-parameters are fields with the authors' defaults."""

    #: Whether the attack needs a generator prior trained on public data.
    needs_prior: ClassVar[bool] = False

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        raise NotImplementedError
