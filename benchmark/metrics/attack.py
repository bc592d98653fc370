"""Metrics of an attack's optimisation and of where it ended."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gradient_stability(gradients: torch.Tensor) -> float:
    """mean_t cos(g_t, g_{t+1}) over consecutive attack gradients g_t (shape (T, ...)).

    High values: the attack moves steadily in one direction; negative label smoothing makes
    the gradients less consistent (lower values).
    """
    flat = gradients.reshape(gradients.shape[0], -1).double()
    if flat.shape[0] < 2:
        return float("nan")
    return F.cosine_similarity(flat[:-1], flat[1:], dim=1, eps=1e-12).mean().item()


def nearest_distance(points: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """min_j ||x_i - r_j||_2 for each point x_i (shapes (N, D) and (M, D)) -> (N,)."""
    return torch.cdist(points.double(), references.double()).min(dim=1).values


def nearest_squared_distance(points: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """min_j ||x_i - r_j||_2^2 for each point x_i -> (N,): the delta metrics of MI papers."""
    return nearest_distance(points, references) ** 2
