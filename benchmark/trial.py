"""Running one job: the Ray-free core (:func:`execute_job`) and the Ray Tune trainable."""

from __future__ import annotations

import importlib
import math
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


class TaskFailed(RuntimeError):
    """A task raised or produced an unusable result; the message says why."""


def load_task(reference: str) -> Callable[..., TaskResult]:
    module_name, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def execute_job(
    job: Job,
    store: ArtifactStore,
    device: str = "auto",
    progress: Callable[[float, dict[str, float]], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run ``job`` unless its artifact exists; return (stored result, whether it was cached)."""
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
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
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
    """The function Ray Tune runs for every trial; ``config`` holds the job and paths."""
    from ray import tune

    threads = config.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    job = Job.from_dict(config["job"])
    store = ArtifactStore(Path(config["cache_dir"]))

    def report(fraction: float, metrics: dict[str, float]) -> None:
        tune.report({"progress": fraction, **metrics})

    record, cached = execute_job(job, store, config.get("device", "auto"), report)
    tune.report({"progress": 1.0, "cached": int(cached), **record["metrics"]})
