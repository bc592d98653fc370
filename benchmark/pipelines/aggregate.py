"""Report rows per entry: a target setting aggregated over its seeds, with intervals and the
paired difference to the ``none`` baseline (docs/metrics.md, "Uncertainty").

For each reported column ``c`` an entry row holds ``c`` (the mean over seeds), ``c_ci_low``,
``c_ci_high`` and ``c_n``: with two or more seeds the bootstrap interval over the per-seed values
(``seed_interval``, n = seeds); with one seed the trial's own within-seed interval (n =
reconstructions or test images), when it recorded one. ``interval_unit`` says which.

For a ranking column ``c`` (an attack's ranking metric) the row also holds ``c_vs_none``
(entry - none), ``c_vs_none_low``, ``c_vs_none_high`` and ``c_vs_none_verdict``: with two or more
seeds shared with ``none`` a bootstrap over the per-seed differences
(``paired_seed_difference``), with one seed a class-stratified bootstrap of the two trials'
``per_reconstruction.csv`` (``stratified_difference``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lsmia_bench.benchmark.metrics.intervals import (
    PER_RECONSTRUCTION_FILE,
    read_per_unit,
    within_trial,
)
from lsmia_bench.benchmark.metrics.uncertainty import (
    BootstrapSettings,
    Difference,
    paired_seed_difference,
    seed_interval,
    stratified_difference,
)

#: Short names of the built-in defenses in compact tables.
SHORT_NAMES = {"none": "none", "label_smoothing": "LS", "mid": "MID", "bido": "BiDO"}
VS = "_vs_none"


@dataclass
class Cell:
    """One trial's value of one report column."""

    value: float | None
    #: The trial's within-seed interval (low, high, n), if it recorded one.
    within: tuple[float, float, float] | None = None
    unit: str | None = None
    #: The recorded metric behind the column and the trial's folder (per_reconstruction.csv).
    metric: str | None = None
    folder: Path | None = None


@dataclass
class Entry:
    """A target setting: its labels and, per seed, its cells by report column."""

    label: str
    defense: str
    strength: float | None
    seeds: dict[int, dict[str, Cell]] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=list)


def cell(metrics: Mapping[str, Any] | None, metric: str, info: Mapping[str, Any] | None = None,
         folder: Path | None = None) -> Cell:
    """The cell of ``metric`` from a trial's recorded metrics and info."""
    metrics = metrics or {}
    value = metrics.get(metric)
    value = None if value is None or value != value else float(value)
    units = (info or {}).get("interval_units") or {}
    unit = units.get(metric) if isinstance(units, dict) else None
    return Cell(value, within_trial(metrics, metric), unit, metric, folder)


def short_labels(entries: Sequence[Entry]) -> dict[str, str]:
    """Compact entry labels: ``none``, ``LS +0.1``, ``LS -0.05``, ``MID 0.003``, ``BiDO``; the
    strength only when the defense has several settings, signed when one is negative; the full
    label wherever two entries would share a short one."""
    by_defense: dict[str, set[float | None]] = {}
    for entry in entries:
        by_defense.setdefault(entry.defense, set()).add(entry.strength)
    out: dict[str, str] = {}
    for entry in entries:
        name = SHORT_NAMES.get(entry.defense, entry.defense)
        strengths = by_defense[entry.defense]
        if len(strengths) > 1 and entry.strength is not None:
            signed = any(s is not None and s < 0 for s in strengths)
            name += f" {entry.strength:+g}" if signed and entry.strength != 0 \
                else f" {entry.strength:g}"
        out[entry.label] = name
    shorts = list(out.values())
    return {label: short if shorts.count(short) == 1 else label
            for label, short in out.items()}


def aggregate(entry: Entry, columns: Sequence[str], settings: BootstrapSettings
              ) -> dict[str, Any]:
    """The entry's row: ``interval_unit`` and, per column, value, interval and n."""
    row: dict[str, Any] = {"seeds": " ".join(str(s) for s in sorted(entry.seeds)),
                           "interval_unit": None}
    units: set[str] = set()
    for column in columns:
        cells = {seed: cells[column] for seed, cells in entry.seeds.items()
                 if column in cells and cells[column].value is not None}
        values = [c.value for _, c in sorted(cells.items())]
        low = high = n = None
        value = None
        if len(values) >= 2:
            interval = seed_interval(values, settings)
            value, low, high, n = interval.estimate, interval.low, interval.high, interval.n
        elif len(values) == 1:
            only = next(iter(cells.values()))
            value = only.value
            if only.within is not None:
                low, high, n = only.within
                units.add(only.unit or "within seed")
        row |= {column: value, f"{column}_ci_low": low, f"{column}_ci_high": high,
                f"{column}_n": n}
    if len(entry.seeds) >= 2:
        row["interval_unit"] = "seeds"
    elif units:
        row["interval_unit"] = f"within seed ({', '.join(sorted(units))})"
    return row


def difference(entry: Entry, baseline: Entry, column: str, settings: BootstrapSettings
               ) -> Difference | None:
    """entry - baseline on ``column``: paired over the shared seeds (two or more), else one
    shared seed's two trials' per-reconstruction values; None when neither exists."""
    shared = sorted(seed for seed in set(entry.seeds) & set(baseline.seeds)
                    if _value(entry, seed, column) is not None
                    and _value(baseline, seed, column) is not None)
    if len(shared) >= 2:
        return paired_seed_difference({s: _value(entry, s, column) for s in shared},
                                      {s: _value(baseline, s, column) for s in shared},
                                      settings)
    if len(shared) == 1:
        mine, theirs = entry.seeds[shared[0]][column], baseline.seeds[shared[0]][column]
        a, b = _units(mine), _units(theirs)
        if a is None or b is None:
            return None
        return stratified_difference(a[1], a[0], b[1], b[0], settings)
    return None


def difference_fields(column: str, found: Difference | None) -> dict[str, Any]:
    if found is None:
        return {f"{column}{VS}": None, f"{column}{VS}_low": None, f"{column}{VS}_high": None,
                f"{column}{VS}_verdict": None}
    interval = found.interval
    return {f"{column}{VS}": interval.estimate, f"{column}{VS}_low": interval.low,
            f"{column}{VS}_high": interval.high, f"{column}{VS}_verdict": found.verdict}


def _value(entry: Entry, seed: int, column: str) -> float | None:
    found = entry.seeds.get(seed, {}).get(column)
    return None if found is None else found.value


def _units(found: Cell) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, values) of the column's metric from the trial's per_reconstruction.csv."""
    if found.folder is None or found.metric is None:
        return None
    table = read_per_unit(found.folder / PER_RECONSTRUCTION_FILE)
    if table is None or found.metric not in table:
        return None
    return table["label"].to_numpy(), table[found.metric].to_numpy(dtype=float)
