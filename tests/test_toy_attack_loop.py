"""The toy attack's step loop (buffers, the point's gradient only, SGD's update by hand) gives
the trajectory, gradients and confidences of the plain ``torch.optim.SGD`` loop bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lsmia_bench.attacks.toy_sgd import ToySGD
from lsmia_bench.benchmark.models.mlp import ToyMLP

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _target() -> torch.nn.Module:
    torch.manual_seed(3)
    model = ToyMLP(2, 8, 3)
    with torch.no_grad():  # running statistics that are not the identity
        model(torch.randn(64, 2) * 5)
    return model.eval()


def _sgd_loop(target: torch.nn.Module, cls: int, attack: ToySGD):
    """The loop with torch.optim.SGD, ``.backward()`` and a clone per step."""
    point = torch.tensor([attack.start], requires_grad=True)
    optimizer = torch.optim.SGD([point], lr=attack.lr)
    path, grads, confs = [point.detach().clone()], [], []
    for _ in range(attack.max_steps):
        logits = target(point)
        conf = F.softmax(logits, dim=1)[0, cls].item()
        confs.append(conf)
        if conf > attack.confidence:
            break
        optimizer.zero_grad()
        F.cross_entropy(logits, torch.tensor([cls])).backward()
        grads.append(point.grad.detach().clone())
        optimizer.step()
        path.append(point.detach().clone())
    return torch.cat(path), torch.cat(grads), confs


@pytest.mark.parametrize("max_steps", [5, 400])
def test_toy_attack_equals_the_torch_optim_sgd_loop_bit_for_bit(max_steps):
    target = _target()
    attack = ToySGD(start=[-3.0, -10.0], lr=0.5, max_steps=max_steps, confidence=0.9)
    out = attack.run(target, [2])
    run = out.trace["runs"][0]
    path, grads, confs = _sgd_loop(_target(), 2, attack)
    assert run["steps"] == len(grads) > 0
    assert torch.equal(run["trajectory"], path)
    assert torch.equal(run["gradients"], grads)
    assert run["confidence"] == confs
    assert torch.equal(out.reconstructions, path[-1:])
    assert all(p.grad is None for p in target.parameters())  # only the point is differentiated
