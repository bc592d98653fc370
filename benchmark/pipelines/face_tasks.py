"""Task functions of the ``faces`` pipeline (plain Python: no Ray, no MLflow).

Like the ``image`` pipeline's tasks, but the data are folders of face images read lazily
(DataLoader workers with the paper's per-image transforms for training, ``LazyImages`` for
evaluation) and the generator is the one the suite supplies (``prior`` section), not one
trained here. Trained models are stored in the image pipeline's format, so
``load_image_classifier`` rebuilds them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.attacks.grids import save_prior_samples
from lsmia_bench.attacks.priors.supplied import build_supplied_prior
from lsmia_bench.benchmark.context import TaskContext, TaskResult, seed_everything
from lsmia_bench.benchmark.data.face_cache import (
    CachedBatches,
    CachedImages,
    FaceImageCache,
    build_split_cache,
)
from lsmia_bench.benchmark.data.face_folders import (
    FaceSplits,
    LazyImages,
    dataloader_batches,
    face_eval_transform,
    face_train_transform,
)
from lsmia_bench.benchmark.data.face_suite import load_face_splits
from lsmia_bench.benchmark.metrics.evaluate import PrivateData
from lsmia_bench.benchmark.metrics.features import penultimate_features, select_feature_space
from lsmia_bench.benchmark.metrics.inputs import GeneratedImages, student_augmentation
from lsmia_bench.benchmark.metrics.intervals import bootstrap_settings
from lsmia_bench.benchmark.metrics.utility import accuracy
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.pipelines.image_attack_tasks import measure_attack
from lsmia_bench.benchmark.pipelines.image_tasks import (
    build_defense,
    build_model,
    classifier_metrics,
    load_image_classifier,
    make_optimizer,
    make_scheduler,
    record_training,
)
from lsmia_bench.benchmark.training import TrainingHistory, predict, train_classifier
from lsmia_bench.defenses.base import TrainingSetup
from lsmia_bench.kernel.attack_output import AttackOutput

#: Most test images drawn in the embedding figure (530 identities x 7 images is unreadable).
EMBEDDING_CLASSES = 20


def private_images(splits: FaceSplits, split: str, image_size: int, threads: int,
                   cache: FaceImageCache | None = None
                   ) -> tuple[LazyImages | CachedImages, torch.Tensor]:
    """A split at ``image_size`` px (resize + center crop) as LazyImages (read from the
    files) or, with the image ``cache``, CachedImages (the same tensors), and its labels."""
    dataset = splits.dataset(split, face_eval_transform(image_size))
    labels = torch.tensor(dataset.labels)
    if cache is not None:
        return CachedImages(cache, cache.rows(split)), labels
    return LazyImages(dataset, threads=max(1, threads)), labels


def open_image_cache(inputs: dict[str, Path], splits: FaceSplits,
                     size: int) -> FaceImageCache | None:
    """The image cache job's output (``data.input: cached``), checked against the splits."""
    if "images" not in inputs:
        return None
    cache = FaceImageCache(inputs["images"])
    cache.check(splits, size)
    return cache


def build_face_image_cache(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                           ctx: TaskContext) -> TaskResult:
    """Decode and resize every image of both splits once (``benchmark/data/face_cache.py``);
    chunks finished by a killed run are kept beside the store's entries and reused."""
    from lsmia_bench.benchmark.jobs import content_hash

    data = spec["data"]
    splits = load_face_splits(data)
    size = int(data["image_size"])
    partial = out.parent / f".partial-cache-{content_hash(spec)}"
    started = time.perf_counter()
    info = build_split_cache(splits, size, out, partial, threads=max(1, data["num_workers"]))
    return TaskResult({"cache_time_s": time.perf_counter() - started,
                       "cache_gib": info["bytes"] / 2**30},
                      info={"cache": info, "data": splits.record()})


def train_face_classifier(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                          ctx: TaskContext) -> TaskResult:
    """Train on the private training split with the paper's transforms; save ``model.pt`` +
    ``model.json``; measure test accuracy, ECE, class separation; draw the embedding."""
    seed = int(spec["seed"])
    seed_everything(seed)
    data, training = spec["data"], spec["training"]
    splits = load_face_splits(data)
    size = int(data["image_size"])
    defense = build_defense(spec["defense"])
    model_spec = {"name": spec["model"]["name"], "params": spec["model"]["params"],
                  "in_channels": 3, "image_size": size, "num_classes": splits.num_classes,
                  "defense": spec["defense"], "data": data,
                  "private_classes": list(range(splits.num_classes))}
    torch.manual_seed(seed)  # the same initial weights for every defense with this seed
    model = build_model(model_spec, defense).to(ctx.device)
    cuda = ctx.device.type == "cuda"
    optimizer = make_optimizer(model, training, fused=cuda)  # same update, one kernel
    augmentation = training["augmentation"]
    train_set = splits.dataset("train", face_train_transform(size, **augmentation))
    cache = open_image_cache(inputs, splits, size)
    if cache is not None:  # the same transform, per batch on the training device
        batches = CachedBatches(cache, "train", train_set.labels, training["batch_size"],
                                seed, ctx.device, **augmentation)
    else:
        batches = dataloader_batches(train_set, training["batch_size"], seed,
                                     num_workers=data["num_workers"],
                                     pin_memory=cuda)
    test_images, test_labels = private_images(splits, "test", size, data["num_workers"],
                                              cache)
    test_curve: list[float] = []

    def on_epoch(epoch: int, history: TrainingHistory) -> None:
        every = training["eval_every"]
        if (epoch + 1) % every == 0 or epoch + 1 == training["epochs"]:
            test_curve.append(accuracy(predict(model, test_images), test_labels))

    channels_last = training.get("channels_last")
    channels_last = cuda if channels_last is None else channels_last
    started = time.perf_counter()
    # No per-example access and no public split here: a defense that needs them says so.
    setup = defense.prepare_training(TrainingSetup(
        model=model, optimizer=optimizer, batches=batches, epochs=training["epochs"],
        batch_size=training["batch_size"], train_size=len(train_set),
        num_classes=splits.num_classes, device=ctx.device, seed=seed,
        test=(test_images, test_labels)))
    history = train_classifier(setup.model, defense, setup.batches, setup.optimizer,
                               training["epochs"], num_classes=splits.num_classes, ctx=ctx,
                               scheduler=make_scheduler(setup.optimizer, training),
                               on_epoch=on_epoch, precision=training["precision"],
                               state=setup.state, compile=training.get("compile", False),
                               channels_last=channels_last)
    defense_metrics = defense.end_training(setup)
    fit_time = time.perf_counter() - started
    train_images, train_labels = private_images(splits, "train", size, data["num_workers"],
                                                cache)
    metrics = classifier_metrics(model, train_images, train_labels, test_images, test_labels,
                                 bootstrap_settings(spec.get("uncertainty")), out)
    metrics |= defense_metrics
    shown = torch.isin(test_labels, torch.arange(EMBEDDING_CLASSES))
    pretraining = next((m.pretraining for m in model.modules() if hasattr(m, "pretraining")),
                       None)
    features = penultimate_features(model, test_images[shown])
    return record_training(
        out, model, model_spec, spec, defense, metrics, features, test_labels[shown],
        list(range(splits.num_classes)), history, test_curve, fit_time,
        {"embedding": f"test images of the first {EMBEDDING_CLASSES} identities",
         "data": splits.record(), "precision": training["precision"] or "fp32",
         "input": "cached (augmented per batch on the training device)" if cache is not None
         else "pil (DataLoader workers)",
         "pretraining": pretraining or "not a torchvision network"})


def attack_face_target(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                       ctx: TaskContext) -> TaskResult:
    """Attack the target's first ``attack_identities`` identities (all by default) through
    the supplied generator; evaluate with the evaluation model, reading real faces lazily."""
    seed = int(spec["seed"])
    seed_everything(seed)
    data = spec["data"]
    splits = load_face_splits(data)
    size = int(data["image_size"])
    target = load_image_classifier(inputs["target"], ctx.device)
    evaluation = load_image_classifier(inputs["evaluation"], ctx.device)
    cls = ATTACKS.get(spec["attack"]["name"])
    params = dict(spec["attack"]["params"])
    if "input_shape" in cls.model_fields and params.get("input_shape") is None:
        params["input_shape"] = (3, size, size)
    attack = cls(**params)
    count = spec.get("attack_identities") or splits.num_classes
    classes = list(range(min(count, splits.num_classes)))
    info: dict[str, Any] = {"classes": len(classes), "data": splits.record()}
    prior = None
    if attack.needs_prior:
        prior = build_supplied_prior(spec["prior"], size, 3, ctx.device)
        save_prior_samples(prior, out / "prior_samples.png", n=16, seed=seed)
        info["prior"] = f"{spec['prior']['kind']} supplied by the suite ({type(prior).__name__})"

    started = time.perf_counter()
    output = attack.run(target, classes, prior)
    metrics = {"attack_time_s": time.perf_counter() - started}

    student = spec["student"]

    def make_student(num_classes: int) -> torch.nn.Module:
        return build_classifier(student["name"], student["params"], 3, size, num_classes)

    threads = data["num_workers"]
    cache = open_image_cache(inputs, splits, size)
    train_images, train_labels = private_images(splits, "train", size, threads, cache)
    test_images, test_labels = private_images(splits, "test", size, threads, cache)
    private = PrivateData(train_images, train_labels, test_images, test_labels)
    privacy = spec["privacy"]
    evaluation_inputs, info["evaluation_input"] = face_evaluation_inputs(
        output, prior, evaluation, size)
    augmentation = privacy.get("student_augmentation")
    student_augment = None if augmentation is None else student_augmentation(
        size, augmentation["resized_crop_scale"], augmentation["resized_crop_ratio"],
        augmentation["flip"])
    info["student"] = (f"{student['name']} {student['params']}, augmentation "
                       f"{augmentation if augmentation is not None else 'none'}")
    return measure_attack(spec, attack, output, evaluation, private, make_student,
                          splits.num_classes, out, ctx, TaskResult(metrics, {}, info),
                          facenet_weights=privacy["facenet_weights"], target=target,
                          feature_space=select_feature_space(
                              evaluation, privacy.get("fid_inception_weights")),
                          evaluation_inputs=evaluation_inputs, student_augment=student_augment)


def face_evaluation_inputs(output: AttackOutput, prior: Any, evaluation: torch.nn.Module,
                           size: int) -> tuple[Any, str]:
    """What the evaluation model (and the FID/PRDC space) judges, and a note for the record:
    with the attack's latents, the generator's images at the evaluation model's own input
    size (1024 px -> center crop 800 -> 299 px, as PPA's code); else the reconstructions
    (the target's ``size`` px, resized inside the evaluation model)."""
    network_size = getattr(evaluation, "resize_to", None) or size
    if output.latents is not None and prior is not None:
        crop = getattr(prior, "center_crop", None)
        return (GeneratedImages(prior, output.latents, network_size),
                f"generated again from the attack's latents: center crop {crop} px, "
                f"resized to {network_size} px")
    return None, f"the reconstructions at {size} px, resized to {network_size} px"
