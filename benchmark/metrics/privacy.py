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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from lsmia_bench.benchmark.metrics.attack import gradient_stability
from lsmia_bench.benchmark.metrics.registry import METRICS
from lsmia_bench.benchmark.metrics.utility import top_k_accuracy, top_k_hits
from lsmia_bench.kernel.metrics import (
    MetricMissing,
    Setting,
    faces_only,
    min_samples_per_side,
    near_chance,
    needs_student,
    top_k_needs_more_classes,
)

if TYPE_CHECKING:
    from lsmia_bench.benchmark.metrics.evaluate import AttackEvaluation


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
    **options: Any,
) -> float:
    """xi = Acc(student on real private test images of the attacked classes), where the
    student is trained only on the attack's samples.

    ``options`` are :func:`knowledge_extraction_hits`' (epochs, batch size, optimiser, ...), with
    defaults from ``knowledge_extraction_score.py`` of the Plug & Play Attacks code: SGD lr 0.1,
    momentum 0.9, weight decay 1e-4, cosine annealing to 1e-4, 75 epochs, batch 32 (the authors
    train a ResNet-50 and augment with RandomResizedCrop(0.8-1) + flips; pass ``augment``).
    ``make_student(num_classes)`` builds the student (e.g. the suite's target architecture).
    """
    correct, _ = knowledge_extraction_hits(samples, labels, test_images, test_labels,
                                           make_student, **options)
    return correct.mean().item()


def knowledge_extraction_hits(
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """[argmax S(t) = y_t] per private test image t of the attacked classes (float64) and
    y_t: the student's correctness behind :func:`knowledge_extraction_score`."""
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
    return top_k_hits(logits, y_test, 1), y_test


def _as_array(features: torch.Tensor | np.ndarray) -> np.ndarray:
    array = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) \
        else np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("features contain NaN or infinite values")
    return array


# --- declared metrics: one function per metric, on the shared evaluation context ----------

#: Pipelines whose attacks are judged by ``evaluate_attack`` (``benchmark.metrics.evaluate``).
IMAGE = ("image", "faces")
MEAN = "mean over reconstructions"
#: Fewest samples per side for PRDC (ours): Naeem et al. (ICML 2020) define the k-NN balls for
#: large sets (they evaluate with 10,000 samples per side and recommend k = 5); with a few dozen
#: reconstructions of a handful of classes a ball spans other classes, so the four numbers
#: describe the sample size more than the attack.
PRDC_MIN_SAMPLES = 200
PRDC_SOURCE = ("k-NN manifold estimates of Naeem et al., ICML 2020, who evaluate with 10,000 "
               f"samples per side; lsmia-bench requires {PRDC_MIN_SAMPLES} and k + 2")
FID_SOURCE = ("more samples than feature dimensions, else the covariance is singular and the "
              "value is set by the eps regularisation; FID is also biased at small n, Chong & "
              "Forsyth, CVPR 2020")


def fid_min_samples(setting: Setting) -> int:
    """D + 1 samples per side for a full-rank D x D covariance (at least 2)."""
    return max(2, (setting.feature_dim or 1) + 1)


def prdc_min_samples(setting: Setting) -> int:
    return max(PRDC_MIN_SAMPLES, (setting.prdc_k or 3) + 2)


class HasGradients(Protocol):
    gradients: torch.Tensor | None


@METRICS.metric(
    "attack_acc1", "Acc@1", "Attack accuracy: share of reconstructions that the evaluation "
    "model (another architecture trained on the same private data) assigns to the attacked "
    "class as its top-1 prediction. Lower means less leakage.", aggregation=MEAN,
    direction="lower", unit="percent", rank=1, column="acc1", pipelines=IMAGE)
def attack_acc1(ctx: AttackEvaluation) -> float:
    """Acc@1 = mean_i [y_i = argmax_c E(x_i)_c], E the evaluation model, x_i a reconstruction."""
    return ctx.per_reconstruction("attack_acc1", top_k_hits(ctx.evaluation_logits, ctx.labels, 1))


@METRICS.metric(
    "attack_acc5", "Acc@5", "Like Acc@1, with the attacked class among the evaluation "
    "model's top-5 predictions.", aggregation=MEAN, direction="lower", unit="percent", rank=2,
    column="acc5", pipelines=IMAGE, rules=(top_k_needs_more_classes(5),))
def attack_acc5(ctx: AttackEvaluation) -> float:
    """Acc@5 = mean_i [y_i in top-5(E(x_i))], E the evaluation model, x_i a reconstruction."""
    return ctx.per_reconstruction("attack_acc5", top_k_hits(ctx.evaluation_logits, ctx.labels, 5))


@METRICS.metric(
    "delta_eval", "δ eval", "Squared L2 distance in the evaluation model's penultimate "
    "features from each reconstruction to the nearest private training image of its class. "
    "Higher means the reconstructions are further from the private data.", aggregation=MEAN,
    direction="higher", rank=4, column="delta_eval", pipelines=IMAGE)
