"""MI-Face: gradient descent in the target's input space, no generator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from lsmia_bench.attacks.base import Attack, AttackOutput, model_device
from lsmia_bench.attacks.losses import class_confidence, total_variation
from lsmia_bench.kernel.component import ThreatModel


class MIFace(Attack):
    """Minimise c(x) = 1 - p_y(x) + AuxTerm(x) by gradient descent on the input x.

    Paper: "Model Inversion Attacks that Exploit Confidence Information and Basic
    Countermeasures", Fredrikson et al., CCS 2015, https://doi.org/10.1145/2810103.2813677,
    Algorithm 1 (MI-FACE): x_0 = 0, x_i = PROCESS(x_{i-1} - lambda grad c(x_{i-1})), stop after
    alpha steps, when c(x_i) >= max(c(x_{i-1}), ..., c(x_{i-beta})) or when c(x_i) <= gamma;
    return the x_i of lowest cost. Here AuxTerm is an image prior, tv_weight * TV(x) +
    l2_weight * mean(x^2), and PROCESS clamps to the valid range [0, 1] (the paper's
    denoising/sharpening filters are not reproduced). Each sample stops on its own.

    Stopping: the paper's gamma = 0.99 stops a sample once c(x) <= 0.99, i.e. once p_y >= 1 %
    (without AuxTerm); from x_0 = 0 a target with fewer than about 100 classes gives that
    after the first step, so the attack would measure nothing. By default there is no cost
    threshold (``stop_cost=None``): a sample runs until the step limit or the rising-cost test.
    ``stop_cost=0.99`` restores the paper's rule.

    Arguments:
        lr (float): lambda, the step size. (Default: 0.1, paper)
        iterations (int): alpha, the step limit. (Default: 5000, paper)
        patience (int): beta; the rising-cost test needs a full window of beta costs.
            (Default: 100, paper)
        stop_cost (float | None): gamma; stop once c(x) <= gamma; None: never on the cost.
            (Default: None, so the attack runs its course; the paper's 0.99 is an option)
        tv_weight (float): total variation weight in AuxTerm. (Default: 0, paper's AuxTerm is 0)
        l2_weight (float): L2 weight in AuxTerm. (Default: 0)
        init ("zeros" | "uniform"): x_0 = 0 (paper) or U(0, 1). (Default: "zeros")
        samples_per_class (int): samples per class; more than one needs init "uniform".
            (Default: 1)
        input_shape (tuple | None): the target's input (C, H, W); None reads
            ``target.input_shape``. (Default: None)

    Shape: reconstructions (len(classes) * samples_per_class, C, H, W).
    """

    name: ClassVar[str] = "mi_face"
    paper: ClassVar[str] = ("Model Inversion Attacks that Exploit Confidence Information "
                            "(Fredrikson et al., CCS 2015)")
    paper_url: ClassVar[str] = "https://doi.org/10.1145/2810103.2813677"
    summary: ClassVar[str] = "Gradient descent on the input with an image prior, no generator."
    threat_model: ClassVar[ThreatModel] = "white-box"
    trace_samples: ClassVar[int] = 1  # input-space gradients are large
    probe_params: ClassVar[dict[str, Any]] = {"iterations": 2, "patience": 1}

    lr: float = Field(0.1, gt=0)
    iterations: int = Field(5000, ge=1)
    patience: int = Field(100, ge=1)
    stop_cost: float | None = Field(None, ge=0)
    tv_weight: float = Field(0.0, ge=0)
    l2_weight: float = Field(0.0, ge=0)
    init: Literal["zeros", "uniform"] = "zeros"
    samples_per_class: int = Field(1, ge=1)
    input_shape: tuple[int, int, int] | None = None

    @model_validator(mode="after")
    def _distinct_samples(self) -> MIFace:
        if self.samples_per_class > 1 and self.init == "zeros":
            raise ValueError("samples_per_class > 1 needs init 'uniform' (zeros give copies)")
        return self

    def cost(self, target: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """c(x) = 1 - p_y(x) + tv_weight * TV(x) + l2_weight * mean(x^2), per sample (N,)."""
        cost = 1 - class_confidence(target(x), labels)
        if self.tv_weight:
            cost = cost + self.tv_weight * total_variation(x)
        if self.l2_weight:
            cost = cost + self.l2_weight * x.pow(2).flatten(1).mean(dim=1)
        return cost

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        shape = self.input_shape or getattr(target, "input_shape", None)
        if shape is None:
            raise ValueError("mi_face needs the target's input shape: set input_shape=(C, H, W) "
                             "or give the target an ``input_shape`` attribute")
        target.eval()
        device = model_device(target)
        labels = torch.as_tensor(list(classes), device=device)
        labels = labels.repeat_interleave(self.samples_per_class)
        x = (torch.zeros if self.init == "zeros" else torch.rand)((len(labels), *shape))
        x = x.to(device)
        best_x, best_cost = x.clone(), torch.full((len(labels),), float("inf"), device=device)
        active = torch.ones(len(labels), dtype=torch.bool, device=device)
        history: list[torch.Tensor] = []  # the last `patience` costs
        grads, losses, steps = [], [], torch.zeros(len(labels), dtype=torch.long)
        for _ in range(self.iterations):
            x.requires_grad_(True)
            cost = self.cost(target, x, labels)
            grad, = torch.autograd.grad(cost.sum(), x)
            with torch.no_grad():
                step = torch.where(active.view(-1, *[1] * len(shape)), grad, 0.0)
                x = (x - self.lr * step).clamp(0, 1)
                new_cost = self.cost(target, x, labels)
            grads.append(grad[:self.trace_samples].detach().cpu())
            losses.append(new_cost[active].mean().item())
            steps += active.cpu()
            better = active & (new_cost < best_cost)
            best_cost = torch.where(better, new_cost, best_cost)
            best_x[better] = x[better]
            rising = (torch.stack(history).max(dim=0).values <= new_cost
                      if len(history) == self.patience else torch.zeros_like(active))
            active &= ~rising
            if self.stop_cost is not None:
                active &= new_cost > self.stop_cost
            history = (history + [new_cost])[-self.patience:]
            if not active.any():
                break
        return AttackOutput(best_x.detach().cpu(), labels.cpu(), {
            "gradients": torch.stack(grads), "loss": losses, "steps": steps.tolist(),
            "final_cost": best_cost.cpu().tolist()})
