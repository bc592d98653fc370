"""The runner through real Ray Tune on tiny synthetic jobs: a trial starts when its own inputs
exist (not when a stage ends), a failed input skips its dependants, workers are reused, and
the orchestration figures come from each trial's recorded start and end times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from lsmia_bench.benchmark.cache import ArtifactStore
from lsmia_bench.benchmark.config import Resources
from lsmia_bench.benchmark.jobs import STAGES, Job
from lsmia_bench.benchmark.runner import StageRunner, orchestration_figures

TASKS = '''
import time
from pathlib import Path

from lsmia_bench.benchmark.context import TaskResult


def sleep(spec, inputs, out, ctx):
    if spec.get("fail"):
        raise RuntimeError("planned failure")
    for role, folder in inputs.items():  # an input is there, complete, when the job starts
        assert (folder / "made.txt").is_file(), role
    time.sleep(spec["seconds"])
    where = Path(spec["where"])
    deadline = time.monotonic() + 120
    # The prior finishes only once the targets are made: with a stage barrier it never would.
    while not all((where / f"{name}.done").is_file() for name in spec.get("wait_for", [])):
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited in vain for {spec['wait_for']}")
        time.sleep(0.1)
    (out / "made.txt").write_text(spec["name"])
    (where / f"{spec['name']}.done").touch()
    return TaskResult(metrics={"slept": float(spec["seconds"])})
'''


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def make_graph(tmp_path: Path) -> dict[str, Job]:
    """A prior that ends only after two of three quick targets (one fails), and an attack
    per target needing it and the prior."""
    tasks = tmp_path / "tasks.py"
    tasks.write_text(TASKS)
    task = f"{tasks}:sleep"

    def job(stage: str, name: str, seconds: float, needs: dict[str, str] | None = None,
            fail: bool = False, wait_for: tuple[str, ...] = ()) -> Job:
        spec = {"name": name, "seconds": seconds, "fail": fail, "where": str(tmp_path),
                "wait_for": list(wait_for)}
        return Job(stage, task, name, spec, needs or {})

    prior = job("prerequisites", "prior", 1.0, wait_for=("target-a", "target-b"))
    targets = [job("targets", "target-a", 0.5), job("targets", "target-b", 0.5),
               job("targets", "target-bad", 0.2, fail=True)]
    attacks = [job("attacks", f"attack-{t.name}", 0.3, {"target": t.key, "prior": prior.key})
               for t in targets]
    return {j.name: j for j in [prior, *targets, *attacks]}


@pytest.fixture
def graph(tmp_path: Path) -> dict[str, Job]:
    return make_graph(tmp_path)


def _runner(tmp_path: Path, seen: list) -> StageRunner:
    return StageRunner(ArtifactStore(tmp_path / "cache"), tmp_path / "ray", "orchestration",
                       device="cpu", on_outcome=seen.append)


def test_trials_start_by_dependencies_and_failed_inputs_skip(tmp_path, graph, ray_cluster):
    seen: list = []
    runner = _runner(tmp_path, seen)
    outcomes = runner.run_all(list(graph.values()), dict.fromkeys(STAGES, Resources(cpu=1)))
    by_name = {o.job.name: o for o in outcomes.values()}
    assert len(seen) == len(graph) == len(outcomes)  # every outcome reported once

    assert by_name["target-bad"].status == "failed"
    assert "planned failure" in by_name["target-bad"].error
    skipped = by_name["attack-target-bad"]
    assert skipped.status == "skipped"
    assert skipped.error == "an input job failed: target-bad"

    result = {name: o.result for name, o in by_name.items() if o.status == "finished"}
    assert set(result) == set(graph) - {"target-bad", "attack-target-bad"}
    prior_end = _at(result["prior"]["finished_at"])
    # Targets do not wait for the prior: they started, and ended, while it trained.
    for name in ("target-a", "target-b"):
        assert _at(result[name]["started_at"]) < prior_end
        assert _at(result[name]["finished_at"]) < prior_end
    # An attack starts only when its target and the prior exist.
    for name in ("target-a", "target-b"):
        start = _at(result[f"attack-{name}"]["started_at"])
        assert start >= prior_end and start >= _at(result[name]["finished_at"])

    # Warm workers: later trials ran in a process that had run a trial before.
    workers = [r["worker"] for r in result.values()]
    assert any(w["earlier_trials"] > 0 for w in workers)
    assert len({w["pid"] for w in workers}) < len(workers)

    figures = orchestration_figures(outcomes, 8.0, runner.timing)
    assert runner.timing.slots == 2
    assert figures["trial_work_s"] == pytest.approx(
        sum(r["elapsed_s"] for r in result.values()))
    assert figures["orchestration_efficiency"] == pytest.approx(
        figures["trial_work_s"] / (8.0 * 2))
    assert 0 < figures["first_trial_startup_s"] < 120

    # Again: everything that finished is cached (no Ray trial), the failed one runs again
    # and fails, and its attack is skipped again.
    again: list = []
    rerun = _runner(tmp_path, again)
    outcomes = rerun.run_all(list(graph.values()), dict.fromkeys(STAGES, Resources(cpu=1)))
    statuses = {o.job.name: o.status for o in outcomes.values()}
    assert statuses == {name: ("failed" if name == "target-bad" else "skipped"
                               if name == "attack-target-bad" else "cached")
                        for name in graph}


def test_a_fully_cached_run_does_not_start_tune(tmp_path, graph, ray_cluster):
    jobs = [j for j in graph.values()
            if j.name in ("prior", "target-a", "target-b", "attack-target-a")]
    runner = _runner(tmp_path, [])
    assert all(o.ok for o in runner.run_all(jobs, dict.fromkeys(STAGES, Resources())).values())
    cached = _runner(tmp_path, [])
    outcomes = cached.run_all(jobs, dict.fromkeys(STAGES, Resources()))
    assert {o.status for o in outcomes.values()} == {"cached"}
    assert cached.timing.fit_started is None and cached.timing.slots == 0
    assert orchestration_figures(outcomes, 1.0, cached.timing) == {}
