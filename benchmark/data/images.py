"""Image data for the model-inversion protocol (docs/protocol.md): PRIVATE classes for the target
(with a held-out test split), PUBLIC classes for the attacker's prior, never the same class.

Each data source (``digits.py``, ``olivetti.py``) returns raw images and labels, split the same
way for every source by ``splits.py``. :func:`load_image_splits` rebuilds the splits from a
suite's ``data`` section, so every stage (targets, priors, attacks) sees the same images.
"""

from __future__ import annotations

from typing import Any

from lsmia_bench.benchmark.data.splits import (
    ImageSplits,
    check_class_lists,
    resize_images,
    split_private_public,
)
from lsmia_bench.kernel.errors import UserError

# Re-exported: callers keep importing the splits' types and helpers from here.
__all__ = ["ImageSplits", "check_class_lists", "load_image_splits", "resize_images",
           "split_private_public"]


def load_image_splits(data: dict[str, Any]) -> ImageSplits:
    """The splits described by a suite's ``data`` section (a dict, as stored in job specs)."""
    source = data["source"]
    common = {
        "private_classes": data["private_classes"], "public_classes": data["public_classes"],
        "test_fraction": data["test_fraction"], "seed": data["split_seed"],
        "image_size": data.get("image_size"),
    }
    if source == "digits":
        from lsmia_bench.benchmark.data.digits import load_digits_splits

        return load_digits_splits(**common)
    if source == "olivetti":
        from lsmia_bench.benchmark.data.olivetti import load_olivetti_splits

        return load_olivetti_splits(data_home=data.get("data_home"), **common)
    raise UserError("data.source", source, "Use digits or olivetti.", problem="unknown source")
