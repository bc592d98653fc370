"""Privacy metrics of a model inversion attack (docs/metrics.md), as small pure functions.

Inputs are tensors: logits, features (N, D) in some named feature space, labels (N,).
Feature extractors live in ``benchmark.metrics.features`` (evaluation model, Inception) and
``benchmark.metrics.face`` (FaceNet); this module only computes numbers from them.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from lsmia_bench.benchmark.metrics.attack import gradient_stability
from lsmia_bench.benchmark.metrics.utility import top_k_accuracy
from scipy import linalg
from torch import nn


def attack_accuracy(eval_logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Acc@k = mean_i [y_i in top-k(E(x_i))]: the evaluation model's logits on reconstructions."""
    return top_k_accuracy(eval_logits, labels, k)


def nearest_class_distances(features: torch.Tensor, labels: torch.Tensor,
                            private_features: torch.Tensor,
                            private_labels: torch.Tensor) -> torch.Tensor:
    """d_i = min_{j: y_j = y_i} ||f_i - p_j||_2^2 per reconstruction (N,)."""
    out = torch.empty(len(features), dtype=torch.float64)
    for cls in labels.unique():
        rows, refs = labels == cls, private_labels == cls
        if not refs.any():
            raise ValueError(f"no private training features of class {int(cls)}")
        dist = torch.cdist(features[rows].double(), private_features[refs].double())
        out[rows.cpu()] = dist.min(dim=1).values.pow(2).cpu()
    return out


def delta(features: torch.Tensor, labels: torch.Tensor, private_features: torch.Tensor,
          private_labels: torch.Tensor) -> float:
    """delta = mean_i min_{j: y_j = y_i} ||f_i - p_j||_2^2 (lower = closer to private data)."""
    return nearest_class_distances(features, labels, private_features, private_labels).mean().item()


def frechet_distance(features_a: torch.Tensor | np.ndarray,
                     features_b: torch.Tensor | np.ndarray, eps: float = 1e-6) -> float:
    """FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to the sets.

    Numerics as pytorch-fid's ``calculate_frechet_distance``: when the product of the
    covariances is singular, eps * I is added to both; a negligible imaginary part is dropped.
    """
    a, b = _as_array(features_a), _as_array(features_b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Frechet distance needs at least 2 samples in each set")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if caught or not np.isfinite(covmean).all():  # singular product: regularise
        offset = np.eye(cov_a.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.abs(covmean.imag).max()} in sqrtm")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def prdc(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray,
         k: int = 3) -> dict[str, float]:
    """Precision, recall, density, coverage with k-NN balls (Naeem et al., ICML 2020; ``prdc``).

    precision = mean_j [exists i: ||y_j - x_i|| < r_k(x_i)], recall the same with roles swapped,
    density = 1/(k M) sum_j sum_i [||y_j - x_i|| < r_k(x_i)],
    coverage = mean_i [min_j ||y_j - x_i|| < r_k(x_i)]; x real, y fake, r_k the k-NN radius.
    """
    from prdc import compute_prdc

    real, fake = _as_array(real_features), _as_array(fake_features)
    if min(len(real), len(fake)) < k + 2:
        raise ValueError(f"PRDC with k={k} needs at least {k + 2} samples in each set, "
                         f"got {len(real)} real and {len(fake)} fake")
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints the set sizes
        values = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(value) for name, value in values.items()}


def mean_gradient_stability(gradients: torch.Tensor) -> float:
    """(1/S) sum_s mean_t cos(g_t,s, g_t+1,s) for recorded gradients of shape (T, S, ...)."""
    if gradients.dim() < 2 or gradients.shape[0] < 2:
        return float("nan")
    values = [gradient_stability(gradients[:, s]) for s in range(gradients.shape[1])]
    return float(np.mean(values))


def knowledge_extraction_score(
    samples: torch.Tensor,
    labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    make_student: Callable[[int], nn.Module],
    *,
    num_classes: int | None = None,
    epochs: int = 75,
    batch_size: int = 32,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    eta_min: float = 1e-4,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> float:
    """xi = Acc(student on real private test images of the attacked classes), where the
    student is trained only on the attack's samples.

    Defaults from ``knowledge_extraction_score.py`` of the Plug & Play Attacks code: SGD lr 0.1,
    momentum 0.9, weight decay 1e-4, cosine annealing to 1e-4, 75 epochs, batch 32 (the authors
    train a ResNet-50 and augment with RandomResizedCrop(0.8-1) + flips; pass ``augment``).
    ``make_student(num_classes)`` builds the student (e.g. the suite's target architecture).
    """
    keep = torch.isin(test_labels, labels.unique())
    if not keep.any():
        raise ValueError("no private test images of the attacked classes")
    num_classes = num_classes or int(max(labels.max(), test_labels.max())) + 1
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    student = make_student(num_classes).to(device)
    optimizer = torch.optim.SGD(student.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs,
                                                           eta_min=eta_min)
    for _ in range(epochs):
        student.train()
        order = torch.randperm(len(samples), generator=rng)
        for start in range(0, len(samples), batch_size):
            index = order[start:start + batch_size]
            x, y = samples[index].to(device), labels[index].to(device)
            if augment is not None:
                x = augment(x)
            loss = F.cross_entropy(student(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
    student.eval()
    x_test, y_test = test_images[keep], test_labels[keep]
    with torch.no_grad():
        logits = torch.cat([student(x_test[i:i + 256].to(device)).cpu()
                            for i in range(0, len(x_test), 256)])
    return top_k_accuracy(logits, y_test, 1)


def _as_array(features: torch.Tensor | np.ndarray) -> np.ndarray:
    array = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) \
        else np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("features contain NaN or infinite values")
    return array


__all__ = ["attack_accuracy", "delta", "frechet_distance", "knowledge_extraction_score",
           "mean_gradient_stability", "nearest_class_distances", "prdc"]
