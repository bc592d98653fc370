"""FaceScrub (Ng and Winkler, ICIP 2014): 530 identities (265 actors, 265 actresses), the
cropped faces, as the label smoothing paper and Plug & Play Attacks use them.

Layout (the user downloads the data set from http://vintage.winklerbros.net/facescrub.html
and keeps its cropped ``faces`` folders)::

    <root>/actors/faces/<Identity_Name>/*.jpg
    <root>/actresses/faces/<Identity_Name>/*.jpg

Identities and split follow the paper's code (``datasets/facescrub.py`` of
github.com/LukasStruppek/Plug-and-Play-Attacks, ``group='all'``): labels are the actors'
folder names sorted, then the actresses' sorted (torchvision ImageFolder order, files sorted
within a folder); all images are shuffled with ``np.random.seed(42)`` and the first 90 % train,
the rest test. A model trained by that code therefore has the same label for each identity.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from lsmia_bench.benchmark.data.face_folders import (
    FaceSplits,
    data_error,
    listed,
    paper_split,
    require_root,
)

log = logging.getLogger("lsmia_bench")

FACESCRUB_URL = "http://vintage.winklerbros.net/facescrub.html"
FACESCRUB_IDENTITIES = 530
GROUPS = ("actors", "actresses")
LAYOUT = ("<root>/actors/faces/<Identity_Name>/*.jpg and "
          "<root>/actresses/faces/<Identity_Name>/*.jpg (FaceScrub's cropped faces)")


def _error(field: str, value: object, problem: str):
    return data_error(field, value, "FaceScrub", problem, LAYOUT, FACESCRUB_URL)


def identity_folders(root: str | Path | None, field: str = "data.root") -> list[tuple[str, Path]]:
    """(name, folder) of every identity, actors sorted by name, then actresses sorted.

    UserError naming every missing group folder, or the identity folders without images.
    Hidden folders (``.name``) are skipped.
    """
    base = require_root(root, field, "FaceScrub", LAYOUT, FACESCRUB_URL)
    groups = [base / group / "faces" for group in GROUPS]
    missing = [str(g) for g in groups if not g.is_dir()]
    if missing:
        raise _error(field, str(base), f"missing {listed(missing)}")
    folders = []
    for group in groups:
        names = sorted(e.name for e in os.scandir(group)
                       if e.is_dir() and not e.name.startswith("."))
        folders += [(name, group / name) for name in names]
    if not folders:
        raise _error(field, str(base), f"no identity folders in {groups[0]} or {groups[1]}")
    return folders


def load_facescrub(
    root: str | Path | None,
    train_fraction: float = 0.9,
    split_seed: int = 42,
    expected_identities: int | None = None,
    field: str = "data.root",
) -> FaceSplits:
    """FaceScrub's identities, files and the paper's 90/10 split (see the module docstring).

    Arguments:
        root (path): the folder holding ``actors/`` and ``actresses/``.
        train_fraction (float): share of all images in the train split. (Default: 0.9, paper)
        split_seed (int): seed of the shuffle. (Default: 42, paper)
        expected_identities (int | None): fail unless exactly this many identities are found
            (530 for the full data set; None accepts any number, e.g. a generated tree).
        field (str): the config field named in error messages. (Default: "data.root")
    """
    folders = identity_folders(root, field)
    base = Path(root).expanduser().resolve()
    if expected_identities is not None and len(folders) != expected_identities:
        raise _error(field, str(base), f"found {len(folders)} identity folders, expected "
                     f"{expected_identities}")
    samples, empty = [], []
    for label, (name, folder) in enumerate(folders):
        found = make_dataset(str(folder.parent), {name: label}, extensions=IMG_EXTENSIONS,
                             allow_empty=True)
        if not found:
            empty.append(str(folder))
        samples += found
    if empty:
        raise _error(field, str(base), f"{len(empty)} identity folder(s) without images "
                     f"({', '.join(IMG_EXTENSIONS)}): {listed(empty)}")
    train_index, test_index = paper_split(len(samples), train_fraction, split_seed)
    files = [str(Path(path).resolve()) for path, _ in samples]
    labels = [label for _, label in samples]
    log.info("FaceScrub: %d identities, %d images (%d train, %d test) under %s",
             len(folders), len(samples), len(train_index), len(test_index), base)
    return FaceSplits(
        source="facescrub", root=str(base), classes=[name for name, _ in folders],
        train_files=[files[i] for i in train_index],
        train_labels=[labels[i] for i in train_index],
        test_files=[files[i] for i in test_index], test_labels=[labels[i] for i in test_index],
        split_seed=split_seed, train_fraction=train_fraction,
        info={"images": len(samples), "actors": _group_size(folders, base, "actors")},
    )


def _group_size(folders: list[tuple[str, Path]], base: Path, group: str) -> int:
    return sum(folder.parent == base / group / "faces" for _, folder in folders)
