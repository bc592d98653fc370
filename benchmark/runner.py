"""Executing a run's jobs as Ray Tune trials, by their dependencies; the driver sees each
outcome as it lands.

One Tune experiment holds every job of a run. A job is handed to Tune (through
:class:`_DependencySearcher`, a Tune ``Searcher``) as soon as its own inputs exist, so a target
never waits for a GAN prior it does not need, and an attack starts once its target and prior
are there. Trials run on reused Ray actors (``reuse_actors=True``): a worker imports torch and
the project once and then runs trial after trial, instead of one new process per trial.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.cache import ArtifactStore
from lsmia_bench.benchmark.config import Resources
from lsmia_bench.benchmark.jobs import STAGES, Job
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

    if not log.isEnabledFor(logging.DEBUG):
        # Ray configures its loggers on import; its start-up notices (e.g. token
        # authentication) are shown only with -v.
        logging.getLogger("ray").setLevel(logging.ERROR)

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ctrl+C must stop the whole run (marked interrupted, continued with --resume); Tune's own
    # handler would only end the experiment and let the run go on to its report.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Tune's JSON/CSV/TensorBoard result loggers write per-trial files nobody reads here (the
    # result lives in the cache, the record in MLflow) and cost time on every trial.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Tune reads back per-trial result files at the end, which the loggers above would have
    # written; its warning about them is noise here.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # Ray pre-starts an idle worker per CPU for plain tasks. Tune gives its trial
            # actors a runtime environment of their own, so they never use those workers,
            # which would only take CPU from the start-up of the ones the trials do use.
            ray.init(num_cpus=num_cpus, _system_config={"prestart_worker_first_driver": False},
                     **kwargs)
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


def node_slots(nodes: list[dict[str, float]], resources: Resources) -> int:
    """How many trials asking for ``resources`` the nodes can run at once."""
    total = 0
    for node in nodes:
        fit = math.floor(node.get("CPU", 0) / resources.cpu + 1e-9)
        if resources.gpu > 0:
            fit = min(fit, math.floor(node.get("GPU", 0) / resources.gpu + 1e-9))
        total += max(0, fit)
    return total


def _alive_nodes() -> list[dict[str, float]]:
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def check_feasible(stage: str, resources: Resources) -> None:
    """UserError when no node of the Ray cluster can ever run one trial of ``stage``: Ray
    would otherwise wait for resources that never come (e.g. ``gpu: 1`` on a CPU machine)."""
    nodes = _alive_nodes()
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


@dataclass
class Timing:
    """What the driver saw of the trials it ran: when Tune started, how many slots it had."""

    fit_started: float | None = None  # time.time() when the Tune experiment started
    slots: int = 0  # trials the cluster could run at once (0: no trial ran)


class StageRunner:
    """Runs jobs through Ray Tune. :meth:`run_all` takes a whole run (dependencies decide
    the order); :meth:`run` one group of jobs whose inputs are in ``earlier``."""

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
        self.timing = Timing()

    def outcome_from_store(self, job: Job, status: str) -> Outcome:
        return Outcome(job, status, self.store.load_result(job.key),
                       artifact_dir=self.store.path(job.key))

    def run(self, stage: str, jobs: list[Job], resources: Resources,
            earlier: dict[str, Outcome]) -> dict[str, Outcome]:
        """The jobs of one stage (their inputs decided in ``earlier``)."""
        return self.run_all(jobs, {stage: resources}, earlier)

    def run_all(self, jobs: list[Job], resources: Mapping[str, Resources],
                earlier: Mapping[str, Outcome] | None = None) -> dict[str, Outcome]:
        """Every job of ``jobs``, each as soon as its inputs exist; returns their outcomes.

        ``resources`` maps a stage to what one of its trials asks Ray for."""
        plan = _Plan(self, jobs, dict(earlier or {}))
        plan.resolve()  # cached and skipped jobs are decided without Ray
        if plan.ready:
            self._run_tune(plan, resources)
        return plan.outcomes

    def _run_tune(self, plan: _Plan, resources: Mapping[str, Resources]) -> None:
        # Ray Tune is imported only here: a fully cached re-run never pays for its import.
        from ray import tune

        from lsmia_bench.benchmark.trial import tune_trainable
        from lsmia_bench.benchmark.tune_hooks import (
            DependencySearcher,
            DriverCallback,
            trial_name,
            trial_resources,
        )

        # Ray starts only when some job has work: a fully cached re-run never pays for it.
        init_ray(self.address)
        stages = {job.stage for job in plan.jobs.values()}
        self.timing.slots = max(node_slots(_alive_nodes(), resources[s]) for s in stages)
        if self.max_concurrent:
            self.timing.slots = min(self.timing.slots, self.max_concurrent)

        token = f"{self.run_name}-{id(plan)}"
        _DRIVER_SINKS[token] = plan
        plan.trial_config = {
            stage: {"resources": {"cpu": r.cpu, "gpu": r.gpu}, "threads": max(1, int(r.cpu))}
            for stage, r in resources.items()}
        trainable = tune.with_resources(tune_trainable, trial_resources)
        tuner = tune.Tuner(
            trainable,
            param_space={"cache_dir": str(self.store.root), "device": self.device},
            tune_config=tune.TuneConfig(
                search_alg=DependencySearcher(token),
                num_samples=len(plan.jobs),
                # Also decides how many trials Tune asks for ahead (a custom searcher gets one
                # otherwise): every slot's worker starts at once, not one after another.
                max_concurrent_trials=max(1, self.timing.slots),
                # The worker process (torch and the project imported) runs the next trial:
                # no process start and no imports per trial.
                reuse_actors=True,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_name,
            ),
            run_config=tune.RunConfig(
                name=f"{self.run_name}-trials",
                storage_path=str(self.storage_dir),
                callbacks=[DriverCallback(token)],
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        stopped = ""
        self.timing.fit_started = time.time()
        try:
            tuner.fit()
        except (RuntimeError, OSError) as exc:
            # Ray itself failed under a trial (e.g. its memory monitor killed the worker):
            # the trials without an outcome fail with Ray's reason; the run goes on.
            stopped = " ".join(str(exc).split())[:500]
            log.error("Ray stopped: %s", stopped)
        finally:
            _DRIVER_SINKS.pop(token, None)
        plan.close(f"Ray: {stopped}" if stopped else "trial did not run")


@dataclass
class _Plan:
    """The run's job graph, kept in the driver: which job waits, which may start, which ended."""

    runner: StageRunner
    job_list: list[Job]
    earlier: dict[str, Outcome]
    jobs: dict[str, Job] = field(init=False)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    waiting: list[str] = field(init=False)
    ready: list[str] = field(default_factory=list)
    #: Tune trial id -> job key of every job handed to Tune.
    released: dict[str, str] = field(default_factory=dict)
    trial_config: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Earlier stages first, then the suite's own order: long prerequisites and targets
        # start before the short attacks that wait on them.
        order = {stage: i for i, stage in enumerate(STAGES)}
        ranked = sorted(enumerate(self.job_list),
                        key=lambda p: (order.get(p[1].stage, len(order)), p[0]))
        self.jobs = {job.key: job for _, job in ranked}
        self.waiting = list(self.jobs)

    def _decided(self, key: str) -> Outcome | None:
        return self.outcomes.get(key) or self.earlier.get(key)

    def _done(self, outcome: Outcome) -> None:
        self.outcomes[outcome.job.key] = outcome
        self.runner.on_outcome(outcome)

    def resolve(self) -> None:
        """Decide every waiting job whose inputs are all decided: skipped (an input failed),
        cached (a verified entry made from the same inputs) or ready to run."""
        changed = True
        while changed:
            changed = False
            for key in list(self.waiting):
                job = self.jobs[key]
                # An input outside this run (neither planned nor decided) is the worker's
                # concern: execute_job fails with a clear message when it is not stored.
                needs = [k for k in job.needs.values() if k in self.jobs or k in self.earlier]
                decided = [self._decided(k) for k in needs]
                if any(d is None for d in decided):
                    continue
                self.waiting.remove(key)
                changed = True
                failed = [d.job.name for d in decided if d is not None and not d.ok]
                remade = [d.job.name for d in decided if d is not None and d.status == "finished"]
                if failed:
                    self._done(Outcome(job, "skipped",
                                       error="an input job failed: " + ", ".join(failed)))
                elif remade and self.runner.store.path(key).exists():
                    # Its input was made again in this run (e.g. it was damaged): a cached
                    # result made from the old input is not reused.
                    self.runner.store.set_aside(key, f"input {', '.join(remade)} was made again")
                    self.ready.append(key)
                elif self.runner.store.verified(key):  # a damaged entry is set aside, re-run
                    self._done(self.runner.outcome_from_store(job, "cached"))
                else:
                    self.ready.append(key)

    def next_trial(self, trial_id: str) -> dict[str, Any] | None:
        """The config of the next job to start (None: nothing may start now)."""
        if not self.ready:
            return None
        key = self.ready.pop(0)
        job = self.jobs[key]
        self.released[trial_id] = key
        return {"job": job.to_dict() | {"key": key}, **self.trial_config[job.stage]}

    @property
    def exhausted(self) -> bool:
        """Every job is handed to Tune or decided: no more trials will come."""
        return not self.waiting and not self.ready

    def trial_ended(self, key: str, outcome: Outcome) -> None:
        """A trial's outcome (from :class:`~lsmia_bench.benchmark.tune_hooks.DriverCallback`):
        recorded, then its dependants are decided."""
        if key in self.outcomes:  # Tune may report an error after a completion
            return
        self._done(outcome)
        self.resolve()

    def close(self, reason: str) -> None:
        """After Tune: a released job without an outcome failed; what waited on it is
        skipped; a job never started (Ray stopped) failed with ``reason``."""
        for key in self.released.values():
            if key not in self.outcomes:
                self._done(Outcome(self.jobs[key], "failed",
                                   error=self.runner.store.load_failure(key) or reason))
        self.resolve()
        for key in [*self.ready, *self.waiting]:
            self._done(Outcome(self.jobs[key], "failed", error=reason))
        self.ready.clear()
        self.waiting.clear()


