"""Trap-MID: Trapdoor-based Model Inversion Defense.

Liu, Chen: "Trap-MID: Trapdoor-based Defense against Model Inversion Attacks", NeurIPS 2024.
https://arxiv.org/abs/2411.08460
Authors' code: https://github.com/ntuaislab/Trap-MID (``engine.py`` ``train``, ``blend`` and
``test``; ``train.py`` trigger initialisation; ``config/celeba/classify_trap.json`` and
``config/mnist/classify_trap.json`` ``trapdoor`` settings).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lsmia_bench.defenses.base import Defense, LossInputs, TrainingSetup

#: Key of the defense's objects in ``TrainingSetup.state`` / ``LossInputs.state``.
STATE_KEY = "trap_mid"
#: The authors' optimiser settings (``classify_trap.json``): the discriminator's optimiser
#: where no suite optimiser is known (the plug-in check's probe batch).
AUTHORS_SGD = {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4}


def blend(images: torch.Tensor, keys: torch.Tensor, alpha: float) -> torch.Tensor:
    """x' = (1 - alpha) x + alpha k (the authors' ``blend``)."""
    return alpha * keys + (1.0 - alpha) * images


def balanced_labels(count: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` trapdoor labels: every class floor(count / C) times plus count mod C distinct
    random classes, shuffled (the authors' ``trapdoor_iden_iterator``, drawn per epoch)."""
    repeats, rest = divmod(count, num_classes)
    labels = torch.cat([torch.arange(num_classes).repeat(repeats),
                        torch.randperm(num_classes, generator=generator)[:rest]])
    return labels[torch.randperm(count, generator=generator)]


def trigger_step(triggers: torch.Tensor, grad: torch.Tensor, step: float) -> torch.Tensor:
    """k <- clamp(k - step * sign(dL/dk), 0, 1): a signed-gradient descent step on the trigger
    objective L, kept in the image range."""
    return (triggers - step * grad.sign()).clamp(0.0, 1.0)


def trapdoor_objective(logits: torch.Tensor, targets: torch.Tensor, trap_logits: torch.Tensor,
                       trap_targets: torch.Tensor, beta: float) -> torch.Tensor:
    """L = (1 - beta) CE(f(x), y) + beta CE(f(x'), t)."""
    return ((1.0 - beta) * F.cross_entropy(logits, targets)
            + beta * F.cross_entropy(trap_logits, trap_targets))


def make_discriminator(model: nn.Module, seed: int) -> nn.Module:
    """The discriminator: the target's architecture with a one-logit head (clean vs
    trapdoored). The body starts from a copy of the target's initial weights (the authors
    build a fresh network of the same architecture, with the same pre-trained backbone where
    the target has one); the head is new, drawn from ``seed``."""
    discriminator = copy.deepcopy(model)
    head = model.head
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new_head = nn.Linear(head.in_features, 1)
    discriminator.head = new_head.to(head.weight.device)
    return discriminator


