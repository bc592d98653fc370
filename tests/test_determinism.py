"""Same configuration and seed -> identical metrics, attacks included, on the CPU: the digits
suite's jobs (evaluation model, prior, target, PPA and GMI attacks) run twice, each time in a
fresh process with its own cache, and every recorded metric but wall-clock timings must agree
exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

#: A tiny digits run: one defense, one seed, small budgets; the attacks still run for real.
OVERRIDES = [
    "defenses=[{name: none}]", "seeds=[0]", "training.epochs=2",
    "priors.wgan_gp.iterations=40",
    "attacks.0.params.search_space_size=40", "attacks.0.params.num_candidates=4",
    "attacks.0.params.samples_per_class=2", "attacks.0.params.steps=5",
    "attacks.0.params.final_iterations=2",
    "attacks.1.params.iterations=10", "privacy.student_epochs=1",
]

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from lsmia_bench.benchmark.cache import ArtifactStore
    from lsmia_bench.benchmark.config import apply_overrides, read_suite_file, validate_suite
    from lsmia_bench.benchmark.pipelines import PIPELINES
    from lsmia_bench.benchmark.trial import execute_job

    overrides, cache = json.loads(sys.argv[1]), Path(sys.argv[2])
    raw, source = read_suite_file("digits", None)
    raw = apply_overrides(raw, overrides)
    pipeline = PIPELINES.get(raw["pipeline"])()
    config = validate_suite(raw, source, pipeline.schema)
    store = ArtifactStore(cache)
    out = {}
    for job in pipeline.plan(config):
        result, _ = execute_job(job, store, device="cpu")
        out[job.name] = result["metrics"]
    print(json.dumps(out, sort_keys=True))
""")


def _run(tmp_path, name: str) -> dict[str, dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(OVERRIDES), str(tmp_path / name)],
        capture_output=True, text=True, timeout=900,
        env=os.environ | {"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_processes_give_identical_metrics(tmp_path):
    first, second = _run(tmp_path, "a"), _run(tmp_path, "b")
    attacks = [name for name in first if name.startswith("attack")]
    assert len(attacks) == 2 and all(first[name] for name in attacks)
    assert first.keys() == second.keys()
    for name in first:
        # Wall-clock timings (names ending in _s) are the only metrics allowed to differ.
        same = {k: v for k, v in first[name].items() if not k.endswith("_s")}
        assert same == {k: v for k, v in second[name].items() if not k.endswith("_s")}, name
    assert {"attack_acc1", "delta_eval"} <= set(first[attacks[0]])
