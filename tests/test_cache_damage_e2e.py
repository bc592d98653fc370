"""A damaged cache entry in a real run (Ray Tune + MLflow): the next run sets it aside, makes it
again, re-runs what was made from it, and finishes with exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsmia_bench.benchmark.cache import DAMAGED_DIR, ArtifactStore

pytestmark = pytest.mark.slow

SMALL = ["--set", "training.iterations=300", "--set", "attacks.0.params.max_steps=500"]


def _entries(results: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in (results / "cache").glob("*/result.json")}


def test_truncated_target_is_retrained_and_its_attacks_rerun(tmp_path, ray_cluster):
    from lsmia_bench.cli import main

    results = tmp_path / "results"
    args = ["run", "--suite", "toy", "--results", str(results), *SMALL]
    assert main(args) == 0
    before = _entries(results)
    target = next(k for k, r in before.items() if r["job"]["stage"] == "targets")
    dependants = {k for k, r in before.items() if r["job"]["needs"].get("target") == target}
    assert dependants
    weights = max((p for p in (results / "cache" / target).iterdir() if p.is_file()),
                  key=lambda p: p.stat().st_size)
    weights.write_bytes(weights.read_bytes()[:100])

    assert main(args) == 0
    after = _entries(results)
    assert set(after) == set(before)
    remade = {k for k in after if after[k]["finished_at"] != before[k]["finished_at"]
              or after[k]["elapsed_s"] != before[k]["elapsed_s"]}
    assert remade == {target} | dependants
    store = ArtifactStore(results / "cache")
    assert all(store.verified(k) for k in after)
    damaged = [p.name for p in (results / "cache" / DAMAGED_DIR).iterdir()]
    assert any(name.startswith(target) for name in damaged)
