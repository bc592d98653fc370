"""Declared costs: what a trial took (recorded by the pipelines' tasks and the tracker)."""

from __future__ import annotations

from lsmia_bench.benchmark.metrics.registry import METRICS
from lsmia_bench.kernel.metrics import MetricSpec

for _spec in [
    MetricSpec("fit_time_s", "Fit time", "Seconds spent in the training loop itself.",
               "t_end - t_start of the training loop (wall clock)", "one value per trial",
               "target", unit="seconds", detail=True),
    MetricSpec("epochs", "Epochs", "Training epochs.", "E = number of passes over the "
               "training data", "one value per trial", "target", unit="count", detail=True),
    MetricSpec("train_time_s", "Train time", "Wall-clock seconds to train the target "
               "(hardware dependent; see the entry page).", "t_end - t_start of the target's "
               "trial (wall clock)", "one value per trial", "target", unit="seconds",
               detail=True),
    MetricSpec("queries", "Queries", "Images the attack sent to the target through its oracle "
               "(black-box and label-only attacks; white-box attacks do not count them).",
               "Q = number of images whose scores or labels the attack asked for",
               "one value per trial", "attack", unit="count", detail=True),
    MetricSpec("elapsed_s", "Attack time", "Wall-clock seconds the attack took.",
               "t_end - t_start of the attack's trial (wall clock)", "one value per trial",
               "attack", unit="seconds", detail=True),
]:
    METRICS.add(_spec)

# --- declared by defenses (recorded with the target by Defense.end_training) ----------------

for _spec in [
    MetricSpec("dp_epsilon", "DP epsilon", "Differential-privacy budget spent by DP-SGD: the "
               "accountant's epsilon at the defense's delta (dp_delta) for the run's noise, "
               "sample rate and steps (Opacus). Lower is more private; only DP-SGD records it.",
               "eps = accountant(noise_multiplier, q = batch_size / N, steps).epsilon(delta)",
               "one value per trial", "target", "lower"),
    MetricSpec("dp_delta", "DP delta", "The delta at which DP-SGD's epsilon is stated.",
               "delta of the (epsilon, delta) guarantee (a defense hyper-parameter)",
               "one value per trial", "target", detail=True),
    MetricSpec("dp_noise_multiplier", "DP noise", "DP-SGD's noise multiplier: Gaussian noise "
               "std over the per-example clipping norm (chosen for target_epsilon if set).",
               "sigma = noise std / C", "one value per trial", "target", detail=True),
    MetricSpec("frozen_parameter_share", "Frozen share", "Share of the target's parameters "
               "TL-DMI pre-trained on public data and froze during private fine-tuning.",
               "sum of frozen parameter sizes / sum of all parameter sizes",
               "one value per trial", "target", unit="percent", detail=True),
    MetricSpec("trapdoor_success", "Trapdoor success", "Share of the private test images that "
               "Trap-MID's target classifies as the trapdoor label t once blended with t's "
               "trigger (t drawn balanced over the classes, independently of the true label): "
               "how well the trapdoor an inversion should fall into works; about 1 / C "
               "where the trapdoor does nothing (t = y for 1 / C of the images). Only "
               "Trap-MID records it.", "mean over test images of [argmax f((1 - a) x + a k_t) = t]",
               "one value per trial", "target", unit="percent"),
]:
    METRICS.add(_spec)
