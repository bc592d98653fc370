"""An SGD for models so small that the optimiser's own bookkeeping is a large part of a step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class MomentumSGD(torch.optim.Optimizer):
    """SGD with momentum, bit for bit as ``torch.optim.SGD(params, lr, momentum)`` (no
    dampening, Nesterov or weight decay), in three ``torch._foreach`` calls per step:
    v <- mu * v + g (v <- g at a parameter's first step), p <- p - lr * v.

    The toy MLP's step is about a millisecond, and ``torch.optim.SGD`` spends a quarter of it
    grouping tensors and checking options. Its methods also import ``torch._dynamo`` on first
    use (to keep ``torch.compile`` out of them), over a second in every process; nothing here
    needs it, so this class never imports it. A plain ``torch.optim.Optimizer`` otherwise: a
    defense's ``prepare_training`` may wrap or replace it (e.g. DP-SGD).
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0) -> None:
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}")
        if momentum < 0:
            raise ValueError(f"invalid momentum {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.add_param_group`` without its torch._dynamo wrapper."""
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        seen = {id(p) for existing in self.param_groups for p in existing["params"]}
        for param in group["params"]:
            if not isinstance(param, torch.Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(param).__name__}")
            if id(param) in seen:
                raise ValueError("some parameters appear in more than one parameter group")
            seen.add(id(param))
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.detach_().requires_grad_(False).zero_()

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            updates = [p.grad for p in params]
            if group["momentum"]:
                states = [self.state[p] for p in params]
                buffers = [state.get("momentum_buffer") for state in states]
                if all(buffer is not None for buffer in buffers):
                    torch._foreach_mul_(buffers, group["momentum"])
                    torch._foreach_add_(buffers, updates)
                else:  # a parameter's first step: its buffer starts as its gradient
                    for state, grad, buffer in zip(states, updates, buffers, strict=True):
                        if buffer is None:
                            state["momentum_buffer"] = torch.clone(grad).detach()
                        else:
                            buffer.mul_(group["momentum"]).add_(grad)
                updates = [state["momentum_buffer"] for state in states]
            torch._foreach_add_(params, updates, alpha=-group["lr"])
        return loss
