"""MLflow recording, done by the driver only: a parent run per invocation, a child per trial.

What a run holds is decided by :mod:`lsmia_bench.kernel.records` (the one mapping, which the
leaderboard reads back through); this module only does the MLflow calls and the artifacts.

Tracking is never on the scheduling path: :class:`AsyncTracker` hands every MLflow call to one
background thread, in order. When the store fails (a server gone, a full disk), trials keep
running and caching; the thread retries the record at the head of its queue with a growing
pause (:data:`RETRY_DELAYS_S`), and MLflow's own HTTP retries are kept short
(:data:`MLFLOW_HTTP_DEFAULTS`). At the end of the run it waits at most ``LSMIA_TRACKING_GRACE_S``
seconds (default :data:`DEFAULT_GRACE_S`) for a store that is still failing, then gives up: the
run ends with one line and exit status :data:`EXIT_TRACKING_INCOMPLETE`, and stays resumable.

Logging a trial is idempotent: its child run is found by the trial's key (tag
``lsmia.job_key``) under the parent and completed or reused, so a retried, resumed or repeated
log never makes a second child and never leaves one RUNNING.

A SQLite store is created atomically (schema built in a temporary file, then linked into
place), and one left half-created by an earlier tool or a full disk is named with the command
that removes it (:func:`prepare_sqlite_store`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lsmia_bench.benchmark.runner import Outcome
from lsmia_bench.kernel.errors import UserError
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

if TYPE_CHECKING:
    from lsmia_bench.benchmark.state import Invocation, InvocationStore

log = logging.getLogger("lsmia_bench")

#: Exit status of a run whose trials all finished but whose records did not all reach the
#: tracking store (documented in docs/faults.md); ``--resume`` logs the rest.
EXIT_TRACKING_INCOMPLETE = 3
#: MLflow's HTTP client defaults (7 retries, 120 s timeouts) hold one call for minutes; these
#: apply unless the environment sets them.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
#: Pauses between tries of a record the store refused (the last one repeats).
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
#: How long the end of a run waits for a store that is still failing.
DEFAULT_GRACE_S = 60.0
#: Time one MLflow call may still take after the grace (HTTP timeout x tries, plus margin).
CALL_MARGIN_S = 30.0

#: MLflow tag of a trial run: the id of the Ray node that ran it (trials run now only).
NODE_TAG = "lsmia.ray_node_id"

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

        for name, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root).resolve()
        prepare_sqlite_store(tracking_uri, self.artifact_root)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id: str | None = None
        self.invocation: InvocationRecord | None = None
        #: job key -> the record of the trial's run, as logged by this process.
        self.trials: dict[str, TrialRecord] = {}
        #: job key -> (child run id, MLflow status, lsmia.status tag) of children under the
        #: parent: those of a resumed parent, and those this process created.
        self.children: dict[str, tuple[str, str, str]] = {}
        self._new_parent: str | None = None

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
        if resume_run_id and self._exists(resume_run_id):
            # The parent run keeps its first start time (and tags); only its status changes.
            record.started_ms = int(self.client.get_run(resume_run_id).info.start_time or 0)
            self.client.set_tag(resume_run_id, Tag.RESUMED, "true")
            self.client.update_run(resume_run_id, status="RUNNING")
            self.children = self._children_of(resume_run_id)
            return resume_run_id
        fields = invocation_to_mlflow(record, config)
        if self._new_parent is None:  # a retried start goes on with the parent it made
            run = self.client.create_run(self.experiment_id, start_time=record.started_ms,
                                         run_name=f"{suite}-{invocation}", tags=fields.tags)
            self._new_parent = run.info.run_id
        record.run_id = self._new_parent
        self._log_fields(record.run_id, fields)
        self.client.log_text(record.run_id, json.dumps(config, indent=2), "config.json")
        return record.run_id

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                log.warning("parent run %s is not in the tracking store; a new one is made",
                            run_id)
                return False
            raise
        return True

    def _children_of(self, parent_run_id: str) -> dict[str, tuple[str, str, str]]:
        """Job key -> (run id, status, lsmia.status) of the children under a parent; where
        an earlier version left two for one key, the finished one (else the latest)."""
        assert self.experiment_id is not None
        found: dict[str, tuple[str, str, str]] = {}
        token = None
        runs = []
        while True:
            page = self.client.search_runs(
                [self.experiment_id], f"tags.`{Tag.PARENT}` = '{parent_run_id}'",
                max_results=1000, page_token=token, order_by=["attributes.start_time ASC"])
            runs.extend(page)
            token = page.token
            if not token:
                break
        for run in runs:
            key = run.data.tags.get(Tag.JOB_KEY)
            if key and (key not in found or run.info.status == "FINISHED"):
                found[key] = (run.info.run_id, run.info.status,
                              run.data.tags.get(Tag.STATUS, ""))
        return found

    def log_outcome(self, outcome: Outcome, suite: str) -> TrialRecord:
        """The child run of one trial outcome; returns its record (with the run id).

        Idempotent: a child of the same job key under this parent (left RUNNING by a crash or
        a lost store, FAILED by an earlier try, or already finished) is completed or reused,
        never duplicated."""
        assert self.experiment_id is not None and self.parent_run_id is not None
        record = outcome_record(outcome, suite, parent_run_id=self.parent_run_id,
                                started_ms=_now_ms())
        fields = trial_to_mlflow(record)
        node = ((outcome.result or {}).get("worker") or {}).get("node_id")
        if node and outcome.status == "finished":
            # Which Ray node ran the trial (a cached trial ran in an earlier run): on a cluster
            # of several nodes on one host only the node id tells them apart.
            fields.tags[NODE_TAG] = str(node)
        existing = self.children.get(record.job_key)
        if existing is None:
            run = self.client.create_run(self.experiment_id, start_time=record.started_ms,
                                         run_name=record.name, tags=fields.tags)
            record.run_id = run.info.run_id
            self.children[record.job_key] = (record.run_id, "RUNNING", record.status)
            self._log_fields(record.run_id, fields)
        else:
            record.run_id, status, logged_as = existing
            if status == "FINISHED" and logged_as in ("finished", "cached") and outcome.ok:
                self.trials[record.job_key] = record  # logged before; reused as it is
                return record
            self._complete(record.run_id, fields)
        self._log_artifacts(record.run_id, outcome)
        status = "FINISHED" if outcome.ok else "FAILED"
        self.client.set_terminated(record.run_id, status=status)
        self.children[record.job_key] = (record.run_id, status, record.status)
        self.trials[record.job_key] = record
        return record

    def _complete(self, run_id: str, fields: MlflowFields) -> None:
        """Bring an existing child up to ``fields``: tags set (a stale error removed), params
        and metric steps it lacks logged (nothing is logged twice)."""
        from mlflow.entities import Metric, Param

        run = self.client.get_run(run_id)
        for key, value in fields.tags.items():
            if run.data.tags.get(key) != value:
                self.client.set_tag(run_id, key, value)
        if Tag.ERROR in run.data.tags and Tag.ERROR not in fields.tags:
            self.client.delete_tag(run_id, Tag.ERROR)
        params = [Param(k, v) for k, v in fields.params.items() if k not in run.data.params]
        for start in range(0, len(params), 90):
            self.client.log_batch(run_id, params=params[start:start + 90])
        now = _now_ms()
        metrics = []
        for key, values in fields.metrics.items():
            have = ({m.step for m in self.client.get_metric_history(run_id, key)}
                    if key in run.data.metrics else set())
            metrics += [Metric(key, value, now, step) for step, value in enumerate(values)
                        if step not in have]
        for start in range(0, len(metrics), 900):
            self.client.log_batch(run_id, metrics=metrics[start:start + 900])

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

    def log_run_metrics(self, metrics: dict[str, float]) -> None:
        """Run-level figures (e.g. orchestration efficiency) on the parent run."""
        from mlflow.entities import Metric

        if metrics and self.parent_run_id:
            now = _now_ms()
            self.client.log_batch(self.parent_run_id, metrics=[
                Metric(key, float(value), now, 0) for key, value in metrics.items()])

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


@dataclass
class TrackingResult:
    """How the recording of a run ended (:meth:`AsyncTracker.close`)."""

    uri: str
    complete: bool = True
    #: Names of trials (and "parent run", "report", ...) whose records did not reach the store.
    unlogged: list[str] = field(default_factory=list)
    error: str | None = None
    #: The store failed because its disk is full (the CLI names the folder, exit 2).
    disk_full: bool = False
    #: Trials of this run that finished or were cached: safe in the cache whatever happened.
    safe: int = 0

    @property
    def problem(self) -> str | None:
        """The one line that ends a run whose records are incomplete (None when complete)."""
        if self.complete:
            return None
        if urlsplit(self.uri).scheme in ("http", "https"):
            return (f"tracking server unreachable at {self.uri}; {self.safe} trials are safe in "
                    "the cache; run again with --resume when it is back")
        return (f"tracking store {self.uri} failed ({self.error}); {self.safe} trials are safe "
                "in the cache; run again with --resume when it works")


@dataclass
class _Call:
    what: str
    fn: Callable[[], None]


_STOP = _Call("stop", lambda: None)


class AsyncTracker:
    """The driver's view of a :class:`Tracker`: every call returns at once and is done, in
    order, by one background thread (see the module docstring for the retry policy).

    The invocation's state file learns the parent run id and each logged trial as they land,
    so ``--resume`` continues the same parent and skips what is already recorded."""

    def __init__(self, tracker: Tracker, invocations: InvocationStore,
                 invocation: Invocation) -> None:
        self.tracker = tracker
        self.invocations = invocations
        self.state = invocation
        self.uri = tracker.tracking_uri
        self._queue: queue.Queue[_Call] = queue.Queue()
        self._pending: list[str] = []  # what of the queue (and the call in hand) is not done
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._deadline: float | None = None  # set by close()
        self._error: BaseException | None = None
        self._safe = 0
        # MLflow's SQL store logs each failed write with a full traceback; the worker says it in
        # one line (and retries), so those are left out.
        logging.getLogger("mlflow.store.db.utils").addFilter(_quiet_store_errors)
        self._thread = threading.Thread(target=self._work, name="lsmia-tracking", daemon=True)
        self._thread.start()

    # The driver's calls: none of them waits for MLflow.
    @property
    def invocation(self) -> InvocationRecord | None:
        return self.tracker.invocation

    @property
    def trials(self) -> dict[str, TrialRecord]:
        return self.tracker.trials

    def start(self, suite: str, invocation: str, config: dict[str, Any], config_hash: str,
              source: str) -> None:
        def call() -> None:
            run_id = self.tracker.start(suite, invocation, config, config_hash, source,
                                        resume_run_id=self.state.parent_run_id)
            self.state.parent_run_id = run_id
            self._save()

        self._put("parent run", call)

    def log_outcome(self, outcome: Outcome, suite: str) -> None:
        key = outcome.job.key
        if outcome.ok:
            self._safe += 1
        if key in self.state.logged:  # recorded by an earlier process of this invocation
            return

        def call() -> None:
            trial = self.tracker.log_outcome(outcome, suite)
            if outcome.ok:  # a failed trial is tried again on --resume and its child reused
                self._save(key, trial.run_id)

        self._put(outcome.job.name, call)

    def log_report(self, files: list[Path], table_csv: Path) -> None:
        self._put("report", lambda: self.tracker.log_report(files, table_csv))

    def log_run_metrics(self, metrics: dict[str, float]) -> None:
        self._put("run metrics", lambda: self.tracker.log_run_metrics(metrics))

    def finish(self, status: str) -> None:
        self._put(f"parent run status {status}", lambda: self.tracker.finish(status))

    def close(self, grace_s: float | None = None) -> TrackingResult:
        """Wait until every record is in the store, or until the store has kept failing for
        ``grace_s`` seconds (default: ``LSMIA_TRACKING_GRACE_S`` or 60; none when its disk is
        full) plus the time one MLflow call may take."""
        if grace_s is None:
            grace_s = float(os.environ.get("LSMIA_TRACKING_GRACE_S", DEFAULT_GRACE_S))
        if self._error is not None and _disk_full(self._error):
            grace_s = 0.0
        self._deadline = time.monotonic() + grace_s
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(grace_s + CALL_MARGIN_S)
        with self._lock:
            unlogged = list(self._pending)
        error = self._error
        return TrackingResult(
            self.uri, complete=not unlogged, unlogged=unlogged,
            error=_short(error) if error is not None and unlogged else None,
            disk_full=bool(unlogged) and error is not None and _disk_full(error),
            safe=self._safe)

    # The background thread.
    def _put(self, what: str, fn: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(what)
        self._queue.put(_Call(what, fn))

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is _STOP:
                return
            if not self._run(call):
                return  # given up: the rest stays pending

    def _run(self, call: _Call) -> bool:
        """Try ``call`` until it succeeds (True) or close()'s deadline passes (False)."""
        tries = 0
        while True:
            try:
                call.fn()
            except Exception as exc:  # the store refused: keep the record, try again later
                if self._error is None:
                    log.warning("tracking store %s failed (%s); trials go on, their records "
                                "wait and are tried again", self.uri, _short(exc))
                self._error = exc
                deadline = self._deadline
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                delay = RETRY_DELAYS_S[min(tries, len(RETRY_DELAYS_S) - 1)]
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - time.monotonic()))
                tries += 1
                if self._wake.wait(delay):  # close() cut the pause short: try again now
                    self._wake.clear()
                continue
            if self._error is not None:
                log.info("tracking store %s answers again; logging the waiting records",
                         self.uri)
                self._error = None
            with self._lock:
                self._pending.remove(call.what)
            return True

    def _save(self, key: str | None = None, run_id: str | None = None) -> None:
        """The invocation's state file; its disk being full costs nothing here (a resumed run
        finds the child by its key)."""
        try:
            if key is None:
                self.invocations.save(self.state)
            else:
                self.invocations.mark_logged(self.state, key, run_id or "")
        except OSError as exc:
            log.debug("could not update the invocation state: %s", exc)


