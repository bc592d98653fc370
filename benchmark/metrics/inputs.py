"""What the judges of an attack see: the evaluation model's inputs and xi's student's batches.

PPA's code judges its faces from the generator, not from the target's 224 px inputs: each
optimised latent is synthesised again at 1024 px, center-cropped to 800 px and resized
straight to the evaluation model's 299 px (``metrics/classification_acc.py`` and
``utils/stylegan.py:create_image`` of github.com/LukasStruppek/Plug-and-Play-Attacks).
:class:`GeneratedImages` does that lazily, batch by batch. The knowledge extraction student of
that code (``knowledge_extraction_score.py``) trains on augmented batches:
:func:`student_augmentation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision.transforms import v2

Transform = Callable[[torch.Tensor], torch.Tensor]


class GeneratedImages:
    """``prior``'s images of ``latents`` at ``image_size`` px, generated when sliced.

    ``prior`` is an ``attacks.priors`` GeneratorPrior (its ``for_target`` keeps the center crop
    and clipping, and changes only the final resize): for the faces suite, 1024 px -> center
    crop 800 -> resized (bilinear, antialiased) straight to ``image_size``. Values are the
    generator's, mapped to [0, 1] but not clamped, as PPA feeds its evaluation model.
    Sliced like a tensor (``images[a:b]``), it returns (b - a, C, image_size, image_size) on
    the CPU; nothing is kept, so memory holds one batch of ``batch_size`` images.
    """

    def __init__(self, prior: Any, latents: torch.Tensor, image_size: int,
                 channels: int = 3, batch_size: int = 25) -> None:
        self.prior = prior.for_target((image_size, image_size), channels)
        self.latents = latents
        self.batch_size = batch_size
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.latents)

    @torch.no_grad()
    def __getitem__(self, key: slice) -> torch.Tensor:
        if not isinstance(key, slice):
            raise TypeError("GeneratedImages are read in slices, e.g. images[0:64]")
        latents = self.latents[key]
        device = self.prior.device
        parts = [self.prior(latents[i:i + self.batch_size].to(device)).cpu()
                 for i in range(0, len(latents), self.batch_size)]
        return torch.cat(parts) if parts else torch.empty(0)


def student_augmentation(image_size: int, scale: Sequence[float] = (0.8, 1.0),
                         ratio: Sequence[float] = (1.0, 1.0), flip: float = 0.5) -> Transform:
    """clamp(Flip_p(RandomResizedCrop(size, scale, ratio)(x)), 0, 1) per batch: PPA's
    ``knowledge_extraction_score.py`` student transform (one random crop and one flip draw
    per batch, as torchvision applies them to a batch tensor, then clamped)."""
    steps: list[Any] = [v2.RandomResizedCrop((image_size, image_size), scale=tuple(scale),
                                             ratio=tuple(ratio), antialias=True)]
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(flip))
    transform = v2.Compose(steps)

    def augment(images: torch.Tensor) -> torch.Tensor:
        return transform(images).clamp(0, 1)

    return augment
