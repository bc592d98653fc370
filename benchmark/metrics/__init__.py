"""Metrics as small pure functions on tensors and arrays, each recorded metric declared in the
registry next to its function; ``METRICS`` holds every declaration."""

import importlib

from lsmia_bench.benchmark.metrics.registry import METRICS

#: The modules that declare metrics, in the order of report and leaderboard columns.
DECLARING_MODULES = ("utility", "privacy", "toy", "costs")
for _module in DECLARING_MODULES:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METRICS"]
