"""The toy suite end to end through real Ray Tune and a real MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

SMALL = ["--set", "training.iterations=400", "--set", "attacks.0.params.max_steps=2000"]
TARGET_METRICS = {"test_accuracy", "train_accuracy", "final_train_loss", "train_time_s"}
ATTACK_METRICS = {"steps", "final_confidence", "distance_nearest", "distance_mean",
                  "gradient_stability"}


def _client(results: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")


def _runs(results: Path):
    client = _client(results)
    experiment = client.get_experiment_by_name("lsmia-bench/toy")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("lsmia.kind") == "invocation"]
    children = [r for r in runs if r.data.tags.get("lsmia.kind") == "trial"]
    return parents, children


def _children_of(children, parent):
    return [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]


def _finished_at(results: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["finished_at"]
            for p in (results / "cache").glob("*/result.json")}


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory, ray_cluster):
    from lsmia_bench.cli import main

    results = tmp_path_factory.mktemp("toy")
    assert main(["run", "--suite", "toy", "--results", str(results), *SMALL]) == 0
    return results


def test_first_run_records_parent_and_every_trial(toy_results):
    parents, children = _runs(toy_results)
    assert len(parents) == 1
    mine = _children_of(children, parents[0])
    targets = [c for c in mine if c.data.tags["lsmia.stage"] == "targets"]
    attacks = [c for c in mine if c.data.tags["lsmia.stage"] == "attacks"]
    assert len(targets) == 3 and len(attacks) == 3
    assert {c.data.params["label.strength"] for c in targets} == {"0.0", "0.05", "-0.05"}
    for run in targets:
        assert set(run.data.metrics) >= TARGET_METRICS, run.data.metrics
        assert run.info.status == "FINISHED"
        assert run.data.tags["lsmia.cached"] == "false"
        history = _client(toy_results).get_metric_history(run.info.run_id, "train_loss")
        assert len(history) > 10
    target_keys = {c.data.tags["lsmia.job_key"] for c in targets}
    for run in attacks:
        assert set(run.data.metrics) >= ATTACK_METRICS, run.data.metrics
        assert run.data.tags["lsmia.needs.target"] in target_keys
        assert 0 < run.data.metrics["steps"] <= 2000
        assert -1 <= run.data.metrics["gradient_stability"] <= 1
    artifacts = {a.path for a in _client(toy_results).list_artifacts(parents[0].info.run_id,
                                                                     "report")}
    assert {"report/toy_attacks.png", "report/toy_attacks.svg", "report/table.csv"} <= artifacts


def test_report_table_and_figure_written(toy_results):
    import pandas as pd

    reports = list((toy_results / "reports" / "toy").glob("*/table.csv"))
    assert len(reports) == 1
    table = pd.read_csv(reports[0])
    assert sorted(table["alpha"]) == [-0.05, 0.0, 0.05]
    assert table["status"].eq("finished").all()
    assert (reports[0].parent / "toy_attacks.png").stat().st_size > 10_000
    assert (reports[0].parent / "toy_attacks.svg").read_text().lstrip().startswith("<?xml")


def test_identical_rerun_trains_nothing(toy_results, run_cli):
    """Run again with nothing to do: no trial, no new record, the last run's report shown;
    with --new-record a second parent run records the six cached trials."""
    before = _finished_at(toy_results)
    reports = sorted((toy_results / "reports" / "toy").glob("*/table.csv"))
    result = run_cli("run", "--suite", "toy", "--results", toy_results, *SMALL)
    assert result.code == 0, result.err
    assert "Nothing to run: every trial is cached and recorded" in result.out
    assert str(reports[-1].parent) in result.out.replace("\n", "")
    assert "LS -0.05" in result.out  # the summary table, read back from the report
    assert _finished_at(toy_results) == before  # no artifact was written again
    parents, _ = _runs(toy_results)
    assert len(parents) == 1
    assert sorted((toy_results / "reports" / "toy").glob("*/table.csv")) == reports

    result = run_cli("run", "--suite", "toy", "--results", toy_results, *SMALL, "--new-record")
    assert result.code == 0, result.err
    assert "Nothing to run" not in result.out
    assert _finished_at(toy_results) == before
    parents, children = _runs(toy_results)
    assert len(parents) == 2
    latest = max(parents, key=lambda r: r.info.start_time)
    mine = _children_of(children, latest)
    assert len(mine) == 6
    assert {c.data.tags["lsmia.status"] for c in mine} == {"cached"}
    assert all(c.data.metrics for c in mine)


def test_killed_run_resumes_without_retraining(tmp_path, ray_cluster, run_cli):
    results = tmp_path / "res"
    # Attacks that never reach the confidence run all their steps: the attack stage takes a
    # while, so the driver can be killed inside it.
    slow = ["--set", "training.iterations=300", "--set", "attacks.0.params.confidence=0.999999",
            "--set", "attacks.0.params.max_steps=20000"]
    cmd = [sys.executable, "-m", "lsmia_bench.cli", "run", "--suite", "toy", "--results",
           str(results), "--address", ray_cluster, *slow]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 240
    state_dir = results / "invocations"
    try:
        while time.monotonic() < deadline:
            states = [json.loads(p.read_text()) for p in state_dir.glob("*.json")] \
                if state_dir.is_dir() else []
            if states and len(states[0]["logged"]) >= 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.5)
        else:
            pytest.fail("targets did not finish in time")
        # A second run on the same results folder meanwhile is refused, and changes nothing.
        logged_before = json.loads(next(state_dir.glob("*.json")).read_text())["logged"]
        second = run_cli("run", "--suite", "toy", "--results", results, *slow)
        assert second.code == 2 and "another lsmia-bench run" in second.err
        assert len(list(state_dir.glob("*.json"))) == 1
        assert json.loads(next(state_dir.glob("*.json")).read_text())["logged"] == logged_before
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = json.loads(next(state_dir.glob("*.json")).read_text())
    assert state["status"] == "running"  # killed: never marked finished
    targets_before = _finished_at(results)
    assert len(targets_before) == 3

    result = run_cli("run", "--suite", "toy", "--results", results, "--resume", *slow)
    assert result.code == 0, result.err
    after = _finished_at(results)
    assert {k: after[k] for k in targets_before} == targets_before  # targets not retrained
    assert len(after) == 6
    parents, children = _runs(results)
    assert len(parents) == 1 and parents[0].info.run_id == state["parent_run_id"]
    assert parents[0].info.status == "FINISHED"
    mine = _children_of(children, parents[0])
    stages = sorted(c.data.tags["lsmia.stage"] for c in mine)
    assert stages == ["attacks"] * 3 + ["targets"] * 3  # nothing lost, nothing logged twice


def test_ctrl_c_stops_the_whole_run(tmp_path, ray_cluster):
    """SIGINT (Ctrl+C) during the targets stage ends the run: exit 130 with a hint, the run
    marked interrupted, and the attack stage never starts (Tune alone would end only the
    stage and go on)."""
    results = tmp_path / "res"
    # -X faulthandler: if the run outlives the test's patience, SIGABRT prints every thread's
    # stack, so the failure says where it waited.
    cmd = [sys.executable, "-X", "faulthandler", "-m", "lsmia_bench.cli", "run", "--suite",
           "toy", "--results", str(results), "--address", ray_cluster,
           "--set", "training.iterations=500000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 180
        while not list((results / "ray").glob("*/targets-*")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.5)
        time.sleep(3)
        os.kill(proc.pid, signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail("no exit 120 s after SIGINT; its threads:\n" + err.decode()[-8000:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "interrupted; finished trials are kept, continue with --resume" in err.decode()
    state = json.loads(next((results / "invocations").glob("*.json")).read_text())
    assert state["status"] == "interrupted"
    assert not list((results / "ray").glob("*/attacks-*"))  # no attack trial started
    parents, _ = _runs(results)
    assert [p.info.status for p in parents] == ["KILLED"]
