"""Harness overhead: lsmia-bench's training loop and attack steps against bare PyTorch loops
of the same model, batch and data, measured in one run. Target: throughput ratio >= 0.95.

    python perf/harness_overhead.py [--epochs 5] [--attack-steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from lsmia_bench.attacks.gmi import GMI
from lsmia_bench.attacks.priors.base import GeneratorPrior
from lsmia_bench.attacks.priors.nets import ImageGenerator, WGANCritic
from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.data.images import load_image_splits
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.training import train_classifier
from lsmia_bench.defenses.none import NoDefense
from perf.common import interleaved_best, write_result

DIGITS = {"source": "digits", "private_classes": [0, 1, 2, 3, 4],
          "public_classes": [5, 6, 7, 8, 9], "test_fraction": 0.2, "split_seed": 0}


def training(epochs: int, repeats: int) -> dict[str, float]:
    splits = load_image_splits(DIGITS)
    x, y = splits.private_train, splits.private_train_labels
    torch.manual_seed(0)
    initial = build_classifier("resnet", {"width": 16, "blocks": [1, 1, 1]}, 1, 8, 5)
    batch = 64
    orders = [torch.randperm(len(x), generator=torch.Generator().manual_seed(e))
              for e in range(epochs)]
    batches = [[(x[o[i:i + batch]], y[o[i:i + batch]]) for i in range(0, len(o), batch)]
               for o in orders]

    def harness() -> None:
        model = copy.deepcopy(initial)
        counter = iter(range(epochs))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        train_classifier(model, NoDefense(), lambda: batches[next(counter)], opt, epochs,
                         num_classes=5, ctx=TaskContext())

    def bare() -> None:
        model = copy.deepcopy(initial)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(epochs):
            for inputs, targets in batches[epoch]:
                loss = F.cross_entropy(model(inputs), targets)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    t_harness, t_bare = interleaved_best(harness, bare, repeats)
    samples = epochs * len(x)
    return {"samples": samples, "harness_samples_per_s": samples / t_harness,
            "bare_samples_per_s": samples / t_bare, "ratio": t_bare / t_harness}


def attack(steps: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    target = build_classifier("resnet", {"width": 16, "blocks": [1, 1, 1]}, 1, 8, 5).eval()
    prior = GeneratorPrior(ImageGenerator(32, 1, 8, 32), 32, image_size=(8, 8), channels=1,
                           discriminator=WGANCritic(1, 8, 32), discriminator_kind="wgan").eval()
    labels = torch.arange(5)
    gmi = GMI(iterations=steps, restarts=1)

    def harness() -> None:
        torch.manual_seed(1)
        gmi.run(target, labels.tolist(), prior)

    def bare() -> None:
        torch.manual_seed(1)
        z = prior.sample_latents(len(labels))
        velocity = torch.zeros_like(z)
        for _ in range(steps):
            z.requires_grad_(True)
            raw = prior.generate(z)
            loss = prior.prior_loss(raw).mean() + 100 * F.cross_entropy(
                target(prior.to_target(raw)), labels)
            grad, = torch.autograd.grad(loss, z)
            previous = velocity
            velocity = 0.9 * velocity - 0.02 * grad
            z = (z.detach() - 0.9 * previous + 1.9 * velocity).clamp(-1, 1)
        with torch.no_grad():
            prior(z)

    t_harness, t_bare = interleaved_best(harness, bare, repeats)
    return {"steps": steps, "harness_steps_per_s": steps / t_harness,
            "bare_steps_per_s": steps / t_bare, "ratio": t_bare / t_harness}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--attack-steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    write_result("harness_overhead", {
        "target": ">= 0.95 (harness throughput / bare PyTorch throughput)",
        "threads": args.threads,
        "training": training(args.epochs, args.repeats),
        "attack_gmi": attack(args.attack_steps, args.repeats),
    })


if __name__ == "__main__":
    main()
