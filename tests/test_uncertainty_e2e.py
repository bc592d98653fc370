"""Intervals from trial to report on a tiny digits run through real Ray Tune and MLflow: each
trial records ``<metric>_ci_low/_ci_high/_n`` equal to the bootstrap on its own
``per_reconstruction.csv``; the report's rows use seed intervals with two seeds and the
trial's within-seed interval with one; the paired verdict against ``none`` is computed by seed
(two seeds) or from the two trials' reconstructions (one seed); the compact summary fits 100
columns."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lsmia_bench.benchmark.metrics.intervals import (
    PER_RECONSTRUCTION_FILE,
    PER_TEST_IMAGE_FILE,
    bootstrap_settings,
    read_per_unit,
)
from lsmia_bench.benchmark.metrics.uncertainty import (
    paired_seed_difference,
    seed_interval,
    stratified_difference,
    stratified_mean_interval,
)

TINY = [
    "--set", "training.epochs=2",
    "--set", "defenses=[{name: none}, {name: label_smoothing, params: {schedule_negative: true,"
             " ramp_start: 0.5, ramp_end: 0.75}, grid: {alpha: [-0.05]}}]",
    "--set", "priors={wgan_gp: {iterations: 10, latent_dim: 8, width: 8}}",
    "--set", "privacy.student_epochs=1",
    "--set", "attacks=[{name: ppa, params: {search_space_size: 20, num_candidates: 5, "
             "samples_per_class: 4, steps: 3, final_iterations: 2}}]",
]
SETTINGS = bootstrap_settings(None)  # the suite schema's defaults


def _report(results: Path, invocation: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    folders = sorted((results / "reports" / "digits").iterdir(), key=lambda p: p.stat().st_mtime)
    folder = folders[invocation]
    return (pd.read_csv(folder / "table.csv"),
            pd.read_csv(folder / "per_seed.csv", float_precision="round_trip"))


def _trials(results: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lsmia-bench/digits")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    return [r for r in runs if r.data.tags.get("lsmia.kind") == "trial"]


def _folder(results: Path, run) -> Path:
    """The trial's cache folder (its files, per_reconstruction.csv among them)."""
    return results / "cache" / run.data.tags["lsmia.job_key"]


