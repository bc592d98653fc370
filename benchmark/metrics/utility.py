"""Utility metrics of a classifier."""

from __future__ import annotations

import torch

from lsmia_bench.benchmark.metrics.registry import METRICS
from lsmia_bench.kernel.metrics import MetricSpec, docstring_formula


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """mean_b [argmax_c logits[b, c] == y_b]."""
    return (logits.argmax(dim=1) == targets).double().mean().item()


def top_k_hits(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """[y_b in top-k(logits[b])] per row (N,), as float64."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top == targets.unsqueeze(1)).any(dim=1).double()


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """mean_b [y_b in top-k(logits[b])]."""
    return top_k_hits(logits, targets, k).mean().item()


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


def class_separation(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Silhouette score mean_i (b_i - a_i) / max(a_i, b_i) of the features grouped by label.

    a_i: mean Euclidean distance of sample i to the others of its class, b_i: the smallest
    mean distance to another class. In [-1, 1]; higher = classes more clearly separated.
    NaN when there are fewer than two classes or no class has two samples.
    """
    from sklearn.metrics import silhouette_score

    labels_np = labels.cpu().numpy()
    n_classes = len(set(labels_np.tolist()))
    if n_classes < 2 or n_classes >= len(labels_np):
        return float("nan")
    return float(silhouette_score(features.detach().cpu().double().numpy(), labels_np,
                                  metric="euclidean"))


# --- declared utility metrics of a target (recorded by the pipelines' training tasks) -------

for _spec in [
    MetricSpec("test_accuracy", "Test acc.", "Top-1 accuracy of the target model on held-out "
               "test data of its private classes.", docstring_formula(accuracy),
               "mean over the private test images", "target", "higher", "percent"),
    MetricSpec("ece", "ECE", "Expected calibration error of the target on test data: the mean "
               "gap between confidence and accuracy over confidence bins.",
               docstring_formula(expected_calibration_error),
               "weighted mean over 15 confidence bins of the private test images", "target",
               "lower"),
    MetricSpec("train_accuracy", "Train acc.", "Top-1 accuracy of the target on its own "
               "training data.", docstring_formula(accuracy),
               "mean over the private training images", "target", unit="percent", detail=True),
    MetricSpec("final_train_loss", "Final loss", "Training loss at the last step (with the "
               "defense's loss, so not comparable across defenses).",
               "L = mean_b loss_defense(f(x_b), y_b) at the last training step",
               "mean over the last step's batch", "target", detail=True),
    MetricSpec("class_separation", "Separation", "Silhouette score of the target's "
               "penultimate features on private test data: how far apart the classes lie in "
               "embedding space (see the entry's embedding figure).",
               docstring_formula(class_separation),
               "mean over the private test images", "target", detail=True),
]:
    METRICS.add(_spec)