def _quiet_store_errors(record: logging.LogRecord) -> bool:
    return not (record.exc_info and str(record.msg).startswith("SQLAlchemy database error"))


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _disk_full(exc: BaseException) -> bool:
    from lsmia_bench.benchmark.preflight import is_disk_full

    return is_disk_full(exc)


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI (None for other stores and in-memory ones)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        return None
    return Path(path if path.startswith("/") else path).expanduser().resolve()


def prepare_sqlite_store(uri: str, artifact_root: Path | None = None) -> None:
    """Make a SQLite MLflow store usable before any trial runs.

    A missing (or empty) store is created atomically: MLflow's schema is built in a temporary
    file beside it, which is then linked into place, so a full disk or a kill leaves no
    half-created store. An existing store whose schema is incomplete (left by MLflow creating
    it in place and failing, e.g. ``table spans already exists`` on every later run) or out of
    date is refused with a UserError that says exactly what to remove or run."""
    path = sqlite_path(uri)
    if path is None:
        return
    option = "--results" if artifact_root is not None and path.parent == Path(
        artifact_root).parent else "--tracking-uri"
    if path.is_file() and path.stat().st_size > 0:
        _check_sqlite_schema(path, uri, option)
        return
    _create_sqlite_store(path, option)


def store_cache_dir() -> Path:
    """Where facts about this MLflow version are kept between runs: ``$LSMIA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/lsmia-bench``, else ``~/.cache/lsmia-bench``."""
    chosen = os.environ.get("LSMIA_CACHE_DIR")
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "lsmia-bench"


