"""The public defense interface: what a built-in or outside defense implements.

A defense is a :class:`kernel.component.Component`, i.e. a frozen pydantic model:

- **Hyper-parameters** are its fields, with defaults and allowed ranges, e.g.
  ``beta: float = Field(0.003, ge=0, description="...")``. A value out of range in a config
  is refused before any trial starts (exit status 2, naming the field and what is allowed).
- **Metadata** are class variables: ``name`` (registry name), ``paper`` and ``paper_url``,
  ``summary`` (one line for ``lsmia-bench list`` and the leaderboard) and ``strength`` (the
  hyper-parameter whose sweep traces the defense's utility/privacy trade-off).
- **Loss**: :meth:`Defense.loss` gets a :class:`LossInputs` (logits, labels, inputs, number of
  classes, training progress, the model, the outputs of the submodules named by
  :meth:`Defense.feature_layers`, and the defense's training state) and returns a finite
  scalar tensor. Default: cross-entropy. It is called exactly once per optimiser step, before
  the backward pass, so a defense may also update its own objects there (Trap-MID's triggers
  and discriminator, kept in ``LossInputs.state``).
- **Model**: :meth:`Defense.wrap_model` may wrap or change the classifier (for example a
  bottleneck before the head). It must return a module that keeps the :class:`Classifier`
  contract, because attacks and metrics use the same model.
- **Schedule**: :meth:`Defense.at_epoch` returns the defense to train one epoch with (default:
  itself). A defense whose hyper-parameters change during training (label smoothing's ramped
  alpha) returns a copy holding that epoch's values; the hyper-parameters it names in
  :attr:`Defense.schedule_series` are recorded once per epoch as training curves.
- **Training set-up** (for defenses that are not a loss term):
  :meth:`Defense.prepare_training` gets a :class:`TrainingSetup` (model, optimiser, batches,
  the suite's training sizes, per-example access to the private training data and, where the
  suite has one, the PUBLIC split) once before the first epoch and returns the set-up to train
  with: it may set initial weights and freeze parameters (TL-DMI), or wrap the model, optimiser
  and batches (DP-SGD). :meth:`Defense.end_training` runs once after the last epoch and returns
  metrics recorded with the target (DP-SGD's epsilon; Trap-MID's trapdoor success on the
  private test split, ``TrainingSetup.test``). Objects the defense puts in ``setup.state``
  reach :meth:`Defense.loss` as ``LossInputs.state``. Neither runs when a trained target is
  loaded again.

The training loop, optimiser, learning-rate schedule, epochs and augmentation are the suite's
and are the same for every defense; a defense changes only what these methods change.

Built-in defenses are registered by name in :data:`defenses.DEFENSES`. Outside defenses plug in
through the entry-point group ``lsmia_bench.defenses`` or a ``path/to/file.py:ClassName``
reference in a config's ``defenses`` list; both are looked up and checked like the built-ins
(see :func:`benchmark.plugin_check.check_defense`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.kernel.component import Component


@dataclass
class LossInputs:
    """Everything a defense may use to compute the training loss of one batch."""

    logits: torch.Tensor
    """Shape (B, C): the model's output on the batch."""
    targets: torch.Tensor
    """Shape (B,), int64 class indices."""
    inputs: torch.Tensor
    """The (augmented) inputs the logits were computed from."""
    num_classes: int
    progress: float
    """Fraction of training done, in [0, 1): epoch / epochs (or iteration / iterations)."""
    model: nn.Module | None = None
    """The model being trained (after :meth:`Defense.wrap_model`), in train mode."""
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    """Named intermediate activations requested through :meth:`Defense.feature_layers`,
    captured during the forward pass that produced ``logits`` (gradients flow through them)."""
    state: dict[str, Any] = field(default_factory=dict)
    """``TrainingSetup.state`` of the set-up :meth:`Defense.prepare_training` returned: the
    same dict for every batch of a training, so the loss can use (and update, once per batch)
    the defense's own objects, e.g. Trap-MID's triggers and discriminator. Empty where no
    training set-up exists (the plug-in check's single probe batch)."""

    def feature(self, name: str) -> torch.Tensor:
        """The captured output of submodule ``name``; a clear error if it was not captured."""
        if name not in self.features:
            raise KeyError(f"feature {name!r} was not captured; feature_layers() must name it "
                           f"(captured: {sorted(self.features)})")
        value = self.features[name]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"feature {name!r} is a {type(value).__name__}, not a tensor; "
                            f"name a submodule that returns a tensor")
        return value


Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
"""One call is one epoch: an iterable of (inputs, targets) batches."""


@dataclass
class PublicData:
    """The suite's PUBLIC split (classes disjoint from the private ones): what an attacker's
    prior may see, and what a defense may pre-train on."""

    images: torch.Tensor
    """Shape (N, C, H, W) in [0, 1], on the CPU."""
    labels: torch.Tensor
    """Shape (N,), int64 in ``0..num_classes-1``."""
    num_classes: int


