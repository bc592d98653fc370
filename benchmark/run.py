"""One invocation of a suite: plan -> stages through Ray Tune -> MLflow -> report.

Planning, execution (:mod:`benchmark.runner`) and recording (:mod:`benchmark.tracking`) live in
their own modules; this one only strings them together.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsmia_bench.benchmark.cache import RESULT_FILE, ArtifactStore
from lsmia_bench.benchmark.config import Resources, SuiteConfig
from lsmia_bench.benchmark.jobs import STAGES, Job
from lsmia_bench.benchmark.pipelines import PIPELINES, Pipeline, Report
from lsmia_bench.benchmark.plugin_check import probes_skipped
from lsmia_bench.benchmark.preflight import disk_space
from lsmia_bench.benchmark.progress import ProgressView
from lsmia_bench.benchmark.runner import (
    Outcome,
    StageRunner,
    check_stages_feasible,
    orchestration_figures,
)
from lsmia_bench.benchmark.state import Invocation, InvocationStore, ResultsLock, now
from lsmia_bench.benchmark.tracking import AsyncTracker, Tracker, TrackingResult
from lsmia_bench.benchmark.up_to_date import code_fingerprint, finished_run
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import (
    InvocationRecord,
    ResultsLayout,
    TrialRecord,
    summary_metrics,
)

log = logging.getLogger("lsmia_bench")


@dataclass
class RunOptions:
    results_dir: Path
    tracking_uri: str | None = None
    address: str | None = None
    resume: bool = False
    max_concurrent: int | None = None
    source: str = ""
    progress: ProgressView | None = None
    #: Show the last finished run's report again when nothing would run or be recorded
    #: (benchmark.up_to_date); off: record a new parent run of the cached trials.
    reuse_finished: bool = False


@dataclass
class RunSummary:
    invocation: Invocation
    jobs: list[Job]
    outcomes: dict[str, Outcome]
    report: Report
    report_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    #: The parent run and the trials as recorded in MLflow by this process (a resumed run's
    #: earlier trials are in MLflow only): what ``submit`` keeps without reading MLflow back.
    record: InvocationRecord | None = None
    trials: list[TrialRecord] = field(default_factory=list)
    #: Orchestration efficiency and what explains it (runner.orchestration_figures); empty
    #: when no trial ran.
    figures: dict[str, float] = field(default_factory=dict)
    #: How the recording ended: incomplete when the tracking store failed (CLI exit 3).
    tracking: TrackingResult | None = None
    #: Nothing ran and nothing was recorded: ``invocation`` is the earlier finished run whose
    #: report this is.
    shown_again: bool = False


def pipeline_for(config: SuiteConfig) -> Pipeline:
    return PIPELINES.get(config.pipeline, field="pipeline")()


def run_suite(config: SuiteConfig, options: RunOptions) -> RunSummary:
    started = time.perf_counter()
    layout = ResultsLayout(options.results_dir)
    pipeline = pipeline_for(config)
    tracking_uri = options.tracking_uri or layout.tracking_uri
    if options.reuse_finished and not options.resume and layout.invocations.is_dir():
        with ResultsLock(layout.root):  # verifying may set a damaged entry aside
            again = _show_again(pipeline, config, layout, tracking_uri)
        if again is not None:
            return again
    with probes_skipped():  # names and values now; the components' probes only if they run
        pipeline.check(config)
    jobs = pipeline.plan(config)
    progress = options.progress or ProgressView()
    disk_space(layout, jobs, tracking_uri)  # before any trial: exit 2 when clearly too small
    to_run = {job.stage: getattr(config.resources, job.stage) for job in jobs
              if not (layout.cache / job.key / RESULT_FILE).is_file()}
    if to_run:
        _check_while_ray_starts(pipeline, config, to_run, options.address)
    with ResultsLock(layout.root):
        invocations = InvocationStore(layout.root)
        invocation = _invocation(invocations, config, tracking_uri, options.resume)
        invocation.code = code_fingerprint()
        # MLflow is written by a background thread, never on the scheduling path: a slow or
        # lost store delays no trial (benchmark/tracking.py, docs/faults.md).
        tracker = AsyncTracker(Tracker(tracking_uri, layout.mlartifacts), invocations,
                               invocation)
        tracker.start(config.name, invocation.id, config.model_dump(mode="json"),
                      config.config_hash(), options.source)
        invocations.save(invocation)

        def record(outcome: Outcome) -> None:
            progress.trial_done(outcome)
            tracker.log_outcome(outcome, config.name)  # returns at once

        store = ArtifactStore(layout.cache)
        runner = StageRunner(store, layout.ray, f"{config.name}-{invocation.id}",
                             device=config.device, max_concurrent=options.max_concurrent,
                             on_outcome=record, on_progress=progress.trial_progress,
                             address=options.address)
        outcomes: dict[str, Outcome] = {}
        try:
            # One pass over every job: each starts when its own inputs exist.
            progress.start(jobs)
            if to_run:
                _import_matplotlib_in_background()
            outcomes = runner.run_all(jobs, {s: getattr(config.resources, s) for s in STAGES})
            progress.stop()
            report_dir = layout.reports(config.name, invocation.id)
            report = pipeline.report(config, jobs, outcomes, report_dir)
            report_dir.mkdir(parents=True, exist_ok=True)
            table_csv = report_dir / "table.csv"
            report.table.to_csv(table_csv, index=False)
            tracker.log_report(report.files, table_csv)
            invocation.report = {"ranking": dict(report.ranking), "missing": dict(report.missing),
                                 "level": report.level}
            figures = orchestration_figures(outcomes, time.perf_counter() - started,
                                            runner.timing)
            tracker.log_run_metrics(figures)
            # Per entry: test accuracy and each attack's ranking metric, for the run list.
            tracker.log_run_metrics(summary_metrics(
                report.table.to_dict("records"),
                ["test_accuracy", *(getattr(report, "ranking", None) or {})]))
        except BaseException:
            progress.stop()
            invocation.status = "interrupted"
            tracker.finish("KILLED")
            tracker.close(grace_s=5)
            invocations.save(invocation)
            raise
        counts = _count(outcomes)
        tracker.finish("FINISHED" if counts.get("failed", 0) == 0 else "FAILED")
        tracking = tracker.close()
        # Records the store did not take keep the run resumable: --resume logs them.
        invocation.status = "finished" if tracking.complete else "unrecorded"
        invocation.finished_at = now()
        invocations.save(invocation)
    return RunSummary(invocation, jobs, outcomes, report, report_dir, counts,
                      tracker.invocation, list(tracker.trials.values()), figures, tracking)


def _check_while_ray_starts(pipeline: Pipeline, config: SuiteConfig,
                            stages: dict[str, Resources], address: str | None) -> None:
    """The components' probes (each run once on a tiny model) in a thread while Ray starts in
    this one: the two cost seconds each and mostly wait on different things (Ray on its own
    processes). A probe's UserError is raised as before, ahead of any record."""
    failed: list[BaseException] = []

    def probe() -> None:
        try:
            pipeline.check(config)
        except BaseException as exc:  # raised in the driver's thread below
            failed.append(exc)
            return
        # MLflow's, its SQL store's and Ray Tune's imports (seconds, no side effect) while
        # Ray still starts: the tracker and the runner need them next.
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        import mlflow.tracking  # noqa: F401
        import ray.tune  # noqa: F401

    thread = threading.Thread(target=probe, name="lsmia-probes", daemon=True)
    thread.start()
    try:
        check_stages_feasible(stages, address)
    finally:
        thread.join()
    if failed:
        raise failed[0]


