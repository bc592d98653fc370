"""The Ray Tune side of the runner: the searcher that hands out jobs by their dependencies,
the driver callback that records outcomes, and per-trial names and resources.

Kept out of :mod:`lsmia_bench.benchmark.runner` so that importing the runner (every run, also
a fully cached one) does not import Ray Tune. Tune pickles the searcher and the callback, so
they hold only a token; the live plan is looked up in the driver's ``_DRIVER_SINKS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback, PlacementGroupFactory
from ray.tune.search import Searcher

from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.runner import _DRIVER_SINKS, Outcome, _Plan


def trial_name(trial: Any) -> str:
    job = trial.config["job"]
    return f"{job['stage']}-{job['key']}"


def trial_resources(config: dict[str, Any]) -> Any:
    """Ray resources of one trial, from its stage's ``resources.<stage>`` (in the config)."""
    wanted = config["resources"]
    bundle = {"CPU": float(wanted["cpu"])}
    if wanted["gpu"]:
        bundle["GPU"] = float(wanted["gpu"])
    return PlacementGroupFactory([bundle])


class DependencySearcher(Searcher):
    """Tune's source of trials: suggests a job once its inputs exist, None while every
    remaining job waits on a running one, FINISHED once every job was handed out."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def set_search_properties(self, metric: str | None, mode: str | None,  # noqa: ARG002
                              config: dict, **spec: Any) -> bool:
        return True  # the configs come from the plan; nothing to search

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        plan = _DRIVER_SINKS[self.token]
        suggestion = plan.next_trial(trial_id)
        if suggestion is None and plan.exhausted:
            return self.FINISHED
        return suggestion

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass  # outcomes are decided by DriverCallback, which sees the error message too

    def save(self, checkpoint_path: str) -> None:
        pass  # resuming goes through the cache and the invocation record, not Tune's state

    def restore(self, checkpoint_path: str) -> None:
        pass


class DriverCallback(Callback):
    """Runs in the driver process: the only place that writes to MLflow."""

    def __init__(self, token: str) -> None:
        self.token = token

    def _job(self, trial: Any) -> tuple[_Plan, Job]:
        plan = _DRIVER_SINKS[self.token]
        return plan, plan.jobs[trial.config["job"]["key"]]

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        plan, job = self._job(trial)
        plan.runner.on_progress(job, float(result.get("progress", 0)))

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        plan, job = self._job(trial)
        if plan.runner.store.has(job.key):
            outcome = plan.runner.outcome_from_store(job, "finished")
        else:
            outcome = Outcome(job, "failed", error=plan.runner.store.load_failure(job.key)
                              or "trial ended without a result")
        plan.trial_ended(job.key, outcome)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        plan, job = self._job(trial)
        error = plan.runner.store.load_failure(job.key) or _ray_error(trial)
        plan.trial_ended(job.key, Outcome(job, "failed", error=error))


def _ray_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text().strip().splitlines() if path else []
    except OSError:
        text = []
    return text[-1] if text else "trial failed (no error message recorded)"
