"""A copied results folder never writes into the original: a run on the copy is refused (exit 2)
until `lsmia-bench relocate` points the copy's MLflow store at its own artifacts."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

TINY = ["--suite", "toy", "--set", "training.iterations=200",
        "--set", "attacks.0.params.max_steps=300", "--set", "data.n_samples=150",
        "--set", "defenses.0.grid.alpha=[0.0]"]


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _locations(results: Path) -> list[str]:
    with sqlite3.connect(results / "mlflow.db") as db:
        return [row[0] for row in db.execute(
            "SELECT artifact_location FROM experiments WHERE name LIKE 'lsmia-bench/%' "
            "UNION ALL SELECT artifact_uri FROM runs")]


@pytest.mark.slow
def test_copied_folder_is_refused_then_relocated(run_cli, ray_cluster, tmp_path):
    original, copy = tmp_path / "results", tmp_path / "other"
    first = run_cli("run", *TINY, "--results", original)
    assert first.code == 0, first.err[-2000:]
    # The parent run carries the summary that the MLflow UI's run list compares.
    with sqlite3.connect(original / "mlflow.db") as db:
        keys = {row[0] for row in db.execute(
            "SELECT m.key FROM metrics m JOIN tags t ON t.run_uuid = m.run_uuid "
            "WHERE t.key = 'lsmia.kind' AND t.value = 'invocation'")}
    summary = sorted(k for k in keys if k.startswith("summary/"))
    assert any(k.endswith("/test_accuracy") for k in summary), sorted(keys)
    assert any(k.endswith("/distance_nearest") for k in summary), sorted(keys)
    shutil.copytree(original, copy)
    before = _files(original / "mlartifacts")
    assert before  # the first run wrote artifacts there

    refused = run_cli("run", *TINY, "--results", copy)
    assert refused.code == 2
    message = " ".join(refused.err.split())
    assert "copied or moved" in message and f"lsmia-bench relocate {copy}" in message
    assert _files(original / "mlartifacts") == before

    moved = run_cli("relocate", copy)
    assert moved.code == 0, moved.err
    locations = _locations(copy)
    assert locations and all(loc.startswith((copy / "mlartifacts").as_uri()) for loc in locations)
    assert all(loc.startswith((original / "mlartifacts").as_uri()) for loc in _locations(original))

    copy_before = _files(copy / "mlartifacts")
    again = run_cli("run", *TINY, "--set", "seeds=[1]", "--results", copy)
    assert again.code == 0, again.err[-2000:]
    assert _files(original / "mlartifacts") == before  # nothing written into the original
    assert set(_files(copy / "mlartifacts")) > set(copy_before)  # the new run's artifacts
    assert run_cli("relocate", copy).code == 0  # relocating twice changes nothing


def test_relocate_without_a_store_is_a_user_error(run_cli, tmp_path):
    result = run_cli("relocate", tmp_path)
    assert result.code == 2 and "no MLflow store" in " ".join(result.err.split())


def test_summary_metrics_mean_per_entry_and_safe_keys():
    from lsmia_bench.kernel.records import summary_metrics

    rows = [{"entry": "LS -0.05", "test_accuracy": 1.0, "ppa_acc1": 0.5},
            {"entry": "LS -0.05", "test_accuracy": 0.5, "ppa_acc1": float("nan")},
            {"defense": "label_smoothing(alpha=-0.05)", "test_accuracy": 0.9, "status": "x"}]
    assert summary_metrics(rows, ["test_accuracy", "ppa_acc1", "status"]) == {
        "summary/LS -0.05/test_accuracy": 0.75, "summary/LS -0.05/ppa_acc1": 0.5,
        "summary/label_smoothing_alpha_-0.05/test_accuracy": 0.9}
