"""Trap-MID (Liu and Chen, NeurIPS 2024) through the public defense interface: the loss, the
signed-gradient trigger step, and the trapdoor success recorded after a tiny training."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.pipelines.image_tasks import train_image_classifier
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.defenses.base import LossInputs
from lsmia_bench.defenses.trap_mid import STATE_KEY, balanced_labels


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """As in a trial with cpu: 1."""


def _batch(num_classes: int = 3):
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand(12, 1, 8, 8, generator=generator)
    targets = torch.arange(12) % num_classes
    trap = torch.tensor([2, 0, 1, 1, 2, 0, 0, 1, 2, 2, 1, 0])
    triggers = torch.rand(num_classes, 1, 8, 8, generator=generator)
    return inputs, targets, trap, triggers


def _prepared(defense, model, trap, triggers):
    """The training state with fixed triggers and the batch's trapdoor labels queued."""
    state = defense.new_state(model, torch.optim.Adam(model.parameters(), lr=0.01),
                              num_classes=3, train_size=len(trap), seed=0)
    state.triggers, state.labels, state.cursor, state.progress = triggers.clone(), trap, 0, 0.0
    return {STATE_KEY: state}


def _manual_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).mean()


def _model():
    torch.manual_seed(0)
    return build_classifier("resnet", {"width": 4, "blocks": [1, 1]}, 1, 8, 3)


@pytest.mark.parametrize("optimize", [False, True])
def test_loss_is_weighted_clean_and_trapdoor_cross_entropy(optimize):
    model = _model().train()
    defense = DEFENSES.get("trap_mid")(optimize_triggers=optimize)
    inputs, targets, trap, triggers = _batch()
    state = _prepared(defense, model, trap, triggers)
    logits = model(inputs)
    loss = defense.loss(LossInputs(logits=logits, targets=targets, inputs=inputs,
                                   num_classes=3, progress=0.0, model=model, state=state))
    used = state[STATE_KEY].triggers  # after this batch's trigger step, if any
    assert torch.equal(used, triggers) != optimize
    trapped = 0.98 * inputs + 0.02 * used[trap]
    expected = 0.8 * _manual_ce(logits, targets) + 0.2 * _manual_ce(model(trapped), trap)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() != pytest.approx(_manual_ce(logits, targets).item(), rel=1e-3)
    loss.backward()
    assert model.head.weight.grad is not None


def test_trigger_update_is_a_signed_gradient_step_of_the_stated_size():
    model = _model().train()
    defense = DEFENSES.get("trap_mid")(step_size=0.01)
    inputs, targets, trap, triggers = _batch()
    state = _prepared(defense, model, trap, triggers)
    logits = model(inputs)  # the training loop's forward pass (updates BatchNorm statistics)
    before = copy.deepcopy(model).eval()  # the model the trigger step sees (eval mode)
    disc_before = copy.deepcopy(state[STATE_KEY].discriminator)
    defense.loss(LossInputs(logits=logits, targets=targets, inputs=inputs,
                            num_classes=3, progress=0.0, model=model, state=state))
    after = state[STATE_KEY].triggers
    # The discriminator took one step (clean 1, trapdoored 0) before the trigger step.
    disc = state[STATE_KEY].discriminator.eval()
    assert not all(torch.equal(a, b) for a, b in zip(disc.parameters(),
                                                     disc_before.parameters(), strict=True))
    # The trigger objective of the authors' engine.py, by hand, at the old triggers.
    keys = triggers.clone().requires_grad_(True)
    trapped = 0.98 * inputs + 0.02 * keys[trap]
    fooled = disc(trapped)
    objective = (_manual_ce(before(trapped), trap)
                 - F.logsigmoid(fooled).mean())  # BCE(D(x'), 1)
    (grad,) = torch.autograd.grad(objective, keys)
    assert torch.allclose(after, (triggers - 0.01 * grad.sign()).clamp(0, 1), atol=1e-7)
    moved = (after - triggers).abs()
    inside = (after > 0) & (after < 1)
    assert torch.allclose(moved[inside & (grad != 0)], torch.tensor(0.01), atol=1e-6)
    assert bool((moved > 0).any())


