"""The paper's motivational 2-D example: three Gaussian blobs."""

from __future__ import annotations

import torch
from sklearn.datasets import make_blobs


def toy_blobs(
    n_samples: int, centers: list[list[float]], cluster_std: float, random_state: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``make_blobs`` as float32 points (N, 2) and int64 labels (N,)."""
    points, labels = make_blobs(
        n_samples=n_samples, centers=centers, cluster_std=cluster_std, random_state=random_state
    )
    return torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.int64)
