"""Executing one stage's jobs as Ray Tune trials; the driver sees each outcome as it lands."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.cache import ArtifactStore
from lsmia_bench.benchmark.config import Resources
from lsmia_bench.benchmark.jobs import Job

from lsmia_bench.kernel.errors import UserError

log = logging.getLogger("lsmia_bench")


@dataclass
class Outcome:
    """How a job ended: ``finished`` (ran now), ``cached`` (ran before), ``failed``, ``skipped``."""

    job: Job
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    artifact_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "cached")


OutcomeSink = Callable[[Outcome], None]
ProgressSink = Callable[[Job, float], None]


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Start local Ray (or join ``address``) unless this process is already connected."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ctrl+C must stop the whole run (marked interrupted, continued with --resume); Tune's own
    # handler would end only the current stage and let the next one start.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
    except Exception as exc:
        from lsmia_bench.benchmark.preflight import ray_auth_error

        refused = ray_auth_error(exc, address)
        if refused is not None:
            raise refused from None
        raise


def node_fits(nodes: list[dict[str, float]], cpu: float, gpu: float) -> bool:
    """Whether one node of ``nodes`` (each node's total resources, Ray's ``CPU``/``GPU``
    keys) has ``cpu`` CPUs and ``gpu`` GPUs for one trial."""
    return any(node.get("CPU", 0) >= cpu and node.get("GPU", 0) >= gpu for node in nodes)


def check_feasible(stage: str, resources: Resources) -> None:
    """UserError when no node of the Ray cluster can ever run one trial of ``stage``: Ray
    would otherwise wait for resources that never come (e.g. ``gpu: 1`` on a CPU machine)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if node_fits(nodes, resources.cpu, resources.gpu):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    field = "gpu" if resources.gpu > largest.get("GPU", 0) else "cpu"
    have = largest.get(field.upper(), 0)
    raise UserError(f"resources.{stage}.{field}", getattr(resources, field),
                    f"Ask for at most {have:g} (--set resources.{stage}.{field}={have:g}; "
                    f"gpu 0 runs on the CPU), or run on a machine or Ray cluster (--address) "
                    "that has it.",
                    problem=f"no node of the Ray cluster has that many {field.upper()}s "
                    f"(the largest has {have:g})")


def check_stages_feasible(stages: dict[str, Resources], address: str | None) -> None:
    """Before anything is recorded: every stage with trials to run fits on some node (starts
    or joins Ray only when ``stages`` is not empty)."""
    if not stages:
        return
    init_ray(address)
    for stage, resources in stages.items():
        check_feasible(stage, resources)


