"""The faces suite's cached input path (``data.input: cached``): the cache holds the PIL path's
intermediate, a batch augmented on the device is the PIL path's transform of the same images
drawn from the same seed (per image, not once per batch), evaluation images are bit-identical,
the cache job resumes after a kill, and the plan and the training task use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.data import face_cache
from lsmia_bench.benchmark.data.face_cache import (
    CachedBatches,
    CachedImages,
    FaceImageCache,
    augment_batch,
    build_cache,
    draw_params,
    gather_crops,
)
from lsmia_bench.benchmark.data.face_folders import (
    face_eval_transform,
    face_train_transform,
    read_rgb,
)
from lsmia_bench.benchmark.data.face_suite import DATA_ENV, load_face_splits
from lsmia_bench.kernel.files import write_json_atomic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
SHAPES = [(40, 40), (50, 40), (40, 61), (64, 64), (33, 33), (36, 36)]  # (H, W), some not square


def write_images(folder, shapes=SHAPES, seed=0) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (h, w) in enumerate(shapes):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    return files


def open_cache(folder, files) -> FaceImageCache:
    info = build_cache(files, SIZE, folder, folder.parent / f"{folder.name}-partial")
    write_json_atomic(folder / "cache.json", info | {"splits": {"train": [0, len(files)],
                                                               "test": [len(files),
                                                                        len(files)]}})
    return FaceImageCache(folder)


def test_batch_equals_pil_transform_drawn_from_the_same_seed(tmp_path):
    files = write_images(tmp_path / "img")
    cache = open_cache(tmp_path / "cache", files)
    torch.manual_seed(5)
    transform = face_train_transform(SIZE)
    expected = torch.stack([transform(read_rgb(f)) for f in files])

    torch.manual_seed(5)
    crop = v2.RandomResizedCrop((SIZE, SIZE), scale=(0.85, 1.0), ratio=(1.0, 1.0),
                                antialias=True)
    params = draw_params([cache.shape(i) for i in range(len(files))], crop,
                         v2.ColorJitter(0.2, 0.2, 0.1, 0.1), 0.5)
    got = augment_batch(gather_crops(cache, range(len(files)), params["boxes"], SIZE),
                        params, SIZE)
    assert got.shape == expected.shape == (len(files), 3, SIZE, SIZE)
    assert (got - expected).abs().max() < 1e-6  # the blends round in another order
    # drawn per image, not once per batch
    assert len({tuple(b) for b in params["boxes"].tolist()}) > 1
    assert len({tuple(o) for o in params["orders"].tolist()}) > 1
    assert len(set(params["factors"][:, 3].tolist())) == len(files)


def test_cached_images_equal_the_pil_eval_path_bit_for_bit(tmp_path):
    files = write_images(tmp_path / "img")
    cache = open_cache(tmp_path / "cache", files)
    images = CachedImages(cache, range(len(files)))
    expected = torch.stack([face_eval_transform(SIZE)(read_rgb(f)) for f in files])
    assert torch.equal(images[0:len(files)], expected)
    assert torch.equal(images[2], expected[2])
    subset = images[torch.tensor([False, True, False, True, False, False])]
    assert isinstance(subset, CachedImages) and torch.equal(subset[0:2], expected[[1, 3]])
    assert images[0:0].shape == (0, 3, SIZE, SIZE)
    assert cache.info["non_square"] == 2


def test_cached_batches_are_seeded_and_skip_a_last_single_image(tmp_path):
    files = write_images(tmp_path / "img", SHAPES + [(32, 32)])  # 7 images, batches of 3
    cache = open_cache(tmp_path / "cache", files)
    labels = list(range(len(files)))

    def epochs(seed):
        batches = CachedBatches(cache, "train", labels, 3, seed, "cpu")
        return [list(batches()) for _ in range(2)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    assert [len(y) for _, y in first[0]] == [3, 3]  # the last batch of one is skipped
    for a, b in zip(first, again, strict=True):
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(first[0][0][1], first[1][0][1]) or \
        not torch.equal(first[0][0][0], first[1][0][0])  # a fresh epoch is another draw
    assert not torch.equal(first[0][0][0], other[0][0][0])
    torch.manual_seed(123)  # the global RNG does not steer the augmentations
    assert torch.equal(epochs(0)[0][0][0], first[0][0][0])


RESUME = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lsmia_bench.benchmark.data import face_cache
    face_cache.CHUNK = 1
    decode = face_cache.decode_resized
    def slow(path, size):
        time.sleep(0.3)
        return decode(path, size)
    face_cache.decode_resized = slow
    files = sys.argv[3:]
    face_cache.build_cache(files, int(sys.argv[2]), Path(sys.argv[1]) / "out",
                           Path(sys.argv[1]) / "partial")
""")


