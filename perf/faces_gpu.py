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


if __name__ == "__main__":
    main()
