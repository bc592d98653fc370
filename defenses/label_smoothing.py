"""Label smoothing with positive or negative factors.

Struppek, Hintersdorf, Kersting: "Be Careful What You Smooth For: Label Smoothing Can Be a
Privacy Shield but Also a Catalyst for Model Inversion Attacks", ICLR 2024.
https://arxiv.org/abs/2310.06549
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from lsmia_bench.defenses.base import Defense, LossInputs


def smoothed_targets(targets: torch.Tensor, num_classes: int, alpha: float) -> torch.Tensor:
    """y_LS = (1 - alpha) * onehot(y) + alpha / C."""
    onehot = F.one_hot(targets, num_classes).to(torch.get_default_dtype())
    return (1.0 - alpha) * onehot + alpha / num_classes


def label_smoothing_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float
) -> torch.Tensor:
    """mean_b [ -sum_c y_LS[b, c] log p[b, c] ] = (1 - alpha) * NLL + alpha * mean_c(-log p_c).

    Valid for alpha in (-1, 1); PyTorch's own ``label_smoothing`` refuses alpha < 0. The batch
    mean is taken once (a known bug elsewhere divides by the batch size twice).
    """
    log_probs = F.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    uniform = -log_probs.mean(dim=-1)
    return ((1.0 - alpha) * nll + alpha * uniform).mean()


def negative_label_smoothing_schedule(
    progress: float, alpha: float, ramp_start: float = 0.5, ramp_end: float = 0.75
) -> float:
    """alpha_t = 0 before ramp_start, linear up to alpha at ramp_end, alpha after.

    ``progress`` is the fraction of training done (epoch / epochs). The paper's code uses
    ramp_start = 0.5 and ramp_end = 0.75 for negative factors.
    """
    if progress < ramp_start:
        return 0.0
    if progress >= ramp_end or ramp_end <= ramp_start:
        return alpha
    return alpha * (progress - ramp_start) / (ramp_end - ramp_start)


class LabelSmoothing(Defense):
    """Label smoothing: train against y_LS = (1 - alpha) * y + alpha / C.

    Paper: "Be Careful What You Smooth For", Struppek et al., ICLR 2024
    (https://arxiv.org/abs/2310.06549). Positive alpha (0.1, 0.05) makes a model leak more to
    model inversion; negative alpha (-0.05) makes it leak less.

    Arguments:
        alpha (float): smoothing factor in (-1, 1). (Default: -0.05, the paper's defense)
        schedule_negative (bool): ramp negative alpha in as the paper's code does; positive
            alpha is always constant. (Default: True)
        ramp_start (float): fraction of training with alpha = 0. (Default: 0.5)
        ramp_end (float): fraction of training at which the full alpha is reached. (Default: 0.75)
    """

    name: ClassVar[str] = "label_smoothing"
    paper: ClassVar[str] = "Be Careful What You Smooth For (Struppek et al., ICLR 2024)"
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2310.06549"
    summary: ClassVar[str] = "Soft targets (1-a)*y + a/C; a < 0 is the paper's defense."
    strength: ClassVar[str | None] = "alpha"
    schedule_series: ClassVar[dict[str, str]] = {"ls_alpha": "alpha"}

    alpha: float = Field(-0.05, gt=-1.0, lt=1.0, description="smoothing factor in (-1, 1)")
    schedule_negative: bool = Field(True, description="ramp a negative alpha in (paper's code)")
    ramp_start: float = Field(0.5, ge=0.0, le=1.0, description="fraction of training at alpha=0")
    ramp_end: float = Field(0.75, ge=0.0, le=1.0, description="fraction at which alpha is full")

    @model_validator(mode="after")
    def _ramp_in_order(self) -> LabelSmoothing:
        if self.ramp_end < self.ramp_start:
            raise ValueError(
                f"ramp_end ({self.ramp_end}) must not be below ramp_start ({self.ramp_start})"
            )
        return self

    def alpha_at(self, progress: float) -> float:
        if self.alpha < 0 and self.schedule_negative:
            return negative_label_smoothing_schedule(
                progress, self.alpha, self.ramp_start, self.ramp_end
            )
        return self.alpha

    def at_epoch(self, epoch: int, epochs: int) -> LabelSmoothing:
        """This epoch's alpha as a constant: the schedule goes through the public hook, so the
        training loops need not know label smoothing (and record ``ls_alpha`` from it)."""
        return self.model_copy(update={"alpha": self.alpha_at(epoch / epochs),
                                       "schedule_negative": False})

    def loss(self, batch: LossInputs) -> torch.Tensor:
        return label_smoothing_cross_entropy(
            batch.logits, batch.targets, self.alpha_at(batch.progress)
        )
