"""CelebA (Liu et al., ICCV 2015) restricted to its 1000 most frequent identities, as the label
smoothing paper and Plug & Play Attacks use it.

Layout (the user downloads the data set from
https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html)::

    <root>/identity_CelebA.txt          lines "000001.jpg 2880" (file name, identity)
    <root>/img_align_celeba/000001.jpg  (or another image folder, e.g. face crops)

The paper crops the faces with the HD CelebA Cropper (face factor 0.65, 224 px, bicubic) and
stores them as PNG under the original names; a listed ``000001.jpg`` is therefore also found
as ``000001.png``. Identities and split follow the paper's code (``CelebA1000`` in
``datasets/celeba.py`` of github.com/LukasStruppek/Plug-and-Play-Attacks): identities sorted
by image count, most first, ties in order of first appearance in ``identity_CelebA.txt``;
label = rank; the selected images (in file order) are shuffled with ``np.random.seed(42)``,
the first 90 % train, the rest test.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from lsmia_bench.benchmark.data.face_folders import (
    FaceSplits,
    data_error,
    listed,
    paper_split,
    require_root,
)

log = logging.getLogger("lsmia_bench")

CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_IDENTITIES = 1000
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_FOLDER = "img_align_celeba"
LAYOUT = (f"<root>/{IDENTITY_FILE} (lines '000001.jpg 2880': file name, identity) and "
          f"<root>/<image folder, default {IMAGE_FOLDER}>/000001.jpg (or .png)")


def _error(field: str, value: object, problem: str):
    return data_error(field, value, "CelebA", problem, LAYOUT, CELEBA_URL)


def read_identity_file(path: Path, field: str = "data.root") -> list[tuple[str, int]]:
    """(file name, identity) per line of ``identity_CelebA.txt``, in file order; UserError
    naming the malformed lines (blank lines are skipped)."""
    rows, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                rows.append((parts[0], int(parts[1])))
            else:
                bad.append(f"line {number}: {line.strip()[:40]!r}")
    if bad:
        raise _error(field, str(path), f"{len(bad)} malformed line(s) in {path.name} "
                     f"({listed(bad, 3)})")
    if not rows:
        raise _error(field, str(path), f"{path.name} lists no images")
    return rows


def most_frequent_identities(identities: list[int], count: int) -> list[int]:
    """The ``count`` identities with the most images, most first; ties keep the order of
    first appearance (a stable sort of the counts, as the paper's code does)."""
    counts = Counter(identities)
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    return [identity for identity, _ in ranked[:count]]


def _image_path(folder: Path, name: str) -> Path | None:
    path = folder / name
    if path.is_file():
        return path
    png = path.with_suffix(".png")
    return png if png.is_file() else None


def load_celeba(
    root: str | Path | None,
    num_identities: int = CELEBA_IDENTITIES,
    train_fraction: float = 0.9,
    split_seed: int = 42,
    image_folder: str | Path = IMAGE_FOLDER,
    identity_file: str | Path = IDENTITY_FILE,
    field: str = "data.root",
) -> FaceSplits:
    """CelebA's ``num_identities`` most frequent identities and the paper's 90/10 split.

    Arguments:
        root (path): the CelebA folder.
        num_identities (int): identities kept. (Default: 1000, paper)
        train_fraction (float): share of the selected images in the train split.
            (Default: 0.9, paper)
        split_seed (int): seed of the shuffle. (Default: 42, paper)
        image_folder (path): image folder, relative to ``root`` or absolute.
            (Default: "img_align_celeba")
        identity_file (path): identity list, relative to ``root`` or absolute.
            (Default: "identity_CelebA.txt")
        field (str): the config field named in error messages. (Default: "data.root")
    """
    base = require_root(root, field, "CelebA", LAYOUT, CELEBA_URL)
    images = base / image_folder
    id_file = base / identity_file
    missing = [str(p) for p in (id_file,) if not p.is_file()]
    missing += [str(p) for p in (images,) if not p.is_dir()]
    if missing:
        raise _error(field, str(base), f"missing {listed(missing)}")
    rows = read_identity_file(id_file, field)
    identities = [identity for _, identity in rows]
    selected = most_frequent_identities(identities, num_identities)
    if len(selected) < num_identities:
        raise _error(field, str(base), f"{id_file.name} lists {len(selected)} identities, "
                     f"{num_identities} were asked for")
    label_of = {identity: rank for rank, identity in enumerate(selected)}
    chosen = [(name, label_of[identity]) for name, identity in rows if identity in label_of]
    files, absent = [], []
    for name, _ in chosen:
        path = _image_path(images, name)
        if path is None:
            absent.append(str(images / name))
        else:
            files.append(str(path))
    if absent:
        raise _error(field, str(base), f"{len(absent)} image(s) of the selected identities "
                     f"missing: {listed(absent)}")
    labels = [label for _, label in chosen]
    train_index, test_index = paper_split(len(files), train_fraction, split_seed)
    log.info("CelebA: %d identities, %d images (%d train, %d test) under %s",
             len(selected), len(files), len(train_index), len(test_index), images)
    return FaceSplits(
        source="celeba", root=str(base), classes=[str(i) for i in selected],
        train_files=[files[i] for i in train_index],
        train_labels=[labels[i] for i in train_index],
        test_files=[files[i] for i in test_index], test_labels=[labels[i] for i in test_index],
        split_seed=split_seed, train_fraction=train_fraction,
        info={"images": len(files), "image_folder": str(images),
              "identities_listed": len(set(identities))},
    )
