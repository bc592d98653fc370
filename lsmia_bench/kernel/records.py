"""The record of a trial and of an invocation, where results live on disk, and the one mapping
between a record and an MLflow run (tags, params, metrics) in both directions.

Pure on purpose (no MLflow import): the writer (``benchmark.tracking``), the reader
(``leaderboard.records``) and ``submit`` all go through these functions, so a tag name or a
folder name is spelled here only and the two directions cannot drift apart.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

#: MLflow experiments of lsmia-bench are named ``<prefix><suite>``.
EXPERIMENT_PREFIX = "lsmia-bench/"
OK_STATUSES = ("finished", "cached")
# MLflow refuses longer keys and values; the error and info texts are cut shorter so a whole
# run's tags stay small.
MAX_PARAM_KEY, MAX_PARAM_TEXT, MAX_ERROR_TEXT, MAX_INFO_TEXT = 250, 6000, 4000, 5000


class ResultsLayout:
    """Where everything lives under one ``--results`` folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    @property
    def cache(self) -> Path:
        """Finished trials' artifacts, by job key (what a re-run reuses)."""
        return self.root / "cache"

    @property
    def mlflow_db(self) -> Path:
        """The SQLite file of the default MLflow store."""
        return self.root / "mlflow.db"

    @property
    def mlartifacts(self) -> Path:
        """Artifacts of that store's runs."""
        return self.root / "mlartifacts"

    @property
    def invocations(self) -> Path:
        """One state file per invocation (for --resume)."""
        return self.root / "invocations"

    @property
    def submissions(self) -> Path:
        """Current submission records, one per name."""
        return self.root / "submissions"

    @property
    def ray(self) -> Path:
        """Ray Tune's storage of each stage."""
        return self.root / "ray"

    @property
    def superseded(self) -> Path:
        """Cached trials that a submission trained afresh."""
        return self.root / "superseded"

    @property
    def lock(self) -> Path:
        """Held by the one run that uses the folder."""
        return self.root / ".lock"

    @property
    def submission_history(self) -> Path:
        """Records that ``submit --replace`` replaced."""
        return self.submissions / "history"

    @property
    def tracking_uri(self) -> str:
        """The default MLflow store: a SQLite file in the folder."""
        return f"sqlite:///{self.mlflow_db.as_posix()}"

    def reports(self, suite: str, invocation: str) -> Path:
        return self.root / "reports" / suite / invocation

    def submission(self, name: str) -> Path:
        return self.submissions / f"{name}.json"

    def foreign_artifact_locations(self) -> list[tuple[str, str]]:
        """(experiment, artifact location) of the lsmia-bench experiments in this folder's
        SQLite store whose artifacts lie outside the folder: the folder was copied or moved,
        and MLflow, which keeps absolute locations, would write into the original."""
        if not self.mlflow_db.is_file():
            return []
        with _store(self.mlflow_db) as db:
            rows = db.execute("SELECT name, artifact_location FROM experiments WHERE name "
                              "LIKE ?", (EXPERIMENT_PREFIX + "%",)).fetchall()
        inside = self.mlartifacts.as_uri() + "/"
        return [(name, location) for name, location in rows
                if location and not (location + "/").startswith(inside)]

    def relocate(self) -> list[tuple[str, str]]:
        """Point the store's artifact locations at this folder's ``mlartifacts/``: every
        ``file:`` location ``.../mlartifacts/REST`` (of experiments, runs and logged models)
        becomes ``<this folder>/mlartifacts/REST``. Returns (old, new) experiment locations.
        Locations elsewhere (an artifact server) are left alone and stay foreign."""
        moved = []
        new_root = self.mlartifacts.as_uri()
        with _store(self.mlflow_db) as db:
            for _experiment, old in self.foreign_artifact_locations():
                head, sep, _ = old.rpartition("/mlartifacts/")
                if not (sep and old.startswith("file:")):
                    continue
                prefix = head + "/mlartifacts"
                for table, column in (("experiments", "artifact_location"),
                                      ("runs", "artifact_uri"),
                                      ("logged_models", "artifact_location")):
                    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = ?", (table,)).fetchone():
                        db.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                                   f"WHERE substr({column}, 1, ?) = ?",
                                   (new_root, len(prefix) + 1, len(prefix) + 1, prefix + "/"))
                moved.append((old, new_root + old[len(prefix):]))
        return moved


