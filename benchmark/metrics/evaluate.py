"""All privacy metrics of one attack trial (docs/metrics.md) from its output, in one call.

:class:`AttackEvaluation` holds what the metrics share (the evaluation model's logits and
features of the reconstructions and of the private reference images, the feature space's
features, ...), each computed once on first use; :func:`evaluate_attack` runs the registered
metric functions (``lsmia_bench.benchmark.metrics.METRICS``) the suite lists on it. A metric
that is not meaningful in the setting (its validity rule) or cannot be computed (no FaceNet
weights, no test image of an attacked class) is left out of ``metrics`` and named with the
reason in ``info["missing"]``, never estimated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from lsmia_bench.benchmark.metrics import METRICS
from lsmia_bench.benchmark.metrics.face import facenet_weights_note, find_facenet_weights
from lsmia_bench.benchmark.metrics.features import (
    EVALUATION_SPACE,
    FeatureSpace,
    evaluation_feature_space,
    penultimate_features,
)
from lsmia_bench.benchmark.metrics.uncertainty import (
    BootstrapSettings,
    Interval,
    stratified_interval,
    stratified_mean_interval,
)
from lsmia_bench.kernel.attack_output import AttackOutput
from lsmia_bench.kernel.metrics import Setting, evaluate

T = TypeVar("T")


@dataclass
class PrivateData:
    """The target's private data, images (N, C, H, W) in [0, 1] in the target's input space:
    tensors, or anything indexed like one (``benchmark.data.face_folders.LazyImages`` reads
    large face data sets from disk batch by batch)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


