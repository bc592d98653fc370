"""MomentumSGD updates parameters exactly as torch.optim.SGD does, without torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lsmia_bench.benchmark.models.mlp import ToyMLP
from lsmia_bench.benchmark.optimizers import MomentumSGD
from lsmia_bench.defenses.label_smoothing import label_smoothing_cross_entropy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(optimizer_class: type, momentum: float, steps: int = 30) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = ToyMLP(2, 8, 3)
    inputs, targets = torch.randn(40, 2) * 4, torch.randint(0, 3, (40,))
    optimizer = optimizer_class(model.parameters(), lr=0.05, momentum=momentum)
    for step in range(steps):
        loss = label_smoothing_cross_entropy(model(inputs), targets, -0.05)
        optimizer.zero_grad(set_to_none=step % 2 == 0)
        loss.backward()
        if step == 3:  # a parameter without a gradient in one step is left alone
            model.head.weight.grad = None
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_momentum_sgd_equals_torch_sgd_bit_for_bit(momentum):
    expected = _train(torch.optim.SGD, momentum)
    found = _train(MomentumSGD, momentum)
    assert all(torch.equal(a, b) for a, b in zip(found, expected, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(found, _train(MomentumSGD, momentum, 29),
                                                     strict=True))


def test_momentum_sgd_refuses_what_torch_sgd_refuses():
    weight = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one"):
        MomentumSGD([{"params": [weight]}, {"params": [weight]}], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        MomentumSGD([weight], lr=-1.0)
    with pytest.raises(TypeError, match="Tensors"):
        MomentumSGD([{"params": ["weight"]}], lr=0.1)


def test_momentum_sgd_does_not_import_dynamo():
    code = ("import sys, torch\n"
            "from lsmia_bench.benchmark.optimizers import MomentumSGD\n"
            "w = torch.zeros(3, requires_grad=True)\n"
            "opt = MomentumSGD([w], lr=0.1, momentum=0.9)\n"
            "for _ in range(2):\n"
            "    opt.zero_grad(); (w * w + w).sum().backward(); opt.step()\n"
            "assert 'torch._dynamo' not in sys.modules, 'imported'\n"
            "torch.optim.SGD([w], lr=0.1)\n"
            "assert 'torch._dynamo' in sys.modules, 'the check above would pass anyway'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
