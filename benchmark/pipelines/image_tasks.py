"""Task functions of the ``image`` pipeline (plain Python: no Ray, no MLflow).

:func:`train_image_classifier` trains one classifier on the PRIVATE training split with one
defense (the evaluation model is the same task with ``none`` and its own architecture) and
stores everything needed to rebuild it; :func:`load_image_classifier` rebuilds it from its
cache folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lsmia_bench.benchmark.context import TaskContext, TaskResult, seed_everything
from lsmia_bench.benchmark.data.augment import augment_images, shuffled_batches
from lsmia_bench.benchmark.data.images import ImageSplits, load_image_splits
from lsmia_bench.benchmark.embedding import embedding_table, save_embedding_figure
from lsmia_bench.benchmark.metrics.features import penultimate_features
from lsmia_bench.benchmark.metrics.intervals import (
    PER_TEST_IMAGE_FILE,
    bootstrap_settings,
    record_intervals,
    write_per_unit,
)
from lsmia_bench.benchmark.metrics.uncertainty import (
    BootstrapSettings,
    Interval,
    stratified_interval,
    stratified_mean_interval,
)
from lsmia_bench.benchmark.metrics.utility import (
    accuracy,
    class_separation,
    expected_calibration_error,
    top_k_hits,
)
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.training import TrainingHistory, predict, train_classifier
from lsmia_bench.defenses import DEFENSES, Defense
from lsmia_bench.defenses.base import PublicData, TrainingSetup

MODEL_FILE = "model.pt"
MODEL_SPEC_FILE = "model.json"
ECE_BINS = 15


def make_optimizer(model: nn.Module, training: dict[str, Any],
                   fused: bool = False) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) over all parameters, as the suite's ``training`` says;
    ``fused``: torch's fused kernel (one launch per step; CUDA runs)."""
    options = {"fused": True} if fused else {}
    if training["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=training["lr"],
                                weight_decay=training["weight_decay"], **options)
    return torch.optim.SGD(model.parameters(), lr=training["lr"],
                           momentum=training["momentum"], weight_decay=training["weight_decay"],
                           **options)


def milestone_epochs(fractions: list[float], epochs: int) -> list[int]:
    """Scheduler milestones given as fractions of training -> epoch numbers (at least 1)."""
    return sorted({max(1, round(f * epochs)) for f in fractions})


def make_scheduler(optimizer: torch.optim.Optimizer, training: dict[str, Any]
                   ) -> torch.optim.lr_scheduler.MultiStepLR | None:
    """MultiStepLR: lr *= gamma at each milestone (None when there are no milestones)."""
    scheduler = training["scheduler"]
    if not scheduler["milestones"]:
        return None
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestone_epochs(scheduler["milestones"], training["epochs"]),
        gamma=scheduler["gamma"])


def build_defense(spec: dict[str, Any]) -> Defense:
    return DEFENSES.get(spec["name"])(**spec["params"])


def build_model(model_spec: dict[str, Any], defense: Defense | None = None) -> nn.Module:
    """The architecture of ``model_spec`` (as in ``model.json``), wrapped by the defense."""
    model = build_classifier(model_spec["name"], model_spec["params"],
                             model_spec["in_channels"], model_spec["image_size"],
                             model_spec["num_classes"])
    return defense.wrap_model(model) if defense is not None else model


def _model_spec(spec: dict[str, Any], splits: ImageSplits) -> dict[str, Any]:
    channels, height, _ = splits.image_shape
    return {"name": spec["model"]["name"], "params": spec["model"]["params"],
            "in_channels": channels, "image_size": height, "num_classes": splits.num_classes,
            "defense": spec["defense"], "data": spec["data"],
            "private_classes": splits.private_classes}


