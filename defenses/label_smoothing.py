"""Label smoothing with positive or negative factors.

Struppek, Hintersdorf, Kersting: "Be Careful What You Smooth For: Label Smoothing Can Be a
Privacy Shield but Also a Catalyst for Model Inversion Attacks", ICLR 2024.
https://arxiv.org/abs/2310.06549
"""

from __future__ import annotations

from typing import ClassVar, Literal

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
    """alpha_p = 0 for p < start; alpha (p - start) / (end - start) up to end; alpha after.

    ``progress`` p is the fraction of training done (epoch / epochs). This is the ``linear``
    schedule: a proportional variant of the paper's code that smooths in runs of any length;
    :func:`ppa_code_label_smoothing_schedule` is the authors' own.
    """
    if progress < ramp_start:
        return 0.0
    if progress >= ramp_end or ramp_end <= ramp_start:
        return alpha
    return alpha * (progress - ramp_start) / (ramp_end - ramp_start)


def ppa_code_label_smoothing_schedule(epoch: int, epochs: int, alpha: float) -> float:
    """alpha_e = 0 for e < 50, alpha (e + 1 - 50) / (E - 50) for 50 <= e < 75, alpha for e >= 75.

    The authors' ``ls_scheduler`` in ``train_model.py`` (github.com/LukasStruppek/
    Plug-and-Play-Attacks at 3087a4f): absolute, 0-based epochs e of E. With E = 100 it
    reaches alpha / 2 at epoch 74 and jumps to alpha at 75; with E <= 50 it never smooths.
    """
    if epoch < 50:
        return 0.0
    if epoch < 75:
        return alpha * (epoch + 1 - 50) / (epochs - 50)
    return alpha


#: Named warm-up schedules of a negative alpha (the field ``schedule``).
Schedule = Literal["linear", "ppa_code"]


class LabelSmoothing(Defense):
    """Label smoothing: train against y_LS = (1 - alpha) * y + alpha / C.

    Paper: "Be Careful What You Smooth For", Struppek et al., ICLR 2024
    (https://arxiv.org/abs/2310.06549). Positive alpha (0.1, 0.05) makes a model leak more to
    model inversion; negative alpha (-0.05) makes it leak less. The paper's code
    (``train_model.py``) warms a negative alpha up; positive alpha is always constant.

    Arguments:
        alpha (float): smoothing factor in (-1, 1). (Default: -0.05, the paper's defense)
        schedule_negative (bool): warm a negative alpha up with ``schedule``; False trains
            with a constant alpha. (Default: True)
        schedule ("linear" | "ppa_code"): the warm-up. "ppa_code" is the authors' schedule on
            absolute epochs (:func:`ppa_code_label_smoothing_schedule`; never smooths in runs
            of 50 epochs or fewer); "linear" is 0 until ``ramp_start``, then linear to alpha
            at ``ramp_end``, as fractions of training (:func:`negative_label_smoothing_schedule`),
            for short runs. (Default: "linear"; the faces suite uses "ppa_code")
        ramp_start (float): fraction of training with alpha = 0 ("linear" only). (Default: 0.5)
        ramp_end (float): fraction at which the full alpha is reached ("linear" only).
            (Default: 0.75)
    """

    name: ClassVar[str] = "label_smoothing"
    paper: ClassVar[str] = "Be Careful What You Smooth For (Struppek et al., ICLR 2024)"
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2310.06549"
    summary: ClassVar[str] = "Soft targets (1-a)*y + a/C; a < 0 is the paper's defense."
    strength: ClassVar[str | None] = "alpha"
    schedule_series: ClassVar[dict[str, str]] = {"ls_alpha": "alpha"}

    alpha: float = Field(-0.05, gt=-1.0, lt=1.0, description="smoothing factor in (-1, 1)")
    schedule_negative: bool = Field(True, description="warm a negative alpha up (paper's code)")
    schedule: Schedule = Field("linear", description="warm-up of a negative alpha: 'linear' "
                               "(fractions ramp_start..ramp_end) or 'ppa_code' (the authors' "
                               "absolute epochs 50..75)")
    ramp_start: float = Field(0.5, ge=0.0, le=1.0, description="fraction of training at alpha=0")
    ramp_end: float = Field(0.75, ge=0.0, le=1.0, description="fraction at which alpha is full")

    @model_validator(mode="after")
    def _ramp_in_order(self) -> LabelSmoothing:
        if self.ramp_end < self.ramp_start:
            raise ValueError(
                f"ramp_end ({self.ramp_end}) must not be below ramp_start ({self.ramp_start})"
            )
        ramps = sorted({"ramp_start", "ramp_end"} & self.model_fields_set)
        if self.schedule == "ppa_code" and ramps:
            raise ValueError(f"{' and '.join(ramps)} {'are' if len(ramps) > 1 else 'is'} for "
                             "schedule 'linear' only; "
                             "schedule 'ppa_code' ramps over the fixed epochs 50 to 75: "
                             "remove them or use schedule 'linear'")
        return self

    @property
    def _warms_up(self) -> bool:
        return self.alpha < 0 and self.schedule_negative

    def alpha_at(self, progress: float) -> float:
        """alpha at the fraction ``progress`` of training (schedule "linear" or none)."""
        if not self._warms_up:
            return self.alpha
        if self.schedule == "ppa_code":
            raise ValueError("schedule 'ppa_code' counts absolute epochs, not fractions of "
                             "training: use alpha_at_epoch(epoch, epochs) or at_epoch()")
        return negative_label_smoothing_schedule(
            progress, self.alpha, self.ramp_start, self.ramp_end
        )

    def alpha_at_epoch(self, epoch: int, epochs: int) -> float:
        """alpha in epoch ``epoch`` (0-based) of ``epochs``, under this defense's schedule."""
        if self._warms_up and self.schedule == "ppa_code":
            return ppa_code_label_smoothing_schedule(epoch, epochs, self.alpha)
        return self.alpha_at(epoch / epochs)

    def at_epoch(self, epoch: int, epochs: int) -> LabelSmoothing:
        """This epoch's alpha as a constant: the schedule goes through the public hook, so the
        training loops need not know label smoothing (and record ``ls_alpha`` from it)."""
        return self.model_copy(update={"alpha": self.alpha_at_epoch(epoch, epochs),
                                       "schedule_negative": False})

    def loss(self, batch: LossInputs) -> torch.Tensor:
        return label_smoothing_cross_entropy(
            batch.logits, batch.targets, self.alpha_at(batch.progress)
        )
