"""Shared pieces of the face data sets of the ``faces`` suite (docs/protocol.md): lazy file lists,
the split of the paper's code, the paper's transforms, public image folders, error messages.

A face data set is a list of image files with identity labels; nothing is read until a
:class:`FaceImageDataset` item is asked for, so 200k CelebA files cost a list of strings.
Images come out as float tensors in [0, 1] of shape (3, size, size): normalisation lives in
the classifier (the lsmia-bench classifier contract), not in the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from lsmia_bench.kernel.errors import UserError

log = logging.getLogger("lsmia_bench")

FFHQ_URL = "https://github.com/NVlabs/ffhq-dataset"
LISTED_LIMIT = 5
"""How many missing paths or bad lines an error message names before it counts the rest."""

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class FaceSplits:
    """Private train/test files of a face data set with labels ``0..num_classes-1``.

    ``classes[label]`` is the identity behind a label (a FaceScrub name, a CelebA identity
    number as a string). Files are absolute paths; call :meth:`dataset` to read them.
    """

    source: str
    root: str
    classes: list[str]
    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]
    split_seed: int
    train_fraction: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def dataset(self, split: str, transform: Transform | None = None) -> FaceImageDataset:
        """The ``"train"`` or ``"test"`` split as a lazy Dataset of (image, label)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        files = self.train_files if split == "train" else self.test_files
        labels = self.train_labels if split == "train" else self.test_labels
        return FaceImageDataset(files, labels, transform)

    def record(self) -> dict[str, Any]:
        """What a run's record says about the data (no file lists)."""
        return {"source": self.source, "root": self.root, "num_classes": self.num_classes,
                "train_images": len(self.train_files), "test_images": len(self.test_files),
                "split_seed": self.split_seed, "train_fraction": self.train_fraction,
                **self.info}


class FaceImageDataset(Dataset):
    """(image, label) pairs read lazily from files with PIL (converted to RGB).

    Arguments:
        files (list of str): image paths.
        labels (list of int): a label per file (-1 for unlabelled public images).
        transform (callable): PIL image -> tensor. (Default: :func:`to_float_tensor`, the
            image at its own size as a float tensor in [0, 1])
    """

    def __init__(self, files: Sequence[str], labels: Sequence[int],
                 transform: Transform | None = None) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = list(files)
        self.labels = list(labels)
        self.transform = transform or to_float_tensor()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(read_rgb(self.files[index])), self.labels[index]

    def stack(self, indices: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the given items (all by default) into (N, C, H, W) images and (N,) labels;
        the transform must give one size. For small subsets (a class, a smoke run)."""
        chosen = range(len(self)) if indices is None else indices
        items = [self[int(i)] for i in chosen]
        if not items:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        images, labels = zip(*items, strict=True)
        return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def read_rgb(path: str) -> Image.Image:
    """The image file as an RGB PIL image; UserError naming an unreadable file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError("data", path, "Replace or delete this file (it must be an image "
                        "PIL can read).", problem=f"unreadable image ({exc})") from None


class LazyImages:
    """The images of a :class:`FaceImageDataset` (or a subset), read from disk on demand but
    indexed like an (N, C, H, W) tensor, so metric code written for tensors runs unchanged on
    data sets too large for memory (30,000 FaceScrub faces at 224 px are 18 GB as floats).

    ``images[i:j]`` and ``images[k]`` read and return tensors (decoded by ``threads`` threads:
    PIL releases the GIL while decoding); a boolean mask or an index tensor/array returns
    another LazyImages over that subset, reading nothing. The dataset's transform must give
    one size (use :func:`face_eval_transform`).
    """

    def __init__(self, dataset: FaceImageDataset, indices: Sequence[int] | None = None,
                 threads: int = 8) -> None:
        self.dataset = dataset
        self.indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
        self.threads = threads

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: Any) -> torch.Tensor | LazyImages:
        if isinstance(key, slice):
            return self._read(self.indices[key])
        if isinstance(key, int | np.integer) or (isinstance(key, torch.Tensor) and key.ndim == 0
                                                  and key.dtype != torch.bool):
            return self._read(self.indices[[int(key)]])[0]
        chosen = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        return LazyImages(self.dataset, self.indices[chosen], self.threads)

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        from concurrent.futures import ThreadPoolExecutor

        if len(rows) == 0:  # an empty batch keeps the image shape, as a tensor's would
            first = self.dataset[int(self.indices[0])][0] if len(self.indices) else None
            return torch.empty(0, *first.shape) if first is not None else torch.empty(0)
        if self.threads <= 1 or len(rows) == 1:
            images = [self.dataset[int(i)][0] for i in rows]
        else:
            with ThreadPoolExecutor(min(self.threads, len(rows))) as pool:
                images = list(pool.map(lambda i: self.dataset[int(i)][0], rows))
        return torch.stack(images)