@dataclass
class TrainingSetup:
    """What a defense's :meth:`Defense.prepare_training` may read and replace.

    The pipeline trains ``model`` with ``optimizer`` on ``batches()`` for ``epochs`` epochs,
    builds the suite's learning-rate schedule on ``optimizer`` after the hook, and records and
    evaluates the model it built (the one ``model`` wraps, if the hook wrapped it).
    """

    model: nn.Module
    """The model to train (after :meth:`Defense.wrap_model`), on ``device``."""
    optimizer: torch.optim.Optimizer
    """The suite's optimiser over ``model.parameters()``."""
    batches: Batches
    """The suite's batches: shuffled, with the suite's augmentation."""
    epochs: int
    batch_size: int
    train_size: int
    """Number of private training examples."""
    num_classes: int
    device: torch.device
    seed: int
    """The trial's seed: a defense's own randomness derives from it."""
    examples: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    """Private training examples by index (a LongTensor), with the suite's augmentation, for a
    defense that samples its own batches; None where the pipeline gives no such access."""
    public: PublicData | None = None
    """The suite's public split; None where the pipeline has none (``toy``, ``faces``)."""
    test: tuple[torch.Tensor, torch.Tensor] | None = None
    """The private test split (images, labels) as the pipeline evaluates it, for measurements
    in :meth:`Defense.end_training` only (Trap-MID's trapdoor success rate); never train on
    it. None where the pipeline gives none."""
    state: dict[str, Any] = field(default_factory=dict)
    """The defense's own objects between :meth:`Defense.prepare_training` and
    :meth:`Defense.end_training` (an accountant, a wrapper to undo)."""


class Defense(Component):
    """Base class: no change to the model, cross-entropy loss.

    Override any of the four methods; each built-in defense in this folder is an example.
    """

    #: Per-epoch curves to record: series name -> numeric hyper-parameter, read from the
    #: defense :meth:`at_epoch` returned for each epoch (label smoothing: ``{"ls_alpha":
    #: "alpha"}``). Empty for a defense without a schedule.
    schedule_series: ClassVar[dict[str, str]] = {}

    def at_epoch(self, epoch: int, epochs: int) -> Defense:
        """The defense to train epoch ``epoch`` (0-based) of ``epochs`` with. Default: ``self``.

        Every training loop calls this at the start of every epoch, for every defense, and
        uses the returned defense's :meth:`loss` for all batches of that epoch (a pipeline
        that trains by iterations, like ``toy``, calls it per iteration). A schedule returns a
        copy with this epoch's values, e.g. ``self.model_copy(update={"beta": ...})``; defenses
        are frozen, so ``self`` is never changed. The result must be an instance of the same
        class and must not change what :meth:`wrap_model` or :meth:`feature_layers` return,
        because the model is built once before training.
        """
        return self

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Return the model to train (for example with a bottleneck). Default: unchanged.

        Called once on a freshly built classifier, before the optimiser is made, both when
        training and when a trained target is loaded again for an attack, so it must build the
        same structure every time. The result must keep the :class:`Classifier` contract.
        """
        return model

    def feature_layers(self, model: nn.Module) -> list[str]:
        """Names of submodules (``model.named_modules()``) whose outputs :meth:`loss` needs.

        ``model`` is the wrapped model. The outputs arrive in ``LossInputs.features``.
        """
        return []

    def loss(self, batch: LossInputs) -> torch.Tensor:
        """Scalar training loss of one batch. Default: cross-entropy with hard labels."""
        return F.cross_entropy(batch.logits, batch.targets)

    def prepare_training(self, setup: TrainingSetup) -> TrainingSetup:
        """The set-up to train with. Default: ``setup`` unchanged.

        Called once per training, after the model is built and wrapped and the optimiser made,
        before the first epoch; never when a trained target is loaded again, so it must not
        change the model's structure (that is :meth:`wrap_model`'s job). It may change the
        model's weights in place (pre-training), set ``requires_grad = False`` on parameters
        (the optimiser skips parameters without a gradient), and return a copy of ``setup``
        (``dataclasses.replace``) with a wrapped model, another optimiser over the same
        parameters, or other batches. Objects needed afterwards go in ``setup.state``.
        """
        return setup

    def end_training(self, setup: TrainingSetup) -> dict[str, float]:
        """Metrics to record with the target, from the set-up :meth:`prepare_training`
        returned, called once after the last epoch. Default: none.

        Undo here what must not outlive training (hooks a wrapper added). The names should
        be declared in the metric registry (``benchmark/metrics``) so that tables and the
        leaderboard explain them.
        """
        return {}
