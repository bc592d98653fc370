"""Utility metrics on hand-made inputs: ECE with 15 bins and class separation."""

from __future__ import annotations

import math

import pytest
import torch

from lsmia_bench.benchmark.metrics.utility import class_separation, expected_calibration_error


def test_ece_fifteen_bins_by_hand():
    # Confidences 0.95 (bin 15), 0.95, 0.62 (bin 10), 0.5 (bin 8); the first and third right.
    probs = torch.tensor([[0.95, 0.05], [0.05, 0.95], [0.62, 0.38], [0.5, 0.5]])
    targets = torch.tensor([0, 0, 0, 1])
    # bin (14/15, 1]: acc 1/2, conf 0.95 -> 2/4 * 0.45; bin (9/15, 10/15]: acc 1, conf 0.62 ->
    # 1/4 * 0.38; bin (7/15, 8/15]: argmax picks class 0 (wrong), conf 0.5 -> 1/4 * 0.5.
    expected = 0.5 * 0.45 + 0.25 * 0.38 + 0.25 * 0.5
    assert expected_calibration_error(probs, targets, bins=15) == pytest.approx(expected)


def test_ece_bins_matter():
    # Two predictions, confidences 0.7 (right) and 0.8 (wrong): in one bin |0.5 - 0.75| = 0.25,
    # in separate bins 0.5 * 0.3 + 0.5 * 0.8 = 0.55.
    probs = torch.tensor([[0.7, 0.3], [0.8, 0.2]])
    targets = torch.tensor([0, 1])
    assert expected_calibration_error(probs, targets, bins=1) == pytest.approx(0.25)
    assert expected_calibration_error(probs, targets, bins=15) == pytest.approx(0.55)


def test_class_separation_by_hand():
    # Two classes of two points each on a line: a = 1 for every point, b = 10 or 11 ... mean
    # distances to the other class: points 0,1 vs 10,11.
    features = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    labels = torch.tensor([0, 0, 1, 1])
    b = [10.5, 9.5, 9.5, 10.5]
    expected = sum((bi - 1.0) / bi for bi in b) / 4
    assert class_separation(features, labels) == pytest.approx(expected)


def test_class_separation_is_low_for_mixed_classes_and_nan_when_undefined():
    torch.manual_seed(0)
    mixed = class_separation(torch.randn(200, 8), torch.arange(200) % 4)
    assert abs(mixed) < 0.1
    assert math.isnan(class_separation(torch.randn(5, 3), torch.zeros(5, dtype=torch.long)))
