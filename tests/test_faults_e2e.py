"""Faults in real runs (Ray Tune, a real ``mlflow server`` process, a real small tmpfs): the
trials finish and are cached, the run ends with one line, and ``--resume`` leaves exactly one
child run per trial."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

SMALL = ["--set", "training.iterations=300", "--set", "attacks.0.params.max_steps=500"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runs(uri: str) -> tuple[list, list]:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("lsmia-bench/toy")
    runs = client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
    return ([r for r in runs if r.data.tags.get("lsmia.kind") == "invocation"],
            [r for r in runs if r.data.tags.get("lsmia.kind") == "trial"])


def _one_child_per_trial(uri: str, trials: int = 6) -> None:
    parents, children = _runs(uri)
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert len(children) == trials
    assert len({c.data.tags["lsmia.job_key"] for c in children}) == trials
    assert {c.info.status for c in children} == {"FINISHED"}


def _cached(results: Path) -> int:
    return len(list((results / "cache").glob("*/manifest.json")))


def _when(condition, then, timeout: float = 300) -> threading.Thread:  # noqa: ANN001
    """Run ``then`` in a thread as soon as ``condition()`` holds."""
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def mlflow_server(folder: Path, port: int) -> Iterator[subprocess.Popen]:
    folder.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--workers", "1",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)  # noqa: S310
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_tracking_server_lost_mid_run(tmp_path, ray_cluster, run_cli, monkeypatch):
    monkeypatch.setenv("LSMIA_TRACKING_GRACE_S", "3")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    results = tmp_path / "results"
    args = ["run", "--suite", "toy", "--results", results, "--tracking-uri", uri, *SMALL]
    with mlflow_server(tmp_path / "server", port) as server:
        # The server's whole process group dies as soon as the first target is cached.
        _when(lambda: _cached(results) >= 1, lambda: kill_group(server))
        started = time.monotonic()
        lost = run_cli(*args)
        took = time.monotonic() - started
    assert lost.code == 3, lost.err
    assert "Traceback" not in lost.err
    assert lost.err.strip().splitlines()[-1] == (
        f"tracking server unreachable at {uri}; 6 trials are safe in the cache; run again with "
        "--resume when it is back")
    assert _cached(results) == 6 and took < 240

    with mlflow_server(tmp_path / "server", port):
        _, children_before = _runs(uri)
        resumed = run_cli(*args, "--resume")
        assert resumed.code == 0, resumed.err
        _one_child_per_trial(uri)
    print(f"lost: exit {lost.code} after {took:.0f} s; children before resume "
          f"{len(children_before)}, after 6")


def _tmpfs(folder: Path, size: str) -> Path:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    return folder


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 2**16)
            handle.flush()


def _one_line(result, *needles: str) -> str:  # noqa: ANN001
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    line = " ".join(result.err.split("error: ")[-1].split())
    assert result.err.count("error: ") == 1
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def test_too_little_disk_space_is_refused_before_any_trial(tmp_path, run_cli):
    disk = _tmpfs(tmp_path / "disk", "1m")
    try:
        result = run_cli("run", "--suite", "toy", "--results", disk / "results", *SMALL)
        _one_line(result, "--results", "free, the 6 trials to run need about", "Free at least")
        assert not (disk / "results").exists()  # nothing half-written
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_disk_full_mid_run_then_resume(tmp_path, ray_cluster, run_cli):
    disk = _tmpfs(tmp_path / "disk", "100m")
    results = disk / "results"
    args = ["run", "--suite", "toy", "--results", results, *SMALL]
    try:
        filled = _when(lambda: _cached(results) >= 1, lambda: _fill(disk))
        full = run_cli(*args)
        filled.join()
        line = _one_line(full, "--results", "no space left on the device", str(results),
                         "--resume")
        safe = _cached(results)
        (disk / "filler").unlink()
        resumed = run_cli(*args, "--resume")
        assert resumed.code == 0, resumed.err
        _one_child_per_trial(f"sqlite:///{results / 'mlflow.db'}")
        print(f"full: {line!r}; {safe} cached then")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
