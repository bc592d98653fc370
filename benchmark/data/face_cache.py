"""The faces suite's cached input path (``data.input: cached``): each image decoded and resized
once into uint8 arrays, the random augmentations run per batch on the training device.

The cache holds exactly the intermediate of the PIL path (``face_folders``): the image after
``ToImage`` and ``Resize(size)`` of the shorter side (antialiased), as uint8, channels first,
at its own aspect ratio. So evaluation images (center crop, to [0, 1]) are bit-identical to
``face_eval_transform``'s, and a training batch is the paper's transform of
``face_train_transform`` with the same ops and parameters: RandomResizedCrop(size, scale,
ratio), ColorJitter(brightness, contrast, saturation, hue) in a random order, horizontal flip,
each drawn PER IMAGE from torchvision's own ``make_params`` in the PIL path's order (a v2
transform called on a batch would draw once per batch). Drawn from the same seed, a batch
equals the PIL path's images to float rounding (tests/test_face_cache.py).

Layout of a cache folder: ``images-NNNNN.npy`` (one flat uint8 array per chunk of
:data:`CHUNK` images, read memory-mapped), ``index.npy`` (per image: chunk, offset, height,
width) and ``cache.json`` (sizes, the split's row ranges, a fingerprint of the file list).
The build writes each chunk to a temporary file renamed into a folder beside the job's
output, so a killed build resumes at the first missing chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

from lsmia_bench.benchmark.data.face_folders import FaceSplits, read_rgb
from lsmia_bench.kernel.files import write_json_atomic

CHUNK = 512
"""Images per chunk file: the unit a killed build resumes from."""

FORMAT = 1
SPLITS = ("train", "test")
Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def files_fingerprint(files: Sequence[str]) -> str:
    """sha256 of the newline-joined file list: a cache is used only with its own files."""
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]


def decode_resized(path: str, size: int) -> np.ndarray:
    """The image as the PIL path has it before any random op: RGB, ``Resize(size)`` of the
    shorter side (antialiased), uint8, shape (3, H, W)."""
    image = TF.resize(TF.to_image(read_rgb(path)), size, antialias=True)
    return image.numpy()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def build_cache(files: Sequence[str], size: int, out: Path, partial: Path,
                threads: int = 1) -> dict[str, Any]:
    """Decode ``files`` into a cache folder ``out`` (see the module docstring); chunks done
    by an earlier, killed build in ``partial`` are kept. Returns what ``cache.json`` says."""
    partial.mkdir(parents=True, exist_ok=True)
    chunks = (len(files) + CHUNK - 1) // CHUNK
    with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL releases the GIL while decoding
        for chunk in range(chunks):
            images = partial / f"images-{chunk:05d}.npy"
            shapes = partial / f"shapes-{chunk:05d}.npy"
            if images.is_file() and shapes.is_file():
                continue
            decoded = list(pool.map(lambda f: decode_resized(f, size),
                                    files[chunk * CHUNK:(chunk + 1) * CHUNK]))
            _save_npy_atomic(shapes, np.array([a.shape[1:] for a in decoded], dtype=np.int64))
            _save_npy_atomic(images, np.concatenate([a.reshape(-1) for a in decoded]))
    index = []
    for chunk in range(chunks):
        shapes = np.load(partial / f"shapes-{chunk:05d}.npy")
        offsets = np.concatenate([[0], np.cumsum(3 * shapes[:, 0] * shapes[:, 1])[:-1]])
        index.append(np.column_stack([np.full(len(shapes), chunk), offsets, shapes]))
    out.mkdir(parents=True, exist_ok=True)
    table = np.concatenate(index) if index else np.zeros((0, 4), dtype=np.int64)
    np.save(out / "index.npy", table.astype(np.int64))
    for chunk in range(chunks):
        os.replace(partial / f"images-{chunk:05d}.npy", out / f"images-{chunk:05d}.npy")
    shutil.rmtree(partial, ignore_errors=True)
    return {"format": FORMAT, "image_size": size, "images": len(files), "chunks": chunks,
            "bytes": int(sum(3 * table[:, 2] * table[:, 3])),
            "non_square": int((table[:, 2] != table[:, 3]).sum()),
            "files": files_fingerprint(files)}


def build_split_cache(splits: FaceSplits, size: int, out: Path, partial: Path,
                      threads: int = 1) -> dict[str, Any]:
    """:func:`build_cache` of the train files, then the test files; ``cache.json`` written."""
    files = [*splits.train_files, *splits.test_files]
    info = build_cache(files, size, out, partial, threads)
    info["splits"] = {"train": [0, len(splits.train_files)],
                      "test": [len(splits.train_files), len(files)]}
    write_json_atomic(out / "cache.json", info)
    return info


class FaceImageCache:
    """A cache folder read memory-mapped; ``image(row)`` is a uint8 (3, H, W) array view."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.info = json.loads((self.folder / "cache.json").read_text())
        self.index = np.load(self.folder / "index.npy")
        self.chunks = [np.load(self.folder / f"images-{c:05d}.npy", mmap_mode="r")
                       for c in range(self.info["chunks"])]
        self.size = int(self.info["image_size"])

    def check(self, splits: FaceSplits, size: int) -> None:
        """ValueError unless this cache was built from these splits' files at ``size``."""
        files = [*splits.train_files, *splits.test_files]
        if self.size != size or self.info["files"] != files_fingerprint(files):
            raise ValueError(f"image cache {self.folder} was built for other files or another "
                             f"size ({self.size} px); the run's data are {len(files)} files at "
                             f"{size} px")

    def rows(self, split: str) -> np.ndarray:
        start, stop = self.info["splits"][split]
        return np.arange(start, stop)

    def shape(self, row: int) -> tuple[int, int]:
        return int(self.index[row, 2]), int(self.index[row, 3])

    def image(self, row: int) -> np.ndarray:
        chunk, offset, height, width = (int(v) for v in self.index[row])
        return self.chunks[chunk][offset:offset + 3 * height * width].reshape(3, height, width)


