"""KED-MI's inversion-specific GAN, trained on PUBLIC images with the TARGET's soft labels.

Paper: "Knowledge-Enriched Distributional Model Inversion Attacks", Chen et al., ICCV 2021,
https://arxiv.org/abs/2010.04092; training loop of the authors' ``k+1_gan.py``
(github.com/SCccc21/Knowledge-Enriched-DMI). The discriminator has one logit per target class
(the "K+1"-th class, fake, is implicit: realness = logsumexp of the logits) and learns

    L_D = CE(D(x), softmax(T(x)))                                   (target's soft labels)
        + 1/2 (E_x softplus(lse D(x')) - E_x lse D(x') + E_z softplus(lse D(G(z))))

on public images x, x'; every ``n_critic`` steps the generator minimises feature matching
mean |E f(G(z)) - E f(x'')| + 1e-4 * entropy of D's class prediction on G(z).

Because the soft labels come from the target, this prior is trained PER TARGET (the pipeline
keys its cache on the target), unlike GMI's WGAN-GP prior, which is trained once per suite.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.attacks.priors.base import TrainedPrior, adapt_images, log_sum_exp
from lsmia_bench.attacks.priors.nets import ImageGenerator, KPlusOneDiscriminator
from lsmia_bench.attacks.priors.wgan_gp import Progress, prepare_public_images, sample_batch

log = logging.getLogger("lsmia_bench")


def soft_cross_entropy(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """-1/N sum_n sum_c softmax(t_n)_c log softmax(l_n)_c (the authors' ``softXEnt``)."""
    return -(teacher_logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum() / logits.shape[0]


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = -sum_n sum_c p_nc log p_nc (the authors' ``HLoss``, summed over the batch)."""
    return -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum()


def unlabeled_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """1/2 (E softplus(lse(l_real)) - E lse(l_real) + E softplus(lse(l_fake)))."""
    real, fake = log_sum_exp(real_logits), log_sum_exp(fake_logits)
    return 0.5 * (F.softplus(real).mean() - real.mean() + F.softplus(fake).mean())


@torch.no_grad()
def target_logits(target: nn.Module, images: torch.Tensor, input_shape: Sequence[int],
                  device: torch.device | str, batch_size: int = 256) -> torch.Tensor:
    """The target's logits on public images adapted to its input (C, H, W); on CPU."""
    target.eval()
    out = []
    for i in range(0, len(images), batch_size):
        batch = adapt_images(images[i:i + batch_size], tuple(input_shape[1:]), input_shape[0])
        out.append(target(batch.to(device)).float().cpu())
    return torch.cat(out)


def train_kedmi_gan(
    images: torch.Tensor,
    target: nn.Module,
    target_input_shape: Sequence[int],
    *,
    latent_dim: int = 100,
    width: int = 64,
    image_size: int | None = None,
    iterations: int = 3000,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 5,
    entropy_weight: float = 1e-4,
    minibatch_features: int = 64,
    minibatch_kernel: int = 50,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> TrainedPrior:
    """Train KED-MI's GAN on public images (N, C, H, W) in [0, 1] for one target.

    Arguments (authors' values from ``k+1_gan.py`` and ``config/celeba.json`` unless marked):
        target: the attacked classifier (eval mode), giving soft labels on public images.
        target_input_shape: the target's input (C, H, W).
        latent_dim: (Default: 100)   width: base channel width. (Default: 64)
        image_size: GAN resolution, 4 * 2^k; None uses the images' size. (Default: None)
        iterations: discriminator steps; authors: 120 epochs over ~30k CelebA images,
            the CPU suites far fewer (set in the suite config). (Default: 3000)
        batch_size: (Default: 64)   lr, betas: Adam. (Default: 2e-4, (0.5, 0.999))
        n_critic: discriminator steps per generator step. (Default: 5)
        entropy_weight: weight of the generator's entropy term. (Default: 1e-4)
        minibatch_features, minibatch_kernel: minibatch discrimination sizes. (Default: 64, 50)
        seed: seeds the networks' initialisation (global torch RNG) and the batches.
        device: where to train.   progress: ``progress(done, total, **metrics)`` per step.
    Returns a TrainedPrior (kind "kedmi"; discriminator returns (features, logits)).
    """
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    data = prepare_public_images(images, image_size)
    soft_labels = target_logits(target, images.float(), target_input_shape, device)
    num_classes = soft_labels.shape[1]
    channels, size = data.shape[1], data.shape[-1]
    generator_args = {"latent_dim": latent_dim, "channels": channels, "image_size": size,
                      "width": width}
    disc_args = {"num_classes": num_classes, "channels": channels, "image_size": size,
                 "width": width, "minibatch_features": minibatch_features,
                 "minibatch_kernel": minibatch_kernel}
    generator = ImageGenerator(**generator_args).to(device)
    disc = KPlusOneDiscriminator(**disc_args).to(device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    d_opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    history: dict[str, list[float]] = {"label_loss": [], "unlabeled_loss": [],
                                       "generator_loss": [], "soft_label_accuracy": []}
    batch_size = min(batch_size, len(data))
    generator.train()
    disc.train()
    for step in range(1, iterations + 1):
        index = torch.randperm(len(data), generator=rng)[:batch_size]
        labeled, teacher = data[index].to(device), soft_labels[index].to(device)
        unlabeled = sample_batch(data, batch_size, rng).to(device)
        z = torch.randn(batch_size, latent_dim, generator=rng).to(device)
        with torch.no_grad():
            fake = generator(z)
        _, labeled_logits = disc(labeled)
        _, unlabeled_logits = disc(unlabeled)
        _, fake_logits = disc(fake)
        loss_label = soft_cross_entropy(labeled_logits, teacher)
        loss_unlabeled = unlabeled_loss(unlabeled_logits, fake_logits)
        d_opt.zero_grad(set_to_none=True)
        (loss_label + loss_unlabeled).backward()
        d_opt.step()
        history["label_loss"].append(loss_label.item())
        history["unlabeled_loss"].append(loss_unlabeled.item())
        history["soft_label_accuracy"].append(
            (labeled_logits.argmax(1) == teacher.argmax(1)).float().mean().item())
        if step % n_critic == 0:
            disc.requires_grad_(False)
            z = torch.randn(batch_size, latent_dim, generator=rng).to(device)
            fake_features, fake_logits = disc(generator(z))
            real_features, _ = disc(sample_batch(data, batch_size, rng).to(device))
            matching = (fake_features.mean(dim=0) - real_features.mean(dim=0)).abs().mean()
            g_loss = matching + entropy_weight * prediction_entropy(fake_logits)
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            disc.requires_grad_(True)
            history["generator_loss"].append(g_loss.item())
        if progress is not None:
            progress(step, iterations, label_loss=history["label_loss"][-1])
    log.info("kedmi prior: %d steps on %d public images at %d px, %d target classes",
             iterations, len(data), size, num_classes)
    return TrainedPrior("kedmi", generator.eval(), disc.eval(), generator_args, disc_args,
                        history, info={"public_images": len(data), "iterations": iterations,
                                       "num_classes": num_classes})
