"""Tiny generated face data sets in the real folder layouts, for tests and smoke runs.

Each identity is a drawn cartoon face (skin tone, hair colour, eye spacing, face width, background
fixed per identity); each image of it moves, scales and relights that face and adds noise, so a
small classifier can tell identities apart. Files are real JPEG/PNG images that the FaceScrub,
CelebA and public-folder loaders read exactly like the real data sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lsmia_bench.benchmark.data.celeba import IDENTITY_FILE, IMAGE_FOLDER
from lsmia_bench.benchmark.data.facescrub import GROUPS

FIRST_NAMES = ["Aaron", "Adam", "Alec", "Amy", "Angela", "Anne", "Ben", "Bill", "Bruce", "Cate",
               "Chris", "Dana", "Emma", "Ewan", "Gina", "Hugh", "Jada", "Kate", "Leah", "Mila"]
LAST_NAMES = ["Baker", "Clark", "Diaz", "Evans", "Fox", "Gray", "Hall", "Irwin", "Jones", "King",
              "Lane", "Moore", "Nash", "Owen", "Price", "Quinn", "Reed", "Stone", "Tate", "Young"]


def _counts(images_per_identity: int | Sequence[int], identities: int) -> list[int]:
    if isinstance(images_per_identity, int):
        return [images_per_identity] * identities
    counts = list(images_per_identity)
    if len(counts) != identities:
        raise ValueError(f"images_per_identity lists {len(counts)} counts for {identities} "
                         "identities")
    return counts


def _looks(rng: np.random.Generator) -> dict:
    """The fixed appearance of one identity."""
    return {"skin": rng.integers(90, 240, 3), "hair": rng.integers(0, 160, 3),
            "background": rng.integers(0, 255, 3), "eyes": rng.uniform(0.12, 0.22),
            "width": rng.uniform(0.28, 0.40), "mouth": rng.uniform(0.08, 0.2)}


def draw_face(looks: dict, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of an identity: its face shifted, scaled, relit, with pixel noise."""
    image = Image.new("RGB", (size, size), tuple(int(c) for c in looks["background"]))
    draw = ImageDraw.Draw(image)
    cx, cy = size * (0.5 + rng.uniform(-0.06, 0.06)), size * (0.52 + rng.uniform(-0.06, 0.06))
    scale = size * rng.uniform(0.9, 1.1)
    width, height = looks["width"] * scale, 0.42 * scale
    hair = tuple(int(c) for c in looks["hair"])
    draw.ellipse([cx - width * 1.05, cy - height * 1.1, cx + width * 1.05, cy + height * 0.2],
                 fill=hair)
    draw.ellipse([cx - width, cy - height, cx + width, cy + height],
                 fill=tuple(int(c) for c in looks["skin"]))
    eye_dx, eye_r = looks["eyes"] * scale, 0.04 * scale
    for side in (-1, 1):
        ex, ey = cx + side * eye_dx, cy - 0.12 * scale
        draw.ellipse([ex - eye_r, ey - eye_r, ex + eye_r, ey + eye_r], fill=(30, 30, 40))
    mouth = looks["mouth"] * scale
    draw.line([cx - mouth, cy + 0.2 * scale, cx + mouth, cy + 0.2 * scale], fill=(150, 40, 50),
              width=max(1, size // 32))
    pixels = np.asarray(image, dtype=np.float32) * rng.uniform(0.8, 1.2)
    pixels += rng.normal(0, 8, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=90)
    else:
        image.save(path)


def fake_identity_names(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct names like ``Kate_Moore`` (FaceScrub's folder style); past the 400
    first-last pairs, ``Kate_Moore_2`` and so on (FaceScrub itself has 530)."""
    pairs_count = len(FIRST_NAMES) * len(LAST_NAMES)
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(pairs_count)
    names = []
    for i in range(count):
        p = pairs[i % pairs_count]
        suffix = f"_{i // pairs_count + 1}" if i >= pairs_count else ""
        names.append(f"{FIRST_NAMES[p // len(LAST_NAMES)]}_{LAST_NAMES[p % len(LAST_NAMES)]}"
                     f"{suffix}")
    return names


def make_fake_facescrub(root: str | Path, identities: int = 6,
                        images_per_identity: int | Sequence[int] = 4, size: int = 32,
                        seed: int = 0, extension: str = ".jpeg") -> Path:
    """Write ``<root>/actors/faces/<Name>/<Name>_<i>_<i>.jpeg`` for the first half of the
    identities (rounded up) and ``<root>/actresses/faces/...`` for the rest; returns root.

    ``images_per_identity`` is one count or one per identity (in the order written).
    """
    root = Path(root)
    counts = _counts(images_per_identity, identities)
    names = fake_identity_names(identities, seed)
    rng = np.random.default_rng(seed)
    actors = (identities + 1) // 2
    for index, (name, count) in enumerate(zip(names, counts, strict=True)):
        group = GROUPS[0] if index < actors else GROUPS[1]
        looks = _looks(rng)
        folder = root / group / "faces" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            _save(draw_face(looks, size, rng), folder / f"{name}_{i + 1}_{i + 1}{extension}")
    for group in GROUPS:
        (root / group / "faces").mkdir(parents=True, exist_ok=True)
    return root


def make_fake_celeba(root: str | Path, identities: int = 6,
                     images_per_identity: int | Sequence[int] = 4, size: int = 32,
                     seed: int = 0, image_folder: str = IMAGE_FOLDER,
                     extension: str = ".jpg") -> Path:
    """Write ``<root>/identity_CelebA.txt`` and ``<root>/<image_folder>/000001.jpg ...``
    (images of all identities interleaved at random, identity numbers drawn from CelebA's
    1..10177); returns root.

    With ``extension=".png"`` the files are PNG while the list names ``.jpg``, as in the
    paper's face crops.
    """
    root = Path(root)
    counts = _counts(images_per_identity, identities)
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(1, 10178), size=identities, replace=False)
    looks = [_looks(rng) for _ in range(identities)]
    order = rng.permutation(np.repeat(np.arange(identities), counts))
    lines = []
    for number, who in enumerate(order, start=1):
        name = f"{number:06d}.jpg"
        lines.append(f"{name} {int(ids[who])}\n")
        path = root / image_folder / name
        _save(draw_face(looks[who], size, rng), path.with_suffix(extension))
    (root / image_folder).mkdir(parents=True, exist_ok=True)
    (root / IDENTITY_FILE).write_text("".join(lines))
    return root


def make_fake_public_faces(folder: str | Path, count: int = 16, size: int = 32, seed: int = 0,
                           extension: str = ".png") -> Path:
    """Write ``count`` faces of ``count`` new identities to ``<folder>/00000.png ...`` (a
    stand-in for FFHQ: public faces that share no identity with the private set); returns
    the folder."""
    folder = Path(folder)
    rng = np.random.default_rng(seed + 1_000_003)
    for i in range(count):
        _save(draw_face(_looks(rng), size, rng), folder / f"{i:05d}{extension}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