class CachedImages:
    """Evaluation images from a cache, indexed like :class:`face_folders.LazyImages` (slices
    and ints read tensors, masks and index arrays give subsets): center crop ``size`` px, to
    float in [0, 1], bit-identical to ``face_eval_transform``."""

    def __init__(self, cache: FaceImageCache, rows: Sequence[int] | np.ndarray) -> None:
        self.cache = cache
        self.rows = np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> torch.Tensor | CachedImages:
        if isinstance(key, slice):
            return self._read(self.rows[key])
        if isinstance(key, int | np.integer) or (isinstance(key, torch.Tensor) and key.ndim == 0
                                                  and key.dtype != torch.bool):
            return self._read(self.rows[[int(key)]])[0]
        chosen = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        return CachedImages(self.cache, self.rows[chosen])

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        size = self.cache.size
        if len(rows) == 0:
            return torch.empty(0, 3, size, size)
        crops = [TF.center_crop(torch.from_numpy(np.array(self.cache.image(int(r)))),
                                [size, size]) for r in rows]
        return TF.to_dtype(torch.stack(crops), torch.float32, scale=True)


def draw_params(shapes: Sequence[tuple[int, int]], crop: v2.RandomResizedCrop,
                jitter: v2.ColorJitter | None, flip: float) -> dict[str, torch.Tensor]:
    """Per image, in the PIL path's order (crop, jitter, flip) from the global torch RNG, with
    torchvision's own ``make_params``: crop boxes (N, 4: top, left, height, width), jitter
    order (N, 4) and factors (N, 4: brightness, contrast, saturation, hue), flips (N,)."""
    boxes, orders, factors, flips = [], [], [], []
    for height, width in shapes:
        box = crop.make_params([torch.empty(1).expand(3, height, width)])
        boxes.append([box["top"], box["left"], box["height"], box["width"]])
        if jitter is not None:
            made = jitter.make_params([])
            orders.append(made["fn_idx"].tolist())
            factors.append([made[f"{name}_factor"] for name in
                            ("brightness", "contrast", "saturation", "hue")])
        flips.append(bool(torch.rand(1) < flip) if flip > 0 else False)
    out = {"boxes": torch.tensor(boxes, dtype=torch.long).reshape(-1, 4),
           "flips": torch.tensor(flips, dtype=torch.bool)}
    if jitter is not None:  # a factor of None (op switched off) is the identity's
        identity = [1.0, 1.0, 1.0, 0.0]
        out["orders"] = torch.tensor(orders, dtype=torch.long).reshape(-1, 4)
        out["factors"] = torch.tensor(
            [[identity[i] if v is None else v for i, v in enumerate(row)] for row in factors],
            dtype=torch.float64).reshape(-1, 4)
    return out


def gather_crops(cache: FaceImageCache, rows: Sequence[int], boxes: torch.Tensor,
                 size: int) -> torch.Tensor:
    """The crop boxes of the given cache rows, uint8 (N, 3, size, size), each crop at the top
    left (a crop is never larger than the cache's shorter side, ``size``)."""
    out = np.zeros((len(rows), 3, size, size), dtype=np.uint8)
    for i, (row, (top, left, height, width)) in enumerate(zip(rows, boxes.tolist(),
                                                              strict=True)):
        out[i, :, :height, :width] = cache.image(int(row))[:, top:top + height,
                                                           left:left + width]
    return torch.from_numpy(out)


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """clamp(r x + (1 - r) y, 0, 1) per image: torchvision's ``_blend`` with a ratio per image."""
    r = ratio.view(-1, 1, 1, 1)
    return (images * r.float() + other * (1.0 - r).float()).clamp_(0, 1)


