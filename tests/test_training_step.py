"""The training step without host syncs: fp32 results (weights, loss and accuracy history) are
those of the per-batch ``.item()`` loop it replaced, bit for bit; channels_last and
torch.compile train to the same model within float tolerance; a NaN loss still fails the
epoch it appears in."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.training import NonFiniteLoss, train_classifier
from lsmia_bench.defenses import DEFENSES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = 3


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_classifier("cnn", {"channels": [4, 8], "feature_dim": 8}, in_channels=3,
                            image_size=8, num_classes=CLASSES)


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand(30, 3, 8, 8, generator=generator)
    targets = torch.arange(30) % CLASSES
    inputs[targets == 1, 0] += 0.5
    return [(inputs[i:i + 8], targets[i:i + 8]) for i in range(0, 30, 8)]


def _train(epochs: int = 3, **options) -> tuple[torch.nn.Module, object]:
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    history = train_classifier(model, DEFENSES.get("none")(), _data, optimizer, epochs,
                               CLASSES, TaskContext(), **options)
    return model, history


def _former_loop(epochs: int = 3) -> tuple[torch.nn.Module, list[float], list[float]]:
    """The step as it was: a host sync per batch for the loss, the accuracy and the NaN test."""
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses, accuracies = [], []
    for _ in range(epochs):
        model.train()
        total, correct, seen = 0.0, 0, 0
        for inputs, targets in _data():
            logits = model(inputs)
            loss = F.cross_entropy(logits, targets)
            assert torch.isfinite(loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(targets)
            correct += (logits.argmax(1) == targets).sum().item()
            seen += len(targets)
        losses.append(total / seen)
        accuracies.append(correct / seen)
    return model, losses, accuracies


def test_fp32_step_is_bit_identical_to_the_per_batch_item_loop():
    model, history = _train()
    former, losses, accuracies = _former_loop()
    assert history.train_loss == losses  # float64 sums on the device, same order
    assert history.train_accuracy == accuracies
    for (name, a), b in zip(model.state_dict().items(), former.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_channels_last_trains_the_same_model_within_float_tolerance():
    plain, history = _train()
    fast, fast_history = _train(channels_last=True)
    assert next(fast.parameters()).is_contiguous(memory_format=torch.channels_last) or any(
        p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last)
        for p in fast.parameters())
    for a, b in zip(plain.state_dict().values(), fast.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)
    assert fast_history.train_loss == pytest.approx(history.train_loss, rel=1e-4)


def test_compiled_forward_trains_the_same_model_within_float_tolerance(monkeypatch):
    # Dynamo's graph capture and AOT autograd, without inductor's C++ build (a minute cold)
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: compile_(model, backend="aot_eager"))
    plain, history = _train(epochs=1)
    compiled, compiled_history = _train(epochs=1, compile=True)
    for a, b in zip(plain.state_dict().values(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert compiled_history.train_loss == pytest.approx(history.train_loss, rel=1e-4)


def test_a_nan_loss_fails_its_epoch_with_the_loss_value():
    def batches():
        data = _data()
        data[1][0][0, 0, 0, 0] = float("nan")
        return data

    model = _model()
    with pytest.raises(NonFiniteLoss, match="loss is nan at epoch 0"):
        train_classifier(model, DEFENSES.get("none")(), batches,
                         torch.optim.SGD(model.parameters(), lr=0.1), 2, CLASSES,
                         TaskContext())


def test_an_epoch_after_on_epoch_evaluated_the_model_trains_in_train_mode():
    modes: list[bool] = []
    model = _model()
    model.register_forward_hook(lambda module, _i, _o: modes.append(module.training))
    train_classifier(model, DEFENSES.get("none")(), _data,
                     torch.optim.SGD(model.parameters(), lr=0.1), 3, CLASSES, TaskContext(),
                     on_epoch=lambda epoch, history: model.eval())
    assert modes == [True] * 3 * len(_data())
    assert not model.training  # evaluated after training
