"""Reading what ``lsmia-bench run`` recorded in MLflow into typed records (the only I/O side).

One :class:`TrialRecord` per MLflow child run (a trained target or an attack), one
:class:`InvocationRecord` per parent run. Numbers stay numbers; labels come from the run's
``label.*`` params, the configuration from its ``spec.*`` params (see benchmark/tracking.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("lsmia_bench")

EXPERIMENT_PREFIX = "lsmia-bench/"
IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp"}
#: Larger figures are listed on the entry page but not copied into the site.
MAX_IMAGE_BYTES = 5 * 2**20
OK_STATUSES = ("finished", "cached")


@dataclass
class Artifact:
    path: str  # relative to the run's artifact root, as MLflow lists it
    size: int | None = None


@dataclass
class TrialRecord:
    run_id: str
    suite: str
    stage: str
    job_key: str
    status: str
    started_ms: int
    labels: dict[str, str] = field(default_factory=dict)
    spec: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    needs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    name: str = ""
    parent_run_id: str | None = None
    finished_at: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    images: list[Artifact] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def seed(self) -> str:
        return self.labels.get("seed", self.spec.get("seed", ""))


@dataclass
class InvocationRecord:
    run_id: str
    suite: str
    invocation: str
    started_ms: int
    config_hash: str = ""
    config_source: str = ""
    description: str = ""
    status: str = ""
    versions: dict[str, Any] = field(default_factory=dict)
    images: list[Artifact] = field(default_factory=list)


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
    runs_read = 0
    for experiment in client.search_experiments(max_results=1000):
        if not experiment.name.startswith(EXPERIMENT_PREFIX):
            continue
        suite = experiment.name.removeprefix(EXPERIMENT_PREFIX)
        for run in _all_runs(client, experiment.experiment_id):
            runs_read += 1
            kind = run.data.tags.get("lsmia.kind")
            if kind == "trial":
                trials.append(_trial(run, suite))
            elif kind == "invocation":
                invocations.append(_invocation(run, suite))
    kept = latest_per_job(trials)
    for trial in kept:
        if trial.stage in ("targets", "attacks"):
            trial.series = _series(client, trial)
            trial.images = _images(client, trial.run_id)
    for invocation in invocations:
        invocation.images = _images(client, invocation.run_id)
    folder = Path(results_dir) / "submissions" if results_dir else None
    submissions = read_submissions(folder) if folder else []
    history = read_submissions(folder / "history") if folder else []
    return Snapshot(kept, invocations, submissions, tracking_uri, runs_read, history)


def read_invocation(tracking_uri: str, parent_run_id: str
                    ) -> tuple[InvocationRecord, list[TrialRecord]]:
    """One invocation's parent run and its trials (with curves), as the board reads them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(parent_run_id)
    suite = parent.data.tags.get("lsmia.suite", "")
    runs = [r for r in _all_runs(client, parent.info.experiment_id,
                                 f"tags.mlflow.parentRunId = '{parent_run_id}'")
            if r.data.tags.get("lsmia.kind") == "trial"]
    trials = [_trial(run, suite) for run in runs]
    for trial in trials:
        if trial.stage in ("targets", "attacks"):
            trial.series = _series(client, trial)
    return _invocation(parent, suite), trials


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


def _trial(run: Any, suite: str) -> TrialRecord:
    tags, params = run.data.tags, run.data.params
    status = tags.get("lsmia.status") or ("finished" if run.info.status == "FINISHED"
                                          else "failed")
    return TrialRecord(
        run_id=run.info.run_id, suite=tags.get("lsmia.suite", suite),
        stage=tags.get("lsmia.stage", ""), job_key=tags.get("lsmia.job_key", run.info.run_id),
        status=status, started_ms=int(run.info.start_time or 0),
        labels={k.removeprefix("label."): v for k, v in params.items() if k.startswith("label.")},
        spec={k.removeprefix("spec."): v for k, v in params.items() if k.startswith("spec.")},
        metrics={k: float(v) for k, v in run.data.metrics.items() if _finite(v)},
        needs={k.removeprefix("lsmia.needs."): v for k, v in tags.items()
               if k.startswith("lsmia.needs.")},
        error=tags.get("lsmia.error"), name=tags.get("mlflow.runName", run.info.run_name or ""),
        parent_run_id=tags.get("mlflow.parentRunId"),
        finished_at=tags.get("lsmia.finished_at"),
        hardware=_json_tag(tags.get("lsmia.hardware")),
        versions=_json_tag(tags.get("lsmia.versions")),
    )


def _invocation(run: Any, suite: str) -> InvocationRecord:
    tags = run.data.tags
    return InvocationRecord(
        run_id=run.info.run_id, suite=tags.get("lsmia.suite", suite),
        invocation=tags.get("lsmia.invocation", run.info.run_id),
        started_ms=int(run.info.start_time or 0),
        config_hash=tags.get("lsmia.config_hash", ""),
        config_source=tags.get("lsmia.config_source", ""),
        description=run.data.params.get("description", ""),
        status=run.info.status, versions=_json_tag(tags.get("lsmia.versions")),
    )


def _series(client: Any, trial: TrialRecord) -> dict[str, list[float]]:
    """Metrics logged at several steps (training curves); they leave the scalar columns."""
    series = {}
    for key in sorted(trial.metrics):
        history = client.get_metric_history(trial.run_id, key)
        if len(history) > 1:
            points = sorted(history, key=lambda m: (m.step, m.timestamp))
            series[key] = [float(m.value) for m in points]
    for key in series:
        trial.metrics.pop(key, None)
    return series


def _images(client: Any, run_id: str, path: str | None = None) -> list[Artifact]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found.extend(_images(client, run_id, item.path))
        elif Path(item.path).suffix.lower() in IMAGE_SUFFIXES:
            found.append(Artifact(item.path, item.file_size))
    return found


def _json_tag(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"value": text}
    return value if isinstance(value, dict) else {"value": value}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
