"""The filled-in metric registry of lsmia-bench: ``METRICS`` (``lsmia_bench.kernel.metrics``).

Declarations live next to their functions (``privacy``, ``utility``, ``attack``, ``toy``);
importing :mod:`lsmia_bench.benchmark.metrics` imports them all.
"""

from __future__ import annotations

from lsmia_bench.kernel.metrics import MetricRegistry

METRICS = MetricRegistry()
