"""Utility metrics of a classifier."""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """mean_b [argmax_c logits[b, c] == y_b]."""
    return (logits.argmax(dim=1) == targets).double().mean().item()


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """mean_b [y_b in top-k(logits[b])]."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top == targets.unsqueeze(1)).any(dim=1).double().mean().item()


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, bins: int = 15) -> float:
    """ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|, equal-width confidence bins on (0, 1]."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).double()
    confidence = confidence.double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    ece = torch.zeros((), dtype=torch.float64)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            weight = in_bin.double().mean()
            ece += weight * (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
    return ece.item()
