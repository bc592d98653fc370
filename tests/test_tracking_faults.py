"""Tracking faults without Ray: logging never blocks the driver, a trial's child run is found
by its key and completed (never duplicated), a SQLite store is never left half-created."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.runner import Outcome
from lsmia_bench.benchmark.state import Invocation, InvocationStore
from lsmia_bench.benchmark.tracking import AsyncTracker, Tracker, prepare_sqlite_store
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import ResultsLayout, Tag

TARGET = Job("targets", "pkg.tasks:train", "target none", {"seed": 0}, labels={"seed": 0})
ATTACK = Job("attacks", "pkg.tasks:attack", "attack sgd", {"attack": "sgd"},
             needs={"target": TARGET.key})
RESULT = {"metrics": {"test_accuracy": 0.8}, "series": {"loss": [1.0, 0.7, 0.4]},
          "elapsed_s": 1.5}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultsLayout:
    """One SQLite store for the module (creating MLflow's schema takes seconds)."""
    layout = ResultsLayout(tmp_path_factory.mktemp("store"))
    prepare_sqlite_store(layout.tracking_uri, layout.mlartifacts)
    return layout


def _children(tracker: Tracker, parent: str) -> list:
    return tracker.client.search_runs([tracker.experiment_id],
                                      f"tags.`{Tag.PARENT}` = '{parent}'")


def test_a_trial_left_running_or_failed_is_completed_not_duplicated(store, monkeypatch):
    first = Tracker(store.tracking_uri, store.mlartifacts)
    parent = first.start("toy", "inv-a", {"name": "toy"}, "h", "src")

    def store_lost(*args: object) -> None:
        raise ConnectionError("store lost")

    # The store goes away after the child was created: it is left RUNNING.
    monkeypatch.setattr(first, "_log_artifacts", store_lost)
    with pytest.raises(ConnectionError):
        first.log_outcome(Outcome(TARGET, "finished", RESULT), "toy")
    monkeypatch.undo()
    first.log_outcome(Outcome(ATTACK, "failed", error="boom"), "toy")
    assert sorted(r.info.status for r in _children(first, parent)) == ["FAILED", "RUNNING"]

    # A resumed process (a new tracker) finds both by their key and completes them.
    second = Tracker(store.tracking_uri, store.mlartifacts)
    assert second.start("toy", "inv-a", {"name": "toy"}, "h", "src", resume_run_id=parent) \
        == parent
    logged = [second.log_outcome(Outcome(TARGET, "finished", RESULT), "toy"),
              second.log_outcome(Outcome(ATTACK, "finished", {"metrics": {"steps": 3}}), "toy")]
    second.log_outcome(Outcome(TARGET, "cached", RESULT), "toy")  # a repeat: reused as it is
    children = _children(second, parent)
    assert len(children) == 2
    assert {r.info.run_id for r in children} == {t.run_id for t in logged}
    assert {r.info.status for r in children} == {"FINISHED"}
    by_key = {r.data.tags[Tag.JOB_KEY]: r for r in children}
    assert Tag.ERROR not in by_key[ATTACK.key].data.tags
    assert by_key[ATTACK.key].data.tags[Tag.STATUS] == "finished"
    history = second.client.get_metric_history(by_key[TARGET.key].info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]  # no step logged twice


def test_a_dead_server_never_blocks_the_driver(tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    invocation = Invocation.new("toy", "h", uri)
    tracker = AsyncTracker(Tracker(uri, tmp_path / "art"), InvocationStore(tmp_path),
                           invocation)
    started = time.monotonic()
    tracker.start("toy", invocation.id, {"name": "toy"}, "h", "src")
    for job in (TARGET, ATTACK):
        tracker.log_outcome(Outcome(job, "finished", RESULT), "toy")
    tracker.finish("FINISHED")
    assert time.monotonic() - started < 0.5  # the driver never waited for MLflow
    result = tracker.close(grace_s=1)
    assert time.monotonic() - started < 40
    assert not result.complete and result.safe == 2
    assert result.unlogged[0] == "parent run" and "target none" in result.unlogged
    assert result.problem == (f"tracking server unreachable at {uri}; 2 trials are safe in the "
                              "cache; run again with --resume when it is back")
    assert invocation.parent_run_id is None and invocation.logged == {}


def _tmpfs(folder: Path, size: str) -> Path:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    return folder


def test_a_store_is_never_left_half_created(tmp_path, run_cli):
    """MLflow creating its schema in place on a 300 KB disk leaves a half-created store (every
    later run: ``table spans already exists``); such a store is named with the command that
    removes it, and the store this tool creates on that disk leaves nothing behind."""
    import mlflow.store.db.utils as db_utils
    import sqlalchemy

    disk = _tmpfs(tmp_path / "disk", "300k")
    try:
        engine = sqlalchemy.create_engine(f"sqlite:///{disk / 'mlflow.db'}")
        with pytest.raises(Exception, match="full"):  # what MLflow itself does
            db_utils._initialize_tables(engine)
        engine.dispose()
        half = (disk / "mlflow.db").read_bytes()
        (disk / "mlflow.db").unlink()

        results = tmp_path / "results"
        results.mkdir()
        (results / "mlflow.db").write_bytes(half)
        refused = run_cli("run", "--suite", "toy", "--results", results)
        assert refused.code == 2 and "Traceback" not in refused.err, refused.err
        line = " ".join(refused.err.split())
        assert line.count("error: ") == 1 and "half-created" in line
        assert f"rm {results / 'mlflow.db'}" in line

        uri = f"sqlite:///{disk / 'mlflow.db'}"
        with pytest.raises(UserError, match="no space left on the device") as error:
            prepare_sqlite_store(uri, disk / "mlartifacts")
        assert str(disk) in str(error.value)
        assert list(disk.iterdir()) == []  # nothing half-written
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
