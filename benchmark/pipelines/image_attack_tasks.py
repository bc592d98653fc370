"""Attack-side task functions of the ``image`` pipeline (plain Python: no Ray, no MLflow).

:func:`train_image_prior` trains a generator prior on the suite's PUBLIC split only (a
prerequisite job, shared by every target). :func:`attack_image_target` attacks one target with
one attack setting on all private classes and measures every privacy metric of docs/metrics.md
with the evaluation model. A prior that depends on the target (KED-MI's GAN learns the target's
soft labels, ``PriorKind.per_target``) cannot be a prerequisite: the attack job trains it
itself, on the public split, and keeps it in its own cache folder under ``prior/`` (with
``prior_samples.png``), so it is cached with the attack by the attack's content hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.attacks.grids import save_prior_samples, save_reconstruction_grid
from lsmia_bench.attacks.priors import PRIORS, TrainedPrior, load_trained_prior
from lsmia_bench.benchmark.context import TaskContext, TaskResult, seed_everything
from lsmia_bench.benchmark.data.images import ImageSplits, load_image_splits
from lsmia_bench.benchmark.metrics.evaluate import PrivateData, evaluate_attack
from lsmia_bench.benchmark.metrics.features import FeatureSpace
from lsmia_bench.benchmark.metrics.intervals import (
    PER_RECONSTRUCTION_FILE,
    bootstrap_settings,
    record_intervals,
    write_per_unit,
)
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.pipelines.image_tasks import load_image_classifier
from lsmia_bench.kernel.attack_output import AttackOutput

#: Most points of a curve logged to MLflow (GAN loss curves have thousands of steps).
MAX_CURVE_POINTS = 200


def _strided(curves: dict[str, list[float]]) -> tuple[dict[str, list[float]], int]:
    longest = max((len(v) for v in curves.values()), default=0)
    stride = max(1, -(-longest // MAX_CURVE_POINTS))
    return {k: [float(x) for x in v[::stride]] for k, v in curves.items() if v}, stride


def train_prior(kind: str, params: dict[str, Any], splits: ImageSplits, seed: int,
                ctx: TaskContext, target: torch.nn.Module | None = None) -> TrainedPrior:
    """Train the prior ``kind`` on the public split (and the target, for per-target kinds)."""
    prior_kind = PRIORS.get(kind)
    train = prior_kind.trainer()
    extra: tuple[Any, ...] = ()
    if prior_kind.per_target:
        extra = (target, splits.image_shape)
    return train(splits.public, *extra, **params, seed=seed, device=ctx.device,
                 progress=ctx.progress)


def _prior_result(trained: TrainedPrior, prefix: str = "") -> tuple[dict, dict]:
    series, stride = _strided({f"{prefix}{k}": v for k, v in trained.history.items()})
    metrics = {f"{prefix}final_{k}": v[-1] for k, v in trained.history.items() if v}
    return metrics, {"series": series, "stride": stride}


def train_image_prior(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                      ctx: TaskContext) -> TaskResult:
    """Train a target-independent prior on the public split; save it and a sample grid."""
    seed = int(spec["seed"])
    seed_everything(seed)
    splits = load_image_splits(spec["data"])
    kind = spec["prior"]["kind"]
    trained = train_prior(kind, spec["prior"]["params"], splits, seed, ctx)
    trained.save(out)
    save_prior_samples(trained.prior(), out / "prior_samples.png", seed=seed)
    metrics, curves = _prior_result(trained)
    return TaskResult(metrics=metrics, series=curves["series"],
                      info={"kind": kind, "public_images": len(splits.public),
                            "public_classes": splits.public_classes,
                            "series_stride": curves["stride"]})


def attack_image_target(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                        ctx: TaskContext) -> TaskResult:
    """Attack the target on all private classes; evaluate with the evaluation model."""
    seed = int(spec["seed"])
    seed_everything(seed)
    splits = load_image_splits(spec["data"])
    shape = splits.image_shape
    target = load_image_classifier(inputs["target"], ctx.device)
    evaluation = load_image_classifier(inputs["evaluation"], ctx.device)
    cls = ATTACKS.get(spec["attack"]["name"])
    params = dict(spec["attack"]["params"])
    if "input_shape" in cls.model_fields and params.get("input_shape") is None:
        params["input_shape"] = shape  # mi_face optimises images of the target's input shape
    attack = cls(**params)

    metrics: dict[str, float] = {}
    series: dict[str, list[float]] = {}
    info: dict[str, Any] = {"classes": splits.num_classes}
    prior = None
    if attack.needs_prior:
        kind = attack.prior_kind
        if PRIORS.get(kind).per_target:  # trained here: it needs this target's soft labels
            started = time.perf_counter()
            trained = train_prior(kind, spec["prior"]["params"], splits, seed, ctx, target)
            trained.save(out / "prior")
            save_prior_samples(trained.prior(), out / "prior" / "prior_samples.png", seed=seed)
            prior_metrics, curves = _prior_result(trained, "prior_")
            metrics |= prior_metrics | {"prior_train_time_s": time.perf_counter() - started}
            series |= curves["series"]
            info["prior"] = f"{kind}, trained in this job on the public split (per target)"
        else:
            trained = load_trained_prior(inputs["prior"], ctx.device)
            info["prior"] = f"{kind}, prerequisite trained on the public split"
        prior = trained.prior(shape[1:], shape[0])

    started = time.perf_counter()
    output = attack.run(target, list(range(splits.num_classes)), prior)
    metrics["attack_time_s"] = time.perf_counter() - started

    student = spec["student"]

    def make_student(num_classes: int) -> torch.nn.Module:
        return build_classifier(student["name"], student["params"], shape[0], shape[1],
                                num_classes)

    private = PrivateData(splits.private_train, splits.private_train_labels,
                          splits.private_test, splits.private_test_labels)
    return measure_attack(spec, attack, output, evaluation, private, make_student,
                          splits.num_classes, out, ctx, TaskResult(metrics, series, info),
                          target=target)


def measure_attack(spec: dict[str, Any], attack: Any, output: AttackOutput,
                   evaluation: torch.nn.Module, private: PrivateData,
                   make_student: Callable[[int], torch.nn.Module], num_classes: int, out: Path,
                   ctx: TaskContext, result: TaskResult,
                   facenet_weights: str | None = None,
                   target: torch.nn.Module | None = None,
                   feature_space: FeatureSpace | None = None,
                   evaluation_inputs: Any = None,
                   student_augment: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> TaskResult:
    """The suite's privacy metrics of one attack's output (``spec["metrics"]``, default all;
    added to ``result``) with their within-trial intervals (``<metric>_ci_low``,
    ``_ci_high``, ``_n``; units in ``info["interval_units"]``), ``per_reconstruction.csv``
    (``label`` and each per-reconstruction metric value), its curves, the reconstruction grid
    and ``attack.json``: the part of an attack task all pipelines share. ``feature_space``
    (default: the evaluation model's), ``evaluation_inputs`` (default: the reconstructions)
    and ``student_augment`` (default: none) go to ``evaluate_attack``; the feature space is
    recorded in ``info["feature_space"]``."""
    seed = int(spec["seed"])
    privacy = spec["privacy"]
    metrics, series, info = result.metrics, result.series, result.info
    values, evaluation_info = evaluate_attack(
        output, evaluation, private, target=target, metrics=spec.get("metrics"),
        face_suite=spec["face_suite"], facenet_weights=facenet_weights,
        make_student=make_student,
        student_options={"num_classes": num_classes, "epochs": privacy["student_epochs"],
                         "batch_size": privacy["student_batch_size"],
                         "lr": privacy["student_lr"], "seed": seed,
                         "augment": student_augment},
        prdc_k=privacy["prdc_k"], device=ctx.device, feature_space=feature_space,
        evaluation_inputs=evaluation_inputs,
        uncertainty=bootstrap_settings(spec.get("uncertainty")),
        set_uncertainty=bootstrap_settings(spec.get("uncertainty"), set_statistic=True))
    missing = dict(evaluation_info.pop("missing"))
    intervals = evaluation_info.pop("intervals")
    per_reconstruction = evaluation_info.pop("per_reconstruction")
    metrics |= {k: float(v) for k, v in values.items() if v is not None}
    units = record_intervals(metrics, intervals)
    labels = per_reconstruction.pop("label")
    write_per_unit(out / PER_RECONSTRUCTION_FILE, labels, per_reconstruction)
    metrics["reconstructions"] = float(len(output.reconstructions))
    if output.queries is not None:
        metrics["queries"] = float(output.queries)

    curves = {k: [float(x) for x in v] for k, v in output.trace.items()
              if isinstance(v, list) and v and isinstance(v[0], int | float)}
    attack_curves, stride = _strided({f"attack_{k}": v for k, v in curves.items()})
    series |= attack_curves
    for key, value in output.trace.items():
        if isinstance(value, int | float):
            metrics[f"trace_{key}"] = float(value)
    save_reconstruction_grid(
        output.reconstructions, output.labels, private.train_images, private.train_labels,
        out / "reconstructions.png", title=f"{attack.label()} on {spec['target_label']}")
    (out / "attack.json").write_text(json.dumps({"attack": attack.model_dump(mode="json")}))
    return TaskResult(metrics=metrics, series=series,
                      info=info | evaluation_info | {"missing": missing,
                                                     "curve_stride": stride,
                                                     "interval_units": units})