def _import_matplotlib_in_background() -> None:
    """Import matplotlib in a daemon thread: the driver mostly waits while trials run, and the
    report draws its figures with matplotlib after them (its import: about a second)."""

    def load() -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")  # the report writes files, never windows
            import matplotlib.pyplot  # noqa: F401
        except Exception:  # noqa: S110 - the report imports it again and says what failed
            pass

    threading.Thread(target=load, name="lsmia-imports", daemon=True).start()


def _show_again(pipeline: Pipeline, config: SuiteConfig, layout: ResultsLayout,
                tracking_uri: str) -> RunSummary | None:
    """The last finished run of this configuration as this run's summary, when every trial is
    verified in the cache and recorded in this tracking store under that run and the code is
    unchanged (benchmark.up_to_date); None otherwise."""
    import pandas as pd

    found = finished_run(layout, config.name, config.config_hash(), tracking_uri,
                         lambda: pipeline.plan(config))
    if found is None:
        return None
    previous, jobs = found
    store = ArtifactStore(layout.cache)
    outcomes = {job.key: Outcome(job, "cached", store.load_result(job.key),
                                 artifact_dir=store.path(job.key)) for job in jobs}
    report_dir = layout.reports(config.name, previous.id)
    meta = previous.report or {}
    report = Report(table=pd.read_csv(report_dir / "table.csv"),
                    files=sorted(p for p in report_dir.iterdir() if p.name != "table.csv"),
                    ranking=meta.get("ranking") or {}, missing=meta.get("missing") or {},
                    level=meta.get("level", 0.95))
    log.debug("nothing to run: every trial is cached and recorded under run %s", previous.id)
    return RunSummary(previous, jobs, outcomes, report, report_dir, {"cached": len(jobs)},
                      tracking=TrackingResult(uri=tracking_uri), shown_again=True)


def _invocation(store: InvocationStore, config: SuiteConfig, tracking_uri: str,
                resume: bool) -> Invocation:
    if not resume:
        return Invocation.new(config.name, config.config_hash(), tracking_uri)
    previous = store.latest_unfinished(config.name)
    if previous is None:
        raise UserError("--resume", True, "Run the suite without --resume to start a new run.",
                        problem=f"no unfinished run of suite {config.name!r} in this results "
                        "folder")
    if previous.config_hash != config.config_hash():
        raise UserError("--resume", previous.id, "Resume with the same suite settings, or run "
                        "without --resume (finished trials are reused from the cache anyway).",
                        problem="the configuration changed since that run")
    if previous.tracking_uri != tracking_uri:
        raise UserError("--tracking-uri", tracking_uri,
                        f"Resume with --tracking-uri {previous.tracking_uri}.",
                        problem="the run to resume was recorded elsewhere")
    log.info("resuming run %s", previous.id)
    previous.status = "running"
    return previous


def _count(outcomes: dict[str, Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts
