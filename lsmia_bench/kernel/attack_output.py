"""What every attack returns: reconstructions per class plus the optimisation trace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class AttackOutput:
    reconstructions: torch.Tensor
    """Shape (N, *input_shape): the attack's final samples, in the target's input space."""
    labels: torch.Tensor
    """Shape (N,): the class each reconstruction was made for."""
    trace: dict[str, Any] = field(default_factory=dict)
    """Optimisation trace of one run: ``gradients`` (T, S, ...) gradients of the optimised
    variable (latent or input) for S tracked samples at each of T steps, ``loss`` (T,) mean
    total loss per step, and attack-specific curves."""
    latents: torch.Tensor | None = None
    """Shape (N, *latent_shape) or None: the generator latent each reconstruction was made
    from (attacks through a generator prior), so that the evaluation can generate it again at
    its own resolution (PPA's code judges 1024 px faces center-cropped to 800 px and resized
    straight to the evaluation model's 299 px, not via the target's 224 px)."""
    queries: int | None = None
    """Images the attack sent to the target (each image of a batch counts), for attacks that
    see the target only through an oracle (black-box, label-only); None when not counted."""
