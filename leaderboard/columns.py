"""Names, explanations and directions of the leaderboard's metric columns, read from the metric
registry (``lsmia_bench.benchmark.metrics.METRICS``, each metric declared next to its function).

Columns are data-driven: every metric recorded in MLflow becomes a column. A declared metric
gets its title, explanation and direction (which way is better for the *defender*); an
unknown metric still appears, under its recorded name, with a generic note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from lsmia_bench.benchmark.metrics import METRICS
from lsmia_bench.kernel.metrics import Direction, MetricSpec, Unit
from lsmia_bench.leaderboard.ranking import RANKING_PRIVACY_METRICS  # noqa: F401 - board.py

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
    def arrow(self) -> str:
        """↑ when higher is better for the defender, ↓ when lower is, else nothing."""
        return {"higher": "↑", "lower": "↓"}.get(self.better or "", "")

    @property
    def hint(self) -> str:
        """Column header tooltip: explanation plus direction."""
        if self.better is None:
            return self.explanation
        arrow = "higher is better" if self.better == "higher" else "lower is better"
        return f"{self.explanation} ({arrow} for the defense.)"


#: Shares in [0, 1] that the registry keeps as plain numbers; the site shows them in % like the
#: accuracies beside them, so a table never mixes fractions and percentages.
SHOWN_AS_PERCENT = {"ece", "precision", "recall", "coverage"}
#: Clearer titles where two recorded times would otherwise read alike.
SITE_TITLES = {"elapsed_s": "Trial time"}
SITE_NOTES = {"elapsed_s": " The whole attack trial (loading the target, the attack, the "
              "evaluation and its figures); \u201cAttack compute\u201d is the attack's own "
              "optimisation only."}
#: Raw numbers that pipelines record without declaring them in the registry (shown only with
#: "all columns"): title, explanation, unit.
RAW_METRICS: dict[str, tuple[str, str, Format]] = {
    "attack_time_s": ("Attack compute", "Seconds the attack's own optimisation took, as the "
                      "attack measured it (without loading the target, evaluation and figures; "
                      "\u201cTrial time\u201d is the whole trial).", "seconds"),
    "reconstructions": ("Reconstructions", "Number of reconstructions the attack made.",
                        "count"),
    "final_train_accuracy": ("Last-epoch train acc.", "Training accuracy over the last "
                             "epoch's batches, as the training loop logged it (Train acc. is "
                             "measured after training).", "percent"),
}


def info_of(spec: MetricSpec) -> MetricInfo:
    """The leaderboard's view of a declared metric."""
    fmt: Format = "percent" if spec.name in SHOWN_AS_PERCENT else spec.unit
    return MetricInfo(spec.name, SITE_TITLES.get(spec.name, spec.title),
                      spec.explanation + SITE_NOTES.get(spec.name, ""), spec.direction, fmt,
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
    "rank": "Rank by the suite's ranking privacy metric (worst over the attacks). Entries whose "
            "intervals overlap the interval of their group's best entry share its rank (=1 "
            "means tied for 1): the data do not tell them apart. — when the entry lacks a "
            "metric the rule needs.",
    "defense": "The defense and its setting (the label recorded by the run). Opens the entry "
               "page with configuration, provenance, curves and figures.",
    "strength": "Value of the defense's strength hyper-parameter (for example alpha for label "
                "smoothing); empty for defenses without one.",
    "architecture": "Target model architecture as recorded in the trial's configuration; — when "
                    "the suite does not record one (a single fixed model).",
    "seeds": "Number of seeds (independent trainings) aggregated. Numbers are the mean over "
             "seeds with a 95 % bootstrap interval [low, high] over seeds; with one seed, the "
             "trial's own interval (attack or test-set randomness only).",
    "status": "finished: every trial of the entry finished; partial: some failed or were "
              "skipped; failed: no trial finished. Hover for the error.",
    "utility_drop": "Test accuracy of the baseline minus the entry's, in percentage points: "
                    "positive = the defense costs accuracy, negative = it is more accurate than "
                    "the baseline (baseline: the `none` defense trained with the same settings, "
                    "or else the same defense at strength 0, which switches it off). The "
                    "interval pairs the two entries' seeds.",
    "paired": "The entry's ranking metric minus that of `none` with the same settings, paired "
              "by seed (a bootstrap over the per-seed differences), with its 95 % interval and "
              "verdict: lower, higher, or no clear difference (the interval contains 0). Needs "
              "two or more seeds that both entries ran.",
    "pareto": "★ marks entries on the Pareto front: no other entry has both higher test "
              "accuracy and less leakage.",
}


