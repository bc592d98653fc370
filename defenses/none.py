"""No defense: hard labels and cross-entropy."""

from __future__ import annotations

from typing import ClassVar

from lsmia_bench.defenses.base import Defense


class NoDefense(Defense):
    """Plain training with hard labels: the baseline every defense is compared with."""

    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "Hard labels, cross-entropy loss (the baseline)."
