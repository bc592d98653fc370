"""Defenses end to end through real Ray Tune and MLflow: an installed entry-point plug-in (the
README's example) is listed and trains; MID and BiDO train and are attacked; a loss that turns
NaN during training fails only its own trial."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lsmia_bench.defenses import DEFENSES

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
TINY = ["--set", "training.iterations=200", "--set", "attacks.0.params.max_steps=300",
        "--set", "data.n_samples=150"]  # BiDO costs m^3 per full-batch step


def _readme_block(language: str) -> str:
    section = README.read_text().split("## Write a defense", 1)[1].split("\n## ", 1)[0]
    return textwrap.dedent(re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)[0])


@pytest.fixture
def installed_example(tmp_path):
    """The README's example defense, pip-installed with its entry point; removed afterwards."""
    package = tmp_path / "my-defense"
    package.mkdir()
    (package / "my_defense.py").write_text(_readme_block("python"))
    (package / "pyproject.toml").write_text(_readme_block("toml"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation",
                    str(package)], check=True, cwd=tmp_path)
    importlib.invalidate_caches()
    try:
        yield "my_confidence_penalty"
    finally:
        subprocess.run([*pip, "uninstall", "--quiet", "--yes", "my-defense"], check=False)
        DEFENSES._loaded.pop("my_confidence_penalty", None)  # forget it in this process too
        sys.modules.pop("my_defense", None)
        importlib.invalidate_caches()


def _suite(tmp_path: Path, defenses: str) -> Path:
    config = tmp_path / "suite.yaml"
    config.write_text(f"name: toy\npipeline: toy\ndevice: cpu\ndefenses:\n{defenses}"
                      "attacks:\n  - name: toy_sgd\n    params: {start: [-3, -10], lr: 0.1}\n")
    return config


def _report_table(results: Path) -> pd.DataFrame:
    (table,) = results.glob("reports/toy/*/table.csv")
    return pd.read_csv(table)


def test_entry_point_defense_is_listed_and_trains(run_cli, ray_cluster, installed_example,
                                                  tmp_path):
    listed = run_cli("list")
    assert listed.code == 0
    assert re.search(r"my_confidence_penalty\s+Cross-entropy minus weight \* entropy", listed.out)
    config = _suite(tmp_path, "  - name: my_confidence_penalty\n    params: {weight: 0.5}\n")
    result = run_cli("run", "--config", config, "--results", tmp_path / "res", *TINY)
    assert result.code == 0, (result.out, result.err)
    table = _report_table(tmp_path / "res")
    (row,) = table.to_dict("records")
    assert row["defense"] == "my_confidence_penalty(weight=0.5)"
    assert row["status"] == "finished" and row["test_accuracy"] > 0.9


LATE_NAN = '''
from typing import ClassVar

import torch.nn.functional as F

from lsmia_bench.defenses import Defense


class LateNaN(Defense):
    name: ClassVar[str] = "late_nan"
    summary: ClassVar[str] = "Cross-entropy that turns NaN halfway through training."

    def loss(self, batch):
        loss = F.cross_entropy(batch.logits, batch.targets)
        return loss * float("nan") if batch.progress >= 0.5 else loss
'''


def test_nan_during_training_fails_only_that_trial(run_cli, ray_cluster, tmp_path):
    (tmp_path / "late_nan.py").write_text(LATE_NAN)
    config = _suite(tmp_path, "  - name: mid\n  - name: bido\n"
                              f"  - name: {tmp_path / 'late_nan.py'}:LateNaN\n")
    results = tmp_path / "res"
    result = run_cli("run", "--config", config, "--results", results, *TINY)
    assert result.code == 1, (result.out, result.err)  # some trial failed, the run finished

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lsmia-bench/toy")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("lsmia.kind") == "trial"]
    by_status: dict[str, list] = {}
    for run in trials:
        by_status.setdefault(run.data.tags["lsmia.status"], []).append(run)
    (failed,) = by_status["failed"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["lsmia.stage"] == "targets"
    error = failed.data.tags["lsmia.error"]
    assert "NonFiniteLoss" in error and "'late_nan'" in error and "loss is nan" in error
    (skipped,) = by_status["skipped"]  # its attack had no target
    assert skipped.data.tags["lsmia.stage"] == "attacks"
    finished = by_status["finished"]
    assert len(finished) == 4  # mid and bido: target and attack each
    targets = {r.data.params["label.defense"]: r for r in finished
               if r.data.tags["lsmia.stage"] == "targets"}
    assert set(targets) == {"mid", "bido"}
    for run in targets.values():
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test_accuracy"] > 0.9

    table = _report_table(results)
    # One row per entry; a status other than finished names the seed it happened in.
    assert dict(zip(table["defense"], table["status"], strict=True)) == {
        "mid(beta=0.003)": "finished", "bido(lambda_y=0.5)": "finished",
        "late_nan": "seed 0: skipped"}
