"""``toy`` on a two-node Ray cluster (``ray start --head`` plus ``ray start --address``, one CPU
each, token authentication) recording into a real ``mlflow server``: every trial finishes,
trials ran on both nodes, and the test stops exactly the nodes and the server it started.

Everything runs in child processes on their own ports and Ray temp folder, so the session's
shared Ray instance (conftest ``ray_cluster``) is neither joined nor stopped. ``ray stop`` is
never used: it would stop every Ray instance on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmia_bench.benchmark.tracking import NODE_TAG

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120
#: Short trials: the test is about where trials run and where they are recorded, not about
#: what they learn (the full toy settings are run by tests/test_leaderboard_records.py).
SMALL = ["--set", "training.iterations=300", "--set", "attacks.0.params.max_steps=500"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, proc: subprocess.Popen, log: Path,  # noqa: ANN001
              timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"{what} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


class Started:
    """The processes this test started, each in its own process group, and the Ray temp
    folder that names every process of its nodes; :meth:`stop` ends exactly those."""

    def __init__(self, ray_temp: Path) -> None:
        self.ray_temp = ray_temp
        self.procs: list[subprocess.Popen] = []

    def spawn(self, cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        # The worker node first, then the head, then the MLflow server, one after the other,
        # each by a SIGTERM to the started command alone: `ray start --block` then drains its
        # node through the head's GCS and stops the node's own processes. A SIGTERM to the
        # whole group would stop the head's GCS too, and the head would wait 30 s for it.
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):  # anything of its group still there
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid in self.leftover_ray_pids():  # a node process that outlived its `ray start`
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftover_ray_pids(self) -> list[int]:
        """Processes whose command line names this test's Ray temp folder (ours only)."""
        found = []
        marker = str(self.ray_temp).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
        return found


@pytest.fixture
def cluster_and_server(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A head node and a second node (1 CPU each) and an MLflow server, all on 127.0.0.1."""
    # Unix socket paths under the temp folder must stay short (about 107 bytes).
    ray_temp = Path(tempfile.mkdtemp(prefix="lsmia-ray-", dir="/tmp"))
    token = secrets.token_hex(16)
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
                        "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    started = Started(ray_temp)
    gcs_port, mlflow_port = free_port(), free_port()
    address = f"127.0.0.1:{gcs_port}"
    common = ["--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
              "--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]
    try:
        head_log = tmp_path / "head.log"
        head = started.spawn(
            [str(BIN / "ray"), "start", "--head", "--port", str(gcs_port),
             "--include-dashboard", "false", "--temp-dir", str(ray_temp),
             "--dashboard-agent-listen-port", str(free_port()), *common], head_log, env)
        server_log = tmp_path / "mlflow.log"
        server = started.spawn(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
             "--artifacts-destination", str(tmp_path / "server" / "artifacts")],
            server_log, env | {"MLFLOW_LOGGING_LEVEL": "WARNING"})
        (tmp_path / "server").mkdir(exist_ok=True)
        wait_for(lambda: "Ray runtime started" in head_log.read_text(), "ray head", head,
                 head_log)
        worker_log = tmp_path / "worker.log"
        worker = started.spawn(
            [str(BIN / "ray"), "start", "--address", address,
             "--dashboard-agent-listen-port", str(free_port()), *common], worker_log, env)
        wait_for(lambda: "Ray runtime started" in worker_log.read_text(), "second ray node",
                 worker, worker_log)
        uri = f"http://127.0.0.1:{mlflow_port}"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        wait_for(healthy, "mlflow server", server, server_log)
        yield {"address": address, "tracking_uri": uri, "env": env}
    finally:
        started.stop()
        left = started.leftover_ray_pids()
        shutil.rmtree(ray_temp, ignore_errors=True)
        assert not left, f"processes of the test's Ray nodes still running: {left}"


def test_toy_on_two_nodes_with_mlflow_server(cluster_and_server, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "lsmia_bench.cli", "run", "--suite", "toy",
           "--results", str(results), "--address", str(cluster_and_server["address"]),
           "--tracking-uri", str(cluster_and_server["tracking_uri"]), *SMALL]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=cluster_and_server["env"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Trials: 6 finished" in done.stdout

    client = MlflowClient(tracking_uri=str(cluster_and_server["tracking_uri"]))
    experiment = client.get_experiment_by_name("lsmia-bench/toy")
    assert experiment is not None
    trials = client.search_runs([experiment.experiment_id], "tags.`lsmia.kind` = 'trial'")
    assert len(trials) == 6
    assert {run.data.tags["lsmia.status"] for run in trials} == {"finished"}
    assert {run.info.status for run in trials} == {"FINISHED"}
    # Which node ran each trial: recorded by the worker in the cache and in MLflow.
    nodes = {}
    for run in trials:
        key = run.data.tags["lsmia.job_key"]
        cached = json.loads((results / "cache" / key / "result.json").read_text())
        node = run.data.tags[NODE_TAG]
        assert node == cached["worker"]["node_id"]
        nodes[key] = node
    assert len(set(nodes.values())) == 2, f"trials ran on {set(nodes.values())}"