class StageRunner:
    def __init__(self, store: ArtifactStore, storage_dir: Path, run_name: str,
                 device: str = "auto", max_concurrent: int | None = None,
                 on_outcome: OutcomeSink | None = None,
                 on_progress: ProgressSink | None = None, address: str | None = None) -> None:
        self.store = store
        self.address = address
        self.storage_dir = Path(storage_dir).resolve()
        self.run_name = run_name
        self.device = device
        self.max_concurrent = max_concurrent
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.on_progress = on_progress or (lambda job, fraction: None)

    def outcome_from_store(self, job: Job, status: str) -> Outcome:
        return Outcome(job, status, self.store.load_result(job.key),
                       artifact_dir=self.store.path(job.key))

    def run(self, stage: str, jobs: list[Job], resources: Resources,
            earlier: dict[str, Outcome]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        todo: list[Job] = []
        for job in jobs:
            failed_needs = [k for k in job.needs.values() if k in earlier and not earlier[k].ok]
            remade = [earlier[k].job.name for k in job.needs.values()
                      if k in earlier and earlier[k].status == "finished"]
            if failed_needs:
                outcomes[job.key] = Outcome(job, "skipped", error="an input job failed: "
                                            + ", ".join(earlier[k].job.name for k in failed_needs))
            elif remade and self.store.path(job.key).exists():
                # Its input was made again (e.g. it was damaged): a cached result made from the
                # old input is not reused.
                self.store.set_aside(job.key, f"input {', '.join(remade)} was made again")
                todo.append(job)
            elif self.store.verified(job.key):  # a damaged entry is set aside and runs again
                outcomes[job.key] = self.outcome_from_store(job, "cached")
            else:
                todo.append(job)
        for outcome in outcomes.values():
            self.on_outcome(outcome)
        if todo:
            outcomes.update(self._run_tune(stage, todo, resources))
        return outcomes

    def _run_tune(self, stage: str, jobs: list[Job], resources: Resources) -> dict[str, Outcome]:
        from lsmia_bench.benchmark.trial import tune_trainable
        from ray import tune

        # Ray starts only when a stage has work: a fully cached re-run never pays for it.
        init_ray(self.address)

        by_key = {job.key: job for job in jobs}
        outcomes: dict[str, Outcome] = {}
        token = f"{self.run_name}-{stage}-{id(outcomes)}"
        _DRIVER_SINKS[token] = (self, by_key, outcomes)
        trainable = tune.with_resources(tune_trainable, {"cpu": resources.cpu,
                                                         "gpu": resources.gpu})
        threads = max(1, int(resources.cpu))
        tuner = tune.Tuner(
            trainable,
            param_space={
                "job": tune.grid_search([job.to_dict() | {"key": job.key} for job in jobs]),
                "cache_dir": str(self.store.root),
                "device": self.device,
                "threads": threads,
            },
            tune_config=tune.TuneConfig(
                max_concurrent_trials=self.max_concurrent,
                trial_name_creator=lambda trial: f"{stage}-{trial.config['job']['key']}",
                trial_dirname_creator=lambda trial: f"{stage}-{trial.config['job']['key']}",
            ),
            run_config=tune.RunConfig(
                name=f"{self.run_name}-{stage}",
                storage_path=str(self.storage_dir),
                callbacks=[_DriverCallback(token)],
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        stopped = ""
        try:
            tuner.fit()
        except (RuntimeError, OSError) as exc:
            # Ray itself failed under a trial (e.g. its memory monitor killed the worker):
            # the trials without an outcome fail with Ray's reason; the run goes on.
            stopped = " ".join(str(exc).split())[:500]
            log.error("stage %s: Ray stopped: %s", stage, stopped)
        finally:
            _DRIVER_SINKS.pop(token, None)
        for key, job in by_key.items():
            if key not in outcomes:  # e.g. the trial never started
                outcome = Outcome(job, "failed", error=self.store.load_failure(key)
                                  or (f"Ray: {stopped}" if stopped else "trial did not run"))
                outcomes[key] = outcome
                self.on_outcome(outcome)
        return outcomes


#: Live driver state by token: Tune pickles its callbacks, which must not hold MLflow clients.
_DRIVER_SINKS: dict[str, tuple[StageRunner, dict[str, Job], dict[str, Outcome]]] = {}


def _driver_callback_base() -> type:
    from ray import tune

    return tune.Callback


class _DriverCallback(_driver_callback_base()):  # type: ignore[misc]
    """Runs in the driver process: the only place that writes to MLflow."""

    def __init__(self, token: str) -> None:
        self.token = token

    def _sink(self) -> tuple[StageRunner, dict[str, Job], dict[str, Outcome]]:
        return _DRIVER_SINKS[self.token]

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        runner, by_key, _ = self._sink()
        runner.on_progress(by_key[trial.config["job"]["key"]], float(result.get("progress", 0)))

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        runner, by_key, outcomes = self._sink()
        key = trial.config["job"]["key"]
        if runner.store.has(key):
            outcome = runner.outcome_from_store(by_key[key], "finished")
        else:
            outcome = Outcome(by_key[key], "failed", error="trial ended without a result")
        outcomes[key] = outcome
        runner.on_outcome(outcome)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        runner, by_key, outcomes = self._sink()
        key = trial.config["job"]["key"]
        error = runner.store.load_failure(key) or _ray_error(trial)
        outcome = Outcome(by_key[key], "failed", error=error)
        outcomes[key] = outcome
        runner.on_outcome(outcome)


def _ray_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text().strip().splitlines() if path else []
    except OSError:
        text = []
    return text[-1] if text else "trial failed (no error message recorded)"
