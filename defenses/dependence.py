"""Kernel dependence measures (HSIC, COCO) as BiDO's authors compute them.

Source: the ``hsic.py`` of Bilateral Dependency Optimization (Peng et al., KDD 2022,
https://github.com/AlanPeng0897/Defend_MI, folder ``BiDO``), which follows the HSIC-bottleneck
code of Ma et al. Conventions taken from there and kept here:

- samples are the rows of a 2-D tensor ``(m, d)`` (features are flattened per sample);
- the Gaussian kernel scales its bandwidth by the feature dimension:
  ``exp(-||x_i - x_j||^2 / (2 sigma^2 d))``;
- "HSIC" is the normalised HSIC ``tr(R_x R_y)`` with ``R = K H (K H + eps m I)^-1`` and
  ``eps = 1e-5`` (Fukumizu et al.'s normalised cross-covariance operator), not Gretton's
  ``tr(K H L H) / (m - 1)^2``;
- "COCO" is ``sqrt(||H K H . H L H||_F) / m`` with the Frobenius norm (``torch.norm`` of a
  matrix), where Gretton et al. (2005) use the spectral norm.

Every function is differentiable, keeps the device and dtype of its input and holds no state.
"""

from __future__ import annotations

from typing import Literal

import torch

Kernel = Literal["linear", "gaussian"]

#: Ridge of the normalised HSIC, ``eps`` in ``(K H + eps m I)^-1`` (authors' ``epsilon = 1E-5``).
HSIC_EPSILON = 1e-5


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """D_ij = |x_i.x_i - 2 x_i.x_j + x_j.x_j| (the absolute value guards against rounding)."""
    sq = (x * x).sum(dim=1, keepdim=True)
    return (sq - 2.0 * x @ x.T + sq.T).abs()


def linear_kernel(x: torch.Tensor) -> torch.Tensor:
    """K = x x^T."""
    return x @ x.T


def gaussian_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2 d)), d = x.shape[1] (the authors' scaling)."""
    return torch.exp(-squared_distances(x) / (2.0 * sigma * sigma * x.shape[1]))


def kernel_matrix(x: torch.Tensor, kernel: Kernel, sigma: float = 5.0) -> torch.Tensor:
    """The (m, m) kernel matrix of the rows of ``x`` (flattened to (m, d) first)."""
    x = x.reshape(x.shape[0], -1)
    if kernel == "linear":
        return linear_kernel(x)
    if kernel == "gaussian":
        return gaussian_kernel(x, sigma)
    raise ValueError(f"unknown kernel {kernel!r}; use 'linear' or 'gaussian'")


def centering_matrix(m: int, like: torch.Tensor) -> torch.Tensor:
    """H = I - 1/m (on the device and with the dtype of ``like``)."""
    eye = torch.eye(m, device=like.device, dtype=like.dtype)
    return eye - 1.0 / m


def hsic_resolvent(k: torch.Tensor, epsilon: float = HSIC_EPSILON) -> torch.Tensor:
    """R = K H (K H + eps m I)^-1, one side of the normalised HSIC."""
    m = k.shape[0]
    kc = k - k.mean(dim=1, keepdim=True)  # K H without the m^3 product
    ridge = kc + epsilon * m * torch.eye(m, device=k.device, dtype=k.dtype)
    # K H and (K H + c I) commute, so K H (K H + c I)^-1 = (K H + c I)^-1 K H: one solve.
    return torch.linalg.solve(ridge, kc)


def normalized_hsic_from_resolvents(rx: torch.Tensor, ry: torch.Tensor) -> torch.Tensor:
    """nHSIC = tr(R_x R_y) = sum_ij R_x[i, j] R_y[j, i]."""
    return (rx * ry.T).sum()


def normalized_hsic(
    x: torch.Tensor, y: torch.Tensor, kernel_x: Kernel = "gaussian",
    kernel_y: Kernel = "gaussian", sigma: float = 5.0, epsilon: float = HSIC_EPSILON,
) -> torch.Tensor:
    """nHSIC(X, Y) = tr(R_x R_y), R = K H (K H + eps m I)^-1 (BiDO's ``hsic_normalized_cca``).

    Near 0 for independent samples; up to min(rank R_x, rank R_y) for dependent ones.
    """
    rx = hsic_resolvent(kernel_matrix(x, kernel_x, sigma), epsilon)
    ry = hsic_resolvent(kernel_matrix(y, kernel_y, sigma), epsilon)
    return normalized_hsic_from_resolvents(rx, ry)


def doubly_centered(k: torch.Tensor) -> torch.Tensor:
    """K~ = H K H = K - row means - column means + grand mean."""
    return k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()


def coco_from_centered(kc: torch.Tensor, lc: torch.Tensor) -> torch.Tensor:
    """COCO = sqrt(||K~ L~||_F) / m = (sum_ij (K~ L~)_ij^2)^(1/4) / m.

    Written with a clamped fourth root so that a batch without dependence (for example all
    labels equal, K~ L~ = 0) gives 0 with a zero gradient instead of NaN.
    """
    squared_norm = (kc @ lc).square().sum()
    return squared_norm.clamp_min(torch.finfo(kc.dtype).tiny) ** 0.25 / kc.shape[0]


def coco(
    x: torch.Tensor, y: torch.Tensor, kernel_x: Kernel = "gaussian",
    kernel_y: Kernel = "gaussian", sigma: float = 5.0,
) -> torch.Tensor:
    """COCO(X, Y) = sqrt(||H K H H L H||_F) / m (BiDO's ``coco_normalized_cca``)."""
    kc = doubly_centered(kernel_matrix(x, kernel_x, sigma))
    lc = doubly_centered(kernel_matrix(y, kernel_y, sigma))
    return coco_from_centered(kc, lc)
