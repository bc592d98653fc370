"""The Olivetti faces (AT&T Laboratories Cambridge): 40 identities x 10 images, 64x64 grey.

Loaded with scikit-learn's ``fetch_olivetti_faces`` from a data home that already holds
``olivetti_py3.pkz``; lsmia-bench never downloads it. The data home is, in this order:
``data.data_home`` in the suite (``--data-home`` on the command line), the
``SCIKIT_LEARN_DATA`` environment variable, scikit-learn's default ``~/scikit_learn_data``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from lsmia_bench.benchmark.data.splits import ImageSplits, split_private_public
from lsmia_bench.kernel.errors import UserError

OLIVETTI_FILE = "olivetti_py3.pkz"


def resolve_data_home(data_home: str | Path | None = None) -> Path:
    """The absolute data home to use (without creating it, unlike scikit-learn's helper)."""
    chosen = data_home or os.environ.get("SCIKIT_LEARN_DATA") or "~/scikit_learn_data"
    return Path(chosen).expanduser().resolve()


def check_olivetti_present(data_home: str | Path | None = None) -> Path:
    """Return the resolved data home; UserError naming the options if the file is missing."""
    home = resolve_data_home(data_home)
    if not (home / OLIVETTI_FILE).is_file():
        raise UserError(
            "data.data_home", str(home),
            f"Set data.data_home (or --data-home, or the SCIKIT_LEARN_DATA environment "
            f"variable) to a folder holding {OLIVETTI_FILE}, e.g. "
            "../shared/datasets/scikit_learn_data; lsmia-bench never downloads data.",
            problem=f"Olivetti faces not found ({OLIVETTI_FILE} missing)",
        )
    return home


@lru_cache(maxsize=2)
def _olivetti_arrays(home: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import fetch_olivetti_faces

    bunch = fetch_olivetti_faces(data_home=home, download_if_missing=False)
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def olivetti_arrays(data_home: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (400, 64, 64) in [0, 1] and identity labels (400,), in scikit-learn's order."""
    return _olivetti_arrays(str(check_olivetti_present(data_home)))


def load_olivetti_splits(
    private_classes: Sequence[int] = tuple(range(20)),
    public_classes: Sequence[int] = tuple(range(20, 40)),
    test_fraction: float = 0.2,
    seed: int = 0,
    image_size: int | None = 32,
    data_home: str | Path | None = None,
) -> ImageSplits:
    images, labels = olivetti_arrays(data_home)
    return split_private_public(images, labels, private_classes, public_classes, test_fraction,
                                seed, source="olivetti", image_size=image_size)
