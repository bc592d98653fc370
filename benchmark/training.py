"""The training loop shared by every defense: only the defense's loss and model wrap differ."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.defenses.base import Defense, LossInputs

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]

#: Values of ``train_classifier(precision=...)``. None and "fp32" train in plain float32 (the
#: paper's setting); "bf16" and "fp16" run the forward pass under ``torch.autocast``.
PRECISIONS: tuple[str | None, ...] = (None, "fp32", "bf16", "fp16")
_AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLoss(RuntimeError):
    """The defense's loss became NaN or infinite; the trial fails with this message."""


@dataclass
class TrainingHistory:
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def as_series(self) -> dict[str, list[float]]:
        return {"train_loss": self.train_loss, "train_accuracy": self.train_accuracy} | self.extra


@contextmanager
def capture_features(model: nn.Module, names: list[str]):
    """Collect the outputs of the named submodules during forward passes."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"model has no submodules {missing}; known: {list(modules)[:20]}")
    captured: dict[str, torch.Tensor] = {}
    handles = [
        modules[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out))
        for n in names
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def check_precision(precision: str | None) -> str | None:
    """Refuse a value not in :data:`PRECISIONS` (a ValueError naming them); return it unchanged.

    Pure, so a pipeline can check its config before any data loads or any model trains.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of "
                         f"{', '.join(repr(p) for p in PRECISIONS)}")
    return precision


def autocast_context(device: torch.device | str,
                     precision: str | None) -> AbstractContextManager[Any]:
    """The context to run forward passes in: ``torch.autocast`` for "bf16" / "fp16" on
    ``device``'s type, a no-op for None / "fp32" (mixed precision halves activation memory and
    speeds up tensor cores on GPUs; the paper trains in fp32)."""
    check_precision(precision)
    if precision is None or precision == "fp32":
        return nullcontext()
    device_type = torch.device(device).type
    if not torch.amp.is_autocast_available(device_type):
        raise ValueError(f"{precision} mixed precision is not available on device type "
                         f"{device_type!r}; use precision 'fp32' there")
    return torch.autocast(device_type, dtype=_AUTOCAST_DTYPES[precision])


