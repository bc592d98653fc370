"""What a task function gets besides its spec (device, seed, progress) and what it returns."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

log = logging.getLogger("lsmia_bench")


@dataclass
class TaskResult:
    """Numbers a task produced. Files go into its output folder."""

    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    """Per-epoch (or per-step) curves, e.g. ``train_loss``; logged to MLflow with steps."""
    info: dict[str, Any] = field(default_factory=dict)
    """Strings and other facts for the record (e.g. the feature space a metric used)."""


@dataclass
class TaskContext:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress_callback: Callable[[float, dict[str, float]], None] | None = None
    _last_reported: float = -1.0

    def progress(self, done: float, total: float, **metrics: float) -> None:
        """Report how far the task is; throttled to steps of 5 %."""
        fraction = min(1.0, done / total) if total else 1.0
        if fraction - self._last_reported < 0.05 and fraction < 1.0:
            return
        self._last_reported = fraction
        if self.progress_callback is not None:
            self.progress_callback(fraction, metrics)


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
