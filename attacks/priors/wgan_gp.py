"""WGAN-GP generator prior of GMI, trained only on a suite's PUBLIC images.

Paper: "The Secret Revealer: Generative Model-Inversion Attacks Against Deep Neural Networks",
Zhang et al., CVPR 2020, https://arxiv.org/abs/1911.07135; training loop of the authors'
``train_gan.py`` (github.com/AI-secure/GMI-Attack): critic loss -(E D(x) - E D(G(z))) +
10 * gradient penalty, a generator step every 5 critic steps with loss -E D(G(z)), Adam with
betas (0.5, 0.999). The prior does not depend on any target, so a suite trains it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from lsmia_bench.attacks.priors.base import TrainedPrior, adapt_images
from lsmia_bench.attacks.priors.nets import ImageGenerator, WGANCritic

log = logging.getLogger("lsmia_bench")

Progress = Callable[..., None]
"""``progress(done, total, **metrics)``, e.g. ``TaskContext.progress``."""


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """GP = E_x^ (||grad_x^ D(x^)||_2 - 1)^2 with x^ = x + a (x~ - x), a ~ U(0, 1) per sample."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    mixed = (real + alpha * (fake - real)).requires_grad_(True)
    scores = critic(mixed)
    grad, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(p=2, dim=1) - 1) ** 2).mean()


def sample_batch(images: torch.Tensor, batch_size: int, rng: torch.Generator) -> torch.Tensor:
    """A random batch (without replacement within the batch) of the public images."""
    index = torch.randperm(len(images), generator=rng)[:batch_size]
    return images[index]


def prepare_public_images(images: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Public images (N, C, H, W) in [0, 1], resized to the GAN's square size."""
    if images.dim() != 4:
        raise ValueError(f"public images must have shape (N, C, H, W), got {tuple(images.shape)}")
    size = image_size or images.shape[-1]
    return adapt_images(images.float(), (size, size)).clamp(0, 1)


def train_wgan_gp(
    images: torch.Tensor,
    *,
    latent_dim: int = 100,
    width: int = 64,
    image_size: int | None = None,
    iterations: int = 3000,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 5,
    gp_weight: float = 10.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> TrainedPrior:
    """Train GMI's WGAN-GP on public images (N, C, H, W) in [0, 1].

    Arguments (authors' values from GMI's ``train_gan.py`` unless marked):
        latent_dim: size of z. (Default: 100)
        width: base channel width. (Default: 64)
        image_size: GAN resolution, 4 * 2^k; None uses the images' size. (Default: None)
        iterations: critic steps (one batch each); authors train ~120 epochs over ~30k
            CelebA images, the CPU suites far fewer (set in the suite config). (Default: 3000)
        batch_size: (Default: 64)
        lr, betas: Adam for both networks. (Default: 2e-4, (0.5, 0.999))
        n_critic: critic steps per generator step. (Default: 5)
        gp_weight: gradient penalty weight. (Default: 10)
        seed: seeds the networks' initialisation (global torch RNG) and the batches.
        device: where to train.   progress: ``progress(done, total, **metrics)`` per step.
    Returns a TrainedPrior (kind "wgan_gp") with the modules in eval mode and loss curves.
    """
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    data = prepare_public_images(images, image_size)
    channels, size = data.shape[1], data.shape[-1]
    generator_args = {"latent_dim": latent_dim, "channels": channels, "image_size": size,
                      "width": width}
    critic_args = {"channels": channels, "image_size": size, "width": width}
    generator = ImageGenerator(**generator_args).to(device)
    critic = WGANCritic(**critic_args).to(device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    d_opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    history: dict[str, list[float]] = {"critic_loss": [], "wasserstein": [], "generator_loss": []}
    batch_size = min(batch_size, len(data))
    generator.train()
    critic.train()
    for step in range(1, iterations + 1):
        real = sample_batch(data, batch_size, rng).to(device)
        z = torch.randn(batch_size, latent_dim, generator=rng).to(device)
        with torch.no_grad():
            fake = generator(z)
        wasserstein = critic(real).mean() - critic(fake).mean()
        d_loss = -wasserstein + gp_weight * gradient_penalty(critic, real, fake)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        history["critic_loss"].append(d_loss.item())
        history["wasserstein"].append(wasserstein.item())
        if step % n_critic == 0:
            critic.requires_grad_(False)
            z = torch.randn(batch_size, latent_dim, generator=rng).to(device)
            g_loss = -critic(generator(z)).mean()
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            critic.requires_grad_(True)
            history["generator_loss"].append(g_loss.item())
        if progress is not None:
            progress(step, iterations, critic_loss=history["critic_loss"][-1])
    log.info("wgan_gp prior: %d critic steps on %d public images at %d px", iterations,
             len(data), size)
    return TrainedPrior("wgan_gp", generator.eval(), critic.eval(), generator_args, critic_args,
                        history, info={"public_images": len(data), "iterations": iterations})
