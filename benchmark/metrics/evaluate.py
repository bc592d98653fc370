"""All privacy metrics of one attack trial (docs/metrics.md) from its output, in one call.

Metrics missing for a reason (no FaceNet weights, too few samples for PRDC, no student) are
left out of ``metrics`` and named with the reason in ``info["missing"]``, never estimated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lsmia_bench.benchmark.metrics.face import (
    delta_face,
    facenet_weights_note,
    find_facenet_weights,
)
from lsmia_bench.benchmark.metrics.features import (
    FeatureSpace,
    evaluation_feature_space,
    penultimate_features,
)
from lsmia_bench.benchmark.metrics.privacy import (
    attack_accuracy,
    delta,
    frechet_distance,
    knowledge_extraction_score,
    mean_gradient_stability,
    prdc,
)
from torch import nn

from lsmia_bench.kernel.attack_output import AttackOutput

log = logging.getLogger("lsmia_bench")


@dataclass
class PrivateData:
    """The target's private data, images (N, C, H, W) in [0, 1] in the target's input space:
    tensors, or anything indexed like one (``benchmark.data.face_folders.LazyImages`` reads
    large face data sets from disk batch by batch)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def evaluate_attack(
    output: AttackOutput,
    evaluation_model: nn.Module,
    private: PrivateData,
    *,
    feature_space: FeatureSpace | None = None,
    face_suite: bool = False,
    facenet_weights: str | Path | None = None,
    make_student: Callable[[int], nn.Module] | None = None,
    student_options: dict[str, Any] | None = None,
    prdc_k: int = 3,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of one attack: Acc@1/Acc@5 and delta_eval by the evaluation model, FID and
    PRDC (k = ``prdc_k``) against the private training images of the attacked classes in
    ``feature_space`` (default: the evaluation model's), delta_face (face suites), the
    knowledge extraction score xi (when ``make_student`` is given; ``student_options`` go to
    :func:`knowledge_extraction_score`) and the gradient stability of the trace.

    Returns (metrics, info); info holds ``feature_space`` and ``missing`` {metric: reason}.
    """
    recon, labels = output.reconstructions, output.labels
    attacked = torch.isin(private.train_labels, labels.unique())
    real, real_labels = private.train_images[attacked], private.train_labels[attacked]
    space = feature_space or evaluation_feature_space(evaluation_model)
    metrics: dict[str, float] = {}
    missing: dict[str, str] = {}

    evaluation_model.eval()
    with torch.no_grad():
        logits = torch.cat([evaluation_model(recon[i:i + 256].to(device)).cpu()
                            for i in range(0, len(recon), 256)])
    metrics["attack_acc1"] = attack_accuracy(logits, labels, 1)
    metrics["attack_acc5"] = attack_accuracy(logits, labels, 5)
    metrics["delta_eval"] = delta(penultimate_features(evaluation_model, recon), labels,
                                  penultimate_features(evaluation_model, real), real_labels)

    fake_features, real_features = space.extract(recon), space.extract(real)
    try:
        metrics["fid"] = frechet_distance(fake_features, real_features)
    except ValueError as exc:
        missing["fid"] = str(exc)
    try:
        metrics.update(prdc(real_features, fake_features, k=prdc_k))
    except ValueError as exc:
        for name in ("precision", "recall", "density", "coverage"):
            missing[name] = str(exc)

    info: dict[str, Any] = {}
    if face_suite:
        info["facenet_weights"] = facenet_weights_note(find_facenet_weights(facenet_weights))
        value = delta_face(recon, labels, real, real_labels, facenet_weights, device)
        if value is None:
            missing["delta_face"] = "FaceNet (VGGFace2) weights not found"
        else:
            metrics["delta_face"] = value

    if make_student is not None:
        try:
            metrics["knowledge_extraction"] = knowledge_extraction_score(
                recon, labels, private.test_images, private.test_labels, make_student,
                device=device, **(student_options or {}))
        except ValueError as exc:  # e.g. the paper's unstratified split left no test image
            missing["knowledge_extraction"] = str(exc)
    else:
        missing["knowledge_extraction"] = "no student model given"

    gradients = output.trace.get("gradients")
    stability = mean_gradient_stability(gradients) if gradients is not None else float("nan")
    if stability == stability:  # not NaN
        metrics["gradient_stability"] = stability
    else:
        missing["gradient_stability"] = "fewer than two recorded attack steps"
    for name, reason in missing.items():
        log.info("metric %s missing: %s", name, reason)
    info |= {"feature_space": space.name, "missing": missing,
            "reconstructions": len(recon), "private_reference_images": len(real)}
    return metrics, info
