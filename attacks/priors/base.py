"""The generator prior contract: any ``nn.Module`` latent -> image, adapted to the target.

An attack sees a :class:`GeneratorPrior`. It wraps a generator (ours, a StyleGAN, anything
that maps a latent batch (N, *latent_shape) to images (N, C, H, W)) together with

- ``value_range``: the range of the generator's output (e.g. (-1, 1) for tanh),
- the target's input size and channels (the output transform resizes and converts),
- an optional discriminator with its kind, for attacks whose loss has a prior term:
  ``"wgan"`` (a critic, higher = more real; GMI) or ``"kplus1"`` (class logits of a
  semi-supervised GAN discriminator, realness = logsumexp of the logits; KED-MI).

Example::

    prior = GeneratorPrior(my_stylegan, latent_shape=512, value_range=(-1, 1),
                           image_size=(64, 64), channels=1)
    images = prior(prior.sample_latents(8))   # (8, 1, 64, 64) in [0, 1]
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.attacks.priors.nets import ImageGenerator, KPlusOneDiscriminator, WGANCritic
from lsmia_bench.kernel.files import write_json_atomic

DiscriminatorKind = Literal["wgan", "kplus1"]


def adapt_images(images: torch.Tensor, image_size: Sequence[int] | None = None,
                 channels: int | None = None) -> torch.Tensor:
    """Resize (bilinear, antialiased when shrinking) and convert channels (RGB <-> grey)."""
    if image_size is not None and tuple(images.shape[-2:]) != tuple(image_size):
        shrink = images.shape[-1] > image_size[-1] or images.shape[-2] > image_size[-2]
        images = F.interpolate(images, size=tuple(image_size), mode="bilinear",
                               align_corners=False, antialias=shrink)
    if channels is not None and images.shape[1] != channels:
        if images.shape[1] == 3 and channels == 1:
            weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * weights).sum(dim=1, keepdim=True)
        elif images.shape[1] == 1:
            images = images.expand(-1, channels, -1, -1)
        else:
            raise ValueError(f"cannot convert {images.shape[1]} channels to {channels}")
    return images


def log_sum_exp(logits: torch.Tensor) -> torch.Tensor:
    """log sum_c exp(l_c) per sample (N,)."""
    return torch.logsumexp(logits, dim=1)


class GeneratorPrior(nn.Module):
    """A generator prior for MI attacks (see the module docstring).

    Arguments:
        generator (nn.Module): latents (N, *latent_shape) -> images (N, C, H, W).
        latent_shape (int | sequence): shape of one latent. Latents are sampled N(0, I).
        value_range (tuple): range of the generator's output. (Default: (0, 1))
        image_size (tuple | None): the target's input (H, W); None keeps the generator's.
        channels (int | None): the target's input channels; None keeps the generator's.
        discriminator (nn.Module | None): the GAN's discriminator, if the attack uses it.
        discriminator_kind ("wgan" | "kplus1" | None): how to read the discriminator.
    """

    def __init__(self, generator: nn.Module, latent_shape: int | Sequence[int],
                 value_range: tuple[float, float] = (0.0, 1.0),
                 image_size: Sequence[int] | None = None, channels: int | None = None,
                 discriminator: nn.Module | None = None,
                 discriminator_kind: DiscriminatorKind | None = None) -> None:
        super().__init__()
        if discriminator is not None and discriminator_kind not in ("wgan", "kplus1"):
            raise ValueError("give discriminator_kind 'wgan' or 'kplus1' with a discriminator")
        self.generator = generator
        self.discriminator = discriminator
        self.discriminator_kind = discriminator_kind if discriminator is not None else None
        self.latent_shape = ((latent_shape,) if isinstance(latent_shape, int)
                             else tuple(latent_shape))
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.image_size = tuple(image_size) if image_size is not None else None
        self.channels = channels

    def for_target(self, image_size: Sequence[int] | None, channels: int | None) -> GeneratorPrior:
        """The same generator and discriminator with another output transform."""
        return GeneratorPrior(self.generator, self.latent_shape, self.value_range, image_size,
                              channels, self.discriminator, self.discriminator_kind)

    @property
    def device(self) -> torch.device:
        for tensor in (*self.generator.parameters(), *self.generator.buffers()):
            return tensor.device
        return torch.device("cpu")

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents from N(0, I) on the prior's device."""
        z = torch.randn((n, *self.latent_shape), generator=generator)
        return z.to(self.device)

    def generate(self, latents: torch.Tensor) -> torch.Tensor:
        """The generator's raw output (its own size, channels and value range)."""
        return self.generator(latents)

    def to_target(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw generator output -> the target's input space: [0, 1], its size and channels.

        Not clamped (clamping would stop gradients); attacks clamp their final samples.
        """
        low, high = self.value_range
        images = (raw - low) / (high - low)
        return adapt_images(images, self.image_size, self.channels)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.to_target(self.generate(latents))

    def prior_loss(self, raw: torch.Tensor) -> torch.Tensor:
        """Per-sample prior loss on raw generator output (N,), lower = more realistic.

        wgan: -D(x) (GMI). kplus1: softplus(lse(l(x))) - lse(l(x)) = -log sigmoid(lse(l(x)))
        with l the discriminator's class logits (KED-MI, ``improved=True``).
        """
        if self.discriminator is None:
            raise ValueError("this prior has no discriminator; the attack's prior term needs one")
        out = self.discriminator(raw)
        if self.discriminator_kind == "wgan":
            return -out.reshape(out.shape[0], -1).mean(dim=1)
        logits = out[1] if isinstance(out, tuple) else out
        lse = log_sum_exp(logits)
        return F.softplus(lse) - lse


@dataclass
class TrainedPrior:
    """A trained GAN: generator, discriminator, their constructor arguments and loss curves."""

    kind: str
    generator: nn.Module
    discriminator: nn.Module
    generator_args: dict[str, Any]
    discriminator_args: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def discriminator_kind(self) -> DiscriminatorKind:
        return "kplus1" if self.kind == "kedmi" else "wgan"

    def prior(self, image_size: Sequence[int] | None = None,
              channels: int | None = None) -> GeneratorPrior:
        """The GeneratorPrior for a target with this input size and channels (eval mode)."""
        prior = GeneratorPrior(self.generator, self.generator_args["latent_dim"], (0.0, 1.0),
                               image_size, channels, self.discriminator, self.discriminator_kind)
        return prior.eval()

    def save(self, folder: Path) -> None:
        """Write generator.pt, discriminator.pt and prior.json (constructor args) atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_torch_save(self.generator.state_dict(), folder / "generator.pt")
        _atomic_torch_save(self.discriminator.state_dict(), folder / "discriminator.pt")
        write_json_atomic(folder / "prior.json", {
            "kind": self.kind, "generator_args": self.generator_args,
            "discriminator_args": self.discriminator_args, "info": self.info})


def load_trained_prior(folder: Path, device: torch.device | str = "cpu") -> TrainedPrior:
    """Rebuild a TrainedPrior saved by :meth:`TrainedPrior.save` (modules in eval mode)."""
    folder = Path(folder)
    meta = json.loads((folder / "prior.json").read_text())
    generator = ImageGenerator(**meta["generator_args"])
    disc_cls = KPlusOneDiscriminator if meta["kind"] == "kedmi" else WGANCritic
    discriminator = disc_cls(**meta["discriminator_args"])
    for module, name in ((generator, "generator.pt"), (discriminator, "discriminator.pt")):
        state = torch.load(folder / name, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module.to(device).eval()
    return TrainedPrior(meta["kind"], generator, discriminator, meta["generator_args"],
                        meta["discriminator_args"], info=meta.get("info", {}))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
        torch.save(obj, f)
    os.replace(f.name, path)
