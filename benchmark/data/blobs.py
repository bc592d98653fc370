"""The paper's motivational 2-D example: three Gaussian blobs."""

from __future__ import annotations

import numpy as np
import torch


def make_blobs(n_samples: int, centers: list[list[float]], cluster_std: float,
               random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``make_blobs`` with given centres, the same draws in the same order
    (equal arrays for equal arguments): x ~ N(center_k, cluster_std^2 I), then shuffled.

    Written out because importing ``sklearn.datasets`` costs every process that builds the
    toy data over a second, several times the rest of a toy trial's start-up.
    """
    generator = np.random.RandomState(random_state)
    means = np.asarray(centers, dtype=np.float64)
    n_centers, n_features = means.shape
    # scikit-learn gives the remainder to the first centres, one point each.
    per_center = [n_samples // n_centers + (1 if k < n_samples % n_centers else 0)
                  for k in range(n_centers)]
    points = np.concatenate([generator.normal(loc=means[k], scale=cluster_std,
                                              size=(count, n_features))
                             for k, count in enumerate(per_center)])
    labels = np.repeat(np.arange(n_centers), per_center)
    order = np.arange(n_samples)
    generator.shuffle(order)
    return points[order], labels[order]


def toy_blobs(
    n_samples: int, centers: list[list[float]], cluster_std: float, random_state: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`make_blobs` as float32 points (N, 2) and int64 labels (N,)."""
    points, labels = make_blobs(n_samples, centers, cluster_std, random_state)
    return torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.int64)
