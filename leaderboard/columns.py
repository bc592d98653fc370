"""The one table that names and explains metrics on the leaderboard.

Columns are data-driven: every metric recorded in MLflow becomes a column. A metric listed
here gets a readable title, an explanation and a direction (which way is better for the
*defender*); an unknown metric still appears, under its recorded name, with a generic note.
Add a row here when an attack or pipeline starts recording a new metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"] | None
Format = Literal["percent", "float", "seconds", "count"]


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


def _m(key: str, title: str, explanation: str, better: Better = None,
       fmt: Format = "float", detail: bool = False) -> MetricInfo:
    return MetricInfo(key, title, explanation, better, fmt, detail)


#: Metrics of a trained target (utility and cost), in display order.
TARGET_METRICS: dict[str, MetricInfo] = {m.key: m for m in [
    _m("test_accuracy", "Test acc.", "Top-1 accuracy of the target model on held-out test "
       "data of its private classes.", "higher", "percent"),
    _m("ece", "ECE", "Expected calibration error of the target on test data: the mean gap "
       "between confidence and accuracy over confidence bins.", "lower", "float"),
    _m("train_accuracy", "Train acc.", "Top-1 accuracy of the target on its own training data.",
       None, "percent", detail=True),
    _m("final_train_loss", "Final loss", "Training loss at the last step (with the defense's "
       "loss, so not comparable across defenses).", None, "float", detail=True),
    _m("class_separation", "Separation", "Silhouette score of the target's penultimate "
       "features on private test data: how far apart the classes lie in embedding space "
       "(see the entry's embedding figure).", None, "float", detail=True),
    _m("fit_time_s", "Fit time", "Seconds spent in the training loop itself.", None, "seconds",
       detail=True),
    _m("epochs", "Epochs", "Training epochs.", None, "count", detail=True),
    _m("train_time_s", "Train time", "Wall-clock seconds to train the target (hardware "
       "dependent; see the entry page).", None, "seconds", detail=True),
]}

#: Metrics of an attack on a target (privacy), in display order.
ATTACK_METRICS: dict[str, MetricInfo] = {m.key: m for m in [
    _m("attack_acc1", "Acc@1", "Attack accuracy: share of reconstructions that the evaluation "
       "model (another architecture trained on the same private data) assigns to the attacked "
       "class as its top-1 prediction. Lower means less leakage.", "lower", "percent"),
    _m("attack_acc5", "Acc@5", "Like Acc@1, with the attacked class among the evaluation "
       "model's top-5 predictions.", "lower", "percent"),
    _m("delta_eval", "δ eval", "Squared L2 distance in the evaluation model's penultimate "
       "features from each reconstruction to the nearest private training image of its class. "
       "Higher means the reconstructions are further from the private data.", "higher"),
    _m("delta_face", "δ face", "Like δ eval, in FaceNet (InceptionResnetV1, VGGFace2) feature "
       "space; face suites only.", "higher"),
    _m("fid", "FID", "Fréchet distance between features of the reconstructions and of the "
       "private data. Higher means the reconstructions look less like the private data.",
       "higher"),
    _m("precision", "Precision", "Share of reconstructions that fall inside the private "
       "data's feature manifold (k = 3 nearest neighbours).", "lower", detail=True),
    _m("recall", "Recall", "Share of private samples whose neighbourhood holds a "
       "reconstruction (k = 3).", "lower", detail=True),
    _m("density", "Density", "How many private-data neighbourhoods contain each "
       "reconstruction, on average (k = 3).", "lower", detail=True),
    _m("coverage", "Coverage", "Share of private samples whose nearest-neighbour ball holds at "
       "least one reconstruction (k = 3).", "lower", detail=True),
    _m("xi", "ξ", "Knowledge extraction score: accuracy on real private test data of a student "
       "model trained only on the attack's reconstructions.", "lower", "percent"),
    _m("gradient_stability", "Grad. stability", "Mean cosine similarity of consecutive attack "
       "gradients (the paper's analysis: negative label smoothing makes it lower).", "lower",
       detail=True),
    _m("distance_nearest", "Distance", "Euclidean distance from the attack's end point to the "
       "nearest training point of the attacked class. Higher means the attack ends further "
       "from the private data.", "higher"),
    _m("distance_mean", "Dist. to mean", "Euclidean distance from the attack's end point to the "
       "mean of the attacked class's training points.", "higher", detail=True),
    _m("steps", "Steps", "Optimisation steps the attack ran (it stops once the target's "
       "confidence for the attacked class exceeds its threshold).", None, "count", detail=True),
    _m("final_confidence", "Final conf.", "The target's confidence for the attacked class at "
       "the attack's end point.", None, "percent", detail=True),
    _m("reached_confidence", "Reached", "Share of attack runs that reached the confidence "
       "threshold.", None, "percent", detail=True),
    _m("elapsed_s", "Attack time", "Wall-clock seconds the attack took.", None, "seconds",
       detail=True),
]}

#: Privacy metrics the ranking may use, most preferred first (the first one recorded wins).
RANKING_PRIVACY_METRICS = ("attack_acc1", "attack_acc5", "xi", "delta_eval", "delta_face", "fid",
                           "distance_nearest")
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
    return MetricInfo(key, key, f"Recorded metric {key!r} (no description in "
                      "leaderboard/columns.py yet).")


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
