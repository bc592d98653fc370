"""The faces suite's task functions at the paper's sizes on one GPU, without Ray or MLflow.

Generates a FaceScrub-layout data set of ``--identities`` x ``--images`` faces at ``--size``
px, trains the paper's ResNet-152 target for ``--epochs`` epoch(s) in fp32 and in bf16, the
Inception-v3 evaluation model, and runs PPA at the paper's sizes (2000 / 200 / 50 steps /
batch 25 / 50 kept over 100 transforms) on ``--attack-identities`` identities through a
random StyleGAN-like generator at 1024 px cropped to 800 px (a stand-in: NVlabs' FFHQ network
is heavier, so attack timings are a lower bound). Reports images/s, seconds per attacked
identity and peak GPU memory, written to ``--out`` (default perf/results/faces_gpu.json).

    python -m perf.faces_gpu                # the paper's sizes (GPU, a few minutes)
    python -m perf.faces_gpu --tiny         # the same code at toy sizes (CPU check)

``--steady`` measures steady state instead (``steady_main``): images/s of the bf16 training
step through the cached input path after a warm-up (``--warmup``, ``--steps`` >= 200 timed),
GPU utilisation sampled meanwhile, and PPA seconds per identity at the paper's sizes with
several batches per generator call; a hard ``--time-limit`` writes the partial JSON
(perf/results/faces_gpu_steady.json) and exits 124 when it expires.

    python -m perf.faces_gpu --steady --time-limit 540   # one GPU
    python -m perf.faces_gpu --steady --smoke            # tiny sizes (CPU check)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lsmia_bench.benchmark.context import TaskContext, resolve_device
from lsmia_bench.benchmark.data.fake_faces import make_fake_facescrub

PAPER_PPA = {"search_space_size": 2000, "num_candidates": 200, "steps": 50, "batch_size": 25,
             "lr": 0.005, "samples_per_class": 50, "final_iterations": 100}
TINY_PPA = {"search_space_size": 20, "num_candidates": 4, "steps": 2, "batch_size": 4,
            "lr": 0.005, "samples_per_class": 2, "final_iterations": 2}


def training_spec(data: dict[str, Any], model: str, params: dict[str, Any], epochs: int,
                  batch_size: int, precision: str | None) -> dict[str, Any]:
    """A train task spec with the paper's settings (faces.yaml)."""
    return {"data": data, "model": {"name": model, "params": params},
            "defense": {"name": "none", "params": {}}, "seed": 0,
            "training": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9,
                         "weight_decay": 0.0, "epochs": epochs, "batch_size": batch_size,
                         "scheduler": {"milestones": [0.75, 0.9], "gamma": 0.1},
                         "augmentation": {"resized_crop_scale": [0.85, 1.0],
                                          "resized_crop_ratio": [1.0, 1.0],
                                          "color_jitter": [0.2, 0.2, 0.1, 0.1], "flip": 0.5},
                         "precision": precision, "eval_every": 1}}


