"""Mini-batches and batch-wise image augmentation, seeded by a torch generator.

All geometric augmentations are one affine resampling per batch (``affine_grid`` +
``grid_sample``), so they cost little on a CPU and depend only on the generator's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def augment_images(
    images: torch.Tensor,
    generator: torch.Generator,
    crop_padding: int = 0,
    resized_crop_scale: tuple[float, float] | None = None,
    horizontal_flip: bool = False,
    brightness: float = 0.0,
    contrast: float = 0.0,
) -> torch.Tensor:
    """Randomly augment (N, C, H, W) images in [0, 1].

    - ``crop_padding`` p: shift by up to p pixels each way (zero fill), as a padded random crop;
    - ``resized_crop_scale`` (lo, hi): crop a square of area fraction s ~ U(lo, hi) at a random
      place and resize it back (RandomResizedCrop with ratio 1);
    - ``horizontal_flip``: mirror half of the images;
    - ``brightness`` b / ``contrast`` c: x * U(1-b, 1+b), then (x - mean) * U(1-c, 1+c) + mean.
    """
    n, _, height, width = images.shape
    out = images
    geometric = crop_padding > 0 or resized_crop_scale is not None or horizontal_flip
    if geometric:
        scale = torch.ones(n)
        shift_x, shift_y = torch.zeros(n), torch.zeros(n)
        if resized_crop_scale is not None:
            low, high = resized_crop_scale
            area = low + (high - low) * torch.rand(n, generator=generator)
            scale = area.sqrt()
            shift_x = (1 - scale) * (2 * torch.rand(n, generator=generator) - 1)
            shift_y = (1 - scale) * (2 * torch.rand(n, generator=generator) - 1)
        if crop_padding > 0:
            pixels = torch.randint(-crop_padding, crop_padding + 1, (2, n), generator=generator)
            shift_x = shift_x + 2 * pixels[0] / width
            shift_y = shift_y + 2 * pixels[1] / height
        flip = torch.ones(n)
        if horizontal_flip:
            flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = scale * flip
        theta[:, 1, 1] = scale
        theta[:, 0, 2] = shift_x
        theta[:, 1, 2] = shift_y
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
    if brightness > 0:
        factor = 1 + brightness * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
        out = out * factor
    if contrast > 0:
        factor = 1 + contrast * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * factor + mean
    return out.clamp(0.0, 1.0) if out is not images else out


def shuffled_batches(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    transform: Transform | None = None,
) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A ``batches()`` callable for :func:`benchmark.training.train_classifier`: each call is
    one epoch in a fresh random order, every batch passed through ``transform``."""

    def epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2 < len(order):  # BatchNorm cannot train on a single image
                continue
            batch = inputs[index]
            if transform is not None:
                batch = transform(batch, generator)
            yield batch, targets[index]

    return epoch