def test_cache_build_resumes_after_a_kill(tmp_path, monkeypatch):
    files = write_images(tmp_path / "img", SHAPES * 2)
    work = tmp_path / "work"
    process = subprocess.Popen([sys.executable, "-c", RESUME, str(work), str(SIZE), *files])
    partial = work / "partial"
    deadline = time.monotonic() + 60
    while len(list(partial.glob("images-*.npy"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = sorted(p.name for p in partial.glob("images-*.npy"))
    assert 2 <= len(done) < len(files), done  # killed mid-way, finished chunks on disk

    monkeypatch.setattr(face_cache, "CHUNK", 1)
    decoded = []
    decode = face_cache.decode_resized
    monkeypatch.setattr(face_cache, "decode_resized",
                        lambda path, size: decoded.append(path) or decode(path, size))
    info = build_cache(files, SIZE, work / "out", partial)
    assert len(decoded) == len(files) - len(done)  # only the missing chunks
    assert not partial.exists()
    fresh = build_cache(files, SIZE, tmp_path / "fresh", tmp_path / "fresh-partial")
    assert info == fresh
    assert np.array_equal(np.load(work / "out" / "index.npy"),
                          np.load(tmp_path / "fresh" / "index.npy"))
    for chunk in range(info["chunks"]):
        name = f"images-{chunk:05d}.npy"
        assert np.array_equal(np.load(work / "out" / name), np.load(tmp_path / "fresh" / name))


def face_spec(tmp_path, cached: bool) -> dict:
    data = {"source": "celeba", "root": None, "train_fraction": 0.75, "split_seed": 42,
            "num_identities": 4, "image_folder": None, "expected_identities": None,
            "generate": {"identities": 4, "images_per_identity": 6, "size": 24, "seed": 0},
            "image_size": 16, "num_workers": 0, "input": "cached" if cached else "pil"}
    return {"data": data, "model": {"name": "cnn", "params": {"channels": [4, 8],
                                                              "feature_dim": 16}},
            "training": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9,
                         "weight_decay": 0.0, "epochs": 2, "batch_size": 8,
                         "scheduler": {"milestones": [], "gamma": 0.1},
                         "augmentation": {"resized_crop_scale": [0.85, 1.0],
                                          "resized_crop_ratio": [1.0, 1.0],
                                          "color_jitter": [0.2, 0.2, 0.1, 0.1], "flip": 0.5},
                         "precision": None, "eval_every": 1},
            "defense": {"name": "none", "params": {}}, "seed": 0}


def test_training_task_reads_the_cache_job_output(tmp_path, monkeypatch):
    from lsmia_bench.benchmark.pipelines.face_tasks import (
        build_face_image_cache,
        private_images,
        train_face_classifier,
    )

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    spec = face_spec(tmp_path, cached=True)
    store = tmp_path / "store"
    (store / "cache").mkdir(parents=True)
    built = build_face_image_cache({"data": spec["data"]}, {}, store / "cache", TaskContext())
    assert built.info["cache"]["images"] == 24
    splits = load_face_splits(spec["data"])
    cache = FaceImageCache(store / "cache")
    lazy, labels = private_images(splits, "test", 16, 0)
    cached, cached_labels = private_images(splits, "test", 16, 0, cache)
    assert torch.equal(lazy[0:len(lazy)], cached[0:len(cached)])
    assert torch.equal(labels, cached_labels)

    results = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        results.append(train_face_classifier(spec, {"images": store / "cache"},
                                             tmp_path / name, TaskContext()))
    assert results[0].info["input"].startswith("cached")
    assert results[0].series["train_loss"] == results[1].series["train_loss"]
    assert len(results[0].series["train_loss"]) == 2
    assert 0 <= results[0].metrics["test_accuracy"] <= 1

    other = face_spec(tmp_path, cached=True)
    other["data"]["image_size"] = 20  # a cache of another size is refused
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="built for other files or another size"):
        train_face_classifier(other, {"images": store / "cache"}, tmp_path / "c",
                              TaskContext())


def test_plan_with_cached_input_adds_the_cache_job_every_job_needs():
    from pathlib import Path

    import yaml

    from lsmia_bench.benchmark.pipelines.faces import FacesConfig, FacesPipeline
    from lsmia_bench.configs import __file__ as configs_init

    raw = yaml.safe_load((Path(configs_init).parent / "faces-smoke.yaml").read_text())
    plain = FacesPipeline().plan(FacesConfig.model_validate(raw))
    assert all("images" not in job.needs for job in plain)
    raw["data"]["input"] = "cached"
    jobs = FacesPipeline().plan(FacesConfig.model_validate(raw))
    cache, *rest = jobs
    assert cache.labels["role"] == "image_cache" and cache.stage == "prerequisites"
    assert len(rest) == len(plain) and all(job.needs["images"] == cache.key for job in rest)
    keys = {job.key for job in jobs}
    assert all(key in keys for job in rest for key in job.needs.values())