def summary_metrics(rows: list[dict[str, Any]], columns: list[str]) -> dict[str, float]:
    """The run's summary for its MLflow parent run, so that the UI's run list compares
    invocations: per entry (``defense`` label, or ``entry``), the mean over its trials of each
    column (test accuracy and each attack's ranking metric), as
    ``summary/<entry>/<column>``; characters MLflow refuses in a key become ``_``."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        label = row.get("entry") or row.get("defense")
        if not label:
            continue
        for column in columns:
            value = row.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and math.isfinite(value):
                key = f"summary/{_metric_key(str(label))}/{_metric_key(column)}"
                sums.setdefault(key, []).append(float(value))
    return {key: sum(values) / len(values) for key, values in sums.items()}


def _metric_key(text: str) -> str:
    """MLflow metric keys allow letters, digits, ``_ - . /`` and spaces."""
    return "".join(c if c.isalnum() or c in "_-. " else "_" for c in text).strip("_") or "_"


class _store:  # noqa: N801 (a context manager used like a function)
    """A SQLite connection committed and closed on leaving (``sqlite3``'s own context manager
    commits but leaves the file open)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30)

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.db.commit()
        self.db.close()


class Tag:
    """MLflow tag names; ``mlflow.*`` are MLflow's own, the rest ours."""

    PARENT = "mlflow.parentRunId"
    RUN_NAME = "mlflow.runName"
    KIND = "lsmia.kind"  # "trial" or "invocation"
    SUITE = "lsmia.suite"
    STAGE = "lsmia.stage"
    JOB_KEY = "lsmia.job_key"
    TASK = "lsmia.task"
    STATUS = "lsmia.status"
    CACHED = "lsmia.cached"  # derived from the status, for filtering in the MLflow UI
    ERROR = "lsmia.error"
    FINISHED_AT = "lsmia.finished_at"
    HARDWARE = "lsmia.hardware"  # JSON
    VERSIONS = "lsmia.versions"  # JSON
    NEEDS = "lsmia.needs."  # + role -> job key
    INFO = "info."  # + flattened key of the trial's info
    INVOCATION = "lsmia.invocation"
    CONFIG_HASH = "lsmia.config_hash"
    CONFIG_SOURCE = "lsmia.config_source"
    RESUMED = "lsmia.resumed"


LABEL_PARAM, SPEC_PARAM = "label.", "spec."


@dataclass
class Artifact:
    path: str  # relative to the run's artifact root, as MLflow lists it
    size: int | None = None


@dataclass
class TrialRecord:
    """One trial (a trained target, an attack, a prerequisite) as the board and ``submit`` see
    it: labels and spec are MLflow param texts, metrics finite scalars, series curves."""

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
    task: str = ""
    info: dict[str, str] = field(default_factory=dict)

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
    status: str = ""  # MLflow's run status: RUNNING, FINISHED, FAILED, KILLED
    versions: dict[str, Any] = field(default_factory=dict)
    images: list[Artifact] = field(default_factory=list)


class MlflowFields(NamedTuple):
    """What a run holds besides its attributes (id, name, start time, status)."""

    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, list[float]]  # values at steps 0, 1, ...; one value for a scalar


def experiment_name(suite: str) -> str:
    return EXPERIMENT_PREFIX + suite


def suite_of(experiment: str) -> str | None:
    """The suite of an lsmia-bench experiment name; None for any other experiment."""
    return experiment.removeprefix(EXPERIMENT_PREFIX) if experiment.startswith(
        EXPERIMENT_PREFIX) else None


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