class AttackEvaluation:
    """The evaluation context of one attack: its inputs, and intermediates computed once on
    first use and shared by the metric functions."""

    def __init__(self, output: AttackOutput, evaluation_model: nn.Module, private: PrivateData,
                 *, target: nn.Module | None = None, feature_space: FeatureSpace | None = None,
                 face_suite: bool = False, facenet_weights: str | Path | None = None,
                 make_student: Callable[[int], nn.Module] | None = None,
                 student_options: dict[str, Any] | None = None, prdc_k: int = 3,
                 device: torch.device | str = "cpu", evaluation_inputs: Any = None) -> None:
        self.output, self.evaluation_model, self.private = output, evaluation_model, private
        self.target = target
        #: What the evaluation model and the feature space see of the reconstructions: the
        #: reconstructions themselves, or anything sliced like them (e.g. the same latents
        #: generated again at the evaluation model's resolution, ``GeneratedImages``).
        self.evaluation_inputs = (output.reconstructions if evaluation_inputs is None
                                  else evaluation_inputs)
        self.space = feature_space or evaluation_feature_space(evaluation_model)
        self.face_suite, self.facenet_weights = face_suite, facenet_weights
        self.make_student, self.student_options = make_student, student_options or {}
        self.prdc_k, self.device = prdc_k, device
        self._memo: dict[str, Any] = {}
        #: Per-unit values the metric functions left behind: metric -> (values, strata, unit);
        #: the metric is their mean, resampled within strata for its interval.
        self.units: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
        #: Set statistics: metric -> function of reconstruction row indices (FID, PRDC).
        self.set_statistics: dict[str, Callable[[np.ndarray], float]] = {}

    def per_reconstruction(self, name: str, values: torch.Tensor | np.ndarray) -> float:
        """Keep ``values`` (one per reconstruction) as ``name``'s resampling units; their mean."""
        return self.per_unit(name, values, self.labels.cpu().numpy(), "reconstructions")

    def per_unit(self, name: str, values: torch.Tensor | np.ndarray,
                 strata: torch.Tensor | np.ndarray, unit: str) -> float:
        """Keep ``values`` (stratified by ``strata``) as ``name``'s units; return their mean."""
        array = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) \
            else np.asarray(values, dtype=float)
        strata = strata.cpu().numpy() if isinstance(strata, torch.Tensor) else np.asarray(strata)
        self.units[name] = (array, strata, unit)
        return float(array.mean())

    def set_statistic(self, name: str, statistic: Callable[[np.ndarray], float]) -> float:
        """Keep ``statistic(reconstruction rows)`` for ``name``'s interval; its value on all."""
        self.set_statistics[name] = statistic
        return statistic(np.arange(len(self.reconstructions)))

    def intervals(self, names: Sequence[str], settings: BootstrapSettings,
                  set_settings: BootstrapSettings) -> dict[str, Interval]:
        """Within-trial intervals of the listed (recorded) metrics that have units: a mean
        over units resampled within their strata, or a set statistic recomputed on
        reconstructions resampled within their class."""
        out: dict[str, Interval] = {}
        strata = self.labels.cpu().numpy()
        for name in names:
            if name in self.units:
                values, groups, unit = self.units[name]
                out[name] = stratified_mean_interval(values, groups, settings, unit)
            elif name in self.set_statistics:
                out[name] = stratified_interval(self.set_statistics[name], strata, set_settings,
                                                "reconstructions")
        return out

    @property
    def reconstructions(self) -> torch.Tensor:
        return self.output.reconstructions

    @property
    def labels(self) -> torch.Tensor:
        return self.output.labels

    @property
    def gradients(self) -> torch.Tensor | None:
        return self.output.trace.get("gradients")

    @cached_property
    def attacked(self) -> torch.Tensor:
        """Mask of the private training images of the attacked classes."""
        return torch.isin(self.private.train_labels, self.labels.unique())

    @cached_property
    def references(self) -> torch.Tensor:
        """The private reference images: training images of the attacked classes."""
        return self.private.train_images[self.attacked]

    @cached_property
    def reference_labels(self) -> torch.Tensor:
        return self.private.train_labels[self.attacked]

    def logits(self, model: nn.Module, batch_size: int = 256) -> torch.Tensor:
        """``model``'s logits on the reconstructions, batched, on CPU (not cached)."""
        model.eval()
        recon = self.reconstructions
        with torch.no_grad():
            return torch.cat([model(recon[i:i + batch_size].to(self.device)).cpu()
                              for i in range(0, len(recon), batch_size)])

    @cached_property
    def _evaluation_pass(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The evaluation model's logits and penultimate features of the evaluation inputs,
        and their features in the FID/PRDC space when that is another network: one pass, so
        that generated inputs are synthesised once."""
        model, inputs = self.evaluation_model.eval(), self.evaluation_inputs
        device = next(model.parameters()).device
        own_space = self.space.name == EVALUATION_SPACE
        logits, features, space = [], [], []
        with torch.no_grad():
            for start in range(0, len(inputs), 256):
                x = inputs[start:start + 256].to(device)
                logits.append(model(x).cpu())
                features.append(model.embed(x).flatten(1).float().cpu())
                if not own_space:
                    space.append(self.space.extract(x))
        empty = torch.empty(0)
        return (torch.cat(logits) if logits else empty, torch.cat(features) if features
                else empty, None if own_space else torch.cat(space) if space else empty)

    @property
    def evaluation_logits(self) -> torch.Tensor:
        return self._evaluation_pass[0]

    @property
    def evaluation_features(self) -> torch.Tensor:
        return self._evaluation_pass[1]

    @cached_property
    def reference_evaluation_features(self) -> torch.Tensor:
        return penultimate_features(self.evaluation_model, self.references)

    @property
    def space_features(self) -> torch.Tensor:
        """The evaluation inputs in the FID/PRDC feature space."""
        features = self._evaluation_pass[2]
        return self.evaluation_features if features is None else features

    @cached_property
    def reference_space_features(self) -> torch.Tensor:
        return self.space.extract(self.references)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """A value several metric functions share (e.g. all four PRDC numbers), computed once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def setting(self) -> Setting:
        """What the metrics' validity rules look at."""
        classes = self.labels.unique()
        return Setting(
            attacked_classes=len(classes), reconstructions=len(self.reconstructions),
            references=int(self.attacked.sum()), prdc_k=self.prdc_k,
            face_suite=self.face_suite, student=self.make_student is not None,
            test_images=int(torch.isin(self.private.test_labels, classes).sum()),
            feature_dim=int(self.space_features.shape[1]))


def applicable_metrics(face_suite: bool) -> list[str]:
    """The image pipelines' metrics that apply to the data (delta_face only on faces)."""
    return [name for name in METRICS.for_pipeline("image")
            if face_suite or name != "delta_face"]


def evaluate_attack(
    output: AttackOutput,
    evaluation_model: nn.Module,
    private: PrivateData,
    *,
    target: nn.Module | None = None,
    metrics: Sequence[str] | None = None,
    feature_space: FeatureSpace | None = None,
    face_suite: bool = False,
    facenet_weights: str | Path | None = None,
    make_student: Callable[[int], nn.Module] | None = None,
    student_options: dict[str, Any] | None = None,
    prdc_k: int = 3,
    device: torch.device | str = "cpu",
    uncertainty: BootstrapSettings | None = None,
    set_uncertainty: BootstrapSettings | None = None,
    evaluation_inputs: Any = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The listed privacy metrics of one attack (default :func:`applicable_metrics`), each by
    its registered function on one shared :class:`AttackEvaluation`: Acc@1/Acc@5 and
    delta_eval by the evaluation model, FID and PRDC (k = ``prdc_k``) against the private
    training images of the attacked classes in ``feature_space`` (default: the evaluation
    model's), delta_face (face suites), the knowledge extraction score xi (when
    ``make_student`` is given; ``student_options`` go to ``knowledge_extraction_score``),
    the gradient stability of the trace, and metrics of the ``target`` itself. The
    evaluation model and the feature space judge ``evaluation_inputs`` (default: the
    reconstructions; see :class:`AttackEvaluation`).

    Returns (metrics, info); info holds ``feature_space``, ``missing`` {metric: reason},
    ``flags`` {metric: caveat on a recorded value}, ``intervals`` {metric: Interval} (within
    this trial, ``uncertainty``; set statistics with ``set_uncertainty``; none for metrics
    without resampling units) and ``per_reconstruction`` {metric: values, plus ``label``}.
    """
    context = AttackEvaluation(
        output, evaluation_model, private, target=target, feature_space=feature_space,
        face_suite=face_suite, facenet_weights=facenet_weights, make_student=make_student,
        student_options=student_options, prdc_k=prdc_k, device=device,
        evaluation_inputs=evaluation_inputs)
    names = applicable_metrics(face_suite) if metrics is None else metrics
    found = evaluate(METRICS, names, context, context.setting())
    info: dict[str, Any] = {}
    if face_suite:
        info["facenet_weights"] = facenet_weights_note(find_facenet_weights(facenet_weights))
    info |= {"feature_space": context.space.name, "missing": found.missing,
             "flags": found.flags, "reconstructions": len(context.reconstructions),
             "private_reference_images": int(context.attacked.sum())}
    settings = uncertainty or BootstrapSettings()
    info["intervals"] = context.intervals(list(found.values), settings,
                                          set_uncertainty or settings)
    info["per_reconstruction"] = {"label": context.labels.cpu().numpy()} | {
        name: values for name, (values, _, unit) in context.units.items()
        if unit == "reconstructions" and name in found.values}
    return found.values, info
