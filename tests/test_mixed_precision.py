"""Optional mixed precision in the shared training loop: fp32 stays bit-identical, bf16 and
fp16 (autocast, fp16 with a GradScaler) train on the CPU, unknown values are refused."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.training import (
    PRECISIONS,
    NonFiniteLoss,
    autocast_context,
    check_precision,
    train_classifier,
)
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.defenses.bido import BiDO

NUM_CLASSES = 3


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_classifier("cnn", {"channels": [4, 8], "feature_dim": 8}, in_channels=1,
                            image_size=8, num_classes=NUM_CLASSES)


def _separable(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c lights up row block c of an 8x8 image, over small noise."""
    generator = torch.Generator().manual_seed(3)
    targets = torch.arange(n) % NUM_CLASSES
    inputs = 0.1 * torch.rand(n, 1, 8, 8, generator=generator)
    for c in range(NUM_CLASSES):
        inputs[targets == c, :, 2 * c:2 * c + 3, :] += 1.0
    return inputs, targets


def _train(precision: str | None, epochs: int, inputs: torch.Tensor, targets: torch.Tensor,
           defense=None) -> tuple[torch.nn.Module, list[float]]:
    defense = defense if defense is not None else DEFENSES.get("none")()
    model = defense.wrap_model(_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    half = len(targets) // 2
    history = train_classifier(model, defense, lambda: [(inputs[:half], targets[:half]),
                                                        (inputs[half:], targets[half:])],
                               optimizer, epochs, NUM_CLASSES, TaskContext(),
                               precision=precision)
    return model, history.train_loss


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_none_and_fp32_are_bit_identical(one_torch_thread):
    inputs, targets = torch.rand(48, 1, 8, 8), torch.arange(48) % NUM_CLASSES
    plain, plain_loss = _train(None, 3, inputs, targets)
    fp32, fp32_loss = _train("fp32", 3, inputs, targets)
    assert plain_loss == fp32_loss
    a, b = _weights(plain), _weights(fp32)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_trains_and_keeps_float32_weights(one_torch_thread):
    inputs, targets = _separable()
    bf16, losses = _train("bf16", 15, inputs, targets)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]
    fp32, _ = _train("fp32", 15, inputs, targets)
    low, full = _weights(bf16), _weights(fp32)
    assert all(v.dtype == torch.float32 for k, v in low.items() if v.is_floating_point())
    assert any(not torch.equal(low[k], full[k]) for k in low if low[k].is_floating_point())


def test_fp16_trains_on_cpu_with_a_grad_scaler(one_torch_thread):
    # torch 2.14 supports float16 autocast and GradScaler on the CPU, so fp16 runs there too.
    inputs, targets = _separable()
    fp16, losses = _train("fp16", 15, inputs, targets)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == torch.float32 for p in fp16.parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_feeds_float32_to_the_defense(precision, one_torch_thread):
    # BiDO's HSIC solves a linear system, which has no half-precision kernel on the CPU.
    inputs, targets = _separable(24)
    seen: list[tuple[torch.dtype, set[torch.dtype]]] = []

    class Recording(BiDO):
        def loss(self, batch):
            seen.append((batch.logits.dtype, {f.dtype for f in batch.features.values()}))
            return super().loss(batch)

    _, losses = _train(precision, 1, inputs, targets, defense=Recording())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert seen and all(d == torch.float32 and f == {torch.float32} for d, f in seen)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_nan_loss_still_raises_under_mixed_precision(precision, one_torch_thread):
    inputs, targets = _separable(24)
    inputs[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLoss, match="loss is nan"):
        _train(precision, 1, inputs, targets)


@pytest.mark.parametrize("bad", ["fp8", "FP16", "float32", ""])
def test_unknown_precision_is_refused_naming_the_allowed_values(bad, one_torch_thread):
    with pytest.raises(ValueError, match="None, 'fp32', 'bf16', 'fp16'"):
        check_precision(bad)
    inputs, targets = _separable(24)
    with pytest.raises(ValueError, match=f"unknown precision {bad!r}"):
        _train(bad, 1, inputs, targets)


def test_autocast_context():
    assert PRECISIONS == (None, "fp32", "bf16", "fp16")
    assert all(check_precision(p) == p for p in PRECISIONS)
    assert isinstance(autocast_context(torch.device("cpu"), None), nullcontext)
    assert isinstance(autocast_context("cpu", "fp32"), nullcontext)
    x = torch.ones(2, 2)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with autocast_context(torch.device("cpu"), precision):
            assert (x @ x).dtype == dtype
