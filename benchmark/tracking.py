"""MLflow recording, done by the driver only: a parent run per invocation, a child per trial.

What a run holds is decided by :mod:`lsmia_bench.kernel.records` (the one mapping, which the
leaderboard reads back through); this module only does the MLflow calls and the artifacts.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.runner import Outcome

from lsmia_bench.kernel.records import (
    InvocationRecord,
    MlflowFields,
    Tag,
    TrialRecord,
    experiment_name,
    invocation_to_mlflow,
    trial_from_result,
    trial_to_mlflow,
)

log = logging.getLogger("lsmia_bench")

#: Files from a trial folder worth logging as MLflow artifacts (weights stay in the cache).
ARTIFACT_SUFFIXES = {".png", ".svg", ".csv", ".json", ".txt", ".html"}
MAX_ARTIFACT_BYTES = 20 * 2**20


def outcome_record(outcome: Outcome, suite: str, run_id: str = "",
                   parent_run_id: str | None = None, started_ms: int = 0) -> TrialRecord:
    """The record of one trial outcome: what its MLflow run holds and ``submit`` keeps."""
    job = outcome.job
    return trial_from_result(
        suite=suite, stage=job.stage, job_key=job.key, task=job.task, name=job.name,
        status=outcome.status, labels=job.labels, spec=job.spec, needs=job.needs,
        result=outcome.result, error=outcome.error, run_id=run_id,
        parent_run_id=parent_run_id, started_ms=started_ms)


class Tracker:
    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root).resolve()
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id: str | None = None
        self.invocation: InvocationRecord | None = None
        #: job key -> the record of the trial's run, as logged by this process.
        self.trials: dict[str, TrialRecord] = {}

    @property
    def parent_run_id(self) -> str | None:
        return self.invocation.run_id if self.invocation else None

    def experiment(self, suite: str) -> str:
        name = experiment_name(suite)
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        if self.tracking_uri.startswith("sqlite:") or "://" not in self.tracking_uri:
            location = (self.artifact_root / suite).as_uri()
            return self.client.create_experiment(name, artifact_location=location)
        return self.client.create_experiment(name)

    def start(self, suite: str, invocation: str, config: dict[str, Any], config_hash: str,
              source: str, resume_run_id: str | None = None) -> str:
        from lsmia_bench.benchmark.trial import package_versions

        self.experiment_id = self.experiment(suite)
        record = InvocationRecord(
            run_id=resume_run_id or "", suite=suite, invocation=invocation,
            started_ms=_now_ms(), config_hash=config_hash, config_source=source,
            description=str(config.get("description") or ""), status="RUNNING",
            versions=package_versions())
        self.invocation = record
        if resume_run_id:
            # The parent run keeps its first start time (and tags); only its status changes.
            record.started_ms = int(self.client.get_run(resume_run_id).info.start_time or 0)
            self.client.set_tag(resume_run_id, Tag.RESUMED, "true")
            self.client.update_run(resume_run_id, status="RUNNING")
            return resume_run_id
        fields = invocation_to_mlflow(record, config)
        run = self.client.create_run(self.experiment_id, start_time=record.started_ms,
                                     run_name=f"{suite}-{invocation}", tags=fields.tags)
        record.run_id = run.info.run_id
        self._log_fields(record.run_id, fields)
        self.client.log_text(record.run_id, json.dumps(config, indent=2), "config.json")
        return record.run_id

    def log_outcome(self, outcome: Outcome, suite: str) -> TrialRecord:
        """One child run for one trial outcome; returns its record (with the run id)."""
        assert self.experiment_id is not None and self.parent_run_id is not None
        record = outcome_record(outcome, suite, parent_run_id=self.parent_run_id,
                                started_ms=_now_ms())
        fields = trial_to_mlflow(record)
        run = self.client.create_run(self.experiment_id, start_time=record.started_ms,
                                     run_name=record.name, tags=fields.tags)
        record.run_id = run.info.run_id
        self._log_fields(record.run_id, fields)
        self._log_artifacts(record.run_id, outcome)
        self.client.set_terminated(record.run_id,
                                   status="FINISHED" if outcome.ok else "FAILED")
        self.trials[record.job_key] = record
        return record

    def _log_artifacts(self, run_id: str, outcome: Outcome) -> None:
        if outcome.artifact_dir is None:
            return
        for file in sorted(Path(outcome.artifact_dir).rglob("*")):
            if (file.is_file() and file.suffix in ARTIFACT_SUFFIXES
                    and file.stat().st_size <= MAX_ARTIFACT_BYTES):
                folder = file.parent.relative_to(outcome.artifact_dir).as_posix()
                self.client.log_artifact(run_id, str(file), None if folder == "." else folder)

    def log_report(self, files: list[Path], table_csv: Path) -> None:
        assert self.parent_run_id is not None
        for file in [*files, table_csv]:
            self.client.log_artifact(self.parent_run_id, str(file), "report")

    def finish(self, status: str) -> None:
        if self.invocation is not None and self.invocation.run_id:
            self.invocation.status = status
            self.client.set_terminated(self.invocation.run_id, status=status)

    def _log_fields(self, run_id: str, fields: MlflowFields) -> None:
        """Params and metrics in batches (MLflow takes at most 100 params / 1000 metrics)."""
        from mlflow.entities import Metric, Param

        params = [Param(k, v) for k, v in fields.params.items()]
        for start in range(0, len(params), 90):
            self.client.log_batch(run_id, params=params[start:start + 90])
        now = _now_ms()
        metrics = [Metric(key, value, now, step) for key, values in fields.metrics.items()
                   for step, value in enumerate(values)]
        for start in range(0, len(metrics), 900):
            self.client.log_batch(run_id, metrics=metrics[start:start + 900])


def _now_ms() -> int:
    return int(time.time() * 1000)
