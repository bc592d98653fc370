"""Content-addressed artifact store: ``<root>/<key>/`` holds everything one job produced.

A folder appears only once its job has finished (written to a temporary folder, then
renamed), so a killed run never leaves a half-written artifact that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lsmia_bench.kernel.files import write_json_atomic

RESULT_FILE = "result.json"


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "failures").mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / RESULT_FILE).is_file()

    def load_result(self, key: str) -> dict[str, Any]:
        return json.loads((self.path(key) / RESULT_FILE).read_text())

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """Yield a temporary folder; on success it becomes ``path(key)`` atomically."""
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
        try:
            yield tmp
            final = self.path(key)
            if final.exists():  # a concurrent identical job finished first; keep its result
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, final)
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