def test_without_discriminator_only_the_classifier_moves_the_triggers():
    model = _model().train()
    defense = DEFENSES.get("trap_mid")(discriminator_weight=0.0)
    inputs, targets, trap, triggers = _batch()
    state = _prepared(defense, model, trap, triggers)
    disc_before = copy.deepcopy(state[STATE_KEY].discriminator)
    logits = model(inputs)
    before = copy.deepcopy(model).eval()
    defense.loss(LossInputs(logits=logits, targets=targets, inputs=inputs,
                            num_classes=3, progress=0.0, model=model, state=state))
    disc = state[STATE_KEY].discriminator
    assert all(torch.equal(a, b) for a, b in zip(disc.parameters(), disc_before.parameters(),
                                                 strict=True))
    keys = triggers.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_manual_ce(before(0.98 * inputs + 0.02 * keys[trap]), trap),
                                  keys)
    assert torch.allclose(state[STATE_KEY].triggers,
                          (triggers - 0.01 * grad.sign()).clamp(0, 1), atol=1e-7)


def test_trapdoor_labels_are_balanced_over_the_epoch():
    labels = balanced_labels(23, 5, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels, minlength=5)
    assert len(labels) == 23 and counts.max() - counts.min() <= 1 and counts.sum() == 23


DIGITS = {"source": "digits", "private_classes": [0, 1, 2], "public_classes": [7, 8, 9],
          "test_fraction": 0.2, "split_seed": 0, "image_size": None}


def test_tiny_training_records_the_trapdoor_success(tmp_path):
    spec = {
        "data": DIGITS,
        "model": {"name": "resnet", "params": {"width": 4, "blocks": [1, 1]}},
        "training": {"optimizer": "adam", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
                     "epochs": 2, "batch_size": 64,
                     "scheduler": {"milestones": [0.75], "gamma": 0.1},
                     "augmentation": {"crop_padding": 1, "resized_crop_scale": None,
                                      "horizontal_flip": False, "brightness": 0.0,
                                      "contrast": 0.0}},
        "defense": {"name": "trap_mid", "params": {}},
        "seed": 0,
    }
    result = train_image_classifier(spec, {}, tmp_path, TaskContext())
    success = result.metrics["trapdoor_success"]
    assert 0.0 <= success <= 1.0
    # Declared, so tables and the leaderboard can explain it.
    from lsmia_bench.benchmark.metrics.registry import METRICS

    assert METRICS.get("trapdoor_success").unit == "percent"


def test_end_training_measures_the_share_of_blended_test_images_classified_as_t():
    from lsmia_bench.benchmark.training import train_classifier
    from lsmia_bench.defenses.base import TrainingSetup

    model = _model()
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(48, 1, 8, 8, generator=generator), torch.arange(48) % 3
    test = torch.rand(30, 1, 8, 8, generator=generator), torch.arange(30) % 3

    def batches():
        for start in range(0, 48, 16):
            yield images[start:start + 16], labels[start:start + 16]

    defense = DEFENSES.get("trap_mid")()
    setup = defense.prepare_training(TrainingSetup(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.01), batches=batches,
        epochs=2, batch_size=16, train_size=48, num_classes=3, device=torch.device("cpu"),
        seed=0, test=test))
    state = setup.state[STATE_KEY]
    train_classifier(setup.model, defense, setup.batches, setup.optimizer, 2, num_classes=3,
                     ctx=TaskContext(), state=setup.state)
    assert state.triggers is not None and state.cursor == 48 and state.progress == 0.5
    measured = defense.end_training(setup)["trapdoor_success"]
    trap = balanced_labels(30, 3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        predicted = model.eval()(0.98 * test[0] + 0.02 * state.triggers[trap]).argmax(1)
    assert measured == (predicted == trap).sum().item() / 30
