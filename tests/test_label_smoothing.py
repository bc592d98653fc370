"""The label-smoothing loss and the paper's schedule for negative factors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lsmia_bench.defenses.base import LossInputs
from lsmia_bench.defenses.label_smoothing import (
    LabelSmoothing,
    label_smoothing_cross_entropy,
    negative_label_smoothing_schedule,
    ppa_code_label_smoothing_schedule,
    smoothed_targets,
)


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(7, 5, generator=gen) * 3, torch.tensor([0, 1, 2, 3, 4, 0, 2])


@pytest.mark.parametrize("alpha", [-0.05, 0.0, 0.1])
def test_loss_is_soft_target_cross_entropy_averaged_once(batch, alpha):
    logits, targets = batch
    y_ls = (1 - alpha) * F.one_hot(targets, 5).double() + alpha / 5
    log_p = torch.log_softmax(logits.double(), dim=1)
    per_sample = -(y_ls * log_p).sum(dim=1)
    expected = per_sample.sum() / len(targets)  # one division by the batch size
    got = label_smoothing_cross_entropy(logits.double(), targets, alpha)
    assert torch.allclose(got, expected, atol=1e-12)
    assert not torch.allclose(got, expected / len(targets))


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.1, 0.3])
def test_matches_pytorch_builtin_for_non_negative_alpha(batch, alpha):
    logits, targets = batch
    builtin = F.cross_entropy(logits, targets, label_smoothing=alpha)
    assert torch.allclose(label_smoothing_cross_entropy(logits, targets, alpha), builtin, atol=1e-6)


def test_smoothed_targets_sum_to_one_and_go_negative_for_negative_alpha():
    y = smoothed_targets(torch.tensor([1]), 4, -0.05)
    assert torch.allclose(y.sum(), torch.tensor(1.0))
    assert y[0, 0].item() == pytest.approx(-0.0125)
    assert y[0, 1].item() == pytest.approx(1.05 - 0.0125)


@pytest.mark.parametrize(
    ("progress", "expected"),
    [(0.0, 0.0), (0.25, 0.0), (0.49, 0.0), (0.5, 0.0), (0.625, -0.025), (0.75, -0.05),
     (0.9, -0.05)],
)
def test_negative_schedule_values(progress, expected):
    assert negative_label_smoothing_schedule(progress, -0.05) == pytest.approx(expected)


def test_schedule_fractions_are_configurable():
    assert negative_label_smoothing_schedule(0.2, -0.1, 0.1, 0.3) == pytest.approx(-0.05)
    defense = LabelSmoothing(alpha=-0.1, ramp_start=0.0, ramp_end=0.5)
    assert defense.alpha_at(0.25) == pytest.approx(-0.05)


def test_defense_applies_schedule_only_to_negative_alpha(batch):
    logits, targets = batch

    def loss(defense, progress):
        return defense.loss(LossInputs(logits, targets, logits, 5, progress)).item()

    negative = LabelSmoothing(alpha=-0.05)
    assert loss(negative, 0.1) == pytest.approx(F.cross_entropy(logits, targets).item())
    assert loss(negative, 0.9) == pytest.approx(
        label_smoothing_cross_entropy(logits, targets, -0.05).item())
    constant = LabelSmoothing(alpha=-0.05, schedule_negative=False)
    assert loss(constant, 0.1) == pytest.approx(loss(negative, 0.9))
    positive = LabelSmoothing(alpha=0.1)
    assert loss(positive, 0.0) == pytest.approx(
        F.cross_entropy(logits, targets, label_smoothing=0.1).item(), abs=1e-6)


@pytest.mark.parametrize("alpha", [-1.0, 1.0, 1.5, -3])
def test_alpha_outside_open_interval_is_refused(alpha):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        LabelSmoothing(alpha=alpha)


def _authors_ls_scheduler(epoch: int, num_epochs: int, alpha: float) -> float:
    """The authors' ``ls_scheduler`` (PPA ``train_model.py`` at 3087a4f), transcribed."""
    if epoch < 50:
        return 0.0
    elif epoch < 75:
        factor = 1 / (num_epochs - 50)
        return alpha * factor * (epoch + 1 - 50)
    else:
        return alpha


@pytest.mark.parametrize("alpha", [-0.05, -0.1])
def test_ppa_code_schedule_equals_the_authors_formula_epoch_by_epoch(alpha):
    defense = LabelSmoothing(alpha=alpha, schedule="ppa_code")
    got = [defense.at_epoch(e, 100).alpha for e in range(100)]
    expected = [_authors_ls_scheduler(e, 100, alpha) for e in range(100)]
    assert got == pytest.approx(expected, abs=1e-15)
    # the shape the formula implies: 0 through epoch 49, alpha / 50 at 50, alpha / 2 at 74,
    # then a jump to the full alpha at 75
    assert got[49] == 0.0 and got[50] == pytest.approx(alpha / 50)
    assert got[74] == pytest.approx(alpha / 2) and got[75] == alpha and got[99] == alpha
    assert ppa_code_label_smoothing_schedule(74, 100, alpha) == got[74]


def test_ppa_code_schedule_never_smooths_short_runs_and_linear_does():
    paper = LabelSmoothing(alpha=-0.05, schedule="ppa_code")
    linear = LabelSmoothing(alpha=-0.05, schedule="linear")
    assert {paper.at_epoch(e, 20).alpha for e in range(20)} == {0.0}
    assert linear.at_epoch(19, 20).alpha == -0.05
    assert [linear.at_epoch(e, 20).alpha for e in range(20)] == pytest.approx(
        [negative_label_smoothing_schedule(e / 20, -0.05) for e in range(20)])


def test_ppa_code_schedule_is_for_negative_alpha_only_and_refuses_ramp_fractions():
    from pydantic import ValidationError

    assert {LabelSmoothing(alpha=0.1, schedule="ppa_code").at_epoch(e, 100).alpha
            for e in (0, 60, 99)} == {0.1}
    with pytest.raises(ValidationError, match="ramp_start is for schedule 'linear' only"):
        LabelSmoothing(alpha=-0.05, schedule="ppa_code", ramp_start=0.5)
    with pytest.raises(ValueError, match="absolute epochs"):
        LabelSmoothing(alpha=-0.05, schedule="ppa_code").alpha_at(0.6)
