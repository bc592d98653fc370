"""Confidence intervals that follow how the numbers were made (docs/metrics.md, "Uncertainty").

A privacy number comes from three levels: reconstructions (an attack makes several per
attacked class), classes (each suite attacks a fixed list) and training seeds (independent
targets, every reconstruction of one seed sharing its model). So:

- within one seed, reconstructions are resampled within their class (a stratified bootstrap:
  ``scipy.stats.bootstrap`` with one sample per class, each resampled on its own);
- across seeds, the seed is the unit and its value is resampled (resampling the top level of
  hierarchical data only; Davison & Hinkley 1997, sec. 3.8; Ren et al. 2010);
- a defense against the baseline is a paired difference on the same seeds (bootstrap of the
  per-seed differences) or, with one seed, of the two class-stratified samples.

Intervals are percentile intervals by default (BCa on request), at 95 %, and seeded so that
the same data always give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["lower", "higher", "no clear difference"]


@dataclass(frozen=True)
class BootstrapSettings:
    level: float = 0.95
    resamples: int = 2000
    method: Literal["percentile", "BCa", "basic"] = "percentile"
    seed: int = 0


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    #: Number of resampling units (seeds, reconstructions or test images).
    n: int
    unit: str
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True)
class Difference:
    """``estimate`` = entry - baseline, its interval and the verdict it supports."""

    interval: Interval
    verdict: Verdict


def verdict(low: float, high: float) -> Verdict:
    """lower if the whole interval of (entry - baseline) is below 0, higher if above."""
    if high < 0:
        return "lower"
    if low > 0:
        return "higher"
    return "no clear difference"


def _bootstrap(samples: Sequence[np.ndarray], statistic: Callable[..., float | np.ndarray],
               settings: BootstrapSettings, vectorized: bool) -> tuple[float, float]:
    result = stats.bootstrap(
        tuple(samples), statistic, n_resamples=settings.resamples, vectorized=vectorized,
        confidence_level=settings.level, method=settings.method,
        rng=np.random.default_rng(settings.seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _strata(strata: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Row indices per stratum: those with two or more rows (resampled) and single rows
    (kept fixed: a one-row stratum has nothing to resample)."""
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    return [g for g in groups if len(g) > 1], [g for g in groups if len(g) == 1]