def measured(label: str, fn, device: torch.device) -> tuple[Any, dict[str, float]]:
    """Run fn; wall time and peak GPU memory (GiB) of that call."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    print(f"{label}: {wall:.1f} s, peak GPU memory {peak} GiB", flush=True)
    return out, {"wall_s": wall, "peak_gpu_gib": peak}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=530)
    parser.add_argument("--images", type=int, default=8, help="images per identity")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--attack-identities", type=int, default=2)
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--skip-fp32", action="store_true", help="train the target in bf16 only")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for a CPU check")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "faces_gpu.json")
    args = parser.parse_args(argv)
    from lsmia_bench.benchmark.pipelines.face_tasks import attack_face_target, train_face_classifier

    if args.tiny:
        args.identities, args.images, args.size, args.attack_identities = 4, 4, 32, 2
    device = resolve_device("auto")
    torch.backends.cudnn.benchmark = True
    ctx = TaskContext(device=device)
    work = Path(tempfile.mkdtemp(prefix="faces-gpu-"))
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "platform": platform.platform(), "cpus": os.cpu_count(),
        "data": {"identities": args.identities, "images_per_identity": args.images,
                 "size": args.size}}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str))

    _, report["generate"] = measured("generate data", lambda: make_fake_facescrub(
        work / "facescrub", args.identities, args.images, args.size, seed=0), device)
    data = {"source": "facescrub", "root": str(work / "facescrub"), "generate": None,
            "image_folder": None, "train_fraction": 0.9, "split_seed": 42,
            "expected_identities": args.identities, "num_identities": 1000,
            "image_size": args.size, "num_workers": args.workers}
    batch = 8 if args.tiny else 128
    folders = {}
    runs = (("resnet152_fp32", "resnet152", None), ("resnet152_bf16", "resnet152", "bf16"),
            ("inception_v3_bf16", "inception_v3", "bf16"))
    for name, model, precision in runs[1 if args.skip_fp32 else 0:]:
        out = work / name
        out.mkdir()
        params = {"pretrained": False} | ({"resize_to": 75} if args.tiny and
                                           model == "inception_v3" else {})
        spec = training_spec(data, model, params, args.epochs, batch, precision)
        result, timing = measured(f"train {name}", lambda spec=spec, out=out:
                                  train_face_classifier(spec, {}, out, ctx), device)
        images = result.info["data"]["train_images"] * args.epochs
        report[name] = timing | {
            "fit_time_s": result.metrics["fit_time_s"],
            "train_images_per_s": images / result.metrics["fit_time_s"],
            "test_accuracy": result.metrics["test_accuracy"],
            "train_images": result.info["data"]["train_images"]}
        folders[name] = out
        save()

    prior = {"kind": "tiny_stylegan", "checkpoint": None, "stylegan_repo": None,
             "generator": None, "latent_dim": 512, "value_range": [-1.0, 1.0],
             "truncation_psi": 0.5, "truncation_cutoff": 8, "single_w": True,
             "params": ({"z_dim": 32, "w_dim": 32, "resolution": 64, "width": 8} if args.tiny
                        else {"z_dim": 512, "w_dim": 512, "resolution": 1024, "width": 32}),
             "center_crop": 50 if args.tiny else 800}
    spec = {"attack": {"name": "ppa", "params": TINY_PPA if args.tiny else PAPER_PPA},
            "data": data, "prior": prior, "attack_identities": args.attack_identities,
            "privacy": {"student_epochs": 2 if args.tiny else 75, "student_batch_size": 32,
                        "student_lr": 0.1, "prdc_k": 3, "facenet_weights": "random"},
            "student": {"name": "resnet152", "params": {"pretrained": False}},
            "face_suite": True, "target_label": "none seed=0", "seed": 0}
    out = work / "attack"
    out.mkdir()
    result, timing = measured("attack ppa", lambda: attack_face_target(
        spec, {"target": folders["resnet152_bf16"], "evaluation": folders["inception_v3_bf16"]},
        out, ctx), device)
    report["ppa"] = timing | {
        "attack_time_s": result.metrics["attack_time_s"],
        "attack_s_per_identity": result.metrics["attack_time_s"] / args.attack_identities,
        "identities": args.attack_identities, "params": spec["attack"]["params"],
        "metrics": {k: v for k, v in result.metrics.items() if not k.startswith("trace_")}}
    save()
    print(json.dumps(report, indent=2, default=str))
    print(f"written to {args.out}")
    return report


# --- steady state ----------------------------------------------------------------------------

STEADY_MODELS = {"resnet152": {}, "inception_v3": {}}
SMOKE_MODELS = {"cnn": {"channels": [4, 8], "feature_dim": 16}}


class Deadline:
    """The hard time limit: after ``seconds`` the partial report is written and the process
    exits with 124 (a timer thread; a stuck CUDA call cannot hold it back)."""

    def __init__(self, seconds: float, save) -> None:
        import threading

        self.end = time.monotonic() + seconds
        self.timer = threading.Timer(seconds, self._expire, args=(save,))
        self.timer.daemon = True
        self.timer.start()

    @staticmethod
    def _expire(save) -> None:
        save({"stopped": "time limit reached"})
        os._exit(124)

    def left(self) -> float:
        return self.end - time.monotonic()


class UtilisationSampler:
    """GPU utilisation (%) sampled every ``every`` s between start() and stop():
    torch.cuda.utilization() (pynvml), else nvidia-smi; nothing on a CPU."""

    def __init__(self, device: torch.device, every: float = 0.2) -> None:
        import threading

        self.device, self.every, self.samples = device, every, []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.source = None

    def _read(self) -> float | None:
        try:
            self.source = "torch.cuda.utilization"
            return float(torch.cuda.utilization(self.device))
        except Exception:  # no pynvml: ask nvidia-smi
            import subprocess

            self.source = "nvidia-smi"
            index = self.device.index or 0
            try:
                out = subprocess.run(
                    ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True,
                    timeout=5).stdout
                return float(out.strip().splitlines()[0])
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                self.source = None
                return None

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def start(self) -> None:
        if self.device.type == "cuda":
            self.thread.start()

    def stop(self) -> dict[str, Any]:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        if not self.samples:
            return {"gpu_utilisation_mean": None, "samples": 0, "source": self.source}
        return {"gpu_utilisation_mean": sum(self.samples) / len(self.samples),
                "gpu_utilisation_min": min(self.samples), "samples": len(self.samples),
                "source": self.source}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steady_training(cache_folder: Path, model: str, params: dict[str, Any], precision: str | None,
                    batch: int, warmup: int, steps: int, device: torch.device,
                    compile: bool = False) -> dict[str, Any]:
    """Images/s of the faces training step (``train_classifier`` with the cached input path,
    fused Adam and channels_last on CUDA) over ``steps`` steps after ``warmup`` untimed ones,
    with the GPU utilisation sampled over the timed steps."""
    from lsmia_bench.benchmark.context import TaskContext
    from lsmia_bench.benchmark.data.face_cache import CachedBatches, FaceImageCache
    from lsmia_bench.benchmark.models import build_classifier
    from lsmia_bench.benchmark.pipelines.image_tasks import make_optimizer
    from lsmia_bench.benchmark.training import train_classifier
    from lsmia_bench.defenses import DEFENSES

    cache = FaceImageCache(cache_folder)
    labels = [i % 530 for i in range(len(cache.rows("train")))]
    classes = max(labels) + 1
    loader = CachedBatches(cache, "train", labels, batch, 0, device)
    torch.manual_seed(0)
    net = build_classifier(model, params | ({"pretrained": False} if model != "cnn" else {}),
                           3, cache.size, classes).to(device)
    cuda = device.type == "cuda"
    optimizer = make_optimizer(net, {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0},
                               fused=cuda)
    sampler = UtilisationSampler(device)
    marks: dict[str, float] = {}

    def batches():
        done = 0
        while True:
            for item in loader():
                if done == warmup:
                    synchronize(device)
                    marks["start"] = time.perf_counter()
                    sampler.start()
                if done == warmup + steps:
                    synchronize(device)
                    marks["end"] = time.perf_counter()
                    return
                done += 1
                yield item

    train_classifier(net, DEFENSES.get("none")(), batches, optimizer, 1, classes,
                     TaskContext(device=device), precision=precision, channels_last=cuda,
                     compile=compile)
    utilisation = sampler.stop()
    seconds = marks["end"] - marks["start"]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return {"model": model, "precision": precision or "fp32", "batch": batch,
            "warmup_steps": warmup, "timed_steps": steps, "timed_s": seconds,
            "images_per_s": steps * batch / seconds, "peak_gpu_gib": peak,
            "compile": compile, **utilisation}


def steady_ppa(device: torch.device, identities: int, sizes: dict[str, Any],
               prior_params: dict[str, Any], center_crop: int, target_size: int,
               target: str) -> dict[str, Any]:
    """PPA seconds per identity through a random StyleGAN-like stand-in generator."""
    from lsmia_bench.attacks.ppa import PPA
    from lsmia_bench.attacks.priors.supplied import build_supplied_prior
    from lsmia_bench.benchmark.models import build_classifier

    prior_spec = {"kind": "tiny_stylegan", "checkpoint": None, "stylegan_repo": None,
                  "generator": None, "latent_dim": prior_params["w_dim"],
                  "value_range": [-1.0, 1.0], "truncation_psi": 0.5, "truncation_cutoff": 8,
                  "single_w": True, "params": prior_params, "center_crop": center_crop}
    torch.manual_seed(0)
    prior = build_supplied_prior(prior_spec, target_size, 3, device)
    net = build_classifier(target, {"pretrained": False} if target != "cnn" else
                           SMOKE_MODELS["cnn"], 3, target_size, 530).to(device)
    attack = PPA(**sizes)
    synchronize(device)
    sampler = UtilisationSampler(device)
    sampler.start()
    started = time.perf_counter()
    attack.run(net, list(range(identities)), prior)
    synchronize(device)
    seconds = time.perf_counter() - started
    return {"identities": identities, "params": sizes, "seconds": seconds,
            "s_per_identity": seconds / identities, "generator": prior_params,
            "target": target, **sampler.stop()}


def steady_main(argv: list[str] | None = None) -> dict[str, Any]:
    """Steady-state figures on one device within a hard time limit (``--time-limit``)."""
    parser = argparse.ArgumentParser(description="steady-state faces training and PPA")
    parser.add_argument("--time-limit", type=float, default=540, help="seconds, hard")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a CPU check")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--images", type=int, default=2048, help="generated training images")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--attack-identities", type=int, default=4)
    parser.add_argument("--ppa-generator-batch", type=int, default=100)
    parser.add_argument("--ppa-precision", default="bf16")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="parts to leave out: resnet152 inception_v3 ppa")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent
                        / "results" / "faces_gpu_steady.json")
    args = parser.parse_args(argv)
    from lsmia_bench.benchmark.data.face_cache import build_cache

    device = resolve_device("auto")
    torch.backends.cudnn.benchmark = True
    models = dict(SMOKE_MODELS) if args.smoke else dict(STEADY_MODELS)
    size = 16 if args.smoke else 224
    if args.smoke:
        args.steps, args.warmup, args.batch, args.images = 3, 1, 4, 24
    report: dict[str, Any] = {
        "command": "python -m perf.faces_gpu --steady " + " ".join(argv or []),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "platform": platform.platform(), "cpus": os.cpu_count(),
        "smoke": args.smoke, "image_size": size}

    def save(extra: dict[str, Any] | None = None) -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report | (extra or {}), indent=2, default=str))

    deadline = Deadline(args.time_limit, save)
    work = Path(tempfile.mkdtemp(prefix="faces-steady-"))
    identities = max(2, args.images // 8)
    root = make_fake_facescrub(work / "faces", identities, args.images // identities,
                               size + size // 8, seed=0)
    files = sorted(str(p) for p in root.rglob("*.jpeg"))
    started = time.perf_counter()
    info = build_cache(files, size, work / "cache", work / "partial",
                       threads=os.cpu_count() or 1)
    (work / "cache" / "cache.json").write_text(json.dumps(
        info | {"splits": {"train": [0, len(files)], "test": [len(files)] * 2}}))
    report["cache"] = {"images": len(files), "build_s": time.perf_counter() - started}
    save()
    for model, params in models.items():
        if model in args.skip:
            continue
        report[f"{model}_{args.precision}"] = steady_training(
            work / "cache", model, params, None if args.precision == "fp32" else args.precision,
            args.batch, args.warmup, args.steps, device, args.compile)
        save()
        print(model, report[f"{model}_{args.precision}"], flush=True)
    if "ppa" not in args.skip:
        if args.smoke:
            sizes = TINY_PPA | {"generator_batch": 8, "precision": "fp32"}
            prior = {"z_dim": 32, "w_dim": 32, "resolution": 64, "width": 8}
            report["ppa"] = steady_ppa(device, 2, sizes, prior, 50, size, "cnn")
        else:
            sizes = PAPER_PPA | {"generator_batch": args.ppa_generator_batch,
                                 "precision": args.ppa_precision, "lr_scheduler": False}
            prior = {"z_dim": 512, "w_dim": 512, "resolution": 1024, "width": 32}
            report["ppa"] = steady_ppa(device, args.attack_identities, sizes, prior, 800,
                                       size, "resnet152")
        save()
        print("ppa", report["ppa"], flush=True)
    report["time_left_s"] = deadline.left()
    save()
    print(f"written to {args.out}")
    return report


if __name__ == "__main__":
    import sys

    if "--steady" in sys.argv[1:]:
        steady_main([a for a in sys.argv[1:] if a != "--steady"])
    else:
        main()