#: Metrics computed in a named feature space (the trial's ``info.feature_space``).
FEATURE_SPACE_METRICS = ("fid", "precision", "recall", "density", "coverage")
#: Title suffix and note per recorded feature space (``benchmark.metrics.features``).
FEATURE_SPACES = {
    "evaluation_model": (" (eval-model features)", " Computed in the evaluation model's "
                         "penultimate features (pytorch-fid's FID Inception weights were not "
                         "found): not comparable with the literature's FID, which uses the "
                         "FID Inception network."),
    "fid_inception_v3": ("", " Computed in pytorch-fid's FID Inception-v3 features (pool3, "
                         "2048-d), as in the literature."),
}


def in_feature_spaces(info: MetricInfo, spaces: set[str]) -> MetricInfo:
    """``info`` titled and explained with the feature space its trials recorded: FID stays
    "FID" only in the FID Inception space; several spaces in one column say so."""
    if info.key not in FEATURE_SPACE_METRICS or not spaces:
        return info
    if len(spaces) > 1:
        suffix = " (mixed feature spaces)"
        note = f" Trials computed it in different feature spaces ({', '.join(sorted(spaces))})."
    else:
        space = next(iter(spaces))
        suffix, note = FEATURE_SPACES.get(space, (f" ({space} features)",
                                                  f" Computed in the {space} feature space."))
    return replace(info, title=info.title + suffix, explanation=info.explanation + note)


def metric_info(key: str, stage: str) -> MetricInfo:
    """Known metric, or a generic description so that a new metric still gets a column."""
    table = TARGET_METRICS if stage == "targets" else ATTACK_METRICS
    other = ATTACK_METRICS if stage == "targets" else TARGET_METRICS
    if key in table:
        return table[key]
    if key in other:
        return other[key]
    if key in RAW_METRICS:
        title, explanation, fmt = RAW_METRICS[key]
        return MetricInfo(key, title, explanation, None, fmt, detail=True)
    return MetricInfo(key, key, f"Recorded metric {key!r}, not declared in the metric "
                      "registry (lsmia_bench.benchmark.metrics); shown as recorded.",
                      detail=True)


def ordered_metrics(keys: set[str], stage: str) -> list[str]:
    """Known metrics in table order, then unknown ones alphabetically."""
    table = TARGET_METRICS if stage == "targets" else ATTACK_METRICS
    return [k for k in table if k in keys] + sorted(keys - set(table))


def decimals_for(values: list[float], fmt: Format) -> int:
    """One number of decimals for a whole column: 3 significant digits of its largest value
    (percentages 1 decimal, seconds 1, counts 0 when whole)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    if fmt == "percent" or fmt == "seconds":
        return 1
    if fmt == "count":
        return 0 if all(float(v).is_integer() for v in finite) else 1
    largest = max(finite, default=0.0)
    if largest == 0:
        return 2
    return min(5, max(0, 2 - math.floor(math.log10(largest))))


def format_number(value: float | None, fmt: Format, decimals: int) -> str:
    """A value in the column's display unit (% for percent) with the column's decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    shown = 100 * value if fmt == "percent" else value
    return f"{shown:.{decimals}f}".replace("-", "\u2212")


def unit_suffix(fmt: Format) -> str:
    """The unit shown in a column header."""
    return {"percent": "%", "seconds": "s"}.get(fmt, "")


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