def param_texts(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flattened ``data`` as MLflow keeps params: strings, JSON for structures, cut to size."""
    return {key[:MAX_PARAM_KEY]: _param_text(value) for key, value in flatten(data, prefix).items()}


def trial_from_result(*, suite: str, stage: str, job_key: str, task: str, name: str,
                      status: str, labels: dict[str, Any], spec: dict[str, Any],
                      needs: dict[str, str], result: dict[str, Any] | None,
                      error: str | None, run_id: str = "", parent_run_id: str | None = None,
                      started_ms: int = 0) -> TrialRecord:
    """The record of a trial from what its job and its result file hold, in the form that
    :func:`trial_from_mlflow` reads back (texts, finite numbers, curves of two points or more)."""
    result = result or {}
    metrics = {k: float(v) for k, v in (result.get("metrics") or {}).items() if _finite(v)}
    if _finite(result.get("elapsed_s")):  # a target's time is its training time
        metrics["train_time_s" if stage == "targets" else "elapsed_s"] = float(
            result["elapsed_s"])
    series: dict[str, list[float]] = {}
    for key, values in (result.get("series") or {}).items():
        points = [float(v) for v in values if _number(v)]
        if len(points) > 1:
            series[key] = points
            metrics.pop(key, None)
        elif points and _finite(points[0]):
            metrics.setdefault(key, points[0])
    return TrialRecord(
        run_id=run_id, suite=suite, stage=stage, job_key=job_key, status=status,
        started_ms=started_ms, labels=_strip(param_texts(labels, LABEL_PARAM), LABEL_PARAM),
        spec=_strip(param_texts(spec, SPEC_PARAM), SPEC_PARAM), metrics=metrics,
        series=series, needs=dict(needs), error=error[:MAX_ERROR_TEXT] if error else None,
        name=name, parent_run_id=parent_run_id, finished_at=result.get("finished_at"),
        hardware=_as_dict(result.get("hardware")), versions=_as_dict(result.get("versions")),
        task=task, info={k: str(v)[:MAX_INFO_TEXT]
                         for k, v in flatten(result.get("info") or {}).items()})


def trial_to_mlflow(trial: TrialRecord) -> MlflowFields:
    """A trial record as its MLflow child run's tags, params and metrics."""
    tags = {Tag.KIND: "trial", Tag.SUITE: trial.suite, Tag.STAGE: trial.stage,
            Tag.JOB_KEY: trial.job_key, Tag.STATUS: trial.status,
            Tag.CACHED: str(trial.status == "cached").lower()}
    optional = {Tag.RUN_NAME: trial.name, Tag.TASK: trial.task, Tag.PARENT: trial.parent_run_id,
                Tag.ERROR: trial.error, Tag.FINISHED_AT: trial.finished_at,
                Tag.HARDWARE: _json(trial.hardware), Tag.VERSIONS: _json(trial.versions)}
    tags |= {k: v for k, v in optional.items() if v}
    tags |= {Tag.NEEDS + role: key for role, key in trial.needs.items()}
    tags |= {Tag.INFO + key: value for key, value in trial.info.items()}
    params = {LABEL_PARAM + k: v for k, v in trial.labels.items()}
    params |= {SPEC_PARAM + k: v for k, v in trial.spec.items()}
    metrics = {k: [v] for k, v in trial.metrics.items()} | dict(trial.series)
    return MlflowFields(tags, params, metrics)


def trial_from_mlflow(run_id: str, fields: MlflowFields, *, suite: str, started_ms: int,
                      run_name: str = "", run_status: str = "") -> TrialRecord:
    """The inverse of :func:`trial_to_mlflow`. A metric given with several values is a curve;
    a reader that passes only the latest values gets no curves."""
    tags, params = fields.tags, fields.params
    metrics = {k: v[-1] for k, v in fields.metrics.items() if len(v) == 1 and _finite(v[-1])}
    return TrialRecord(
        run_id=run_id, suite=tags.get(Tag.SUITE, suite), stage=tags.get(Tag.STAGE, ""),
        job_key=tags.get(Tag.JOB_KEY, run_id),
        status=tags.get(Tag.STATUS) or ("finished" if run_status == "FINISHED" else "failed"),
        started_ms=started_ms, labels=_strip(params, LABEL_PARAM),
        spec=_strip(params, SPEC_PARAM), metrics=metrics,
        series={k: [float(x) for x in v] for k, v in fields.metrics.items() if len(v) > 1},
        needs=_strip(tags, Tag.NEEDS), error=tags.get(Tag.ERROR),
        name=tags.get(Tag.RUN_NAME, run_name), parent_run_id=tags.get(Tag.PARENT),
        finished_at=tags.get(Tag.FINISHED_AT), hardware=_json_dict(tags.get(Tag.HARDWARE)),
        versions=_json_dict(tags.get(Tag.VERSIONS)), task=tags.get(Tag.TASK, ""),
        info=_strip(tags, Tag.INFO))


def invocation_to_mlflow(invocation: InvocationRecord, config: dict[str, Any]
                         ) -> MlflowFields:
    """An invocation as its MLflow parent run: the suite configuration is its params."""
    tags = {Tag.KIND: "invocation", Tag.SUITE: invocation.suite,
            Tag.INVOCATION: invocation.invocation, Tag.CONFIG_HASH: invocation.config_hash,
            Tag.CONFIG_SOURCE: invocation.config_source}
    if invocation.versions:
        tags[Tag.VERSIONS] = _json(invocation.versions)
    params = param_texts(config)
    if invocation.description:
        params["description"] = invocation.description
    return MlflowFields(tags, params, {})


def invocation_from_mlflow(run_id: str, fields: MlflowFields, *, suite: str, started_ms: int,
                           run_status: str = "") -> InvocationRecord:
    tags = fields.tags
    return InvocationRecord(
        run_id=run_id, suite=tags.get(Tag.SUITE, suite),
        invocation=tags.get(Tag.INVOCATION, run_id), started_ms=started_ms,
        config_hash=tags.get(Tag.CONFIG_HASH, ""), config_source=tags.get(Tag.CONFIG_SOURCE, ""),
        description=fields.params.get("description", ""), status=run_status,
        versions=_json_dict(tags.get(Tag.VERSIONS)))


def _param_text(value: Any) -> str:
    structured = isinstance(value, list | dict | bool) or value is None
    return (json.dumps(value) if structured else str(value))[:MAX_PARAM_TEXT]


def _strip(mapping: dict[str, str], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in mapping.items() if k.startswith(prefix)}


def _json(value: dict[str, Any]) -> str | None:
    return json.dumps(value) if value else None


def _json_dict(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"value": text}
    return _as_dict(value)


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _number(value: Any) -> bool:
    """A number MLflow stores: finite or NaN (a curve may hold NaN points), never inf."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isinf(
        value)


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)
