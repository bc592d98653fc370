"""Running one job: the Ray-free core (:func:`execute_job`) and the Ray Tune trainable."""

from __future__ import annotations

import importlib
import math
import os
import platform
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from lsmia_bench.benchmark.cache import RESULT_FILE, ArtifactStore
from lsmia_bench.benchmark.context import TaskContext, TaskResult, resolve_device
from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.kernel.files import write_json_atomic
from lsmia_bench.kernel.registry import is_path_reference, load_path_reference

#: Trials this worker process ran before the current one: more than 0 means a warm (reused)
#: worker, which imported torch and the project for an earlier trial.
_TRIALS_IN_PROCESS = 0


class TaskFailed(RuntimeError):
    """A task raised or produced an unusable result; the message says why."""


def load_task(reference: str) -> Callable[..., TaskResult]:
    """``package.module:function``, or ``path/to/file.py:function`` (a plug-in file)."""
    if is_path_reference(reference):
        return load_path_reference(reference, "task")  # type: ignore[return-value]
    module_name, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _stamp() -> str:
    # Milliseconds: trial start and end times order trials that run within one second.
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def execute_job(
    job: Job,
    store: ArtifactStore,
    device: str = "auto",
    progress: Callable[[float, dict[str, float]], None] | None = None,
    worker: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run ``job`` unless its artifact exists; return (stored result, whether it was cached).

    ``worker`` (which process and node ran it) goes into the record with the trial's start
    and end times, from which the orchestration figures are computed."""
    started_at = _stamp()
    if store.verified(job.key):
        return store.load_result(job.key), True
    missing = [role for role, key in job.needs.items() if not store.verified(key)]
    if missing:
        raise TaskFailed(f"inputs {missing} of {job.name} are not in the artifact store")
    ctx = TaskContext(device=resolve_device(device), progress_callback=progress)
    inputs = {role: store.path(key) for role, key in job.needs.items()}
    task = load_task(job.task)
    try:
        with store.writing(job.key) as out:
            started = time.perf_counter()
            result = task(job.spec, inputs, out, ctx)
            elapsed = time.perf_counter() - started
            bad = [k for k, v in result.metrics.items() if isinstance(v, float) and math.isinf(v)]
            if bad:
                raise TaskFailed(f"metrics {bad} are infinite")
            record = {
                "key": job.key,
                "job": job.to_dict(),
                "metrics": result.metrics,
                "series": result.series,
                "info": result.info,
                "elapsed_s": elapsed,
                "started_at": started_at,
                "finished_at": _stamp(),
                "worker": {"host": platform.node(), "pid": os.getpid(), **(worker or {})},
                "hardware": hardware(ctx.device),
                "versions": package_versions(),
            }
            write_json_atomic(out / RESULT_FILE, record)
    except Exception as exc:
        store.record_failure(job.key, _describe(exc))
        raise
    store.clear_failure(job.key)
    return store.load_result(job.key), False


def hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "host": platform.node(),
                            "cpu": platform.processor() or platform.machine(),
                            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a result, for the provenance record."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("lsmia-bench", "torch", "torchvision", "numpy", "scikit-learn", "ray", "mlflow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TaskFailed):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"


def tune_trainable(config: dict[str, Any]) -> None:
    """The function Ray Tune runs for every trial; ``config`` holds the job and paths.

    Tune reuses the actor that runs it (``reuse_actors=True``), so the imports at the top of
    this module and of the task modules are paid once per worker process, not per trial."""
    import ray
    from ray import tune

    global _TRIALS_IN_PROCESS
    earlier_trials, _TRIALS_IN_PROCESS = _TRIALS_IN_PROCESS, _TRIALS_IN_PROCESS + 1

    threads = config.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    job = Job.from_dict(config["job"])
    store = ArtifactStore(Path(config["cache_dir"]))

    def report(fraction: float, metrics: dict[str, float]) -> None:
        tune.report({"progress": fraction, **metrics})

    worker = {"node_id": ray.get_runtime_context().get_node_id(),
              "earlier_trials": earlier_trials}
    try:
        record, cached = execute_job(job, store, config.get("device", "auto"), report, worker)
    except Exception as exc:
        # A failed job ends its trial normally: Tune replaces the actor of an errored trial,
        # and the next trial would pay the worker start-up again. The driver reads the failure
        # (message in the store, no result) and skips the job's dependants.
        traceback.print_exc()  # the full traceback, in the Ray worker's log
        store.record_failure(job.key, _describe(exc))  # also failures before the task ran
        tune.report({"progress": 1.0, "failed": 1})
        return
    tune.report({"progress": 1.0, "cached": int(cached), **record["metrics"]})