def delta_eval(ctx: AttackEvaluation) -> float:
    """delta_eval = mean_i min_{j: y_j = y_i} ||phi_E(x_i) - phi_E(p_j)||_2^2, p_j private."""
    return ctx.per_reconstruction("delta_eval", nearest_class_distances(
        ctx.evaluation_features, ctx.labels, ctx.reference_evaluation_features,
        ctx.reference_labels))


@METRICS.metric(
    "delta_face", "δ face", "Like δ eval, in FaceNet (InceptionResnetV1, VGGFace2) feature "
    "space; face suites only.", aggregation=MEAN, direction="higher", rank=5,
    pipelines=IMAGE, rules=(faces_only,))
def delta_face(ctx: AttackEvaluation) -> float:
    """delta_face = mean_i min_{j: y_j = y_i} ||F(x_i) - F(p_j)||_2^2, F FaceNet (VGGFace2)."""
    from lsmia_bench.benchmark.metrics.face import delta_face_distances

    distances = delta_face_distances(ctx.reconstructions, ctx.labels, ctx.references,
                                     ctx.reference_labels, ctx.facenet_weights, ctx.device)
    if distances is None:
        raise MetricMissing("FaceNet (VGGFace2) weights not found")
    return ctx.per_reconstruction("delta_face", distances)


@METRICS.metric(
    "fid", "FID", "Fréchet distance between features of the reconstructions and of the "
    "private data. Higher means the reconstructions look less like the private data.",
    aggregation="one value over all reconstructions vs all private images of the attacked "
    "classes", direction="higher", rank=6, column="fid", pipelines=IMAGE,
    rules=(min_samples_per_side(fid_min_samples, FID_SOURCE),))
def fid(ctx: AttackEvaluation) -> float:
    """FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) in the feature space."""
    features, references = ctx.space_features, ctx.reference_space_features

    def on_rows(rows: np.ndarray) -> float:
        return frechet_distance(features[torch.as_tensor(rows)], references)

    try:
        return ctx.set_statistic("fid", on_rows)
    except ValueError as exc:
        raise MetricMissing(str(exc)) from None


class PrdcOnRows:
    """PRDC of any resample of the reconstructions (rows, duplicates allowed) from distance
    matrices computed once: the formulas of ``prdc.compute_prdc`` (Naeem et al., ICML 2020) on
    the same float64 Euclidean distances, without recomputing them per resample."""

    def __init__(self, real: np.ndarray, fake: np.ndarray, k: int) -> None:
        from sklearn.metrics import pairwise_distances

        if min(len(real), len(fake)) < k + 2:
            raise ValueError(f"PRDC with k={k} needs at least {k + 2} samples in each set, "
                             f"got {len(real)} real and {len(fake)} fake")
        self.k = k
        self.real_radii = _kth(pairwise_distances(real, real), k + 1)
        self.real_fake = pairwise_distances(real, fake)
        self.fake_fake = pairwise_distances(fake, fake)

    def __call__(self, rows: np.ndarray) -> dict[str, float]:
        real_fake = self.real_fake[:, rows]
        fake_radii = _kth(self.fake_fake[np.ix_(rows, rows)], self.k + 1)
        inside_real = real_fake < self.real_radii[:, None]
        return {"precision": float(inside_real.any(axis=0).mean()),
                "recall": float((real_fake < fake_radii[None, :]).any(axis=1).mean()),
                "density": float(inside_real.sum(axis=0).mean() / self.k),
                "coverage": float((real_fake.min(axis=1) < self.real_radii).mean())}


def _kth(distances: np.ndarray, k: int) -> np.ndarray:
    """The k-th smallest value of each row (``prdc.get_kth_value``; the point itself is 1st)."""
    return np.partition(distances, k - 1, axis=-1)[..., k - 1]


def _prdc_value(ctx: AttackEvaluation, name: str) -> float:
    """One PRDC number on all reconstructions (``prdc``, the authors' package); its interval's
    resamples through :class:`PrdcOnRows`, each computed once for the four numbers."""
    def compute() -> tuple[dict[str, float], PrdcOnRows, dict[bytes, dict[str, float]]]:
        real = _as_array(ctx.reference_space_features)
        fake = _as_array(ctx.space_features)
        return prdc(real, fake, k=ctx.prdc_k), PrdcOnRows(real, fake, ctx.prdc_k), {}

    try:
        whole, on_rows, cache = ctx.memo("prdc", compute)
    except ValueError as exc:
        raise MetricMissing(str(exc)) from None
    everything = np.arange(len(ctx.reconstructions))

    def statistic(rows: np.ndarray) -> float:
        if len(rows) == len(everything) and (np.sort(rows) == everything).all():
            return whole[name]
        key = rows.tobytes()
        if key not in cache:
            cache[key] = on_rows(rows)
        return cache[key][name]

    return ctx.set_statistic(name, statistic)


