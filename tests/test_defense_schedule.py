"""Defense schedules go through the public hook ``Defense.at_epoch``: label smoothing's ramp
and an outside defense's schedule are trained and recorded the same way."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from lsmia_bench.benchmark.config import ComponentSpec, build_components
from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.pipelines.image_tasks import train_image_classifier
from lsmia_bench.benchmark.plugin_check import ProbeClassifier, probe_batch
from lsmia_bench.benchmark.training import train_classifier
from lsmia_bench.defenses import DEFENSES, Defense, LossInputs
from lsmia_bench.defenses.label_smoothing import (
    LabelSmoothing,
    negative_label_smoothing_schedule,
)

#: An outside defense with a schedule, written as a third party would: a penalty on the
#: confidence whose weight ramps up linearly over training.
RAMPED_PLUGIN = textwrap.dedent('''
    from typing import ClassVar

    import torch
    import torch.nn.functional as F
    from pydantic import Field

    from lsmia_bench.defenses import Defense, LossInputs


    class RampedPenalty(Defense):
        name: ClassVar[str] = "ramped_penalty"
        summary: ClassVar[str] = "Confidence penalty whose weight ramps up over training."
        strength: ClassVar[str | None] = "weight"
        schedule_series: ClassVar[dict[str, str]] = {"penalty_weight": "weight"}

        weight: float = Field(0.3, ge=0.0, description="penalty weight at the end of training")

        def at_epoch(self, epoch: int, epochs: int) -> "RampedPenalty":
            return self.model_copy(update={"weight": self.weight * epoch / max(epochs - 1, 1)})

        def loss(self, batch: LossInputs) -> torch.Tensor:
            probs = F.softmax(batch.logits, dim=-1)
            penalty = probs.max(1).values.mean()
            return F.cross_entropy(batch.logits, batch.targets) + self.weight * penalty
''')

DATA = {"source": "digits", "private_classes": [0, 1], "public_classes": [7, 8],
        "test_fraction": 0.2, "split_seed": 0, "image_size": None}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks on a shared 2-core machine run fastest on one thread."""


@pytest.fixture
def plugin(tmp_path: Path) -> str:
    path = tmp_path / "ramped.py"
    path.write_text(RAMPED_PLUGIN)
    return f"{path}:RampedPenalty"


def _train(defense: Defense, epochs: int) -> tuple[dict[str, list[float]], torch.nn.Module]:
    torch.manual_seed(0)
    model = ProbeClassifier()
    inputs, targets = probe_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train_classifier(model, defense, lambda: [(inputs, targets)], optimizer, epochs,
                               num_classes=4, ctx=TaskContext())
    return history.as_series(), model


def test_default_hook_is_the_defense_itself():
    for name in DEFENSES.names():
        defense = DEFENSES.get(name)()
        if not type(defense).schedule_series:
            assert defense.at_epoch(3, 8) is defense


@pytest.mark.parametrize("alpha", [-0.05, 0.1])
def test_label_smoothing_schedule_goes_through_the_hook(alpha):
    defense = LabelSmoothing(alpha=alpha)
    logits, targets = torch.randn(6, 5), torch.arange(6) % 5
    for epoch in range(8):
        current = defense.at_epoch(epoch, 8)
        assert isinstance(current, LabelSmoothing) and defense.alpha == alpha  # unchanged
        expected = (negative_label_smoothing_schedule(epoch / 8, alpha) if alpha < 0
                    else alpha)
        assert current.alpha == pytest.approx(expected)
        batch = LossInputs(logits, targets, logits, 5, epoch / 8)
        assert torch.equal(current.loss(batch), defense.loss(batch))  # identical numbers


def test_label_smoothing_trains_identically_with_the_hook():
    """The hook changes where the schedule lives, not a single weight."""
    defense = LabelSmoothing(alpha=-0.05)
    series, model = _train(defense, epochs=8)
    assert series["ls_alpha"] == pytest.approx(
        [negative_label_smoothing_schedule(e / 8, -0.05) for e in range(8)])

    class Direct(LabelSmoothing):
        """The schedule applied inside loss() only, as before the hook existed."""

        def at_epoch(self, epoch: int, epochs: int) -> Direct:
            return self

    _, direct = _train(Direct(alpha=-0.05), epochs=8)
    for name, value in model.state_dict().items():
        assert torch.equal(value, direct.state_dict()[name]), name


def test_plugin_schedule_is_checked_trained_and_recorded(tmp_path, plugin):
    (built,) = build_components([ComponentSpec(name=plugin, params={"weight": 0.3})],
                                DEFENSES, "defenses")  # the plug-in checks call at_epoch
    series, _ = _train(built, epochs=4)
    assert series["penalty_weight"] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    out = tmp_path / "target"
    out.mkdir()
    spec = {
        "data": DATA, "seed": 0,
        "model": {"name": "cnn", "params": {"channels": [4, 8], "feature_dim": 8}},
        "training": {"optimizer": "adam", "lr": 0.003, "momentum": 0.9, "weight_decay": 0.0,
                     "epochs": 3, "batch_size": 64,
                     "scheduler": {"milestones": [0.75], "gamma": 0.1},
                     "augmentation": {"crop_padding": 0, "resized_crop_scale": None,
                                      "horizontal_flip": False, "brightness": 0.0,
                                      "contrast": 0.0}},
        "defense": {"name": plugin, "params": {"weight": 0.3}},
    }
    result = train_image_classifier(spec, {}, out, TaskContext())
    assert result.series["penalty_weight"] == pytest.approx([0.0, 0.15, 0.3])
    assert "ls_alpha" not in result.series
