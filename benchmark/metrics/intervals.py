"""Within-trial intervals as recorded (docs/metrics.md, "Uncertainty").

A trial that computes metric ``m`` with an interval records, besides ``m``:
``m_ci_low``, ``m_ci_high`` (the bootstrap interval at the suite's level) and ``m_n`` (the number
of resampling units), and names the unit in ``info["interval_units"][m]`` (``reconstructions``,
``test images``). A metric without an honest interval (one attack run, a cost, a count) gets
none of these keys. The intervals come from :mod:`benchmark.metrics.uncertainty`.

The resampling units each trial keeps beside its result:

- attack trials: ``per_reconstruction.csv``, column ``label`` and one column per metric that is a
  mean over reconstructions (:data:`PER_RECONSTRUCTION_FILE`);
- target trials: ``per_test_image.csv``, columns ``label`` and ``correct``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsmia_bench.benchmark.metrics.uncertainty import BootstrapSettings, Interval

CI_LOW, CI_HIGH, N = "_ci_low", "_ci_high", "_n"
SUFFIXES = (CI_LOW, CI_HIGH, N)
PER_RECONSTRUCTION_FILE = "per_reconstruction.csv"
PER_TEST_IMAGE_FILE = "per_test_image.csv"
#: The defaults of the suite schema's ``uncertainty`` section (``benchmark.config.Uncertainty``).
DEFAULTS: dict[str, Any] = {"level": 0.95, "resamples": 2000, "method": "percentile",
                            "seed": 0, "set_resamples": 200}


def bootstrap_settings(section: Mapping[str, Any] | None,
                       set_statistic: bool = False) -> BootstrapSettings:
    """The settings of a job spec's ``uncertainty`` section (defaults where absent);
    ``set_statistic``: with ``set_resamples`` (statistics recomputed on every resample)."""
    values = DEFAULTS | dict(section or {})
    resamples = values["set_resamples"] if set_statistic else values["resamples"]
    return BootstrapSettings(level=float(values["level"]), resamples=int(resamples),
                             method=values["method"], seed=int(values["seed"]))


def interval_fields(name: str, interval: Interval) -> dict[str, float]:
    """``{name_ci_low, name_ci_high, name_n}`` of one interval."""
    return {f"{name}{CI_LOW}": float(interval.low), f"{name}{CI_HIGH}": float(interval.high),
            f"{name}{N}": float(interval.n)}


def record_intervals(metrics: dict[str, float], intervals: Mapping[str, Interval]
                     ) -> dict[str, str]:
    """Add the interval keys of every metric in ``metrics`` that has an interval; return the
    units {metric: unit} for ``info["interval_units"]``."""
    units: dict[str, str] = {}
    for name, interval in intervals.items():
        if name in metrics:
            metrics |= interval_fields(name, interval)
            units[name] = interval.unit
    return units


def is_interval_key(key: str) -> bool:
    return key.endswith(SUFFIXES)


def within_trial(metrics: Mapping[str, Any], name: str) -> tuple[float, float, float] | None:
    """(low, high, n) recorded by a trial for ``name``, or None when it recorded none."""
    keys = [f"{name}{suffix}" for suffix in SUFFIXES]
    values = [metrics.get(key) for key in keys]
    if any(v is None or v != v for v in values):
        return None
    low, high, n = (float(v) for v in values)
    return low, high, n


def write_per_unit(path: Path, labels: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
    """A CSV of resampling units: ``label`` and one column per value (full float precision)."""
    table = pd.DataFrame({"label": np.asarray(labels, dtype=int)}
                         | {k: np.asarray(v, dtype=float) for k, v in columns.items()})
    table.to_csv(path, index=False)


def read_per_unit(path: Path) -> pd.DataFrame | None:
    """The CSV written by :func:`write_per_unit` (floats read back exactly), or None."""
    return pd.read_csv(path, float_precision="round_trip") if Path(path).is_file() else None
