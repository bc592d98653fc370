"""Utility metrics and attack-trace metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from lsmia_bench.benchmark.metrics.attack import gradient_stability, nearest_distance
from lsmia_bench.benchmark.metrics.utility import (
    accuracy,
    expected_calibration_error,
    top_k_accuracy,
)


def test_ece_on_hand_made_inputs():
    # Two bins used: confidences 0.9 (2 samples, 1 correct) and 0.6 (2 samples, 2 correct).
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    targets = torch.tensor([0, 1, 0, 1])
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.2 + 0.2
    assert expected_calibration_error(probs, targets, bins=15) == pytest.approx(0.4)


def test_ece_zero_when_confidence_equals_accuracy():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == pytest.approx(0.0)


def test_accuracy_and_top_k():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    targets = torch.tensor([0, 0, 0])
    assert accuracy(logits, targets) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, targets, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, targets, 5) == pytest.approx(1.0)


def test_gradient_stability():
    same = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    assert gradient_stability(same) == pytest.approx(1.0)
    flipping = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    assert gradient_stability(flipping) == pytest.approx(-1.0)
    right_angles = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert gradient_stability(right_angles) == pytest.approx(0.0)


def test_nearest_distance():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    refs = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    assert nearest_distance(points, refs).tolist() == pytest.approx([1.0, 4.0])
