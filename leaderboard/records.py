"""Reading what ``lsmia-bench run`` recorded in MLflow into typed records (the only I/O side).

One :class:`TrialRecord` per MLflow child run (a trained target, an attack, a prerequisite),
one :class:`InvocationRecord` per parent run; what a run's tags, params and metrics mean is
decided by :mod:`lsmia_bench.kernel.records`, which the writer uses too.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsmia_bench.kernel.records import (
    Artifact,
    InvocationRecord,
    MlflowFields,
    ResultsLayout,
    Tag,
    TrialRecord,
    invocation_from_mlflow,
    suite_of,
    trial_from_mlflow,
)
from lsmia_bench.leaderboard.entry_records import EntryRecord

log = logging.getLogger("lsmia_bench")

IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp"}
#: Larger figures are listed on the entry page but not copied into the site.
MAX_IMAGE_BYTES = 5 * 2**20
# The record types live in the kernel; callers that read records may still import them here.
__all__ = ["Artifact", "InvocationRecord", "Snapshot", "TrialRecord", "latest_per_job",
           "read_snapshot", "read_invocation", "read_submissions", "fetch_artifact",
           "trial_origins"]


@dataclass
class Snapshot:
    """Everything the site is built from; the build is a pure function of it."""

    trials: list[TrialRecord]
    invocations: list[InvocationRecord]
    submissions: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    runs_read: int = 0
    #: Earlier records that ``lsmia-bench submit --replace`` kept (``submissions/history/``).
    submission_history: list[dict[str, Any]] = field(default_factory=list)
    #: Suite -> the ``uncertainty.*`` config params of its latest invocation (interval settings).
    uncertainty: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (suite, job key) -> (run id, parent run id) of the trial that ran the job (status
    #: ``finished``), which a later cached re-run only confirmed.
    origins: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    #: Entry records (``leaderboard/entries/``): each a row of its own, marked by its status.
    entries: list[EntryRecord] = field(default_factory=list)


def trial_origins(trials: list[TrialRecord]) -> dict[tuple[str, str], tuple[str, str]]:
    """(suite, job key) -> (run id, parent run id) of the latest trial that ran the job itself."""
    found: dict[tuple[str, str], tuple[int, str, str]] = {}
    for trial in trials:
        if trial.status != "finished":
            continue
        key = (trial.suite, trial.job_key)
        if key not in found or trial.started_ms >= found[key][0]:
            found[key] = (trial.started_ms, trial.run_id, trial.parent_run_id or "")
    return {key: (run, parent) for key, (_, run, parent) in found.items()}


def latest_per_job(trials: list[TrialRecord]) -> list[TrialRecord]:
    """One record per (suite, job key): the latest that succeeded, else the latest attempt.

    Several invocations record the same job (cached re-runs, resumed runs); a later failure
    never hides an earlier success, so nothing recorded is lost by a bad run.
    """
    best: dict[tuple[str, str], TrialRecord] = {}
    for trial in trials:
        key = (trial.suite, trial.job_key)
        current = best.get(key)
        if current is None or (trial.ok, trial.started_ms) > (current.ok, current.started_ms):
            best[key] = trial
    return sorted(best.values(), key=lambda t: (t.suite, t.stage, t.started_ms, t.run_id))


def read_snapshot(tracking_uri: str, results_dir: Path | None = None) -> Snapshot:
    """Read every lsmia-bench experiment of the store (and submissions under ``results_dir``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    trials: list[TrialRecord] = []
    invocations: list[InvocationRecord] = []
    runs: dict[str, Any] = {}
    uncertainty: dict[str, tuple[int, dict[str, str]]] = {}
    for experiment in client.search_experiments(max_results=1000):
        suite = suite_of(experiment.name)
        if suite is None:
            continue
        for run in _all_runs(client, experiment.experiment_id):
            runs[run.info.run_id] = run
            kind = run.data.tags.get(Tag.KIND)
            if kind == "trial":
                trials.append(_trial(run, suite))
            elif kind == "invocation":
                invocations.append(_invocation(run, suite))
                started = int(run.info.start_time or 0)
                params = {k: v for k, v in run.data.params.items()
                          if k.startswith("uncertainty.")}
                if params and started >= uncertainty.get(suite, (-1, {}))[0]:
                    uncertainty[suite] = (started, params)
    # Curves (one metric history request per metric) only for the runs the board shows.
    kept = [_trial(runs[t.run_id], t.suite, client) for t in latest_per_job(trials)]
    for trial in kept:
        trial.images = _images(client, trial.run_id)
    for invocation in invocations:
        invocation.images = _images(client, invocation.run_id)
    folder = ResultsLayout(results_dir) if results_dir else None
    submissions = read_submissions(folder.submissions) if folder else []
    history = read_submissions(folder.submission_history) if folder else []
    return Snapshot(kept, invocations, submissions, tracking_uri, len(runs), history,
                    {suite: params for suite, (_, params) in uncertainty.items()},
                    trial_origins(trials))


def read_invocation(tracking_uri: str, parent_run_id: str
                    ) -> tuple[InvocationRecord, list[TrialRecord]]:
    """One invocation's parent run and its trials (with curves), as the board reads them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(parent_run_id)
    suite = parent.data.tags.get(Tag.SUITE, "")
    runs = [r for r in _all_runs(client, parent.info.experiment_id,
                                 f"tags.{Tag.PARENT} = '{parent_run_id}'")
            if r.data.tags.get(Tag.KIND) == "trial"]
    return _invocation(parent, suite), [_trial(run, suite, client) for run in runs]


def read_submissions(folder: Path) -> list[dict[str, Any]]:
    """``<results>/submissions/*.json`` records as raw mappings (typed by
    :mod:`leaderboard.submissions`); absent folder -> []."""
    if not folder.is_dir():
        return []
    found = []
    for file in sorted(folder.glob("*.json")):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping submission %s: %s", file.name, exc)
            continue
        if not isinstance(record, dict):
            log.warning("skipping submission %s: not a JSON object", file.name)
            continue
        found.append({"file": file.name, **record})
    return found


def fetch_artifact(tracking_uri: str, run_id: str, path: str, dst: Path) -> Path:
    """Download one artifact of a run into ``dst`` (a folder); returns the local file."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    dst.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=tracking_uri)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def _all_runs(client: Any, experiment_id: str, filter_string: str = "") -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000,
                                  page_token=token, order_by=["attributes.start_time ASC"])
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _trial(run: Any, suite: str, client: Any = None) -> TrialRecord:
    """The record of a child run; with ``client``, its curves too (the full metric histories,
    else only the latest value of each metric is known)."""
    metrics = {k: [v] for k, v in run.data.metrics.items()}
    if client is not None:
        for key in metrics:
            history = client.get_metric_history(run.info.run_id, key)
            points = sorted(history, key=lambda m: (m.step, m.timestamp))
            metrics[key] = [float(m.value) for m in points] or metrics[key]
    return trial_from_mlflow(
        run.info.run_id, MlflowFields(run.data.tags, run.data.params, metrics), suite=suite,
        started_ms=int(run.info.start_time or 0), run_name=run.info.run_name or "",
        run_status=run.info.status)


def _invocation(run: Any, suite: str) -> InvocationRecord:
    return invocation_from_mlflow(
        run.info.run_id, MlflowFields(run.data.tags, run.data.params, {}), suite=suite,
        started_ms=int(run.info.start_time or 0), run_status=run.info.status)


def _images(client: Any, run_id: str, path: str | None = None) -> list[Artifact]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found.extend(_images(client, run_id, item.path))
        elif Path(item.path).suffix.lower() in IMAGE_SUFFIXES:
            found.append(Artifact(item.path, item.file_size))
    return found
