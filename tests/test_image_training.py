"""The image pipeline's training task without Ray or MLflow: determinism, the LS schedule as
trained, the stored model, and the scheduler milestones."""

from __future__ import annotations

import json

import pytest
import torch

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.data.images import load_image_splits
from lsmia_bench.benchmark.pipelines.image_tasks import (
    load_image_classifier,
    milestone_epochs,
    train_image_classifier,
)
from lsmia_bench.benchmark.training import predict

DATA = {"source": "digits", "private_classes": [0, 1, 2], "public_classes": [7, 8, 9],
        "test_fraction": 0.2, "split_seed": 0, "image_size": None}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """As in a trial with cpu: 1; several threads on a busy 2-core machine are far slower."""


def _spec(epochs: int = 2, seed: int = 0, defense: dict | None = None) -> dict:
    return {
        "data": DATA,
        "model": {"name": "cnn", "params": {"channels": [8, 16], "feature_dim": 16}},
        "training": {"optimizer": "adam", "lr": 0.003, "momentum": 0.9, "weight_decay": 0.0,
                     "epochs": epochs, "batch_size": 64,
                     "scheduler": {"milestones": [0.75], "gamma": 0.1},
                     "augmentation": {"crop_padding": 1, "resized_crop_scale": None,
                                      "horizontal_flip": False, "brightness": 0.1,
                                      "contrast": 0.0}},
        "defense": defense or {"name": "none", "params": {}},
        "seed": seed,
    }


def _train(tmp_path, name: str, **kwargs):
    out = tmp_path / name
    out.mkdir()
    return train_image_classifier(_spec(**kwargs), {}, out, TaskContext()), out


def test_same_seed_gives_identical_weights_and_metrics(tmp_path):
    first, first_dir = _train(tmp_path, "a")
    second, second_dir = _train(tmp_path, "b")
    other, other_dir = _train(tmp_path, "c", seed=1)
    weights = [torch.load(d / "model.pt", weights_only=True)
               for d in (first_dir, second_dir, other_dir)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    timing = {"fit_time_s"}
    assert ({k: v for k, v in first.metrics.items() if k not in timing}
            == {k: v for k, v in second.metrics.items() if k not in timing})
    assert first.series == second.series
    assert (first_dir / "embedding.csv").read_text() == (second_dir / "embedding.csv").read_text()


def test_result_holds_metrics_curves_and_figure(tmp_path):
    result, out = _train(tmp_path, "a", epochs=3)
    for key in ("test_accuracy", "final_train_accuracy", "ece", "class_separation", "fit_time_s"):
        assert key in result.metrics
    assert 0 <= result.metrics["ece"] <= 1 and -1 <= result.metrics["class_separation"] <= 1
    for key in ("train_loss", "train_accuracy", "test_accuracy_by_epoch"):
        assert len(result.series[key]) == 3
    assert (out / "embedding.png").stat().st_size > 1000
    spec = json.loads((out / "model.json").read_text())
    assert spec["name"] == "cnn" and spec["num_classes"] == 3
    assert spec["private_classes"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        # Negative alpha, paper's schedule over 8 epochs (progress = epoch / 8): 0 until half
        # of training, linear to -0.05 at 75 %, then -0.05.
        (-0.05, [0, 0, 0, 0, 0, -0.025, -0.05, -0.05]),
        (0.1, [0.1] * 8),  # positive alpha is constant
    ],
)
def test_label_smoothing_schedule_as_trained(tmp_path, alpha, expected):
    result, _ = _train(tmp_path, "a", epochs=8,
                       defense={"name": "label_smoothing", "params": {"alpha": alpha}})
    assert result.series["ls_alpha"] == pytest.approx(expected)


def test_loaded_target_predicts_like_the_trained_one(tmp_path):
    _, out = _train(tmp_path, "a", defense={"name": "label_smoothing",
                                            "params": {"alpha": -0.05}})
    model = load_image_classifier(out)
    assert not model.training
    splits = load_image_splits(json.loads((out / "model.json").read_text())["data"])
    logits = predict(model, splits.private_test)
    recorded = json.loads((out / "model.json").read_text())
    assert logits.shape == (len(splits.private_test), recorded["num_classes"])
    again = predict(load_image_classifier(out), splits.private_test)
    assert torch.equal(logits, again)


def test_milestones_are_fractions_of_the_epochs():
    assert milestone_epochs([0.75, 0.9], 100) == [75, 90]
    assert milestone_epochs([0.75, 0.9], 2) == [2]
    assert milestone_epochs([0.01], 10) == [1]
