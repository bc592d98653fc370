"""Confidence penalty as an lsmia-bench defense: cross-entropy minus weight * entropy.

Pereyra, Tucker, Chorowski, Kaiser, Hinton: "Regularizing Neural Networks by Penalizing
Confident Output Distributions", ICLR 2017 workshop. https://arxiv.org/abs/1701.06548
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from lsmia_bench.defenses import Defense, LossInputs


def confidence_penalty_loss(logits: torch.Tensor, targets: torch.Tensor,
                            weight: float) -> torch.Tensor:
    """mean_b [ CE(p_b, y_b) - weight * H(p_b) ], with H(p) = -sum_c p_c log p_c."""
    log_p = F.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    return (F.nll_loss(log_p, targets, reduction="none") - weight * entropy).mean()


class ConfidencePenalty(Defense):
    """Penalise confident predictions: loss = CE - weight * H(p).

    Paper: "Regularizing Neural Networks by Penalizing Confident Output Distributions",
    Pereyra et al., 2017 (https://arxiv.org/abs/1701.06548). Like negative label smoothing it
    changes how confident the trained classifier is, which is what model inversion exploits.

    Arguments:
        weight (float): weight of the entropy bonus, in [0, 10]. (Default: 0.1; the paper
            tunes it per task in [0.1, 4])

    Usage::

        pip install examples/confidence_penalty
        lsmia-bench submit confidence_penalty --meta examples/confidence_penalty/meta.yaml \\
            --suite digits
    """

    name: ClassVar[str] = "confidence_penalty"
    paper: ClassVar[str] = ("Regularizing Neural Networks by Penalizing Confident Output "
                            "Distributions (Pereyra et al., 2017)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/1701.06548"
    summary: ClassVar[str] = "Cross-entropy minus weight * entropy of the prediction."
    strength: ClassVar[str | None] = "weight"

    weight: float = Field(0.1, ge=0.0, le=10.0, description="weight of the entropy bonus")

    def loss(self, batch: LossInputs) -> torch.Tensor:
        return confidence_penalty_loss(batch.logits, batch.targets, self.weight)
