"""A re-run with nothing to do: the same configuration's last run finished, every one of its
trials is still verified in the cache and recorded in the same tracking store, and the code that
made its report is unchanged. Such a run shows that report again instead of recording the same
trials a second time (``lsmia-bench run --new-record`` records them anyway)."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

from lsmia_bench.benchmark.cache import ArtifactStore
from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.state import Invocation, InvocationStore
from lsmia_bench.kernel.records import ResultsLayout

#: The project's packages whose source decides what a run reports.
_PACKAGES = ("lsmia_bench", "lsmia_bench.benchmark", "lsmia_bench.attacks",
             "lsmia_bench.defenses", "lsmia_bench.configs")


def code_fingerprint() -> str:
    """sha256 of (path, size, modification time) of the project's source and config files: any
    edit or another installed version changes it, without reading the files."""
    digest = hashlib.sha256()
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(root).rglob("*")):
                if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                    stat = path.stat()
                    digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def finished_run(layout: ResultsLayout, suite: str, config_hash: str, tracking_uri: str,
                 plan: Callable[[], list[Job]]) -> tuple[Invocation, list[Job]] | None:
    """The newest finished run of this configuration whose report can be shown again, with the
    configuration's jobs (``plan`` is called only when such a run exists), or None when
    anything would have to run or be recorded."""
    if not layout.invocations.is_dir():
        return None
    code = code_fingerprint()
    for previous in reversed(InvocationStore(layout.root).all()):
        if (previous.suite == suite and previous.config_hash == config_hash
                and previous.tracking_uri == tracking_uri and previous.status == "finished"
                and previous.code == code and previous.report is not None
                and (layout.reports(suite, previous.id) / "table.csv").is_file()):
            break
    else:
        return None
    jobs = plan()
    keys = {job.key for job in jobs}
    if not keys <= set(previous.logged):
        return None
    store = ArtifactStore(layout.cache)
    # A damaged entry is set aside here, and the full run that follows makes it again.
    if not all(store.verified(key) for key in keys):
        return None
    return previous, jobs
