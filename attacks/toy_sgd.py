"""The attack of the paper's motivational 2-D example."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lsmia_bench.attacks.base import Attack, AttackOutput
from lsmia_bench.kernel.component import ThreatModel


class ToySGD(Attack):
    """Plain SGD on the input toward a class, from a fixed start point.

    Paper: "Be Careful What You Smooth For", Struppek et al., ICLR 2024, Fig. 1 and the toy
    notebook of its repository. The target is in eval mode; the attack minimises the
    cross-entropy toward the class and stops once its confidence passes ``confidence``.

    Arguments:
        start (list[float]): start point. (Default: [-3, -10], inside class 0)
        lr (float): SGD step size. (Default: 0.1)
        max_steps (int): cap on the number of steps. (Default: 10000)
        confidence (float): stop when the class probability exceeds this. (Default: 0.95)

    Shape: reconstructions (len(classes), D).
    """

    name: ClassVar[str] = "toy_sgd"
    paper: ClassVar[str] = "Be Careful What You Smooth For (Struppek et al., ICLR 2024)"
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2310.06549"
    summary: ClassVar[str] = "SGD on a 2-D input toward a class, from a fixed start point."
    threat_model: ClassVar[ThreatModel] = "white-box"
    probe_params: ClassVar[dict[str, Any]] = {"max_steps": 2}

    start: list[float] = Field(default_factory=lambda: [-3.0, -10.0], min_length=1)
    lr: float = Field(0.1, gt=0)
    max_steps: int = Field(10_000, ge=1)
    confidence: float = Field(0.95, gt=0, lt=1)

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        target.eval()
        device = next(target.parameters()).device
        finals, traces = [], []
        for cls in classes:
            point = torch.tensor([self.start], dtype=torch.float32, device=device,
                                 requires_grad=True)
            label = torch.tensor([cls], device=device)
            # Thousands of steps on one 2-D point: the per-step cost is Python and dispatch,
            # so the path and gradients go into buffers filled in place, only the point's
            # gradient is computed (not the target's weights'), and the step is SGD's own
            # update x <- x - lr * grad (torch.optim.SGD without momentum, bit for bit).
            path = torch.empty(self.max_steps + 1, point.shape[1], device=device)
            grads = torch.empty(self.max_steps, point.shape[1], device=device)
            path[0] = point.detach()
            confs: list[float] = []
            steps = 0
            for _ in range(self.max_steps):
                logits = target(point)
                with torch.no_grad():
                    conf = F.softmax(logits, dim=1)[0, cls].item()
                confs.append(conf)
                if conf > self.confidence:
                    break
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, label), point)
                grads[steps] = grad
                with torch.no_grad():
                    point.add_(grad, alpha=-self.lr)
                steps += 1
                path[steps] = point.detach()
            finals.append(point.detach().cpu())
            traces.append({"trajectory": path[:steps + 1].cpu(), "confidence": confs,
                           "gradients": grads[:steps].cpu(), "steps": steps})
        return AttackOutput(
            reconstructions=torch.cat(finals),
            labels=torch.as_tensor(list(classes)),
            trace={"runs": traces},
        )
