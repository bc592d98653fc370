"""scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).

Default split of the ``digits`` suite: digits 0-4 are PRIVATE (the target learns them),
digits 5-9 are PUBLIC (the attacker's prior may see them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from lsmia_bench.benchmark.data.splits import ImageSplits, split_private_public

DIGITS_MAX = 16.0  # pixel values of load_digits are integers 0..16


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 8, 8) scaled to [0, 1] and labels (1797,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / DIGITS_MAX).astype(np.float32), bunch.target.astype(np.int64)


def load_digits_splits(
    private_classes: Sequence[int] = (0, 1, 2, 3, 4),
    public_classes: Sequence[int] = (5, 6, 7, 8, 9),
    test_fraction: float = 0.2,
    seed: int = 0,
    image_size: int | None = None,
) -> ImageSplits:
    images, labels = digits_arrays()
    return split_private_public(images, labels, private_classes, public_classes, test_fraction,
                                seed, source="digits", image_size=image_size)
