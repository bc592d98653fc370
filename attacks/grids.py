"""Image grids logged as artifacts: prior samples, reconstructions beside private images."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid


def save_image_grid(images: torch.Tensor, path: Path, nrow: int = 8, scale: int = 1) -> Path:
    """Save images (N, C, H, W) in [0, 1] as one PNG grid, each pixel ``scale`` x ``scale``."""
    from PIL import Image

    grid = make_grid(images.detach().cpu().float().clamp(0, 1), nrow=nrow, padding=2,
                     pad_value=1.0)
    array = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@torch.no_grad()
def save_prior_samples(prior, path: Path, n: int = 64, seed: int = 0) -> Path:
    """A grid of ``n`` samples of a GeneratorPrior (or anything with sample_latents/forward)."""
    prior.eval()
    latents = prior.sample_latents(n, generator=torch.Generator().manual_seed(seed))
    images = prior(latents).clamp(0, 1)
    return save_image_grid(images, path, nrow=int(n ** 0.5) or 1, scale=_scale(images))


def save_reconstruction_grid(reconstructions: torch.Tensor, labels: torch.Tensor,
                             private_images: torch.Tensor, private_labels: torch.Tensor,
                             path: Path, per_class: int = 5, max_classes: int = 10,
                             title: str = "") -> Path:
    """One row per class: up to ``per_class`` reconstructions, then as many real private images
    of it (fewer columns when the attack made fewer per class, so no empty gap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = labels.unique(sorted=True)[:max_classes].tolist()
    made = max((int((labels == cls).sum()) for cls in classes), default=1)
    per_class = max(1, min(per_class, made))
    rows, cols = len(classes), 2 * per_class
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 0.6, 0.9 * rows + 0.6),
                             squeeze=False)
    for r, cls in enumerate(classes):
        recon = reconstructions[labels == cls][:per_class]
        real = private_images[private_labels == cls][:per_class]
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            source, i = (recon, c) if c < per_class else (real, c - per_class)
            if i < len(source):
                image = source[i].detach().cpu().float().clamp(0, 1)
                ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(),
                          cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1)
        axes[r][0].set_ylabel(f"class {cls}", fontsize=7)
    axes[0][0].set_title("reconstructions", fontsize=8, loc="left")
    axes[0][per_class].set_title("private training images", fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94) if title else None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _scale(images: torch.Tensor) -> int:
    return max(1, 64 // images.shape[-1])
