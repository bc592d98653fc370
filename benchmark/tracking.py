"""MLflow recording, done by the driver only: a parent run per invocation, a child per trial."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.runner import Outcome

log = logging.getLogger("lsmia_bench")

#: Files from a trial folder worth logging as MLflow artifacts (weights stay in the cache).
ARTIFACT_SUFFIXES = {".png", ".svg", ".csv", ".json", ".txt", ".html"}
MAX_ARTIFACT_BYTES = 20 * 2**20
EXPERIMENT_PREFIX = "lsmia-bench/"


def default_tracking_uri(results_dir: Path) -> str:
    return f"sqlite:///{(Path(results_dir).resolve() / 'mlflow.db').as_posix()}"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Tracker:
    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root).resolve()
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None

    def experiment(self, suite: str) -> str:
        name = EXPERIMENT_PREFIX + suite
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        if self.tracking_uri.startswith("sqlite:") or "://" not in self.tracking_uri:
            location = (self.artifact_root / suite).as_uri()
            return self.client.create_experiment(name, artifact_location=location)
        return self.client.create_experiment(name)

    def start(self, suite: str, invocation: str, config: dict[str, Any], config_hash: str,
              source: str, resume_run_id: str | None = None) -> str:
        self.experiment_id = self.experiment(suite)
        if resume_run_id:
            self.parent_run_id = resume_run_id
            self.client.set_tag(resume_run_id, "lsmia.resumed", "true")
            self.client.update_run(resume_run_id, status="RUNNING")
            return resume_run_id
        run = self.client.create_run(self.experiment_id, run_name=f"{suite}-{invocation}", tags={
            "lsmia.kind": "invocation", "lsmia.suite": suite, "lsmia.invocation": invocation,
            "lsmia.config_hash": config_hash, "lsmia.config_source": source,
        })
        self.parent_run_id = run.info.run_id
        from lsmia_bench.benchmark.trial import package_versions

        self.client.set_tag(self.parent_run_id, "lsmia.versions", json.dumps(package_versions()))
        self._log_params(self.parent_run_id, flatten(config))
        self.client.log_text(self.parent_run_id, json.dumps(config, indent=2), "config.json")
        return self.parent_run_id

    def log_outcome(self, outcome: Outcome, suite: str) -> str:
        """One child run for one trial outcome; returns its run id."""
        assert self.experiment_id is not None and self.parent_run_id is not None
        job = outcome.job
        tags = {
            "mlflow.parentRunId": self.parent_run_id, "lsmia.kind": "trial",
            "lsmia.suite": suite, "lsmia.stage": job.stage, "lsmia.job_key": job.key,
            "lsmia.status": outcome.status, "lsmia.cached": str(outcome.status == "cached").lower(),
            "lsmia.task": job.task,
        }
        if outcome.error:
            tags["lsmia.error"] = outcome.error[:4000]
        for needed_role, needed_key in job.needs.items():
            tags[f"lsmia.needs.{needed_role}"] = needed_key
        run = self.client.create_run(self.experiment_id, run_name=job.name, tags=tags)
        run_id = run.info.run_id
        params = {f"label.{k}": v for k, v in job.labels.items()} | flatten(job.spec, "spec.")
        self._log_params(run_id, params)
        if outcome.result:
            self._log_result(run_id, outcome)
        status = "FINISHED" if outcome.ok else "FAILED"
        self.client.set_terminated(run_id, status=status)
        return run_id

    def _log_result(self, run_id: str, outcome: Outcome) -> None:
        from mlflow.entities import Metric

        result = outcome.result or {}
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in result.get("metrics", {}).items()
                   if _is_number(v)]
        if "elapsed_s" in result:
            metrics.append(Metric("train_time_s" if outcome.job.stage == "targets"
                                  else "elapsed_s", float(result["elapsed_s"]), now, 0))
        for name, values in result.get("series", {}).items():
            metrics.extend(Metric(name, float(v), now, step) for step, v in enumerate(values)
                           if _is_number(v))
        for start in range(0, len(metrics), 900):
            self.client.log_batch(run_id, metrics=metrics[start:start + 900])
        for section in ("hardware", "versions"):
            if section in result:
                self.client.set_tag(run_id, f"lsmia.{section}", json.dumps(result[section]))
        if "finished_at" in result:
            self.client.set_tag(run_id, "lsmia.finished_at", result["finished_at"])
        for key, value in flatten(result.get("info", {}), "info.").items():
            self.client.set_tag(run_id, key, str(value)[:5000])
        if outcome.artifact_dir is not None:
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
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], _param_text(v)) for k, v in params.items()]
        for start in range(0, len(items), 90):
            self.client.log_batch(run_id, params=items[start:start + 90])


def _param_text(value: Any) -> str:
    structured = isinstance(value, list | dict | bool) or value is None
    text = json.dumps(value) if structured else str(value)
    return text[:6000]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        math.isfinite(value) or math.isnan(value))