def train_image_classifier(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                           ctx: TaskContext) -> TaskResult:
    """Train on the private training split; save ``model.pt`` + ``model.json``; measure test
    accuracy, ECE, class separation and draw the embedding figure."""
    seed = int(spec["seed"])
    seed_everything(seed)
    splits = load_image_splits(spec["data"])
    defense = build_defense(spec["defense"])
    model_spec = _model_spec(spec, splits)
    torch.manual_seed(seed)  # the same initial weights for every defense with this seed
    model = build_model(model_spec, defense).to(ctx.device)
    training = spec["training"]
    optimizer = make_optimizer(model, training)
    generator = torch.Generator().manual_seed(seed)
    augmentation = training["augmentation"]

    def transform(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return augment_images(images, gen, **augmentation)

    augmented = transform if any(augmentation.values()) else None
    batches = shuffled_batches(splits.private_train, splits.private_train_labels,
                               training["batch_size"], generator, augmented)

    def examples(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = splits.private_train[index]
        return (augmented(images, generator) if augmented else images,
                splits.private_train_labels[index])

    test_curve: list[float] = []

    def on_epoch(epoch: int, history: TrainingHistory) -> None:
        test_curve.append(accuracy(predict(model, splits.private_test),
                                   splits.private_test_labels))

    started = time.perf_counter()
    # The defense's set-up hook (pre-training, freezing, DP wrappers) counts as training time.
    setup = defense.prepare_training(TrainingSetup(
        model=model, optimizer=optimizer, batches=batches, epochs=training["epochs"],
        batch_size=training["batch_size"], train_size=len(splits.private_train),
        num_classes=splits.num_classes, device=ctx.device, seed=seed, examples=examples,
        public=PublicData(splits.public, splits.public_labels, len(splits.public_classes)),
        test=(splits.private_test, splits.private_test_labels)))
    history = train_classifier(setup.model, defense, setup.batches, setup.optimizer,
                               training["epochs"], num_classes=splits.num_classes, ctx=ctx,
                               scheduler=make_scheduler(setup.optimizer, training),
                               on_epoch=on_epoch, state=setup.state)
    defense_metrics = defense.end_training(setup)
    fit_time = time.perf_counter() - started
    metrics = evaluate_classifier(model, splits, bootstrap_settings(spec.get("uncertainty")), out)
    metrics |= defense_metrics
    features = penultimate_features(model, splits.private_test)
    return record_training(
        out, model, model_spec, spec, defense, metrics, features, splits.private_test_labels,
        splits.private_classes, history, test_curve, fit_time,
        {"num_classes": splits.num_classes, "train_images": len(splits.private_train),
         "test_images": len(splits.private_test)})


def record_training(out: Path, model: nn.Module, model_spec: dict[str, Any],
                    spec: dict[str, Any], defense: Defense, metrics: dict[str, float],
                    features: torch.Tensor, labels: torch.Tensor, class_ids: list[int],
                    history: TrainingHistory, test_curve: list[float], fit_time: float,
                    info: dict[str, Any]) -> TaskResult:
    """Save ``model.pt`` + ``model.json``, the test features, their embedding table and figure;
    the training task's result (metrics, curves, ``info`` added to the shared facts).

    The curves include the defense's schedule (``history.extra``, e.g. ``ls_alpha``)."""
    seed = int(spec["seed"])
    torch.save(model.state_dict(), out / MODEL_FILE)
    (out / MODEL_SPEC_FILE).write_text(json.dumps(model_spec, indent=2))
    features_np, labels_np = features.numpy(), labels.numpy()
    np.savez_compressed(out / "features.npz", features=features_np, labels=labels_np)
    table = embedding_table(features_np, labels_np, class_ids, seed)
    table.to_csv(out / "embedding.csv", index=False)
    title = (f"{spec['model']['name']} {defense.label()} seed={seed}: "
             f"silhouette {metrics['class_separation']:.3f}")
    save_embedding_figure(table, title, out / "embedding.png")
    series = history.as_series() | {"test_accuracy_by_epoch": test_curve}
    units = {name: UTILITY_UNIT for name in UTILITY_INTERVALS
             if f"{name}_ci_low" in metrics}
    if units:
        info = info | {"interval_units": units}
    return TaskResult(
        metrics=metrics | {"fit_time_s": fit_time, "epochs": float(spec["training"]["epochs"]),
                           "final_train_loss": history.train_loss[-1]},
        series=series,
        info={"class_separation": "silhouette score (Euclidean) of penultimate features of "
                                  "the private test split", "ece_bins": ECE_BINS} | info,
    )


def evaluate_classifier(model: nn.Module, splits: ImageSplits,
                        uncertainty: BootstrapSettings | None = None,
                        out: Path | None = None) -> dict[str, float]:
    """Test accuracy, train accuracy (eval mode), ECE (15 bins), class separation (private),
    with the intervals of :func:`classifier_metrics`."""
    return classifier_metrics(model, splits.private_train, splits.private_train_labels,
                              splits.private_test, splits.private_test_labels, uncertainty,
                              out)


#: Target metrics with an interval over the private test images (resampled within class).
UTILITY_INTERVALS = ("test_accuracy", "ece")
UTILITY_UNIT = "test images"


def utility_intervals(logits: torch.Tensor, test_labels: torch.Tensor,
                      settings: BootstrapSettings) -> dict[str, Interval]:
    """Within-seed intervals of test accuracy (mean of per-image correctness) and ECE (recomputed
    on each resample), test images resampled within their class."""
    labels = test_labels.cpu().numpy()
    correct = top_k_hits(logits, test_labels, 1).numpy()
    probabilities = logits.softmax(1)

    def ece(rows: np.ndarray) -> float:
        index = torch.as_tensor(rows)
        return expected_calibration_error(probabilities[index], test_labels[index],
                                          bins=ECE_BINS)

    return {"test_accuracy": stratified_mean_interval(correct, labels, settings, UTILITY_UNIT),
            "ece": stratified_interval(ece, labels, settings, UTILITY_UNIT)}


def classifier_metrics(model: nn.Module, train_images: Any, train_labels: torch.Tensor,
                       test_images: Any, test_labels: torch.Tensor,
                       uncertainty: BootstrapSettings | None = None,
                       out: Path | None = None) -> dict[str, float]:
    """Test accuracy, train accuracy (eval mode), ECE (15 bins) and class separation of the
    test features; images are tensors or anything sliced like one (``LazyImages``). With
    ``uncertainty``: ``test_accuracy`` and ``ece`` get ``_ci_low``/``_ci_high``/``_n`` (unit:
    test images); with ``out``: ``per_test_image.csv`` (label, correct) is written there."""
    logits = predict(model, test_images)
    metrics = {
        "test_accuracy": accuracy(logits, test_labels),
        "final_train_accuracy": accuracy(predict(model, train_images), train_labels),
        "ece": expected_calibration_error(logits.softmax(1), test_labels, bins=ECE_BINS),
        "class_separation": class_separation(penultimate_features(model, test_images),
                                         test_labels),
    }
    if uncertainty is not None:
        record_intervals(metrics, utility_intervals(logits, test_labels, uncertainty))
    if out is not None:
        write_per_unit(out / PER_TEST_IMAGE_FILE, test_labels.cpu().numpy(),
                       {"correct": top_k_hits(logits, test_labels, 1).numpy()})
    return metrics


def load_image_classifier(folder: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained target (or evaluation model) from its cache folder, in eval mode.

    The architecture and defense come from ``model.json``; ``model_spec["data"]`` (the suite's
    data section) rebuilds the splits it was trained on via
    :func:`benchmark.data.images.load_image_splits`.
    """
    folder = Path(folder)
    model_spec = read_model_spec(folder)
    model = build_model(model_spec, build_defense(model_spec["defense"]))
    state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def read_model_spec(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MODEL_SPEC_FILE).read_text())