def _to_float32(value: Any) -> Any:
    """Half-precision tensors (from autocast) as float32; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value


def train_classifier(
    model: nn.Module,
    defense: Defense,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    num_classes: int,
    ctx: TaskContext,
    scheduler: Any | None = None,
    on_epoch: Callable[[int, TrainingHistory], None] | None = None,
    precision: str | None = None,
    state: dict[str, Any] | None = None,
    channels_last: bool = False,
    compile: bool = False,
) -> TrainingHistory:
    """Train ``model`` (already wrapped by the defense) for ``epochs`` passes over ``batches()``.

    Each epoch trains with ``defense.at_epoch(epoch, epochs)`` (the defense's schedule, see
    :meth:`defenses.base.Defense.at_epoch`); the values its ``schedule_series`` names are
    recorded per epoch in ``history.extra``.

    ``precision`` (one of :data:`PRECISIONS`): None / "fp32" train in plain float32 (the
    paper's setting, bit-identical to each other); "bf16" runs the model's forward pass under
    ``torch.autocast`` with bfloat16; "fp16" with float16 and a ``torch.amp.GradScaler``, which
    skips steps whose gradients overflow. Mixed precision halves activation memory and speeds
    up tensor cores on GPUs. The defense's loss is computed outside autocast, on the logits
    and the captured features cast back to float32; a NaN or infinite loss still raises
    :class:`NonFiniteLoss`.

    ``state`` (the ``state`` of the set-up the defense's ``prepare_training`` returned) reaches
    every ``loss`` call as ``LossInputs.state``, the same dict throughout.

    The step never waits for the device: the loss and accuracy sums stay on it (the loss in
    float64, so the history equals a per-batch ``.item()`` sum) and a NaN or infinite loss is
    raised at the end of its epoch. ``channels_last`` trains in that memory format (faster
    convolutions on GPUs; it changes fp32 results on the CPU); ``compile`` runs the forward
    pass through ``torch.compile``.
    """
    autocast = autocast_context(ctx.device, precision)  # validates precision and device type
    mixed = precision in _AUTOCAST_DTYPES
    scaler = torch.amp.GradScaler(ctx.device.type) if precision == "fp16" else None
    history = TrainingHistory()
    state = {} if state is None else state
    layers = defense.feature_layers(model)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model  # hooks stay on model's modules
    modules = list(model.modules())
    with capture_features(model, layers) as features:
        for epoch in range(epochs):
            # on_epoch may have evaluated the model (eval mode) after the last epoch; train()
            # itself costs more than a step of a tiny model, so it runs only when needed.
            if not all(module.training for module in modules):
                model.train()
            current = epoch_defense(defense, epoch, epochs)
            for series, value in schedule_values(current).items():
                history.extra.setdefault(series, []).append(value)
            total_loss = torch.zeros((), dtype=torch.float64, device=ctx.device)
            correct = torch.zeros((), dtype=torch.long, device=ctx.device)
            losses: list[torch.Tensor] = []  # read back only when the epoch's sum is not finite
            seen = 0
            for inputs, targets in batches():
                inputs = inputs.to(ctx.device, memory_format=memory_format, non_blocking=True)
                targets = targets.to(ctx.device, non_blocking=True)
                with autocast:
                    logits = forward(inputs)
                captured = dict(features)
                if mixed:  # defenses' losses (e.g. BiDO's linalg.solve) need float32
                    logits = logits.float()
                    captured = {name: _to_float32(out) for name, out in captured.items()}
                loss = current.loss(LossInputs(
                    logits=logits, targets=targets, inputs=inputs, num_classes=num_classes,
                    progress=epoch / epochs, model=model, features=captured, state=state,
                ))
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                    raise TypeError(f"defense {defense.name!r}: loss() must return a scalar "
                                    f"tensor, got {type(loss).__name__}")
                losses.append(loss.detach())
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)  # skipped when the scaled gradients are not finite
                    scaler.update()
                total_loss += loss.detach().double() * len(targets)
                correct += (logits.argmax(1) == targets).sum()
                seen += len(targets)
            # The epoch's one wait for the device (with the accuracy sum below). A float64 sum
            # of float32 losses is finite exactly when every loss is (it cannot overflow).
            epoch_loss = total_loss.item()
            if not math.isfinite(epoch_loss):
                first_bad = next(value for value in (float(loss) for loss in losses)
                                 if not math.isfinite(value))
                raise NonFiniteLoss(f"defense {defense.name!r}: loss is {first_bad} at "
                                    f"epoch {epoch}")
            if scheduler is not None:
                scheduler.step()
            history.train_loss.append(epoch_loss / max(seen, 1))
            history.train_accuracy.append(correct.item() / max(seen, 1))
            if on_epoch is not None:
                on_epoch(epoch, history)
            ctx.progress(epoch + 1, epochs, train_loss=history.train_loss[-1])
    if history.train_loss and not math.isfinite(history.train_loss[-1]):
        raise NonFiniteLoss(f"defense {defense.name!r}: final training loss is not finite")
    model.eval()
    return history


def epoch_defense(defense: Defense, epoch: int, epochs: int) -> Defense:
    """``defense.at_epoch(epoch, epochs)``, refused with a clear error unless it is a defense of
    the same class (a schedule that returned, say, a number would otherwise fail in loss())."""
    current = defense.at_epoch(epoch, epochs)
    if not isinstance(current, type(defense)):
        raise TypeError(f"defense {defense.name!r}: at_epoch() must return a "
                        f"{type(defense).__name__}, got {type(current).__name__}")
    return current


def schedule_values(defense: Defense) -> dict[str, float]:
    """The values of the hyper-parameters named by ``defense.schedule_series``, by series."""
    return {series: float(getattr(defense, field))
            for series, field in defense.schedule_series.items()}


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode on ``inputs``, batched, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    outs = [model(inputs[i:i + batch_size].to(device)).cpu()
            for i in range(0, len(inputs), batch_size)]
    return torch.cat(outs)
