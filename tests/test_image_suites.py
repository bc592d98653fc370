"""The digits and olivetti suites end to end (tiny settings) through real Ray Tune and MLflow,
and the Olivetti data-home errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lsmia_bench.defenses.label_smoothing import negative_label_smoothing_schedule

METRICS = {"test_accuracy", "ece", "class_separation", "fit_time_s", "final_train_accuracy"}
CURVES = ("train_loss", "train_accuracy", "test_accuracy_by_epoch")
#: Targets only (the attack stage has its own test, tests/test_image_attacks.py): no attacks,
#: and the label smoothing settings of the default configs without MID and BiDO.
TARGETS_ONLY = ["--set", "attacks=[]", "--set",
                "defenses=[{name: none}, {name: label_smoothing, params: {schedule_negative: true,"
                " ramp_start: 0.5, ramp_end: 0.75}, grid: {alpha: [0.1, 0.05, -0.05]}}]"]


def _trial_runs(results: Path, suite: str) -> tuple[MlflowClient, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"lsmia-bench/{suite}")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("lsmia.kind") == "invocation"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("lsmia.kind") == "trial"]
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    return client, children


def _check_suite(results: Path, suite: str, epochs: int, strengths: set[str]) -> pd.DataFrame:
    client, children = _trial_runs(results, suite)
    evaluation = [c for c in children if c.data.tags["lsmia.stage"] == "prerequisites"]
    targets = [c for c in children if c.data.tags["lsmia.stage"] == "targets"]
    assert len(evaluation) == 1 and evaluation[0].data.params["label.role"] == "evaluation"
    assert {t.data.params["label.strength"] for t in targets} == strengths
    architectures = {t.data.params["label.architecture"] for t in targets}
    assert len(architectures) == 1
    assert evaluation[0].data.params["label.architecture"] not in architectures
    for run in [*targets, *evaluation]:
        assert run.info.status == "FINISHED"
        # The tracker records a trial's wall time as train_time_s for targets, else elapsed_s.
        timing = "train_time_s" if run in targets else "elapsed_s"
        assert METRICS | {timing} <= set(run.data.metrics), run.data.metrics
        assert 0 <= run.data.metrics["ece"] <= 1
        for curve in CURVES:
            assert len(client.get_metric_history(run.info.run_id, curve)) == epochs
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"embedding.png", "embedding.csv", "model.json"} <= artifacts
    negative = [t for t in targets if t.data.params["label.strength"] == "-0.05"]
    for run in negative:  # the schedule as trained: alpha 0 in the first half
        alphas = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "ls_alpha"),
                                          key=lambda m: m.step)]
        expected = [negative_label_smoothing_schedule(e / epochs, -0.05) for e in range(epochs)]
        assert alphas == pytest.approx(expected) and alphas[0] == 0
    table = pd.read_csv(next((results / "reports" / suite).glob("*/table.csv")))
    # One row per entry; each column with its interval and n; no attacks: no attack columns.
    assert list(table.columns) == ["entry", "defense", "strength", "seeds", "interval_unit",
                                   *(f"{c}{s}" for c in ("test_accuracy", "ece",
                                                         "class_separation")
                                     for s in ("", "_ci_low", "_ci_high", "_n")), "status"]
    assert (table["status"] == "finished").all()
    assert next((results / "reports" / suite).glob("*/embeddings.png")).stat().st_size > 1000
    return table


@pytest.mark.slow
def test_digits_end_to_end(run_cli, ray_cluster, tmp_path):
    result = run_cli("run", "--suite", "digits", "--results", tmp_path, "--set", "seeds=[0]",
                     "--set", "training.epochs=4", *TARGETS_ONLY)
    assert result.code == 0, result.err[-3000:]
    table = _check_suite(tmp_path, "digits", 4, {"null", "0.1", "0.05", "-0.05"})
    assert len(table) == 5  # four targets and the evaluation model
    for entry in ("none", "LS +0.1", "LS -0.05"):  # the compact summary's labels
        assert entry in result.out


@pytest.mark.slow
def test_olivetti_end_to_end(run_cli, ray_cluster, tmp_path, sklearn_data_home, monkeypatch):
    monkeypatch.delenv("SCIKIT_LEARN_DATA", raising=False)
    result = run_cli("run", "--suite", "olivetti", "--results", tmp_path,
                     "--data-home", sklearn_data_home, "--set", "training.epochs=3",
                     "--set", "data.image_size=16", "--set", "evaluation.params.channels=[8,16]",
                     *TARGETS_ONLY, "--set", "defenses.1.grid.alpha=[-0.05]")
    assert result.code == 0, result.err[-3000:]
    table = _check_suite(tmp_path, "olivetti", 3, {"null", "-0.05"})
    assert len(table) == 3
    _, children = _trial_runs(tmp_path, "olivetti")
    expected_home = str(sklearn_data_home.resolve())  # --data-home is recorded resolved
    assert {c.data.params["spec.data.data_home"] for c in children} == {expected_home}


def test_olivetti_without_data_exits_2_naming_the_option(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "empty-env"))
    result = run_cli("run", "--suite", "olivetti", "--results", tmp_path / "res")
    assert result.code == 2
    message = " ".join(result.err.split())
    assert "Traceback" not in result.err
    for needle in ("data.data_home", str(tmp_path / "empty-env"), "--data-home",
                   "SCIKIT_LEARN_DATA"):
        assert needle in message, message
    result = run_cli("run", "--suite", "olivetti", "--results", tmp_path / "res",
                     "--data-home", tmp_path / "empty-option")
    assert result.code == 2 and str(tmp_path / "empty-option") in " ".join(result.err.split())
    assert not (tmp_path / "res" / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("override", "field", "needle"),
    [
        ("evaluation.name=resnet", "evaluation.name", "another architecture"),
        ("data.public_classes=[4,5]", "data.public_classes", "both private and public"),
        ("target.params.widht=3", "target.params", "widht"),
        ("priors={wgan_gp: {widht: 3}}", "priors.wgan_gp.widht", "unknown argument"),
        ("priors={stylegan: {}}", "priors", "unknown prior kind"),
        ("attacks=[{name: ppa, params: {num_candidates: 5000}}]", "attacks[0]",
         "search_space_size"),
        ("training.scheduler.milestones=[75]", "training.scheduler.milestones", "fractions"),
    ],
)
def test_bad_image_settings_exit_2(run_cli, tmp_path, override, field, needle):
    result = run_cli("run", "--suite", "digits", "--results", tmp_path / "res", "--set", override)
    message = " ".join(result.err.split())
    assert result.code == 2, message
    assert field in message and needle in message, message


def test_a_grid_over_a_knob_other_than_the_strength_keeps_its_settings_apart():
    """Two settings that share the strength (here alpha) but differ in another knob get
    distinct labels, so the report does not merge their seeds into one entry."""
    from lsmia_bench.benchmark.config import read_suite_file
    from lsmia_bench.benchmark.pipelines import PIPELINES, validate_raw_suite

    raw, source = read_suite_file("digits", None)
    raw["defenses"] = [{"name": "none"},
                       {"name": "label_smoothing", "params": {"alpha": -0.05},
                        "grid": {"schedule": ["linear", "ppa_code"]}}]
    config = validate_raw_suite(raw, source)
    jobs = PIPELINES.get(config.pipeline)().plan(config)
    labels = {j.labels["defense_label"] for j in jobs if j.stage == "targets"}
    assert labels == {"none", "label_smoothing(alpha=-0.05, schedule=linear)",
                      "label_smoothing(alpha=-0.05, schedule=ppa_code)"}
