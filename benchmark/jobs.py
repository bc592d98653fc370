"""Jobs: one unit of work (a trial), identified by a content hash of everything that makes it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: Bump when the layout of stored artifacts changes; every key changes with it.
CACHE_FORMAT = 1

STAGES = ("prerequisites", "targets", "attacks")


def content_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys), first ``length`` hex digits."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Job:
    """A unit of work for one Ray Tune trial.

    ``task`` is a ``module:function`` reference to a plain function
    ``(spec, inputs, out_dir, ctx) -> TaskResult`` that runs without Ray or MLflow.
    ``needs`` maps a role (``"target"``, ``"prior"``) to the key of a job in an earlier stage.
    """

    stage: str
    task: str
    name: str
    spec: dict[str, Any]
    needs: dict[str, str] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    @property
    def key(self) -> str:
        return content_hash(
            {"format": CACHE_FORMAT, "task": self.task, "version": self.version,
             "spec": self.spec, "needs": self.needs}
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**{k: v for k, v in data.items() if k != "key"})
