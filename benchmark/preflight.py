"""Checks of the environment a run needs, made before Ray starts or anything is recorded:
the results folder, the MLflow tracking URI, the Ray address and the free disk space. Each
mistake is a UserError (exit status 2, one line naming the option, the value and the fix).

A disk that fills up later (ENOSPC in a trial, the tracking store or the report) becomes the
same kind of line, naming the folder (:func:`disk_full_guard`, :func:`disk_full_ending`).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import ResultsLayout

#: Store schemes MLflow's tracking client accepts (plus plain paths and file: URIs).
TRACKING_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks",
                    "file"}
#: How long a tracking server or Ray head may take to answer before the run is refused.
CONNECT_TIMEOUT_S = 5.0


def results_folder(text: str, option: str = "--results") -> Path:
    """The results folder as an absolute path, refused when it is empty, a file, or cannot be
    written (a read-only mount, no permission)."""
    if not text.strip():
        raise UserError(option, text, "Give a folder, e.g. --results results (an empty value "
                        "would write into the current folder).", problem="empty path")
    path = Path(text).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UserError(option, str(path), "Give a folder, not a file (e.g. --results "
                        f"{quote(str(path.parent / 'results'))}).", problem="this is a file")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(option, str(path), "Give a folder below a folder, not below a file.",
                        problem=f"{existing} is a file")
    problem = _not_writable(existing)
    if problem:
        raise UserError(option, str(path), "Give a folder you can write to (--results DIR).",
                        problem=problem)
    return path


def _not_writable(folder: Path) -> str | None:
    """None when a file can be created in ``folder``, else why not."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lsmia-write-check-"):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"cannot write in {folder} ({reason})"


def tracking_uri(uri: str | None, option: str = "--tracking-uri") -> None:
    """A tracking URI MLflow accepts; an http(s) server must answer within a few seconds."""
    if uri is None:
        return
    scheme = urlsplit(uri).scheme.split("+")[0].lower()
    if "://" not in uri and ":" not in uri.split("/")[0]:
        return  # a plain path: MLflow's file store
    if scheme not in TRACKING_SCHEMES:
        raise UserError(option, uri, "Use sqlite:///path/to/mlflow.db, http(s)://host:port of "
                        "an MLflow server, or a database URI (postgresql://, mysql://, "
                        "mssql://); or leave it out for a SQLite file in the results folder.",
                        problem=f"MLflow does not know the scheme {scheme!r}")
    if scheme in ("http", "https"):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=CONNECT_TIMEOUT_S):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # something answers (an older server without /health, a proxy)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(option, uri, "Start the MLflow server (mlflow server --host "
                            "127.0.0.1 --port PORT) or fix the address; or leave the option "
                            "out for a SQLite file in the results folder.",
                            problem=f"no MLflow server answered within {CONNECT_TIMEOUT_S:g} s "
                            f"({reason})") from None


def ray_address(address: str | None, option: str = "--address") -> None:
    """A Ray head at ``host:port`` or ``ray://host:port`` must accept a connection within a
    few seconds (``auto`` is left to Ray: it reads the local cluster's address file)."""
    if address is None or address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(option, address, "Give host:port of the Ray head (e.g. 127.0.0.1:6379, "
                        "or ray://host:10001 for Ray Client), or auto.",
                        problem="not an address")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        raise UserError(option, address, "Start the cluster first (ray start --head --port "
                        f"{port}) or fix the address; leave --address out to run on this "
                        "machine alone.", problem=f"nothing answered within "
                        f"{CONNECT_TIMEOUT_S:g} s ({exc.strerror or exc})") from None


def ray_auth_error(exc: BaseException, address: str | None) -> UserError | None:
    """A UserError when ``exc`` (raised by ``ray.init``) is a token authentication failure."""
    text = f"{type(exc).__name__}: {exc}"
    if not any(word in text for word in ("InvalidAuthToken", "Unauthenticated",
                                         "auth token", "authentication")):
        return None
    return UserError("--address", address or "local", "The cluster uses token authentication: "
                     "set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN) in this "
                     "shell as on the head node (see docs/cluster.md).",
                     problem="Ray refused the connection (authentication)")


