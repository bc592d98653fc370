"""Intervals: equal to scipy's bootstrap on fixed data, resampling that respects seeds and
classes, paired differences with verdicts, and ranks that share places when intervals overlap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lsmia_bench.benchmark.metrics.uncertainty import (
    BootstrapSettings,
    Interval,
    paired_seed_difference,
    rank_groups,
    seed_interval,
    stratified_difference,
    stratified_interval,
    stratified_mean_interval,
    verdict,
)

SETTINGS = BootstrapSettings(level=0.95, resamples=2000, seed=7)


def _classes(values_per_class: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate([np.asarray(v, dtype=float) for v in values_per_class])
    labels = np.concatenate([[c] * len(v) for c, v in enumerate(values_per_class)])
    return values, labels


def test_stratified_interval_equals_scipy_with_one_sample_per_class():
    rng = np.random.default_rng(0)
    groups = [rng.integers(0, 2, 10).astype(float) for _ in range(5)]
    values, labels = _classes(groups)
    ours = stratified_mean_interval(values, labels, SETTINGS)
    theirs = stats.bootstrap(
        tuple(groups), lambda *s, axis=-1: sum(x.sum(axis=axis) for x in s) / len(values),
        n_resamples=2000, confidence_level=0.95, method="percentile",
        rng=np.random.default_rng(7)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=1e-12)
    assert ours.estimate == pytest.approx(values.mean())
    assert ours.n == 50 and ours.unit == "reconstructions"


def test_seed_interval_equals_scipy_over_seeds():
    per_seed = [0.8, 0.6, 0.9, 0.7]
    ours = seed_interval(per_seed, SETTINGS)
    theirs = stats.bootstrap((np.array(per_seed),), np.mean, n_resamples=2000,
                             method="percentile", rng=np.random.default_rng(7))
    assert (ours.low, ours.high) == pytest.approx(tuple(theirs.confidence_interval), abs=1e-12)
    assert ours.n == 4 and ours.unit == "seeds"


def test_classes_are_strata_not_pooled():
    """Class 0 always leaks, class 1 never: with the classes fixed there is nothing random
    left, so the interval is a point; pooling rows across classes would give width > 0."""
    values, labels = _classes([[1.0] * 10, [0.0] * 10])
    interval = stratified_mean_interval(values, labels, SETTINGS)
    assert interval.low == interval.high == 0.5
    pooled = stats.bootstrap((values,), np.mean, method="percentile",
                             rng=np.random.default_rng(7)).confidence_interval
    assert pooled.high - pooled.low > 0.2


def test_seeds_are_the_outer_unit_not_pooled():
    """Three seeds that disagree: the interval over seeds spans their spread, far wider than
    a bootstrap that pools all reconstructions of all seeds."""
    per_seed_rows = {0: [1.0] * 45 + [0.0] * 5, 1: [1.0] * 25 + [0.0] * 25,
                     2: [1.0] * 5 + [0.0] * 45}
    per_seed = [np.mean(v) for v in per_seed_rows.values()]
    ours = seed_interval(per_seed, SETTINGS)
    pooled = stats.bootstrap((np.concatenate(list(per_seed_rows.values())),), np.mean,
                             method="percentile", rng=np.random.default_rng(7))
    pooled_width = pooled.confidence_interval.high - pooled.confidence_interval.low
    assert ours.high - ours.low > 3 * pooled_width
    assert ours.low <= 0.2 and ours.high >= 0.8


def test_same_settings_same_interval():
    values, labels = _classes([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    first = stratified_mean_interval(values, labels, SETTINGS)
    assert stratified_mean_interval(values, labels, SETTINGS) == first


def test_generic_statistic_matches_the_mean_version():
    values, labels = _classes([[0.0, 1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0, 1.0]])
    generic = stratified_interval(lambda rows: float(values[rows].mean()), labels, SETTINGS)
    mean = stratified_mean_interval(values, labels, SETTINGS)
    assert generic.estimate == pytest.approx(mean.estimate)
    assert (generic.low, generic.high) == pytest.approx((mean.low, mean.high), abs=0.06)


def test_single_row_strata_stay_fixed():
    values, labels = _classes([[1.0], [0.0, 1.0, 0.0, 1.0]])
    interval = stratified_mean_interval(values, labels, SETTINGS)
    assert interval.estimate == pytest.approx(0.6)
    assert 0.2 <= interval.low <= interval.high <= 1.0


def test_verdicts():
    assert verdict(-0.3, -0.1) == "lower"
    assert verdict(0.1, 0.3) == "higher"
    assert verdict(-0.1, 0.2) == "no clear difference"


def test_paired_difference_over_seeds_pairs_by_seed():
    baseline = {0: 0.9, 1: 0.5, 2: 0.7}
    entry = {0: 0.8, 1: 0.4, 2: 0.6, 3: 0.0}  # seed 3 has no baseline: not used
    difference = paired_seed_difference(entry, baseline, SETTINGS)
    assert difference.interval.estimate == pytest.approx(-0.1)
    assert difference.interval.n == 3
    # Every seed moves down by exactly 0.1: a paired difference is certain, although the
    # seeds' own values spread widely.
    assert difference.interval.low == pytest.approx(-0.1)
    assert difference.verdict == "lower"


def test_stratified_difference_one_seed():
    entry, entry_labels = _classes([[0.0] * 20, [0.0] * 18 + [1.0] * 2])
    base, base_labels = _classes([[1.0] * 18 + [0.0] * 2, [1.0] * 20])
    difference = stratified_difference(entry, entry_labels, base, base_labels, SETTINGS)
    assert difference.interval.estimate == pytest.approx(0.05 - 0.95)
    assert difference.verdict == "lower"
    same = stratified_difference(base, base_labels, base, base_labels, SETTINGS)
    assert same.verdict == "no clear difference"


def test_seed_interval_needs_two_seeds():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_interval([0.5], SETTINGS)


def test_overlapping_intervals_share_a_rank():
    intervals = {
        "a": Interval(0.20, 0.10, 0.30, 3, "seeds"),
        "b": Interval(0.25, 0.15, 0.35, 3, "seeds"),   # overlaps a: shares rank 1
        "c": Interval(0.60, 0.50, 0.70, 3, "seeds"),   # clear of a: rank 3
        "d": Interval(0.65, 0.55, 0.75, 3, "seeds"),   # overlaps c: rank 3
    }
    assert rank_groups(intervals, better="lower") == {"a": 1, "b": 1, "c": 3, "d": 3}
    assert rank_groups(intervals, better="higher") == {"d": 1, "c": 1, "b": 3, "a": 3}
