"""The README's example attack (examples/random_search_attack) passes the plug-in check and
runs through ``lsmia-bench run`` on the digits suite at a tiny size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.benchmark.config import ComponentSpec, build_components

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "random_search_attack" / "random_search.py"
README = REPO / "docs" / "extending.md"


def _readme_options() -> list[str]:
    """The ``--set`` options of the README's "Write an attack" command, as argv."""
    section = README.read_text().split("## Write an attack", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]
    pairs = re.findall(r"--set (?:'([^']*)'|(\S+))", block)
    return [part for quoted, bare in pairs for part in ("--set", quoted or bare)]


def test_example_attack_passes_the_plugin_check():
    (built,) = build_components([ComponentSpec(name=f"{EXAMPLE}:RandomSearch")], ATTACKS,
                                "attacks")
    assert built.name == "random_search" and built.samples_per_class == 2


@pytest.mark.slow
def test_example_attack_runs_on_digits(run_cli, ray_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the README's command names the file relative to the checkout
    options = _readme_options()
    assert any("random_search.py:RandomSearch" in option for option in options)
    result = run_cli("run", "--suite", "digits", "--results", tmp_path, *options)
    assert result.code == 0, result.err[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lsmia-bench/digits")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    attacks = [r for r in runs if r.data.tags.get("lsmia.stage") == "attacks"]
    assert len(attacks) == 1 and attacks[0].info.status == "FINISHED"
    assert 0 <= attacks[0].data.metrics["attack_acc1"] <= 1
