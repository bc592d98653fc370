"""Environment mistakes are refused before Ray starts: exit 2, one line, nothing written."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _refused(result, *needles: str) -> str:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    message = " ".join(result.err.split())
    assert message.startswith("error: ") and message.count("error: ") == 1
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def test_empty_results_path_writes_nothing_here(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("run", "--suite", "toy", "--results", "")
    _refused(result, "--results", "empty path")
    assert list(tmp_path.iterdir()) == []


def test_results_path_that_is_a_file(run_cli, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    started = time.monotonic()
    result = run_cli("run", "--suite", "toy", "--results", file)
    _refused(result, "--results", "this is a file")
    assert time.monotonic() - started < 30  # refused before Ray starts
    assert file.read_text() == "mine"


def test_read_only_results_mount(run_cli, tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {done.stderr.strip()}")
    try:
        result = run_cli("run", "--suite", "toy", "--results", mount / "results")
        _refused(result, "--results", "cannot write in", "Read-only file system")
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_unknown_tracking_scheme_leaves_nothing_behind(run_cli, tmp_path):
    results = tmp_path / "results"
    result = run_cli("run", "--suite", "toy", "--results", results, "--tracking-uri", "foo://bar")
    _refused(result, "--tracking-uri", "'foo'", "sqlite:///")
    assert not results.exists()


def test_tracking_server_not_answering(run_cli, tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    result = run_cli("run", "--suite", "toy", "--results", tmp_path / "r", "--tracking-uri", uri)
    _refused(result, "--tracking-uri", uri, "no MLflow server answered", "mlflow server")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "r").exists()


def test_ray_address_with_nothing_listening(run_cli, tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    result = run_cli("run", "--suite", "toy", "--results", tmp_path / "r", "--address", address)
    _refused(result, "--address", address, "nothing answered", "ray start --head")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "r").exists()


def test_mlflow_hint_for_a_server_and_a_quoted_local_store():
    from lsmia_bench.cli import mlflow_hint

    assert mlflow_hint("http://127.0.0.1:5000") == "open http://127.0.0.1:5000 in a browser"
    hint = mlflow_hint(f"sqlite:///{Path('/tmp/my results/mlflow.db')}")
    assert hint == "mlflow ui --backend-store-uri 'sqlite:////tmp/my results/mlflow.db'"


def test_ray_token_auth_failure_is_named_with_its_fix():
    from lsmia_bench.benchmark.preflight import ray_auth_error

    refused = ray_auth_error(RuntimeError("InvalidAuthToken: the token does not match"),
                             "127.0.0.1:6379")
    assert refused is not None
    message = str(refused)
    assert message.startswith("--address: Ray refused the connection (authentication)")
    assert "RAY_AUTH_MODE=token" in message and "docs/cluster.md" in message
    assert ray_auth_error(ConnectionError("connection reset"), "127.0.0.1:6379") is None
