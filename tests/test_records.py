"""The one record mapping (lsmia_bench.kernel.records): a record survives the trip to MLflow's
tags, params and metrics and back unchanged, both as pure functions and through a real MLflow
SQLite store (written by the benchmark's tracker, read by the leaderboard's reader)."""

from __future__ import annotations

import math

from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.runner import Outcome
from lsmia_bench.benchmark.tracking import Tracker
from lsmia_bench.kernel.records import (
    InvocationRecord,
    ResultsLayout,
    TrialRecord,
    invocation_from_mlflow,
    invocation_to_mlflow,
    trial_from_mlflow,
    trial_from_result,
    trial_to_mlflow,
)
from lsmia_bench.leaderboard.records import read_invocation, read_snapshot


def full_trial() -> TrialRecord:
    return TrialRecord(
        run_id="r1", suite="digits", stage="attacks", job_key="k-attack", status="cached",
        started_ms=1_700_000_000_123, labels={"attack": "gmi", "seed": "0"},
        spec={"attack.name": "gmi", "attack.params.steps": "20", "seed": "0"},
        metrics={"attack_acc1": 0.25, "elapsed_s": 3.5}, series={"loss": [2.0, 1.0, 0.5]},
        needs={"target": "k-target", "prior": "k-prior"}, error=None, name="attack gmi",
        parent_run_id="parent", finished_at="2024-01-01T00:00:00+00:00",
        hardware={"device": "cpu"}, versions={"torch": "2.3"}, task="pkg.tasks:attack",
        info={"prior": "gan, prerequisite", "missing.knn_dist": "no features"})


def test_trial_round_trips_through_tags_params_and_metrics():
    trial = full_trial()
    fields = trial_to_mlflow(trial)
    assert fields.tags["lsmia.kind"] == "trial" and fields.tags["lsmia.cached"] == "true"
    assert fields.params["spec.attack.params.steps"] == "20"
    assert fields.metrics["loss"] == [2.0, 1.0, 0.5] and fields.metrics["attack_acc1"] == [0.25]
    back = trial_from_mlflow("r1", fields, suite="other", started_ms=trial.started_ms)
    assert back == trial


def test_invocation_round_trips_with_its_configuration_as_params():
    record = InvocationRecord("p1", "digits", "20240101-000000-abc", 5, config_hash="h",
                              config_source="configs/digits.yaml", description="Digits",
                              status="FINISHED", versions={"python": "3.11"})
    fields = invocation_to_mlflow(record, {"description": "Digits", "seeds": [0, 1],
                                           "training": {"epochs": 3}})
    assert fields.params == {"description": "Digits", "seeds": "[0, 1]", "training.epochs": "3"}
    assert invocation_from_mlflow("p1", fields, suite="x", started_ms=5,
                                  run_status="FINISHED") == record


def test_a_result_becomes_the_record_a_reader_gets_back():
    trial = trial_from_result(
        suite="s", stage="targets", job_key="k", task="t:f", name="target none", status="failed",
        labels={"strength": None, "seed": 1}, spec={"defense": {"name": "none"}, "lr": 0.1},
        needs={}, error="x" * 5000,
        result={"metrics": {"test_accuracy": 0.9, "undefined": math.nan, "flag": True},
                "series": {"loss": [1.0, "n/a", 0.5], "single": [0.3], "empty": []},
                "elapsed_s": 2.0, "info": {"missing": {"fid": "no weights"}}})
    assert trial.labels == {"strength": "null", "seed": "1"}
    assert trial.spec == {"defense.name": "none", "lr": "0.1"}
    # Only finite numbers are scalars; a one-point curve is a scalar; a target's time is its
    # training time.
    assert trial.metrics == {"test_accuracy": 0.9, "single": 0.3, "train_time_s": 2.0}
    assert trial.series == {"loss": [1.0, 0.5]}
    assert len(trial.error or "") == 4000 and trial.info == {"missing.fid": "no weights"}
    assert trial_from_mlflow("", trial_to_mlflow(trial), suite="s", started_ms=0) == trial


def test_tracker_writes_what_the_leaderboard_reads(tmp_path):
    layout = ResultsLayout(tmp_path / "results")
    tracker = Tracker(layout.tracking_uri, layout.mlartifacts)
    config = {"name": "toy", "description": "A toy suite", "seeds": [0]}
    parent = tracker.start("toy", "inv-1", config, "hash", "configs/toy.yaml")
    target = Job("targets", "pkg.tasks:train", "target none seed=0",
                 {"defense": {"name": "none"}, "seed": 0}, labels={"defense": "none", "seed": 0})
    attack = Job("attacks", "pkg.tasks:attack", "attack sgd", {"attack": {"name": "sgd"}},
                 needs={"target": target.key}, labels={"attack": "sgd"})
    result = {"metrics": {"test_accuracy": 0.8}, "series": {"loss": [1.0, 0.4]},
              "elapsed_s": 1.5, "finished_at": "2024-01-01T00:00:00+00:00",
              "hardware": {"device": "cpu"}, "versions": {"torch": "2"},
              "info": {"note": "hello"}}
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "curve.png").write_bytes(b"\x89PNG")
    logged = [tracker.log_outcome(Outcome(target, "finished", result, None, tmp_path / "art"),
                                  "toy"),
              tracker.log_outcome(Outcome(attack, "failed", error="boom"), "toy")]
    tracker.finish("FAILED")

    invocation, trials = read_invocation(layout.tracking_uri, parent)
    assert invocation == tracker.invocation
    assert {t.job_key: t for t in trials} == {t.job_key: t for t in logged}
    assert logged == list(tracker.trials.values())
    snapshot = read_snapshot(layout.tracking_uri)
    assert snapshot.invocations[0].images == []
    (shown_target,) = [t for t in snapshot.trials if t.stage == "targets"]
    assert [a.path for a in shown_target.images] == ["curve.png"]
    shown_target.images = []
    assert {t.job_key: t for t in snapshot.trials} == {t.job_key: t for t in logged}
