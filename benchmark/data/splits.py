"""Splitting a labelled image set into PRIVATE train/test and PUBLIC images (docs/protocol.md).

The sources (``digits.py``, ``olivetti.py``) import this module and nothing above it; the
dispatcher :func:`benchmark.data.images.load_image_splits` imports the sources. Keeping the
shared pieces here is what keeps the two from importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lsmia_bench.kernel.errors import UserError


@dataclass(frozen=True)
class ImageSplits:
    """Private train/test and public images as float tensors in [0, 1], shape (N, C, H, W).

    Private labels are remapped to ``0..K-1`` in the order of ``private_classes`` (the source's
    class ids); public labels likewise to ``0..P-1`` in the order of ``public_classes``.
    ``*_index`` are the rows of the source data set each image came from.
    """

    source: str
    private_train: torch.Tensor
    private_train_labels: torch.Tensor
    private_test: torch.Tensor
    private_test_labels: torch.Tensor
    public: torch.Tensor
    public_labels: torch.Tensor
    private_classes: list[int]
    public_classes: list[int]
    private_train_index: np.ndarray
    private_test_index: np.ndarray
    public_index: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.private_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.private_train.shape[1:]
        return int(channels), int(height), int(width)


def check_class_lists(private: Sequence[int], public: Sequence[int], available: Sequence[int],
                      section: str = "data") -> None:
    """Raise UserError unless both lists are non-empty, distinct, known and disjoint."""
    known = set(int(c) for c in available)
    span = f"{min(known)}..{max(known)}"
    for name, classes in (("private_classes", private), ("public_classes", public)):
        field = f"{section}.{name}"
        if not classes:
            raise UserError(field, list(classes), f"List at least one class id in {span}.",
                            problem="empty list")
        if len(set(classes)) != len(classes):
            raise UserError(field, list(classes), "List each class id once.",
                            problem="repeated class ids")
        unknown = sorted(set(classes) - known)
        if unknown:
            raise UserError(field, list(classes), f"Use class ids in {span}.",
                            problem=f"unknown class ids {unknown}")
    shared = sorted(set(private) & set(public))
    if shared:
        raise UserError(f"{section}.public_classes", list(public),
                        "Private and public classes must be disjoint: remove these from one list.",
                        problem=f"classes {shared} are both private and public")


def split_private_public(
    images: np.ndarray,
    labels: np.ndarray,
    private_classes: Sequence[int],
    public_classes: Sequence[int],
    test_fraction: float,
    seed: int,
    source: str,
    image_size: int | None = None,
) -> ImageSplits:
    """Split a labelled image set: per private class, ``round(test_fraction * n_c)`` images
    (at least one, at most n_c - 1) chosen by ``seed`` go to the test split.

    ``images``: (N, H, W) or (N, C, H, W) floats in [0, 1]; ``labels``: (N,) class ids.
    """
    labels = np.asarray(labels)
    check_class_lists(private_classes, public_classes, np.unique(labels))
    rng = np.random.default_rng(seed)
    train_index, test_index = [], []
    for cls in private_classes:
        rows = np.flatnonzero(labels == cls)
        if len(rows) < 2:
            raise UserError("data.private_classes", list(private_classes),
                            "Use classes with at least two images (one to train, one to test).",
                            problem=f"class {cls} has {len(rows)} image(s)")
        rows = rng.permutation(rows)
        n_test = min(len(rows) - 1, max(1, round(test_fraction * len(rows))))
        test_index.append(np.sort(rows[:n_test]))
        train_index.append(np.sort(rows[n_test:]))
    public_index = np.flatnonzero(np.isin(labels, list(public_classes)))
    tensor = _as_image_tensor(images, image_size)
    private_map = {int(c): i for i, c in enumerate(private_classes)}
    public_map = {int(c): i for i, c in enumerate(public_classes)}

    def take(index: np.ndarray, mapping: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        mapped = torch.tensor([mapping[int(c)] for c in labels[index]], dtype=torch.long)
        return tensor[torch.from_numpy(index)].contiguous(), mapped

    train_idx, test_idx = np.concatenate(train_index), np.concatenate(test_index)
    x_train, y_train = take(train_idx, private_map)
    x_test, y_test = take(test_idx, private_map)
    x_public, y_public = take(public_index, public_map)
    return ImageSplits(
        source=source, private_train=x_train, private_train_labels=y_train,
        private_test=x_test, private_test_labels=y_test, public=x_public, public_labels=y_public,
        private_classes=[int(c) for c in private_classes],
        public_classes=[int(c) for c in public_classes],
        private_train_index=train_idx, private_test_index=test_idx, public_index=public_index,
    )


def _as_image_tensor(images: np.ndarray, image_size: int | None) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if image_size is not None and tuple(tensor.shape[-2:]) != (image_size, image_size):
        tensor = resize_images(tensor, image_size)
    return tensor


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize with anti-aliasing of (N, C, H, W) images in [0, 1] to size x size."""
    out = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out.clamp_(0.0, 1.0)
