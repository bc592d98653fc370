"""Losses of model inversion attacks, as small pure functions on tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def poincare_loss(logits: torch.Tensor, targets: torch.Tensor, xi: float = 1e-4) -> torch.Tensor:
    """d(u, v) = arccosh(1 + 2 ||u - v||^2 / ((1 - ||u||^2)(1 - ||v||^2))) per sample.

    u = logits / ||logits||_1 and v = clip(one_hot(target) - xi, 0, 1), as in the Plug & Play
    Attacks code (Struppek et al., ICML 2022, ``losses/poincare.py``). Shape (N,).
    """
    u = logits / logits.norm(p=1, dim=-1, keepdim=True)
    v = (F.one_hot(targets, logits.shape[-1]).to(logits.dtype) - xi).clamp(0, 1)
    u_norm = u.pow(2).sum(dim=-1)
    v_norm = v.pow(2).sum(dim=-1)
    diff = (u - v).pow(2).sum(dim=-1)
    delta = 2 * diff / ((1 - u_norm) * (1 - v_norm))
    return torch.arccosh(1 + delta)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """TV(x) = mean |x[i+1, j] - x[i, j]| + mean |x[i, j+1] - x[i, j]| per sample (N,)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(dim=1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(dim=1)
    return dx + dy


def class_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p_y(x) = softmax(logits)[y] per sample, shape (N,)."""
    return logits.softmax(dim=1).gather(1, labels.view(-1, 1)).squeeze(1)


@torch.no_grad()
def target_confidence(target: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 256) -> torch.Tensor:
    """p_y(x) of ``target`` (eval mode) for each image and its label, batched, on CPU (N,)."""
    target.eval()
    device = next(target.parameters()).device
    out = [class_confidence(target(images[i:i + batch_size].to(device)),
                            labels[i:i + batch_size].to(device)).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)