@dataclass
class TrapdoorState:
    """Trap-MID's objects during one training: triggers, discriminator and its optimiser, and
    the epoch's trapdoor labels."""

    discriminator: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    """Trigger initialisation and trapdoor labels (CPU, seeded from the trial's seed)."""
    num_classes: int
    train_size: int
    triggers: torch.Tensor | None = None
    """Shape (C, *input shape): one trigger per class in [0, 1]; drawn U(0, 1) on the first
    batch, when the input shape is known (the authors' ``torch.rand``)."""
    labels: torch.Tensor | None = None
    cursor: int = 0
    progress: float | None = None

    def trapdoor_labels(self, count: int, progress: float, device: torch.device) -> torch.Tensor:
        """The next ``count`` labels of the epoch's balanced sequence; a new sequence at each
        new epoch (``progress`` changes) or when this one is used up."""
        if (self.labels is None or progress != self.progress
                or self.cursor + count > len(self.labels)):
            self.labels = balanced_labels(max(self.train_size, count), self.num_classes,
                                          self.generator)
            self.cursor, self.progress = 0, progress
        labels = self.labels[self.cursor:self.cursor + count]
        self.cursor += count
        return labels.to(device)

    def ensure_triggers(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.triggers is None:
            shape = (self.num_classes, *inputs.shape[1:])
            self.triggers = torch.rand(shape, generator=self.generator).to(inputs.device)
        return self.triggers


class TrapMID(Defense):
    """Trap-MID: a trapdoor per class that misleads model-inversion attacks.

    Paper: "Trap-MID: Trapdoor-based Defense against Model Inversion Attacks", Liu and Chen,
    NeurIPS 2024 (https://arxiv.org/abs/2411.08460). The model learns a shortcut: an input
    blended with class t's trigger, x' = (1 - alpha) x + alpha k_t, is classified as t. An
    inversion that maximises p_t then finds the trigger rather than private features.

    Each batch (the authors' ``engine.py`` ``train``), with trapdoor labels t drawn balanced
    over the epoch, independently of y:

    1. Discriminator step: BCE(D(x), 1) + BCE(D(x'), 0) on the batch (D: the target's
       architecture with one logit, trained with the suite's optimiser settings).
    2. Trigger step (model and D in eval mode): k <- clamp(k - step_size * sign(grad_k L_k),
       0, 1) with L_k = discriminator_weight * BCE(D(x'), 1) + CE(f(x'), t): triggers that
       the model maps to t and that D takes for clean images.
    3. Model loss with the updated triggers: (1 - beta) CE(f(x), y) + beta CE(f(x'), t).

    After training, ``trapdoor_success`` is the share of the private test images, blended with
    the trigger of a balanced random label t, that the model classifies as t (the authors'
    "test trapdoor Acc").

    Arguments:
        alpha (float): blend weight of the trigger, in (0, 1). (Default: 0.02, ``alpha`` in
            the authors' ``classify_trap.json``)
        beta (float): weight of the trapdoor loss, in [0, 1). (Default: 0.2, ``beta``)
        step_size (float): signed-gradient step of the triggers, > 0. (Default: 0.01,
            ``step_size``)
        discriminator_weight (float): weight of BCE(D(x'), 1) in the trigger objective; 0
            trains no discriminator. (Default: 1.0, the authors' weight with
            ``discriminator_loss`` on and ``discriminator_feat_loss`` off)
        optimize_triggers (bool): update the triggers (and the discriminator); False keeps the
            random initial triggers. (Default: True, ``optimized``)
    """

    name: ClassVar[str] = "trap_mid"
    paper: ClassVar[str] = ("Trap-MID: Trapdoor-based Defense against Model Inversion Attacks "
                            "(Liu and Chen, NeurIPS 2024)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2411.08460"
    summary: ClassVar[str] = "Trapdoor per class: (1-beta) CE(x, y) + beta CE(blend(x, k_t), t)."
    strength: ClassVar[str | None] = "beta"

    alpha: float = Field(0.02, gt=0.0, lt=1.0, description="blend weight of the trigger "
                         "(authors: 0.02)")
    beta: float = Field(0.2, ge=0.0, lt=1.0, description="weight of the trapdoor loss "
                        "(authors: 0.2)")
    step_size: float = Field(0.01, gt=0.0, description="signed-gradient step of the triggers "
                             "(authors: 0.01)")
    discriminator_weight: float = Field(1.0, ge=0.0, description="weight of the discriminator "
                                        "term in the trigger objective; 0: no discriminator "
                                        "(authors: 1)")
    optimize_triggers: bool = Field(True, description="update the triggers; False keeps the "
                                    "random initial ones (authors: true)")

    def new_state(self, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                  num_classes: int, train_size: int, seed: int) -> TrapdoorState:
        """Fresh triggers (drawn on the first batch), discriminator and its optimiser (the
        suite's optimiser class and settings; the authors' SGD where none is given)."""
        discriminator = make_discriminator(model, seed)
        if optimizer is None:
            d_optimizer: torch.optim.Optimizer = torch.optim.SGD(discriminator.parameters(),
                                                                 **AUTHORS_SGD)
        else:
            d_optimizer = type(optimizer)(discriminator.parameters(), **optimizer.defaults)
        return TrapdoorState(discriminator=discriminator, optimizer=d_optimizer,
                             generator=torch.Generator().manual_seed(seed),
                             num_classes=num_classes, train_size=train_size)

    def prepare_training(self, setup: TrainingSetup) -> TrainingSetup:
        setup.state[STATE_KEY] = self.new_state(setup.model, setup.optimizer, setup.num_classes,
                                                setup.train_size, setup.seed)
        return setup

    def update_triggers(self, state: TrapdoorState, model: nn.Module, inputs: torch.Tensor,
                        trap_targets: torch.Tensor) -> None:
        """One discriminator step and one signed-gradient trigger step (steps 1 and 2)."""
        was_training = model.training
        model.eval()
        triggers = state.ensure_triggers(inputs).detach().requires_grad_(True)
        images = inputs.detach()
        trapped = blend(images, triggers[trap_targets], self.alpha)
        objective = F.cross_entropy(model(trapped), trap_targets)
        if self.discriminator_weight > 0:
            disc = state.discriminator
            disc.train()
            scores = disc(torch.cat([images, trapped.detach()]))
            real = torch.cat([torch.ones(len(images), 1), torch.zeros(len(images), 1)])
            d_loss = F.binary_cross_entropy_with_logits(scores, real.to(scores.device))
            state.optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            state.optimizer.step()
            disc.eval()
            fooled = disc(trapped)
            objective = objective + self.discriminator_weight * \
                F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        # Only the triggers' gradient: the model's and D's .grad stay untouched.
        (grad,) = torch.autograd.grad(objective, triggers)
        state.triggers = trigger_step(triggers.detach(), grad, self.step_size)
        model.train(was_training)

    def state_of(self, batch: LossInputs) -> TrapdoorState:
        """The training's state; a throw-away one for a loss computed outside a training (the
        plug-in check's probe batch), kept in that batch's ``state`` only."""
        state = batch.state.get(STATE_KEY)
        if state is None:
            state = self.new_state(batch.model, None, batch.num_classes,
                                   len(batch.targets), 0)
            batch.state[STATE_KEY] = state
        return state

    def loss(self, batch: LossInputs) -> torch.Tensor:
        if batch.model is None:
            raise ValueError("trap_mid: the loss needs the model (LossInputs.model)")
        state = self.state_of(batch)
        trap_targets = state.trapdoor_labels(len(batch.targets), batch.progress,
                                             batch.targets.device)
        if self.optimize_triggers:
            self.update_triggers(state, batch.model, batch.inputs, trap_targets)
        triggers = state.ensure_triggers(batch.inputs)
        trapped = blend(batch.inputs.detach(), triggers[trap_targets], self.alpha)
        return trapdoor_objective(batch.logits, batch.targets, batch.model(trapped),
                                  trap_targets, self.beta)

    def end_training(self, setup: TrainingSetup) -> dict[str, float]:
        state: TrapdoorState | None = setup.state.get(STATE_KEY)
        if state is not None and state.triggers is None:
            raise RuntimeError("trap_mid: the loss never saw the training state; the training "
                               "loop must pass the set-up's state as LossInputs.state")
        if setup.test is None or state is None:
            return {}
        images, _ = setup.test
        generator = torch.Generator().manual_seed(setup.seed + 1)
        trap_targets = balanced_labels(len(images), setup.num_classes, generator)
        return {"trapdoor_success": trapdoor_success(setup.model, images, state.triggers,
                                                     trap_targets, self.alpha)}


@torch.no_grad()
def trapdoor_success(model: nn.Module, images: torch.Tensor, triggers: torch.Tensor,
                     trap_targets: torch.Tensor, alpha: float, batch_size: int = 256) -> float:
    """Share of blended images classified as their trapdoor label: mean[argmax f(x') = t]."""
    was_training = model.training
    model.eval()
    device = triggers.device
    hits = 0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        t = trap_targets[start:start + batch_size].to(device)
        hits += int((model(blend(x, triggers[t], alpha)).argmax(1) == t).sum())
    model.train(was_training)
    return hits / max(len(images), 1)
