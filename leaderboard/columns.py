"""Names, explanations and directions of the leaderboard's metric columns, read from the metric
registry (``lsmia_bench.benchmark.metrics.METRICS``, each metric declared next to its function).

Columns are data-driven: every metric recorded in MLflow becomes a column. A declared metric
gets its title, explanation and direction (which way is better for the *defender*); an
unknown metric still appears, under its recorded name, with a generic note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lsmia_bench.benchmark.metrics import METRICS
from lsmia_bench.leaderboard.ranking import RANKING_PRIVACY_METRICS  # noqa: F401 - board.py

from lsmia_bench.kernel.metrics import Direction, MetricSpec, Unit

Better = Direction
Format = Unit


@dataclass(frozen=True)
class MetricInfo:
    key: str
    title: str
    explanation: str
    better: Better = None
    fmt: Format = "float"
    #: Shown on entry pages and with "all columns"; hidden in the compact suite table.
    detail: bool = False

    @property
    def hint(self) -> str:
        """Column header tooltip: explanation plus direction."""
        if self.better is None:
            return self.explanation
        arrow = "higher is better" if self.better == "higher" else "lower is better"
        return f"{self.explanation} ({arrow} for the defense.)"


def info_of(spec: MetricSpec) -> MetricInfo:
    """The leaderboard's view of a declared metric."""
    return MetricInfo(spec.name, spec.title, spec.explanation, spec.direction, spec.unit,
                      spec.detail)


#: Metrics of a trained target (utility and cost), in display order.
TARGET_METRICS: dict[str, MetricInfo] = {s.name: info_of(s) for s in METRICS
                                         if s.scope == "target"}
#: Metrics of an attack on a target (privacy), in display order.
ATTACK_METRICS: dict[str, MetricInfo] = {s.name: info_of(s) for s in METRICS
                                         if s.scope == "attack"}

#: The utility metric of the ranking and the Pareto plot.
UTILITY_METRIC = "test_accuracy"

#: Fixed columns of every suite table (not metrics).
FIXED_COLUMNS: dict[str, str] = {
    "rank": "Position by the ranking rule below (Pareto rank, then privacy, then utility); "
            "— when the entry lacks a metric the rule needs.",
    "defense": "The defense and its setting (the label recorded by the run). Opens the entry "
               "page with configuration, provenance, curves and figures.",
    "strength": "Value of the defense's strength hyper-parameter (for example alpha for label "
                "smoothing); empty for defenses without one.",
    "architecture": "Target model architecture as recorded in the trial's configuration; — when "
                    "the suite does not record one (a single fixed model).",
    "seeds": "Number of seeds (independent trainings) aggregated; numbers are mean ± standard "
             "deviation over them.",
    "status": "finished: every trial of the entry finished; partial: some failed or were "
              "skipped; failed: no trial finished. Hover for the error.",
    "utility_drop": "Test accuracy of the baseline minus the entry's, in percentage points "
                    "(baseline: the `none` defense trained with the same settings, or else the "
                    "same defense at strength 0, which switches it off).",
    "pareto": "★ marks entries on the Pareto front: no other entry has both higher test "
              "accuracy and less leakage.",
}


def metric_info(key: str, stage: str) -> MetricInfo:
    """Known metric, or a generic description so that a new metric still gets a column."""
    table = TARGET_METRICS if stage == "targets" else ATTACK_METRICS
    other = ATTACK_METRICS if stage == "targets" else TARGET_METRICS
    if key in table:
        return table[key]
    if key in other:
        return other[key]
    return MetricInfo(key, key, f"Recorded metric {key!r} (not declared in the metric "
                      "registry, lsmia_bench.benchmark.metrics, yet).")


def ordered_metrics(keys: set[str], stage: str) -> list[str]:
    """Known metrics in table order, then unknown ones alphabetically."""
    table = TARGET_METRICS if stage == "targets" else ATTACK_METRICS
    return [k for k in table if k in keys] + sorted(keys - set(table))


def format_value(value: float | None, fmt: Format) -> str:
    """A number for display (the CSV/JSON downloads keep the raw value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if fmt == "percent":
        return f"{100 * value:.1f}"
    if fmt == "seconds":
        return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"
    if fmt == "count":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"{value:.4g}"


def format_spread(value: float | None, fmt: Format) -> str:
    """The ± part of a mean over seeds, in the unit of :func:`format_value`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if fmt == "percent":
        return f"{100 * value:.1f}"
    if fmt == "seconds":
        return f"{value:.1f}"
    return f"{value:.2g}"


def unit_note(fmt: Format) -> str:
    return " (in %)" if fmt == "percent" else ""
