"""Plug & Play Attacks (PPA), the attack of the label smoothing paper."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn
from torchvision.transforms import v2

from lsmia_bench.attacks.base import Attack, AttackOutput, model_device
from lsmia_bench.attacks.losses import class_confidence, poincare_loss
from lsmia_bench.kernel.component import ThreatModel

Transform = Callable[[torch.Tensor], torch.Tensor]


class PPA(Attack):
    """Initial selection, Poincare-loss latent optimisation with augmentations, final selection.

    Paper: "Plug & Play Attacks: Towards Robust and Flexible Model Inversion Attacks",
    Struppek et al., ICML 2022, https://arxiv.org/abs/2201.12179. Defaults from the authors'
    ``configs/attacking/default_attacking_local.yaml`` and ``attacks/*.py``
    (github.com/LukasStruppek/Plug-and-Play-Attacks); the paper's CelebA runs use 5000
    candidates and 70 steps. Any generator works through the GeneratorPrior adapter (the
    authors optimise StyleGAN2's w; here the prior's latent is optimised). Small suites scale
    the sizes down through the config. As in the authors' code, the initial selection scores
    images clipped to the generator's value range (``attacks/initial_selection.py``,
    ``clip=True``) and the final selection scores them unclipped (``create_image``); the
    returned reconstructions are clamped to [0, 1]. The final selection generates, scores and
    drops the candidates' images batch by batch and generates only the kept ones again, so
    memory holds a batch of images, not len(classes) * num_candidates (~64 GB at 530 x 200
    and 224 px).

    Arguments:
        search_space_size (int): random latents scored in the initial selection. (Default: 2000)
        num_candidates (int): latents kept (most confident) and optimised per class. (Default: 200)
        initial_flip (bool): score each latent's image and its mirror image. (Default: True)
        steps (int): optimisation steps per batch (``num_epochs``). (Default: 50)
        batch_size (int): latents optimised together. (Default: 25)
        lr (float), betas (tuple): Adam. (Default: 0.005, (0.1, 0.1))
        lr_scheduler (bool): decay the lr with MultiStepLR during the optimisation, as
            ``default_attacking_local.yaml`` does; the paper's ``FaceScrub_FFHQ.yaml`` and
            ``CelebA_FFHQ.yaml`` keep it constant (the faces suite sets False). (Default: True)
        lr_milestones (tuple): MultiStepLR milestones as fractions of ``steps``.
            (Default: (0.6, 0.8), i.e. the authors' [30, 40] of 50 steps)
        lr_gamma (float): MultiStepLR factor. (Default: 0.1)
        crop_scale, crop_ratio (tuple): RandomResizedCrop applied before the target during
            optimisation. (Default: (0.9, 1.0), (1.0, 1.0))
        discriminator_weight (float): weight of the prior's discriminator loss. (Default: 0)
        samples_per_class (int): kept by the final selection. (Default: 50)
        final_iterations (int): random transforms per sample in the final selection. (Default: 100)
        final_scale, final_ratio (tuple): their RandomResizedCrop. (Default: (0.5, 0.9), (0.8, 1.2))
        final_flip (bool): random horizontal flips in the final selection. (Default: True)

    Shape: reconstructions (len(classes) * samples_per_class, C, H, W).
    Usage: ``PPA(search_space_size=500, num_candidates=20, samples_per_class=5)``
    ``.run(target, [0, 1], prior)``.
    """

    name: ClassVar[str] = "ppa"
    paper: ClassVar[str] = "Plug & Play Attacks (Struppek et al., ICML 2022)"
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2201.12179"
    summary: ClassVar[str] = "Poincare-loss latent search with augmentations and sample selection."
    threat_model: ClassVar[ThreatModel] = "white-box"
    needs_prior: ClassVar[bool] = True
    prior_kind: ClassVar[str | None] = "wgan_gp"
    probe_params: ClassVar[dict[str, Any]] = {
        "search_space_size": 4, "num_candidates": 2, "steps": 1, "batch_size": 2,
        "samples_per_class": 1, "final_iterations": 1}

    search_space_size: int = Field(2000, ge=1)
    num_candidates: int = Field(200, ge=1)
    initial_flip: bool = True
    steps: int = Field(50, ge=1)
    batch_size: int = Field(25, ge=1)
    lr: float = Field(0.005, gt=0)
    betas: tuple[float, float] = (0.1, 0.1)
    lr_scheduler: bool = True
    lr_milestones: tuple[float, ...] = (0.6, 0.8)
    lr_gamma: float = Field(0.1, gt=0)
    crop_scale: tuple[float, float] = (0.9, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    discriminator_weight: float = Field(0.0, ge=0)
    samples_per_class: int = Field(50, ge=1)
    final_iterations: int = Field(100, ge=1)
    final_scale: tuple[float, float] = (0.5, 0.9)
    final_ratio: tuple[float, float] = (0.8, 1.2)
    final_flip: bool = True

    @model_validator(mode="after")
    def _sizes_nest(self) -> PPA:
        if self.num_candidates > self.search_space_size:
            raise ValueError(f"num_candidates ({self.num_candidates}) must not exceed "
                             f"search_space_size ({self.search_space_size})")
        if self.samples_per_class > self.num_candidates:
            raise ValueError(f"samples_per_class ({self.samples_per_class}) must not exceed "
                             f"num_candidates ({self.num_candidates})")
        return self

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        prior, _ = self.prepare(target, prior)
        latents, labels = initial_selection(prior, target, classes, self.search_space_size,
                                            self.num_candidates, self.initial_flip,
                                            self.batch_size)
        initial_confidence = _confidence(prior, target, latents, labels, self.batch_size)
        trace: dict = {}
        optimised = []
        for start in range(0, len(latents), self.batch_size):
            batch = slice(start, start + self.batch_size)
            w, curves = self._optimise(target, prior, latents[batch], labels[batch],
                                       record=start == 0)
            optimised.append(w)
            trace = trace or curves
        latents = torch.cat(optimised)
        # Streamed: the candidates' images are never all held at once (see the docstring).
        with torch.no_grad():
            size = prior.image_size or tuple(prior(latents[:1]).shape[-2:])
        transform = random_transform(size, self.final_scale, self.final_ratio, self.final_flip)
        keep = final_selection_from_latents(prior, latents, labels, target, transform,
                                            self.final_iterations, self.samples_per_class,
                                            self.batch_size)
        reconstructions = generate_selected(prior, latents, keep, self.batch_size)
        trace["initial_confidence_mean"] = initial_confidence.mean().item()
        trace["optimised_confidence_mean"] = _confidence(
            prior, target, latents, labels, self.batch_size).mean().item()
        # The latents let a pipeline judge the generator's images at the evaluation model's own
        # size (faces: 1024 -> crop 800 -> 299 px, as the authors' code) instead of resizing
        # the reconstructions again.
        return AttackOutput(reconstructions, labels[keep].cpu(), trace,
                            latents=latents[keep].detach().cpu())

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer
                          ) -> torch.optim.lr_scheduler.MultiStepLR | None:
        """MultiStepLR(milestones round(m * steps) for m in lr_milestones, lr_gamma), or None
        (constant lr) without ``lr_scheduler``; stepped once per optimisation step."""
        if not self.lr_scheduler:
            return None
        milestones = sorted({round(m * self.steps) for m in self.lr_milestones})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, self.lr_gamma)

    def _optimise(self, target: nn.Module, prior, w: torch.Tensor, labels: torch.Tensor,
                  record: bool) -> tuple[torch.Tensor, dict]:
        w = w.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=self.lr, betas=self.betas)
        scheduler = self.make_lr_scheduler(optimizer)
        size = prior.image_size or tuple(prior(w[:1]).shape[-2:])
        augment = v2.RandomResizedCrop(size, scale=self.crop_scale, ratio=self.crop_ratio,
                                       antialias=True)
        grads, losses, identity = [], [], []
        for _ in range(self.steps):
            raw = prior.generate(w)
            identity_loss = poincare_loss(target(augment(prior.to_target(raw))), labels).mean()
            loss = identity_loss
            if self.discriminator_weight > 0:
                loss = loss + self.discriminator_weight * prior.prior_loss(raw).mean()
            optimizer.zero_grad(set_to_none=True)
            w.grad, = torch.autograd.grad(loss, w)
            if record:
                grads.append(w.grad[:self.trace_samples].detach().cpu())
                losses.append(loss.item())
                identity.append(identity_loss.item())
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        curves = {"gradients": torch.stack(grads), "loss": losses,
                  "poincare_loss": identity} if record else {}
        return w.detach(), curves


def random_transform(size: Sequence[int], scale: Sequence[float], ratio: Sequence[float],
                     flip: bool) -> Transform:
    """RandomResizedCrop(size, scale, ratio) (+ RandomHorizontalFlip(0.5)) on image batches."""
    steps: list[nn.Module] = [v2.RandomResizedCrop(tuple(size), scale=tuple(scale),
                                                   ratio=tuple(ratio), antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    return v2.Compose(steps)


@torch.no_grad()
def initial_selection(prior, target: nn.Module, classes: Sequence[int], search_space_size: int,
                      num_candidates: int, flip: bool = True,
                      batch_size: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Score ``search_space_size`` random latents by the target's softmax (mean over the image
    and its mirror image when ``flip``); keep the ``num_candidates`` most confident per class.

    Each image is clip(G(w), value_range) before the crop and resize to the target, as the
    authors' ``find_initial_w`` does (``clip=True``: StyleGAN output clipped to [-1, 1]).
    Returns latents (len(classes) * num_candidates, *latent_shape) and their labels.
    """
    latents = prior.sample_latents(search_space_size)
    scores = []
    for start in range(0, search_space_size, batch_size):
        raw = prior.generate(latents[start:start + batch_size])
        images = prior.to_target(raw.clamp(*prior.value_range))
        views = [images, images.flip(-1)] if flip else [images]
        scores.append(sum(target(v).softmax(dim=1) for v in views) / len(views))
    confidence = torch.cat(scores)
    chosen = [confidence[:, c].argsort(descending=True, stable=True)[:num_candidates]
              for c in classes]
    labels = torch.as_tensor(list(classes), device=latents.device).repeat_interleave(num_candidates)
    return latents[torch.cat(chosen)], labels


@torch.no_grad()
def final_selection(images: torch.Tensor, labels: torch.Tensor, target: nn.Module,
                    transform: Transform, iterations: int = 100, keep: int = 50,
                    batch_size: int = 25) -> torch.Tensor:
    """Indices of the ``keep`` samples per class with the highest mean target confidence
    (1/I) sum_i p_y(t_i(x)) over ``iterations`` random transforms t_i (one per batch call)."""
    scores = [_transform_confidence(images[start:start + batch_size],
                                    labels[start:start + batch_size], target, transform,
                                    iterations)
              for start in range(0, len(images), batch_size)]
    return _top_per_class(torch.cat(scores), labels, keep)


@torch.no_grad()
def final_selection_from_latents(prior: nn.Module, latents: torch.Tensor, labels: torch.Tensor,
                                 target: nn.Module, transform: Transform, iterations: int = 100,
                                 keep: int = 50, batch_size: int = 25) -> torch.Tensor:
    """:func:`final_selection` of x = prior(w), unclamped as in the authors' final selection
    (``create_image``), each batch generated on the fly and dropped once scored: memory
    O(batch_size) images instead of O(len(latents))."""
    device = model_device(prior)
    scores = []
    for start in range(0, len(latents), batch_size):
        images = prior(latents[start:start + batch_size].to(device))
        scores.append(_transform_confidence(images, labels[start:start + batch_size], target,
                                            transform, iterations))
        del images
    return _top_per_class(torch.cat(scores), labels, keep)


@torch.no_grad()
def generate_selected(prior: nn.Module, latents: torch.Tensor, index: torch.Tensor,
                      batch_size: int = 25) -> torch.Tensor:
    """clamp(prior(latents[index]), 0, 1) on CPU, in the order of ``index``.

    Each image is generated inside its own batch ``latents[b * batch_size:(b + 1) * batch_size]``,
    the batch the final selection scored it in, so it is bit-identical to the scored image up
    to the clamp (a generator's output can depend on the batch it runs in); batches without a
    selected latent are skipped.
    """
    device = model_device(prior)
    index = index.cpu()
    batch_of = index.div(batch_size, rounding_mode="floor")
    out: torch.Tensor | None = None
    for b in batch_of.unique(sorted=True).tolist():
        rows = (batch_of == b).nonzero().squeeze(1)
        start = b * batch_size
        images = prior(latents[start:start + batch_size].to(device)).clamp(0, 1)
        chosen = images[(index[rows] - start).to(device)].cpu()
        del images
        if out is None:  # filled in place: peak = the output + one batch
            out = chosen.new_empty((len(index), *chosen.shape[1:]))
        out[rows] = chosen
    return out if out is not None else torch.empty(0)


@torch.no_grad()
def _transform_confidence(images: torch.Tensor, labels: torch.Tensor, target: nn.Module,
                          transform: Transform, iterations: int) -> torch.Tensor:
    """(1/I) sum_i p_y(t_i(x)) for one batch, one transform call per iteration, on CPU (N,)."""
    device = model_device(target)
    images, labels = images.to(device), labels.to(device)
    total = torch.zeros(len(images), device=device)
    for _ in range(iterations):
        total += class_confidence(target(transform(images)), labels)
    return (total / iterations).cpu()


def _top_per_class(scores: torch.Tensor, labels: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` highest ``scores`` per class: classes ascending, best first
    within a class (stable, so ties keep the candidates' order)."""
    labels = labels.cpu()
    chosen = []
    for cls in labels.unique(sorted=True):
        index = (labels == cls).nonzero().squeeze(1)
        chosen.append(index[scores[index].argsort(descending=True, stable=True)[:keep]])
    return torch.cat(chosen)


@torch.no_grad()
def _confidence(prior: nn.Module, target: nn.Module, latents: torch.Tensor,
                labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """p_y(prior(w)) per latent (N,), each batch generated, scored and dropped."""
    return torch.cat([class_confidence(target(prior(latents[i:i + batch_size])),
                                       labels[i:i + batch_size])
                      for i in range(0, len(latents), batch_size)])
