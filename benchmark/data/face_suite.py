"""The faces suite's data from its ``data`` section: FaceScrub or CelebA from the user's
folder, or (smoke runs) a tiny generated data set in the same folder layout.

Generated data sets are written once per machine into a folder named by a hash of their
settings (``$LSMIA_BENCH_DATA``, default ``<tmp>/lsmia-bench-data``) and read by the real
loaders, so a smoke run exercises every path of the real ones. Generation is deterministic
and cheap, so each Ray worker node makes its own copy instead of needing shared storage.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.data.face_folders import FaceSplits
from lsmia_bench.benchmark.jobs import content_hash

DATA_ENV = "LSMIA_BENCH_DATA"


def generated_root(source: str, generate: dict[str, Any]) -> Path:
    """Where the generated ``source`` data set with these settings lives on this machine."""
    base = Path(os.environ.get(DATA_ENV) or Path(tempfile.gettempdir()) / "lsmia-bench-data")
    return base / f"fake-{source}-{content_hash({'source': source, **generate})[:12]}"


def ensure_generated(source: str, generate: dict[str, Any]) -> Path:
    """Write the fake data set unless it is there; atomic (a temporary folder renamed), so
    concurrent trials never read half a tree."""
    from lsmia_bench.benchmark.data.fake_faces import make_fake_celeba, make_fake_facescrub

    root = generated_root(source, generate)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    make = make_fake_facescrub if source == "facescrub" else make_fake_celeba
    try:
        make(scratch, **generate)
        scratch.rename(root)
    except OSError:
        if not root.is_dir():
            raise
    finally:  # left only when another trial finished first (its copy is identical) or on error
        shutil.rmtree(scratch, ignore_errors=True)
    return root


def load_face_splits(data: dict[str, Any]) -> FaceSplits:
    """The private splits described by a faces suite's ``data`` section (a dict, as stored in
    job specs); UserError naming what is missing when the data set is not there."""
    source = data["source"]
    root = data.get("root")
    if data.get("generate"):
        root = ensure_generated(source, data["generate"])
    common = {"train_fraction": data["train_fraction"], "split_seed": data["split_seed"]}
    if source == "facescrub":
        from lsmia_bench.benchmark.data.facescrub import load_facescrub

        return load_facescrub(root, expected_identities=data.get("expected_identities"),
                              **common)
    from lsmia_bench.benchmark.data.celeba import IMAGE_FOLDER, load_celeba

    count = data["num_identities"]
    if data.get("generate"):  # a generated set has only so many identities
        count = min(count, data["generate"]["identities"])
    return load_celeba(root, num_identities=count,
                       image_folder=data.get("image_folder") or IMAGE_FOLDER, **common)