@pytest.mark.slow
def test_intervals_from_trials_to_the_report(run_cli, ray_cluster, tmp_path):
    result = run_cli("run", "--suite", "digits", "--results", tmp_path, "--set", "seeds=[0, 1]",
                     *TINY)
    assert result.code == 0, result.err[-3000:]

    # Every attack trial: the recorded interval is the library's on its own units.
    trials = _trials(tmp_path)
    attacks = [r for r in trials if r.data.tags["lsmia.stage"] == "attacks"]
    targets = [r for r in trials if r.data.tags["lsmia.stage"] == "targets"]
    assert len(attacks) == len(targets) == 4
    for run in attacks:
        metrics = run.data.metrics
        units = read_per_unit(_folder(tmp_path, run) / PER_RECONSTRUCTION_FILE)
        assert list(units.columns) == ["label", "attack_acc1", "delta_eval", "target_confidence"]
        for name in ("attack_acc1", "delta_eval", "target_confidence"):
            expected = stratified_mean_interval(units[name], units["label"], SETTINGS)
            assert metrics[f"{name}_ci_low"] == pytest.approx(expected.low, abs=1e-12)
            assert metrics[f"{name}_ci_high"] == pytest.approx(expected.high, abs=1e-12)
            assert metrics[f"{name}_n"] == len(units) == 20
            assert metrics[name] == pytest.approx(units[name].mean())
            assert run.data.tags[f"info.interval_units.{name}"] == "reconstructions"
        assert metrics["xi_n"] > 0 and run.data.tags["info.interval_units.xi"] == "test images"
        # Not meaningful with 20 reconstructions: missing with the reason, no interval either.
        for name in ("attack_acc5", "fid", "precision"):
            assert name not in metrics and f"{name}_ci_low" not in metrics
            assert run.data.tags[f"info.missing.{name}"]
        assert "gradient_stability" in metrics and "gradient_stability_ci_low" not in metrics
    for run in targets:
        units = read_per_unit(_folder(tmp_path, run) / PER_TEST_IMAGE_FILE)
        expected = stratified_mean_interval(units["correct"], units["label"], SETTINGS)
        assert run.data.metrics["test_accuracy_ci_low"] == pytest.approx(expected.low)
        assert run.data.metrics["test_accuracy_n"] == len(units)
        assert "ece_ci_high" in run.data.metrics

    # The report with two seeds: seed intervals (n = 2), the paired difference by seed.
    table, per_seed = _report(tmp_path, 0)
    assert "ppa_acc5" not in table.columns and "ppa_fid" not in table.columns
    rows = table.set_index("entry")
    assert list(rows.index) == ["none", "LS", "eval. model"] or \
        list(rows.index)[:2] == ["none", "LS"]
    for entry in ("none", "LS"):
        assert rows.loc[entry, "interval_unit"] == "seeds"
        assert rows.loc[entry, "test_accuracy_n"] == rows.loc[entry, "ppa_acc1_n"] == 2
    seeds = per_seed[per_seed["defense"] != "(evaluation model)"]
    by_defense = {d: dict(zip(g["seed"], g["ppa_acc1"], strict=True))
                  for d, g in seeds.groupby("defense")}
    negative = by_defense["label_smoothing(alpha=-0.05)"]
    expected = seed_interval(list(negative.values()), SETTINGS)
    assert rows.loc["LS", "ppa_acc1"] == pytest.approx(expected.estimate)
    assert rows.loc["LS", "ppa_acc1_ci_low"] == pytest.approx(expected.low)
    paired = paired_seed_difference(negative, by_defense["none"], SETTINGS)
    assert rows.loc["LS", "ppa_acc1_vs_none"] == pytest.approx(paired.interval.estimate)
    assert rows.loc["LS", "ppa_acc1_vs_none_low"] == pytest.approx(paired.interval.low)
    assert rows.loc["LS", "ppa_acc1_vs_none_verdict"] == paired.verdict
    assert pd.isna(rows.loc["none", "ppa_acc1_vs_none_verdict"])
    # The terminal summary: short labels, numbers whole at 100 columns.
    assert "LS" in result.out and "\u2026" not in result.out
    assert "table.csv" in result.out

    # One seed (its trials come from the cache): the trials' within-seed intervals.
    result = run_cli("run", "--suite", "digits", "--results", tmp_path, "--set", "seeds=[0]",
                     *TINY)
    assert result.code == 0, result.err[-3000:]
    table, _ = _report(tmp_path, 1)
    rows = table.set_index("entry")
    seed0 = {r.data.params["label.defense"]: r for r in attacks
             if r.data.params["label.seed"] == "0"}
    for entry, defense in (("none", "none"), ("LS", "label_smoothing")):
        assert rows.loc[entry, "interval_unit"].startswith("within seed")
        recorded = seed0[defense].data.metrics
        assert rows.loc[entry, "ppa_acc1_n"] == recorded["attack_acc1_n"] == 20
        assert rows.loc[entry, "ppa_acc1_ci_low"] == pytest.approx(recorded["attack_acc1_ci_low"])
    mine = read_per_unit(_folder(tmp_path, seed0["label_smoothing"]) / PER_RECONSTRUCTION_FILE)
    base = read_per_unit(_folder(tmp_path, seed0["none"]) / PER_RECONSTRUCTION_FILE)
    paired = stratified_difference(mine["attack_acc1"], mine["label"], base["attack_acc1"],
                                   base["label"], SETTINGS)
    assert rows.loc["LS", "ppa_acc1_vs_none"] == pytest.approx(paired.interval.estimate)
    assert rows.loc["LS", "ppa_acc1_vs_none_high"] == pytest.approx(paired.interval.high)
    assert rows.loc["LS", "ppa_acc1_vs_none_verdict"] == paired.verdict
    assert np.isfinite(rows.loc["none", "test_accuracy_ci_low"])

    # The summary of the real report at 100 columns: nothing cut.
    from rich.console import Console

    from lsmia_bench.benchmark.summary import summary_tables

    console = Console(width=100, file=io.StringIO(), record=True)
    for out in summary_tables(table, {"ppa_acc1": "PPA Acc@1"}, "digits", 100):
        console.print(out)
    text = console.export_text()
    assert "\u2026" not in text and max(len(line) for line in text.splitlines()) <= 100
    assert "LS" in text and "none" in text