def _cached(name: str, make: Callable[[Path], None]) -> Path | None:
    """``store_cache_dir()/name``, made once by ``make(tmp)`` and renamed into place (so a
    reader never sees half of it); None when the folder cannot be written."""
    target = store_cache_dir() / name
    if target.is_file() and target.stat().st_size > 0:
        return target
    tmp = target.with_name(f".{name}.{os.getpid()}-{secrets.token_hex(3)}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        make(tmp)
        os.replace(tmp, target)
    except Exception:  # noqa: BLE001 - a cache only: the caller does the work itself
        log.debug("cannot write %s", target, exc_info=True)
        return None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return target


def _schema_facts() -> tuple[set[str], str]:
    """The tables and the schema revision this MLflow expects. Finding the revision loads
    every one of MLflow's migration scripts (seconds), so it is kept per MLflow version."""
    import mlflow

    def make(tmp: Path) -> None:
        import mlflow.store.db.utils as db_utils
        from mlflow.store.db.base_sql_model import Base

        tmp.write_text(json.dumps({"tables": sorted(Base.metadata.tables),
                                   "head": db_utils._get_latest_schema_revision()}))

    found = _cached(f"mlflow-{mlflow.__version__}-schema.json", make)
    if found is None:
        import mlflow.store.db.utils as db_utils
        from mlflow.store.db.base_sql_model import Base

        return set(Base.metadata.tables), db_utils._get_latest_schema_revision()
    facts = json.loads(found.read_text())
    return set(facts["tables"]), facts["head"]


def _build_store(path: Path) -> None:
    """An empty MLflow store at ``path``, built and checked by MLflow itself."""
    import mlflow.store.db.utils as db_utils
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        db_utils._initialize_tables(engine)
        db_utils._verify_schema(engine)
    finally:
        engine.dispose()


def _empty_store_template() -> Path | None:
    """An empty store of this MLflow version, built once per machine: a new store is a copy of
    it instead of MLflow's hundred-odd schema migrations (seconds for every new store)."""
    import mlflow

    return _cached(f"mlflow-{mlflow.__version__}-empty.db", _build_store)


def _check_sqlite_schema(path: Path, uri: str, option: str) -> None:
    from lsmia_bench.benchmark.preflight import quote

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = (db.execute("SELECT version_num FROM alembic_version").fetchone()
                        if "alembic_version" in tables else None)
            runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables \
                else 0
    except sqlite3.DatabaseError as exc:
        raise UserError(option, str(path), f"Move it aside (mv {quote(str(path))} "
                        f"{quote(str(path) + '.broken')}) and run again.",
                        problem=f"the MLflow store cannot be read ({exc})") from None
    if not (tables - {"alembic_version"}):
        return  # an empty database: MLflow fills it (nothing to lose)
    expected, head = _schema_facts()
    if not expected <= tables:
        if runs == 0:
            fix = (f"Remove it (rm {quote(str(path))}; it holds no runs) and run again; it is "
                   "then created whole.")
        else:
            fix = (f"Move it aside (mv {quote(str(path))} {quote(str(path) + '.broken')}) "
                   "and run again.")
        raise UserError(option, str(path), fix, problem="the MLflow store was left "
                        "half-created (creating its tables failed, e.g. on a full disk)")
    if revision is None or revision[0] != head:
        raise UserError(option, str(path), f"Back it up, then run: mlflow db upgrade "
                        f"{quote(uri)}", problem=f"the MLflow store's schema is "
                        f"{revision[0] if revision else 'unknown'}, this MLflow needs {head}")


def _create_sqlite_store(path: Path, option: str) -> None:
    from lsmia_bench.benchmark.preflight import disk_full_error, is_disk_full

    template = _empty_store_template()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        if template is not None:
            shutil.copyfile(template, tmp)
        else:
            _build_store(tmp)
        if path.is_file() and path.stat().st_size == 0:
            os.replace(tmp, path)  # an empty file (e.g. touched): nothing in it to lose
        else:
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(path.parent, option) from None
        raise
    finally:
        for leftover in path.parent.glob(f"{tmp.name}*"):
            leftover.unlink(missing_ok=True)