def stratified_mean_interval(values: Sequence[float] | np.ndarray,
                             strata: Sequence[int] | np.ndarray,
                             settings: BootstrapSettings = BootstrapSettings(),
                             unit: str = "reconstructions") -> Interval:
    """Mean of ``values`` with a bootstrap interval that resamples rows within each stratum
    (e.g. reconstructions within their class): mean = (1/N) sum_i v_i."""
    values = np.asarray(values, dtype=float)
    strata = np.asarray(strata)
    estimate = float(values.mean())
    resampled, fixed = _strata(strata)
    if not resampled or np.ptp(values) == 0:
        return Interval(estimate, estimate, estimate, len(values), unit, settings.level)
    fixed_sum = float(sum(values[g].sum() for g in fixed))
    total = len(values)

    def mean(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return (fixed_sum + sum(s.sum(axis=axis) for s in samples)) / total

    low, high = _bootstrap([values[g] for g in resampled], mean, settings, vectorized=True)
    return Interval(estimate, low, high, total, unit, settings.level)


def stratified_interval(statistic: Callable[[np.ndarray], float],
                        strata: Sequence[int] | np.ndarray,
                        settings: BootstrapSettings = BootstrapSettings(),
                        unit: str = "reconstructions") -> Interval:
    """Any statistic of a set of rows (e.g. FID of the reconstructions' features): rows are
    resampled within each stratum and ``statistic(row_indices)`` recomputed on each resample."""
    strata = np.asarray(strata)
    everything = np.arange(len(strata))
    estimate = float(statistic(everything))
    resampled, fixed = _strata(strata)
    if not resampled:
        return Interval(estimate, estimate, estimate, len(strata), unit, settings.level)
    kept = np.concatenate(fixed) if fixed else np.empty(0, dtype=int)

    def on_rows(*samples: np.ndarray) -> float:
        return statistic(np.concatenate([*samples, kept]).astype(int))

    low, high = _bootstrap(resampled, on_rows, settings, vectorized=False)
    return Interval(estimate, low, high, len(strata), unit, settings.level)


def seed_interval(per_seed: Sequence[float] | np.ndarray,
                  settings: BootstrapSettings = BootstrapSettings()) -> Interval:
    """Mean over seeds with a bootstrap interval over seeds (the outer unit): (1/S) sum_s m_s.

    Needs two or more seeds; with one seed only the within-seed interval exists.
    """
    values = np.asarray(per_seed, dtype=float)
    if len(values) < 2:
        raise ValueError("an interval over seeds needs at least 2 seeds")
    estimate = float(values.mean())
    if np.ptp(values) == 0:
        return Interval(estimate, estimate, estimate, len(values), "seeds", settings.level)

    def mean(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        return sample.mean(axis=axis)

    low, high = _bootstrap([values], mean, settings, vectorized=True)
    return Interval(estimate, low, high, len(values), "seeds", settings.level)


def paired_seed_difference(entry: Mapping[int, float], baseline: Mapping[int, float],
                           settings: BootstrapSettings = BootstrapSettings()) -> Difference:
    """Difference entry - baseline over the seeds both have: d_s = m_s - b_s, interval over
    seeds of mean_s d_s."""
    seeds = sorted(set(entry) & set(baseline))
    interval = seed_interval([entry[s] - baseline[s] for s in seeds], settings)
    return Difference(interval, verdict(interval.low, interval.high))


def stratified_difference(entry: Sequence[float] | np.ndarray,
                          entry_strata: Sequence[int] | np.ndarray,
                          baseline: Sequence[float] | np.ndarray,
                          baseline_strata: Sequence[int] | np.ndarray,
                          settings: BootstrapSettings = BootstrapSettings()) -> Difference:
    """One seed: mean(entry) - mean(baseline), both resampled within their classes (the two
    attacks ran independently, so only classes pair them)."""
    a, b = np.asarray(entry, dtype=float), np.asarray(baseline, dtype=float)
    a_groups, a_fixed = _strata(np.asarray(entry_strata))
    b_groups, b_fixed = _strata(np.asarray(baseline_strata))
    estimate = float(a.mean() - b.mean())
    if not (a_groups or b_groups) or (np.ptp(np.concatenate([a, b])) == 0):
        interval = Interval(estimate, estimate, estimate, len(a) + len(b), "reconstructions",
                            settings.level)
        return Difference(interval, verdict(estimate, estimate))
    fixed_a = float(sum(a[g].sum() for g in a_fixed))
    fixed_b = float(sum(b[g].sum() for g in b_fixed))
    split = len(a_groups)

    def difference(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        sum_a = fixed_a + sum(s.sum(axis=axis) for s in samples[:split])
        sum_b = fixed_b + sum(s.sum(axis=axis) for s in samples[split:])
        return sum_a / len(a) - sum_b / len(b)

    samples = [a[g] for g in a_groups] + [b[g] for g in b_groups]
    low, high = _bootstrap(samples, difference, settings, vectorized=True)
    interval = Interval(estimate, low, high, len(a) + len(b), "reconstructions", settings.level)
    return Difference(interval, verdict(low, high))


def rank_groups(intervals: Mapping[str, Interval], better: Literal["higher", "lower"]
                ) -> dict[str, int]:
    """Ranks that the data support: entries sorted best first; an entry whose interval
    overlaps the interval of the first entry of the current group shares that group's rank
    (competition ranking: the next group's rank counts every entry before it)."""
    order = sorted(intervals, key=lambda k: intervals[k].estimate, reverse=better == "higher")
    ranks: dict[str, int] = {}
    leader: Interval | None = None
    rank = 0
    for position, key in enumerate(order, start=1):
        current = intervals[key]
        if leader is None or not current.overlaps(leader):
            leader, rank = current, position
        ranks[key] = rank
    return ranks