def quote(text: str) -> str:
    """A path or URI as it can be pasted into a shell (quoted when it has special characters)."""
    return shlex.quote(text)



MiB = 2**20
#: Bytes one trial's cache entry is assumed to take while the cache holds no entry of the same
#: task (generous for the image suites' priors and targets; the toy's are a few KB).
ENTRY_BYTES = {"prerequisites": 100 * MiB, "targets": 20 * MiB, "attacks": 5 * MiB}
#: Artifacts of one trial's MLflow run (figures, tables) while no entry of its task is cached.
ARTIFACT_BYTES = 512 * 1024
#: Per trial besides those: Ray Tune's trial folder and the rows of its MLflow run.
TRIAL_OVERHEAD_BYTES = 256 * 1024
#: A new SQLite MLflow store (its empty schema takes about 1 MB).
NEW_SQLITE_STORE_BYTES = 2 * MiB
DISK_FULL_TEXTS = ("No space left on device", "[Errno 28]", "database or disk is full")


class PlannedJob(Protocol):
    stage: str
    task: str

    @property
    def key(self) -> str: ...


def disk_space(layout: ResultsLayout, jobs: Iterable[PlannedJob], tracking_uri: str) -> None:
    """Refuse a plan whose trials clearly do not fit on the disks of the results folder and
    of the tracking store (exit 2, before any trial).

    The estimate: every trial not yet in the cache takes what the largest cached entry of the
    same task takes (manifest sizes), or :data:`ENTRY_BYTES` of its stage when none is cached;
    its MLflow run gets that entry's figures and tables (or :data:`ARTIFACT_BYTES`) plus
    :data:`TRIAL_OVERHEAD_BYTES`; a SQLite store not yet created adds
    :data:`NEW_SQLITE_STORE_BYTES`. Locations on one file system are summed. A remote store
    (an MLflow server, a database server) is not checked."""
    from lsmia_bench.benchmark.cache import MANIFEST_FILE
    from lsmia_bench.benchmark.tracking import sqlite_path

    todo = [job for job in jobs if not (layout.cache / job.key / MANIFEST_FILE).is_file()]
    if not todo:
        return
    known = _cached_sizes(layout.cache)
    entries = artifacts = 0
    for job in todo:
        entry, logged = known.get(job.task, (ENTRY_BYTES.get(job.stage, 20 * MiB),
                                             ARTIFACT_BYTES))
        entries += entry + TRIAL_OVERHEAD_BYTES
        artifacts += logged
    needs: list[tuple[str, Path, int]] = [("--results", layout.root, entries)]
    db = sqlite_path(tracking_uri)
    scheme = urlsplit(tracking_uri).scheme
    if db is not None:
        needs.append(("--results", layout.mlartifacts, artifacts))
        option = "--results" if db == layout.mlflow_db else "--tracking-uri"
        new = 0 if db.is_file() else NEW_SQLITE_STORE_BYTES
        needs.append((option, db.parent, new + len(todo) * 64 * 1024))
    elif scheme in ("", "file"):
        folder = Path(tracking_uri.removeprefix("file://") if scheme else tracking_uri)
        needs.append(("--tracking-uri", folder, artifacts))
    by_device: dict[int, tuple[str, Path, int]] = {}
    for option, folder, size in needs:
        existing = _existing(folder)
        device = os.stat(existing).st_dev
        first = by_device.get(device, (option, folder, 0))
        by_device[device] = (first[0], first[1], first[2] + size)
    for option, folder, need in by_device.values():
        free = shutil.disk_usage(_existing(folder)).free
        if free < need:
            raise UserError(option, str(folder), f"Free at least {_size(need - free)} there or "
                            "use a larger disk (estimated from cached entries of the same task, "
                            "else per-stage sizes; see docs/faults.md).",
                            problem=f"only {_size(free)} free, the {len(todo)} trials to run "
                            f"need about {_size(need)}")


