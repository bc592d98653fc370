"""Content-addressed artifact store: ``<root>/<key>/`` holds everything one job produced.

A folder appears only once its job has finished (written to a temporary folder, then
renamed), so a killed run never leaves a half-written artifact that looks finished. Each
entry lists what it holds (``manifest.json``: every file's size and sha256), written last:
:meth:`ArtifactStore.has` checks that every listed file is there with its size (cheap), and
:meth:`ArtifactStore.verified` also checks the digests. An entry that fails either check is
moved aside to ``<root>/.damaged/`` with a warning naming it, and its job runs again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lsmia_bench.kernel.files import write_json_atomic

log = logging.getLogger("lsmia_bench")

RESULT_FILE = "result.json"
MANIFEST_FILE = "manifest.json"
DAMAGED_DIR = ".damaged"


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """Relative path -> {size, sha256} of every file below ``folder`` (the manifest excluded)."""
    return {file.relative_to(folder).as_posix(): {"size": file.stat().st_size,
                                                   "sha256": file_digest(file)}
            for file in sorted(folder.rglob("*"))
            if file.is_file() and file.name != MANIFEST_FILE}


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "failures").mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def _manifest(self, key: str) -> dict[str, dict[str, Any]] | None:
        try:
            manifest = json.loads((self.path(key) / MANIFEST_FILE).read_text())
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) and RESULT_FILE in manifest else None

    def problem(self, key: str, digests: bool = False) -> str | None:
        """Why entry ``key`` is not usable (None when it is): no manifest, a listed file
        missing or of another size, or (with ``digests``) another content."""
        manifest = self._manifest(key)
        if manifest is None:
            return f"{MANIFEST_FILE} missing or unreadable"
        for name, facts in manifest.items():
            file = self.path(key) / name
            try:
                size = file.stat().st_size
            except OSError:
                return f"{name} is missing"
            if size != facts.get("size"):
                return f"{name} has {size} bytes, {facts.get('size')} were written"
            if digests and file_digest(file) != facts.get("sha256"):
                return f"{name} changed since it was written (sha256 differs)"
        return None

    def has(self, key: str) -> bool:
        """Whether a complete entry exists (every listed file, with its size); an incomplete
        folder is moved aside so that its job runs again."""
        if not self.path(key).exists():
            return False
        problem = self.problem(key)
        if problem is not None:
            self.set_aside(key, problem)
            return False
        return True

    def verified(self, key: str) -> bool:
        """:meth:`has` plus every file's digest: for entries about to be used again."""
        if not self.has(key):
            return False
        problem = self.problem(key, digests=True)
        if problem is not None:
            self.set_aside(key, problem)
            return False
        return True

    def set_aside(self, key: str, reason: str) -> Path | None:
        """Move a damaged entry to ``<root>/.damaged/<key>-<time>`` (named in a warning)."""
        folder = self.path(key)
        if not folder.exists():
            return None
        target = self.root / DAMAGED_DIR / f"{key}-{time.strftime('%Y%m%dT%H%M%S')}"
        counter = 1
        while target.exists():
            counter += 1
            target = target.with_name(f"{target.name}-{counter}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(folder, target)
        except OSError:  # another process moved or replaced it first
            return None
        log.warning("cache entry %s set aside (%s): moved to %s; its job runs again",
                    key, reason, target)
        return target

    def load_result(self, key: str) -> dict[str, Any]:
        return json.loads((self.path(key) / RESULT_FILE).read_text())

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """Yield a temporary folder; on success its manifest is written and it becomes
        ``path(key)`` atomically (an incomplete folder of that key is moved aside first)."""
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
        try:
            yield tmp
            write_json_atomic(tmp / MANIFEST_FILE, build_manifest(tmp))
            if self.has(key):  # a concurrent identical job finished first; keep its result
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, self.path(key))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def failure_file(self, key: str) -> Path:
        return self.root / "failures" / f"{key}.json"

    def record_failure(self, key: str, error: str) -> None:
        write_json_atomic(self.failure_file(key), {"error": error})

    def load_failure(self, key: str) -> str | None:
        path = self.failure_file(key)
        return json.loads(path.read_text())["error"] if path.is_file() else None

    def clear_failure(self, key: str) -> None:
        self.failure_file(key).unlink(missing_ok=True)