#: Live driver state by token: Tune pickles its searcher and callbacks, which must hold
#: neither MLflow clients nor the plan itself.
_DRIVER_SINKS: dict[str, _Plan] = {}


def _unix(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def orchestration_figures(outcomes: Mapping[str, Outcome], wall_s: float,
                          timing: Timing) -> dict[str, float]:
    """How well the run used its slots: orchestration efficiency = (the trials' own work
    seconds, summed) / (wall seconds x parallel slots), plus what explains it.

    Only trials that ran now count (cached ones did no work in this run); empty when none ran.
    """
    ran = [o.result for o in outcomes.values() if o.status == "finished" and o.result]
    if not ran or timing.slots <= 0 or wall_s <= 0:
        return {}
    work = sum(float(r.get("elapsed_s") or 0.0) for r in ran)
    figures = {"orchestration_efficiency": work / (wall_s * timing.slots),
               "trial_work_s": work, "run_wall_s": wall_s, "parallel_slots": float(timing.slots),
               "trials_run": float(len(ran))}
    starts = [s for s in (_unix(r.get("started_at")) for r in ran) if s is not None]
    if timing.fit_started is not None and starts:
        # From handing the first trial to Tune until a worker started running a job: actor
        # (process) start plus the imports of torch and the project.
        figures["first_trial_startup_s"] = min(starts) - timing.fit_started
    gaps = trial_gaps(ran)
    if gaps:
        figures["mean_gap_between_trials_s"] = sum(gaps) / len(gaps)
    workers = {(r.get("worker") or {}).get("pid") for r in ran} - {None}
    if workers:
        figures["worker_processes"] = float(len(workers))
    return figures


def trial_gaps(results: list[dict[str, Any]]) -> list[float]:
    """Seconds between one trial's end and the next trial's start on the same worker process:
    the per-trial cost of the orchestration once a worker is warm."""
    by_worker: dict[tuple[Any, Any], list[tuple[float, float]]] = {}
    for r in results:
        worker = r.get("worker") or {}
        start, end = _unix(r.get("started_at")), _unix(r.get("finished_at"))
        if start is not None and end is not None and worker.get("pid") is not None:
            by_worker.setdefault((worker.get("host"), worker["pid"]), []).append((start, end))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps.extend(nxt[0] - prev[1] for prev, nxt in zip(spans, spans[1:], strict=False))
    return gaps