def _cached_sizes(cache: Path) -> dict[str, tuple[int, int]]:
    """Task -> (largest entry's bytes, its bytes of files logged to MLflow), from manifests."""
    from lsmia_bench.benchmark.cache import MANIFEST_FILE, RESULT_FILE
    from lsmia_bench.benchmark.tracking import ARTIFACT_SUFFIXES

    sizes: dict[str, tuple[int, int]] = {}
    for manifest in cache.glob(f"*/{MANIFEST_FILE}"):
        try:
            files = json.loads(manifest.read_text())
            task = json.loads((manifest.parent / RESULT_FILE).read_text())["job"]["task"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        total = sum(int(f.get("size", 0)) for f in files.values())
        logged = sum(int(f.get("size", 0)) for name, f in files.items()
                     if Path(name).suffix in ARTIFACT_SUFFIXES)
        sizes[task] = max(sizes.get(task, (0, 0)), (total, logged))
    return sizes


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen or len(seen) > 20:
            continue
        seen.add(id(item))
        yield item
        orig = getattr(item, "orig", None)  # SQLAlchemy's wrapped DB-API error
        todo += [item.__cause__, item.__context__,
                 orig if isinstance(orig, BaseException) else None]


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is ENOSPC or SQLite's "database or disk is full"."""
    return any(getattr(item, "errno", None) == errno.ENOSPC
               or any(text in str(item) for text in DISK_FULL_TEXTS) for item in _chain(exc))


def disk_full_error(folder: Path, option: str = "--results", safe: int | None = None
                    ) -> UserError:
    """The one line for a full disk under ``folder``."""
    kept = "finished trials are safe in the cache" if safe is None else \
        f"{safe} finished trial{'' if safe == 1 else 's'} safe in the cache"
    return UserError(option, str(folder), f"Free space there (df -h {quote(str(folder))}), then "
                     f"run again with --resume; {kept}.", problem="no space left on the device")


def safe_trials(results_dir: Path) -> int:
    from lsmia_bench.benchmark.cache import MANIFEST_FILE

    return sum(1 for _ in ResultsLayout(results_dir).cache.glob(f"*/{MANIFEST_FILE}"))


@contextmanager
def disk_full_guard(results_dir: Path) -> Iterator[None]:
    """Turn ENOSPC raised anywhere in a run into the one-line UserError naming the folder."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        layout = ResultsLayout(results_dir)
        names = [Path(f) for item in _chain(exc)
                 for f in (getattr(item, "filename", None),) if isinstance(f, str | Path)]
        outside = [n for n in names if not n.resolve().is_relative_to(layout.root)]
        folder = outside[0].parent if outside else layout.root
        option = "--tracking-uri" if outside else "--results"
        raise disk_full_error(folder, option, safe_trials(results_dir)) from None


class _Ended(Protocol):
    invocation: Any
    outcomes: Any
    tracking: Any


def disk_full_ending(summary: _Ended, results_dir: Path) -> UserError | None:
    """The one-line UserError when a finished run lost trials or records to a full disk."""
    failed = [o for o in summary.outcomes.values()
              if o.status == "failed" and any(t in (o.error or "") for t in DISK_FULL_TEXTS)]
    tracking = summary.tracking
    if not failed and not (tracking is not None and tracking.disk_full):
        return None
    from lsmia_bench.benchmark.state import InvocationStore
    from lsmia_bench.benchmark.tracking import sqlite_path

    # The run stays resumable, as the line says (--resume retries the lost trials and records).
    summary.invocation.status = "interrupted"
    with suppress(OSError):
        InvocationStore(results_dir).save(summary.invocation)
    layout = ResultsLayout(results_dir)
    folder, option = layout.root, "--results"
    db = sqlite_path(tracking.uri) if tracking is not None and not failed else None
    if db is not None and db != layout.mlflow_db:
        folder, option = db.parent, "--tracking-uri"
    return disk_full_error(folder, option, safe_trials(results_dir))