#: Which PRDC the numbers are, said on the site with each of the four metrics.
PRDC_DEFINITION = (" The original definition of Naeem et al. (ICML 2020; the prdc package), "
                   "pooled over all attacked classes; PPA's code computes a per-class variant "
                   "(density divided by the number of real samples), whose values differ.")
PRDC = dict(aggregation="one value over all reconstructions vs all private images of the "
            "attacked classes", direction="lower", detail=True, pipelines=IMAGE,
            rules=(min_samples_per_side(prdc_min_samples, PRDC_SOURCE),))


@METRICS.metric("precision", "Precision", "Share of reconstructions that fall inside the "
                "private data's feature manifold (k = 3 nearest neighbours)." + PRDC_DEFINITION,
                **PRDC)
def precision(ctx: AttackEvaluation) -> float:
    """precision = (1/M) sum_j [exists i: ||y_j - x_i|| < r_k(x_i)], x private, y reconstructed."""
    return _prdc_value(ctx, "precision")


@METRICS.metric("recall", "Recall", "Share of private samples whose neighbourhood holds a "
                "reconstruction (k = 3)." + PRDC_DEFINITION,
                **PRDC)
def recall(ctx: AttackEvaluation) -> float:
    """recall = (1/N) sum_i [exists j: ||x_i - y_j|| < r_k(y_j)], x private, y reconstructed."""
    return _prdc_value(ctx, "recall")


@METRICS.metric("density", "Density", "How many private-data neighbourhoods contain each "
                "reconstruction, on average (k = 3)." + PRDC_DEFINITION,
                **PRDC)
def density(ctx: AttackEvaluation) -> float:
    """density = (1/(k M)) sum_j sum_i [||y_j - x_i|| < r_k(x_i)], x private, y reconstructed."""
    return _prdc_value(ctx, "density")


@METRICS.metric("coverage", "Coverage", "Share of private samples whose nearest-neighbour "
                "ball holds at least one reconstruction (k = 3)." + PRDC_DEFINITION,
                **PRDC)
def coverage(ctx: AttackEvaluation) -> float:
    """coverage = (1/N) sum_i [min_j ||y_j - x_i|| < r_k(x_i)], x private, y reconstructed."""
    return _prdc_value(ctx, "coverage")


@METRICS.metric(
    "xi", "ξ", "Knowledge extraction score: accuracy on real private test data of a student "
    "model trained only on the attack's reconstructions.",
    aggregation="mean over the private test images of the attacked classes", direction="lower",
    unit="percent", rank=3, column="xi", pipelines=IMAGE, rules=(needs_student,),
    flag=near_chance())
def xi(ctx: AttackEvaluation) -> float:
    """xi = mean_t [argmax S(t) = y_t] over private test images t, S trained on reconstructions."""
    try:
        correct, test_labels = knowledge_extraction_hits(
            ctx.reconstructions, ctx.labels, ctx.private.test_images, ctx.private.test_labels,
            ctx.make_student, device=ctx.device, **ctx.student_options)
        return ctx.per_unit("xi", correct, test_labels, "test images")
    except ValueError as exc:  # e.g. the paper's unstratified split left no test image
        raise MetricMissing(str(exc)) from None


@METRICS.metric(
    "gradient_stability", "Grad. stability", "Mean cosine similarity of consecutive attack "
    "gradients (the paper's analysis: negative label smoothing makes it lower).",
    aggregation="mean over steps, then over the traced samples", direction="lower",
    detail=True, pipelines=(*IMAGE, "toy"))
def gradient_stability_metric(ctx: HasGradients) -> float:
    """(1/S) sum_s mean_t cos(g_{t,s}, g_{t+1,s}) over the attack gradients the trace records."""
    if ctx.gradients is None:
        raise MetricMissing("the attack recorded no gradients")
    value = mean_gradient_stability(ctx.gradients)
    if value != value:
        raise MetricMissing("fewer than two recorded attack steps")
    return value


@METRICS.metric(
    "target_confidence", "Target conf.", "The target model's mean softmax confidence for the "
    "attacked class on the attack's final reconstructions: how far the attack reached its own "
    "objective (not leakage by itself: compare with Acc@1).", aggregation=MEAN,
    unit="percent", detail=True, column="target_conf", pipelines=IMAGE)
def target_confidence(ctx: AttackEvaluation) -> float:
    """conf = mean_i softmax(T(x_i))_{y_i}, T the target model, x_i a final reconstruction."""
    if ctx.target is None:
        raise MetricMissing("no target model given")
    probabilities = ctx.logits(ctx.target).double().softmax(dim=1)
    return ctx.per_reconstruction(
        "target_confidence", probabilities.gather(1, ctx.labels.view(-1, 1).cpu()).view(-1))


__all__ = ["attack_accuracy", "delta", "frechet_distance", "knowledge_extraction_hits",
           "knowledge_extraction_score",
           "mean_gradient_stability", "nearest_class_distances", "prdc"]
