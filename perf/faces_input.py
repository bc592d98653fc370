"""Images/s per CPU core of the faces suite's two input paths (docs/faces.md, "Input path").

On ``--images`` generated face images (JPEG, ``--source-size`` px, as a face crop folder holds
them), each path makes ``--size`` px training images with the paper's transform:

* ``pil``: what each DataLoader worker does per image: PIL decode, Resize, RandomResizedCrop,
  ColorJitter, flip (``face_folders.face_train_transform``).
* ``cached_host``: what stays on the CPU with ``data.input: cached`` when a GPU trains: the
  per-image random draws and the crops gathered from the memory-mapped cache into a uint8
  batch (the resize, jitter and flip then run on the GPU).
* ``cached_cpu``: the whole cached path on the CPU (augmentation included), as a CPU run has it.

One torch thread, one process: per core. Paths alternate within each repeat, so all see the
same load; the best repeat counts. CPU time (process time) is reported beside wall time, as
the machine may be shared. The one-time decode into the cache is measured too.

    python -m perf.faces_input            # JSON to perf/results/faces_input.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lsmia_bench.benchmark.data.face_cache import (
    CachedBatches,
    FaceImageCache,
    augment_batch,
    build_cache,
    gather_crops,
)
from lsmia_bench.benchmark.data.face_folders import FaceImageDataset, face_train_transform
from lsmia_bench.benchmark.data.fake_faces import make_fake_facescrub
from lsmia_bench.kernel.files import write_json_atomic
from perf.common import write_result


def timed_both(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="faces-input-"))
    identities = max(2, args.images // 8)
    root = make_fake_facescrub(work / "faces", identities, args.images // identities,
                               args.source_size, seed=0)
    files = sorted(str(p) for p in root.rglob("*.jpeg"))
    labels = [0] * len(files)

    started = time.perf_counter()
    info = build_cache(files, args.size, work / "cache", work / "partial")
    decode_s = time.perf_counter() - started
    write_json_atomic(work / "cache" / "cache.json",
                      info | {"splits": {"train": [0, len(files)], "test": [len(files)] * 2}})
    cache = FaceImageCache(work / "cache")
    dataset = FaceImageDataset(files, labels, face_train_transform(args.size))
    loader = CachedBatches(cache, "train", labels, args.batch, 0, "cpu")
    rows = cache.rows("train")

    def pil() -> None:
        for i in range(len(dataset)):
            dataset[i]

    def cached_host() -> None:
        for start in range(0, len(rows), args.batch):
            chosen = rows[start:start + args.batch]
            gather_crops(cache, chosen, loader.draw(chosen)["boxes"], args.size)

    def cached_cpu() -> None:
        for start in range(0, len(rows), args.batch):
            chosen = rows[start:start + args.batch]
            params = loader.draw(chosen)
            augment_batch(gather_crops(cache, chosen, params["boxes"], args.size), params,
                          args.size)

    paths = {"pil": pil, "cached_host": cached_host, "cached_cpu": cached_cpu}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            times[name].append(timed_both(fn))
    results: dict[str, Any] = {}
    for name, runs in times.items():
        wall = min(w for w, _ in runs)
        cpu = min(c for _, c in runs)
        results[name] = {"images_per_s_wall": len(files) / wall,
                         "images_per_cpu_s": len(files) / cpu,
                         "ms_per_image_cpu": 1000 * cpu / len(files)}
    base = results["pil"]
    speedups = {name: {"wall": r["images_per_s_wall"] / base["images_per_s_wall"],
                       "cpu_time": r["images_per_cpu_s"] / base["images_per_cpu_s"]}
                for name, r in results.items() if name != "pil"}
    return {"command": f"python -m perf.faces_input --images {args.images} --source-size "
                       f"{args.source_size} --size {args.size} --batch {args.batch} "
                       f"--repeats {args.repeats}",
            "note": "one process, one torch thread (per CPU core); best of the repeats, the "
                    "paths interleaved; cached_host is the CPU's share when a GPU augments; "
                    "target: cached path >= 4x the pil path per core; no GPU measured here",
            "images": len(files), "source_size": args.source_size, "size": args.size,
            "cache_build_ms_per_image": 1000 * decode_s / len(files),
            "cache_bytes": info["bytes"], "paths": results, "speedup_vs_pil": speedups}


if __name__ == "__main__":
    report = main()
    write_result("faces_input", report)