def dataloader_batches(dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0,
                       pin_memory: bool = False
                       ) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A ``batches()`` callable for :func:`benchmark.training.train_classifier` over a lazy
    dataset: each call is one epoch in a fresh order drawn from ``seed`` (and the workers'
    random transforms seeded from it), read by ``num_workers`` processes. A last batch of one
    image is skipped (BatchNorm cannot train on it)."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                        num_workers=num_workers, pin_memory=pin_memory,
                        persistent_workers=num_workers > 0)

    def epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in loader:
            if len(labels) < 2 < len(dataset):
                continue
            yield images, labels

    return epoch


def to_float_tensor() -> Transform:
    """PIL image -> float tensor in [0, 1], shape (C, H, W)."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def face_train_transform(
    image_size: int = 224,
    resized_crop_scale: tuple[float, float] = (0.85, 1.0),
    resized_crop_ratio: tuple[float, float] = (1.0, 1.0),
    color_jitter: tuple[float, float, float, float] | None = (0.2, 0.2, 0.1, 0.1),
    flip: float = 0.5,
) -> Transform:
    """The paper's training transform (its code's ``ResNet152_FaceScrub.yaml``): Resize(size)
    of the shorter side, to tensor, RandomResizedCrop(size, scale 0.85-1, ratio 1),
    ColorJitter(brightness 0.2, contrast 0.2, saturation 0.1, hue 0.1), horizontal flip 0.5.
    The normalisation of the paper's code, (x - 0.5) / 0.5, is inside the classifier."""
    steps: list[Any] = [v2.ToImage(), v2.Resize(image_size, antialias=True),
                        v2.ToDtype(torch.float32, scale=True),
                        v2.RandomResizedCrop((image_size, image_size), scale=resized_crop_scale,
                                             ratio=resized_crop_ratio, antialias=True)]
    if color_jitter is not None:
        brightness, contrast, saturation, hue = color_jitter
        steps.append(v2.ColorJitter(brightness=brightness, contrast=contrast,
                                    saturation=saturation, hue=hue))
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(flip))
    return v2.Compose(steps)


def face_eval_transform(image_size: int = 224) -> Transform:
    """Resize(size) of the shorter side, CenterCrop(size), to tensor in [0, 1].

    The paper's code resizes test images and center-crops CelebA only; the crop changes
    nothing for square images (all of CelebA's crops, nearly all FaceScrub faces) and lets
    batches of non-square ones stack."""
    return v2.Compose([v2.ToImage(), v2.Resize(image_size, antialias=True),
                       v2.CenterCrop(image_size), v2.ToDtype(torch.float32, scale=True)])


def paper_split(count: int, train_fraction: float = 0.9,
                seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and test split of ``count`` items, as the paper's code draws them:
    ``np.random.seed(seed); np.random.shuffle(indices)``, the first ``int(fraction * count)``
    shuffled indices train, the rest test (not stratified by identity)."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    indices = np.arange(count)
    np.random.RandomState(seed).shuffle(indices)
    cut = int(train_fraction * count)
    return indices[:cut], indices[cut:]


def is_image_file(name: str) -> bool:
    """The image extensions of torchvision's ImageFolder (case-insensitive)."""
    return name.lower().endswith(IMG_EXTENSIONS)


def listed(items: Sequence[Any], limit: int = LISTED_LIMIT) -> str:
    """``a, b, c`` or ``a, b, c and 12 more``."""
    shown = ", ".join(str(i) for i in items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def data_error(field: str, value: Any, dataset: str, problem: str, layout: str,
               source_url: str) -> UserError:
    """A UserError for missing or malformed data: what is wrong, the layout, the source."""
    return UserError(
        field, value,
        f"Expected layout: {layout}. {dataset} comes from {source_url} (lsmia-bench never "
        f"downloads it); point {field} at the folder that holds it.",
        problem=problem,
    )


def require_root(root: str | Path | None, field: str, dataset: str, layout: str,
                 source_url: str) -> Path:
    """The absolute root folder; a UserError when it is not given or not a folder."""
    if root is None or str(root).strip() == "":
        raise data_error(field, root, dataset, f"no {dataset} folder given", layout, source_url)
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise data_error(field, str(path), dataset, f"{dataset} folder not found, missing "
                         f"{path}", layout, source_url)
    return path


PUBLIC_NAME = "FFHQ (or another public face image set)"
PUBLIC_LAYOUT = "<folder>/*.png or *.jpg (subfolders are searched too, e.g. FFHQ's " \
                "images1024x1024/00000/00000.png)"


def public_image_files(folder: str | Path | None,
                       field: str = "data.public_folder") -> list[str]:
    """Sorted paths of every image under a public image folder (e.g. FFHQ); UserError when
    the folder is missing or holds no image."""
    root = require_root(folder, field, PUBLIC_NAME, PUBLIC_LAYOUT, FFHQ_URL)
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and is_image_file(p.name))
    if not files:
        raise data_error(field, str(root), PUBLIC_NAME, f"no image files in {root}",
                         PUBLIC_LAYOUT, FFHQ_URL)
    return files


def public_image_dataset(folder: str | Path | None, transform: Transform | None = None,
                         field: str = "data.public_folder") -> FaceImageDataset:
    """The public images as a lazy Dataset of (image, -1)."""
    files = public_image_files(folder, field)
    return FaceImageDataset(files, [-1] * len(files), transform)
