"""The results folder: a lock so two runs never interleave, and one state file per invocation
so that ``--resume`` continues the same MLflow parent run without logging a trial twice."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.files import write_json_atomic
from lsmia_bench.kernel.records import ResultsLayout


class ResultsLock:
    """An exclusive lock on the results folder, held for the whole run."""

    def __init__(self, results_dir: Path) -> None:
        self.path = ResultsLayout(results_dir).lock
        self._handle: IO[str] | None = None

    def __enter__(self) -> ResultsLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UserError("--results", str(self.path.parent),
                            "Wait for that run to end, or give another --results folder.",
                            problem=f"another lsmia-bench run ({holder}) is using this folder"
                            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


@dataclass
class Invocation:
    id: str
    suite: str
    config_hash: str
    tracking_uri: str
    parent_run_id: str | None = None
    status: str = "running"
    started_at: str = field(default_factory=lambda: now())
    finished_at: str | None = None
    logged: dict[str, str] = field(default_factory=dict)
    """job key -> MLflow child run id, so a resumed run logs no trial twice."""
    code: str | None = None
    """Fingerprint of the source that ran (benchmark.up_to_date.code_fingerprint)."""
    report: dict[str, Any] | None = None
    """What the terminal summary needs besides table.csv (ranking, missing, level), once the
    report exists: a re-run with nothing to do shows it again."""

    @classmethod
    def new(cls, suite: str, config_hash: str, tracking_uri: str) -> Invocation:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return cls(f"{stamp}-{secrets.token_hex(3)}", suite, config_hash, tracking_uri)


class InvocationStore:
    def __init__(self, results_dir: Path) -> None:
        self.folder = ResultsLayout(results_dir).invocations
        self.folder.mkdir(parents=True, exist_ok=True)

    #: The driver and the tracking thread both save an invocation.
    _lock = threading.Lock()

    def save(self, invocation: Invocation) -> None:
        with self._lock:
            write_json_atomic(self.folder / f"{invocation.id}.json", asdict(invocation))

    def mark_logged(self, invocation: Invocation, key: str, run_id: str) -> None:
        """Record that trial ``key`` is in the tracking store as child run ``run_id``."""
        with self._lock:
            invocation.logged[key] = run_id
            write_json_atomic(self.folder / f"{invocation.id}.json", asdict(invocation))

    def all(self) -> list[Invocation]:
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(Invocation(**json.loads(path.read_text())))
            except (json.JSONDecodeError, TypeError):
                continue
        return found

    def latest_unfinished(self, suite: str) -> Invocation | None:
        candidates = [i for i in self.all() if i.suite == suite and i.status != "finished"]
        return candidates[-1] if candidates else None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
