"""Plug & Play Attacks (PPA), the attack of the label smoothing paper."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

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

    ``batch_size`` is the authors' batch: each loss is a mean over it and each random
    transform is drawn once per batch. ``generator_batch`` (a multiple of it) only sets how
    many latents go through the generator and the target in one call: several batches (and
    identities) per call keep a GPU busy, and each batch's transforms are drawn in the order
    the one-batch-per-call loop draws them, so the result is the same for the same seed
    (to float rounding where a kernel's result depends on the batch it runs in).

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
        generator_batch (int | None): latents per generator (and target) call, a multiple of
            ``batch_size``. (Default: None, ``batch_size``: one batch per call)
        precision ("fp32" | "bf16"): run the generator and the target under bfloat16 autocast
            (GPUs; a generator whose custom ops lack bf16 needs "fp32"). Losses and scores
            are computed in float32. (Default: "fp32", the authors')

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
    generator_batch: int | None = Field(None, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"

    @property
    def call_size(self) -> int:
        """Latents per generator call."""
        return self.generator_batch or self.batch_size

    @model_validator(mode="after")
    def _sizes_nest(self) -> PPA:
        if self.generator_batch is not None and self.generator_batch % self.batch_size:
            raise ValueError(f"generator_batch ({self.generator_batch}) must be a multiple of "
                             f"batch_size ({self.batch_size})")
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
        if self.precision == "bf16":
            prior, target = bf16_prior(prior), BF16(target)
        calls = self.call_size
        latents, labels = initial_selection(prior, target, classes, self.search_space_size,
                                            self.num_candidates, self.initial_flip, calls)
        initial_confidence = _confidence(prior, target, latents, labels, calls)
        trace: dict = {}
        optimised = []
        for start in range(0, len(latents), calls):
            batch = slice(start, start + calls)
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
                                            calls, group=self.batch_size)
        reconstructions = generate_selected(prior, latents, keep, calls)
        optimised_confidence = _confidence(prior, target, latents, labels, calls)
        trace["initial_confidence_mean"] = initial_confidence.mean().item()
        trace["optimised_confidence_mean"] = optimised_confidence.mean().item()
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
        """Optimise the latents ``w`` of one generator call: each batch of ``batch_size``
        latents has its own loss (a mean over the batch) and its own crop per step, drawn
        batch by batch as the one-batch-per-call loop draws them; Adam is elementwise, so one
        optimiser over all of them updates each batch as its own optimiser would."""
        w = w.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=self.lr, betas=self.betas)
        scheduler = self.make_lr_scheduler(optimizer)
        size = prior.image_size or tuple(prior(w[:1]).shape[-2:])
        augment = CropFlip(tuple(size), self.crop_scale, self.crop_ratio, flip=False)
        groups = [slice(s, s + self.batch_size) for s in range(0, len(w), self.batch_size)]
        draws = [[augment.draw(size) for _ in range(self.steps)] for _ in groups]
        grads, losses, identity = [], [], []
        for step in range(self.steps):
            raw = prior.generate(w)
            images = prior.to_target(raw)
            views = torch.cat([augment.apply(images[g], draws[i][step])
                               for i, g in enumerate(groups)])
            logits = target(views).float()
            per_image = poincare_loss(logits, labels)
            group_losses = torch.stack([per_image[g].mean() for g in groups])
            total = group_losses
            if self.discriminator_weight > 0:
                realism = prior.prior_loss(raw).float()
                total = total + self.discriminator_weight * torch.stack(
                    [realism[g].mean() for g in groups])
            optimizer.zero_grad(set_to_none=True)
            w.grad, = torch.autograd.grad(total.sum(), w)  # each batch's own loss gradient
            if record:  # the first batch's curves, kept on the device until the end
                grads.append(w.grad[:min(self.trace_samples, self.batch_size)].detach())
                losses.append(total[0].detach())
                identity.append(group_losses[0].detach())
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        curves = {"gradients": torch.stack(grads).cpu(),
                  "loss": torch.stack(losses).tolist(),
                  "poincare_loss": torch.stack(identity).tolist()} if record else {}
        return w.detach(), curves


class BF16(nn.Module):
    """``module`` run under bfloat16 autocast on its device, its output cast to float32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(model_device(self.module).type, dtype=torch.bfloat16):
            return self.module(*args, **kwargs).float()