def _jitter_op(op: int, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """ColorJitter's op ``op`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with a factor
    per image, as torchvision's ``adjust_*`` kernels compute it for float images."""
    if op == 0:
        return (images * factor.view(-1, 1, 1, 1).float()).clamp_(0, 1)
    if op in (1, 2):
        gray = TF.rgb_to_grayscale(images, num_output_channels=1)
        if op == 1:
            gray = gray.mean(dim=(-3, -2, -1), keepdim=True)
        return _blend(images, gray, factor)
    hsv = _rgb_to_hsv(images)
    h, s, v = hsv.unbind(dim=-3)
    h = (h + factor.view(-1, 1, 1).float()).remainder_(1.0)
    return _hsv_to_rgb(torch.stack((h, s, v), dim=-3))


def augment_batch(crops: torch.Tensor, params: dict[str, torch.Tensor],
                  size: int) -> torch.Tensor:
    """The rest of the paper's transform on a batch of uint8 crops (from :func:`gather_crops`)
    on their device: to [0, 1], resize each crop to ``size`` (antialiased bilinear, as
    RandomResizedCrop), ColorJitter's ops in each image's order, horizontal flips."""
    device = crops.device
    boxes = params["boxes"]
    out = torch.empty(crops.shape, dtype=torch.float32, device=device)
    sizes = boxes[:, 2:].tolist()
    for height, width in sorted({tuple(s) for s in sizes}):
        members = torch.tensor([i for i, s in enumerate(sizes) if s == [height, width]],
                               device=device)
        crop = TF.to_dtype(crops[members, :, :height, :width], torch.float32, scale=True)
        out[members] = TF.resize(crop, [size, size], antialias=True)
    if "orders" in params:  # groups chosen on the host: no wait for the device
        orders, factors = params["orders"], params["factors"].to(device)
        for slot in range(4):
            for op in range(4):
                chosen = (orders[:, slot] == op).nonzero().squeeze(1)
                if len(chosen):
                    members = chosen.to(device, non_blocking=True)
                    out[members] = _jitter_op(op, out[members], factors[members, op])
    flips = params["flips"].to(device).view(-1, 1, 1, 1)
    return torch.where(flips, out.flip(-1), out)


class CachedBatches:
    """A ``batches()`` callable over a cache split for ``train_classifier``: each call is one
    epoch in a fresh order drawn from ``seed``; the crops are gathered on the host (pinned for
    a GPU) and augmented on ``device``. A last batch of one image is skipped (BatchNorm), as
    ``dataloader_batches`` does. The per-image draws come from their own RNG stream, so the
    training's draws (dropout, defenses) do not change the augmentations."""

    def __init__(self, cache: FaceImageCache, split: str, labels: Sequence[int],
                 batch_size: int, seed: int, device: torch.device | str,
                 resized_crop_scale: tuple[float, float] = (0.85, 1.0),
                 resized_crop_ratio: tuple[float, float] = (1.0, 1.0),
                 color_jitter: tuple[float, float, float, float] | None = (0.2, 0.2, 0.1, 0.1),
                 flip: float = 0.5) -> None:
        self.cache, self.rows = cache, cache.rows(split)
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        if len(self.labels) != len(self.rows):
            raise ValueError(f"{len(self.labels)} labels for {len(self.rows)} cached images")
        self.batch_size, self.device = batch_size, torch.device(device)
        self.size = cache.size
        self.crop = v2.RandomResizedCrop((self.size, self.size), scale=resized_crop_scale,
                                         ratio=resized_crop_ratio, antialias=True)
        self.jitter = None if color_jitter is None else v2.ColorJitter(*color_jitter)
        self.flip = flip
        self.order = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.rng_state = torch.get_rng_state()

    def __len__(self) -> int:
        return len(self.rows)

    def draw(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """The next images' random parameters from this loader's own RNG stream."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)
            params = draw_params([self.cache.shape(int(r)) for r in rows], self.crop,
                                 self.jitter, self.flip)
            self.rng_state = torch.get_rng_state()
        return params

    def __call__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.rows), generator=self.order)
        pin = self.device.type == "cuda"
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size]
            if len(chosen) < 2 < len(self.rows):
                continue
            rows = self.rows[chosen.numpy()]
            params = self.draw(rows)
            crops = gather_crops(self.cache, rows, params["boxes"], self.size)
            if pin:
                crops = crops.pin_memory()
            crops = crops.to(self.device, non_blocking=True)
            yield (augment_batch(crops, params, self.size),
                   self.labels[chosen].to(self.device, non_blocking=True))
