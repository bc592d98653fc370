"""The toy's blobs are scikit-learn's ``make_blobs``, array for array, without importing it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs as sklearn_make_blobs

from lsmia_bench.benchmark.data.blobs import make_blobs, toy_blobs

NOTEBOOK_CENTERS = [[0, -10], [-10, 10], [10, 10]]


@pytest.mark.parametrize(("n_samples", "centers", "std", "seed"), [
    (500, NOTEBOOK_CENTERS, 1.6, 17),   # the toy suite's training points
    (500, NOTEBOOK_CENTERS, 1.6, 18),   # its test points
    (12, NOTEBOOK_CENTERS, 1.6, 17),    # the plug-in probe's points
    (7, [[0, 0, 1], [1, 1, 1]], 0.3, 0),  # a remainder and three features
    (11, [[0, 1], [2, 3], [4, 5], [5, 6]], 2.0, 3),
])
def test_make_blobs_equals_scikit_learn(n_samples, centers, std, seed):
    expected_points, expected_labels = sklearn_make_blobs(
        n_samples=n_samples, centers=centers, cluster_std=std, random_state=seed)
    points, labels = make_blobs(n_samples, centers, std, seed)
    np.testing.assert_array_equal(points, expected_points)
    np.testing.assert_array_equal(labels, expected_labels)


def test_toy_blobs_are_float32_points_and_int64_labels():
    points, labels = toy_blobs(30, NOTEBOOK_CENTERS, 1.6, random_state=17)
    assert points.shape == (30, 2) and str(points.dtype) == "torch.float32"
    assert labels.tolist().count(0) == 10 and str(labels.dtype) == "torch.int64"