def bf16_prior(prior: nn.Module) -> nn.Module:
    """A view of ``prior`` whose ``generate`` runs under bfloat16 autocast and returns
    float32 (the crop, resize and losses stay in float32; latents are sampled and optimised
    in float32). The generator's modules are shared, not copied."""
    mixed = copy.copy(prior)
    generate = prior.generate

    def generate_bf16(latents: torch.Tensor) -> torch.Tensor:
        with torch.autocast(model_device(prior).type, dtype=torch.bfloat16):
            return generate(latents).float()

    mixed.generate = generate_bf16
    return mixed


class CropFlip:
    """RandomResizedCrop(size, scale, ratio) (+ RandomHorizontalFlip(0.5)) on image batches:
    one draw per call, the same draws and images as ``v2.Compose`` of the two; the draw
    (:meth:`draw`) and its application (:meth:`apply`) can also run apart, so that several
    batches drawn in turn go through the target in one call."""

    def __init__(self, size: Sequence[int], scale: Sequence[float], ratio: Sequence[float],
                 flip: bool) -> None:
        self.size = list(size)
        self.crop = v2.RandomResizedCrop(tuple(size), scale=tuple(scale), ratio=tuple(ratio),
                                         antialias=True)
        self.flip = flip

    def draw(self, shape: Sequence[int]) -> tuple[dict[str, int], bool]:
        """The crop box for images of (H, W) ``shape`` and the flip, in the Compose's order."""
        box = self.crop.make_params([torch.empty(1).expand(3, *shape)])
        return box, bool(torch.rand(1) < 0.5) if self.flip else False

    def apply(self, images: torch.Tensor, params: tuple[dict[str, int], bool]) -> torch.Tensor:
        box, flipped = params
        out = TF.resized_crop(images, **box, size=self.size, antialias=True)
        return TF.horizontal_flip(out) if flipped else out

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.apply(images, self.draw(images.shape[-2:]))


def random_transform(size: Sequence[int], scale: Sequence[float], ratio: Sequence[float],
                     flip: bool) -> CropFlip:
    """RandomResizedCrop(size, scale, ratio) (+ RandomHorizontalFlip(0.5)) on image batches."""
    return CropFlip(size, scale, ratio, flip)


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
        scores.append(sum(target(v).float().softmax(dim=1) for v in views) / len(views))
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
                                 keep: int = 50, batch_size: int = 25,
                                 group: int | None = None) -> torch.Tensor:
    """:func:`final_selection` of x = prior(w), unclamped as in the authors' final selection
    (``create_image``), each batch generated on the fly and dropped once scored: memory
    O(batch_size) images instead of O(len(latents)).

    ``group`` (a divisor of ``batch_size``; a :class:`CropFlip` transform): each generated
    batch is scored as batch_size / group batches of ``group`` images, each with its own
    transforms drawn in turn (the draws of one call per ``group`` images), through one
    target call per iteration."""
    device = model_device(prior)
    scores = []
    for start in range(0, len(latents), batch_size):
        images = prior(latents[start:start + batch_size].to(device))
        part = labels[start:start + batch_size]
        if group is None or group >= len(images):
            scores.append(_transform_confidence(images, part, target, transform, iterations))
        else:
            scores.append(_grouped_confidence(images, part, target, transform, iterations,
                                              group))
        del images
    return _top_per_class(torch.cat(scores), labels, keep)


@torch.no_grad()
def _grouped_confidence(images: torch.Tensor, labels: torch.Tensor, target: nn.Module,
                        transform: CropFlip, iterations: int, group: int) -> torch.Tensor:
    """:func:`_transform_confidence` of each ``group`` of images in turn (its draws made
    group by group, iteration by iteration), the groups scored together: (N,) on CPU."""
    device = model_device(target)
    images, labels = images.to(device), labels.to(device)
    groups = [slice(s, s + group) for s in range(0, len(images), group)]
    draws = [[transform.draw(images.shape[-2:]) for _ in range(iterations)] for _ in groups]
    total = torch.zeros(len(images), device=device)
    for i in range(iterations):
        views = torch.cat([transform.apply(images[g], draws[k][i])
                           for k, g in enumerate(groups)])
        total += class_confidence(target(views).float(), labels)
    return (total / iterations).cpu()


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
        total += class_confidence(target(transform(images)).float(), labels)
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
    return torch.cat([class_confidence(target(prior(latents[i:i + batch_size])).float(),
                                       labels[i:i + batch_size])
                      for i in range(0, len(latents), batch_size)])
