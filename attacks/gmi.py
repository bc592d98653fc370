"""Generative Model Inversion (GMI): latent search in a GAN trained on public data."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lsmia_bench.attacks.base import Attack, AttackOutput
from lsmia_bench.attacks.losses import class_confidence
from lsmia_bench.kernel.component import ThreatModel

log = logging.getLogger("lsmia_bench")


class GMI(Attack):
    """Latent search minimising lambda * CE(T(G(z)), y) + prior loss, z clipped to a box.

    Paper: "The Secret Revealer: Generative Model-Inversion Attacks Against Deep Neural
    Networks", Zhang et al., CVPR 2020, https://arxiv.org/abs/1911.07135. Follows the authors'
    ``attack.py`` (github.com/AI-secure/GMI-Attack): all classes in one batch, loss
    ``prior + lambda * identity`` averaged over the batch, SGD with Nesterov momentum written
    out (v <- m v - lr g; z <- z - m v_prev + (1 + m) v), z clamped after each step, several
    random restarts; per class the restart with the highest raw target logit of the class is
    kept (the authors' ``score[i, i]``, ``score = T(fake)[-1]``; the first on ties).
    The prior loss is -D(G(z)) for a WGAN critic and the realness loss of a KED-MI
    discriminator otherwise (the authors' ``improved`` switch).

    Arguments:
        lr (float): SGD step size. (Default: 0.02, authors)
        momentum (float): Nesterov momentum. (Default: 0.9, authors)
        identity_weight (float): lambda, weight of the identity loss. (Default: 100, authors)
        iterations (int): steps per restart. (Default: 1500, authors)
        restarts (int): random restarts. (Default: 5, authors)
        clip_range (float): z is clamped to [-clip_range, clip_range]. (Default: 1, authors)
        keep_all_restarts (bool): return every restart's result instead of the best one per
            class by the target's logit (more samples for FID/PRDC/xi). (Default: False,
            authors keep the best)

    Shape: reconstructions (len(classes) * (restarts if keep_all_restarts else 1), C, H, W).
    Usage: ``GMI(iterations=300).run(target, [0, 1, 2], prior)``.
    """

    name: ClassVar[str] = "gmi"
    paper: ClassVar[str] = (
        "The Secret Revealer: Generative Model-Inversion Attacks (Zhang et al., CVPR 2020)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/1911.07135"
    summary: ClassVar[str] = "SGD latent search in a WGAN-GP prior: identity loss + critic loss."
    threat_model: ClassVar[ThreatModel] = "white-box"
    needs_prior: ClassVar[bool] = True
    needs_discriminator: ClassVar[bool] = True
    prior_kind: ClassVar[str | None] = "wgan_gp"
    probe_params: ClassVar[dict[str, Any]] = {"iterations": 2, "restarts": 1}

    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    identity_weight: float = Field(100.0, ge=0)
    iterations: int = Field(1500, ge=1)
    restarts: int = Field(5, ge=1)
    clip_range: float = Field(1.0, gt=0)
    keep_all_restarts: bool = False

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        prior, device = self.prepare(target, prior)
        labels = torch.as_tensor(list(classes), device=device)
        restarts, k = self.restarts, len(labels)
        # All restarts are optimised in one batch (the batch is the unit of work); each
        # restart's loss stays its own batch mean, so every latent gets the gradient it would
        # get in a restart of its own. Latents are drawn in restart order, as one at a time.
        z, trace = self._search(target, prior, labels.repeat(restarts), restarts)
        with torch.no_grad():
            flat = prior(z).clamp(0, 1)
            logits = target(flat)
            conf = class_confidence(logits, labels.repeat(restarts)).cpu().reshape(restarts, k)
            logit = class_logit(logits, labels.repeat(restarts)).cpu().reshape(restarts, k)
        images = flat.cpu().reshape(restarts, k, *flat.shape[1:])  # (R, K, ...)
        if self.keep_all_restarts:
            reconstructions = images.transpose(0, 1).reshape(-1, *images.shape[2:])
            out_labels = labels.cpu().repeat_interleave(self.restarts)
        else:
            best = best_restart(logit)
            reconstructions = images[best, torch.arange(len(classes))]
            out_labels = labels.cpu()
        trace["restart_confidence"] = conf.tolist()
        trace["restart_logit"] = logit.tolist()
        return AttackOutput(reconstructions, out_labels, trace)

    def _search(self, target: nn.Module, prior, labels: torch.Tensor,
                restarts: int) -> tuple[torch.Tensor, dict]:
        """Latent search for ``labels`` (restarts x classes, restart-major); the trace follows
        the first restart."""
        z = prior.sample_latents(len(labels))
        velocity = torch.zeros_like(z)
        grads, losses, identity, prior_terms = [], [], [], []
        for _ in range(self.iterations):
            z.requires_grad_(True)
            raw = prior.generate(z)
            prior_loss = prior.prior_loss(raw).reshape(restarts, -1).mean(dim=1)
            identity_loss = F.cross_entropy(target(prior.to_target(raw)), labels,
                                            reduction="none").reshape(restarts, -1).mean(dim=1)
            per_restart = prior_loss + self.identity_weight * identity_loss
            grad, = torch.autograd.grad(per_restart.sum(), z)
            previous = velocity
            velocity = self.momentum * velocity - self.lr * grad
            z = z.detach() - self.momentum * previous + (1 + self.momentum) * velocity
            z = z.clamp(-self.clip_range, self.clip_range)
            grads.append(grad[:self.trace_samples].detach().cpu())
            losses.append(per_restart[0].item())
            identity.append(identity_loss[0].item())
            prior_terms.append(prior_loss[0].item())
        curves = {"gradients": torch.stack(grads), "loss": losses, "identity_loss": identity,
                  "prior_loss": prior_terms}
        return z.detach(), curves


def class_logit(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """l_y(x) = logits[y] per sample (N,): the raw score, before any softmax."""
    return logits.gather(1, labels.view(-1, 1)).squeeze(1)


def best_restart(scores: torch.Tensor) -> torch.Tensor:
    """argmax_r scores[r, k] per class k (restarts x classes), the first restart on ties, as the
    authors' running ``if score[i, i] > max_score[i]`` over restarts in order."""
    return scores.argmax(dim=0)
