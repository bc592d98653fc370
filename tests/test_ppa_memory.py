"""PPA's final selection streams the candidates: each batch is generated from its latents,
scored and dropped, and only the kept samples are generated again. The result is the one of
the former algorithm (all candidate images built, then :func:`final_selection`), bit for bit,
under the same seed; the images alive at any time are a few batches, not every candidate."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from lsmia_bench.attacks.ppa import (
    PPA,
    _confidence,
    final_selection,
    final_selection_from_latents,
    generate_selected,
    initial_selection,
    random_transform,
)
from lsmia_bench.attacks.priors.base import GeneratorPrior
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.kernel.attack_output import AttackOutput

IMAGE = (3, 12, 12)  # a shape no other fixture uses, so live images can be counted by shape
CLASSES = [0, 2, 3]
ATTACK = PPA(search_space_size=40, num_candidates=12, steps=3, batch_size=5,
             samples_per_class=2, final_iterations=2)  # 36 candidates: 7 full batches + 1


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small networks run fastest (and steadiest on a shared machine) on one thread."""


class LiveImages(nn.Module):
    """The target, measuring at each call after the latent optimisation (no grad, after a
    call with grad) the rows of live image tensors (N, *IMAGE): one count per storage."""

    def __init__(self, target: nn.Module) -> None:
        super().__init__()
        self.target = target
        self.optimised = False
        self.peak = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.optimised = True
        elif self.optimised:
            storages = {}
            for obj in gc.get_objects():
                if type(obj) is torch.Tensor and tuple(obj.shape[1:]) == IMAGE:
                    storage = obj.untyped_storage()
                    storages[storage.data_ptr()] = storage.nbytes()
            row = torch.Size(IMAGE).numel() * 4
            self.peak = max(self.peak, sum(storages.values()) // row)
        return self.target(x)


def tiny_prior() -> GeneratorPrior:
    generator = nn.Sequential(nn.Linear(6, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
    return GeneratorPrior(generator, 6, value_range=(-1, 1), image_size=IMAGE[1:],
                          channels=IMAGE[0])


def tiny_target() -> nn.Module:
    return build_classifier("cnn", {"channels": [4, 8], "feature_dim": 12},
                            in_channels=IMAGE[0], image_size=IMAGE[1], num_classes=5)


def former_run(attack: PPA, target: nn.Module, classes: list[int],
               prior: GeneratorPrior) -> AttackOutput:
    """PPA.run as it was before streaming: every candidate's image built, then scored."""
    prior, _ = attack.prepare(target, prior)
    latents, labels = initial_selection(prior, target, classes, attack.search_space_size,
                                        attack.num_candidates, attack.initial_flip,
                                        attack.batch_size)
    initial_confidence = _confidence(prior, target, latents, labels, attack.batch_size)
    trace: dict = {}
    optimised = []
    for start in range(0, len(latents), attack.batch_size):
        batch = slice(start, start + attack.batch_size)
        w, curves = attack._optimise(target, prior, latents[batch], labels[batch],
                                     record=start == 0)
        optimised.append(w)
        trace = trace or curves
    latents = torch.cat(optimised)
    with torch.no_grad():  # scored unclamped (the authors' final selection), returned clamped
        images = torch.cat([prior(latents[i:i + attack.batch_size])
                            for i in range(0, len(latents), attack.batch_size)])
    size = tuple(images.shape[-2:])
    transform = random_transform(size, attack.final_scale, attack.final_ratio,
                                 attack.final_flip)
    keep = final_selection(images, labels, target, transform, attack.final_iterations,
                           attack.samples_per_class, attack.batch_size)
    trace["initial_confidence_mean"] = initial_confidence.mean().item()
    trace["optimised_confidence_mean"] = _confidence(
        prior, target, latents, labels, attack.batch_size).mean().item()
    return AttackOutput(images[keep].clamp(0, 1).cpu(), labels[keep].cpu(), trace)


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[AttackOutput, int]]:
    """(output, peak live image rows) of the former and the streaming algorithm, seed 0."""
    torch.manual_seed(0)
    prior, target = tiny_prior(), tiny_target()
    out = {}
    # streaming first: the other's output, alive during the second run, counts against it
    for name, run in [("streaming", PPA.run), ("former", former_run)]:
        probe = LiveImages(target)
        torch.manual_seed(7)
        out[name] = run(ATTACK, probe, CLASSES, prior), probe.peak
    return out


def test_streaming_final_selection_matches_the_former_algorithm(runs):
    (former, _), (streaming, _) = runs["former"], runs["streaming"]
    n = len(CLASSES) * ATTACK.samples_per_class
    assert streaming.reconstructions.shape == (n, *IMAGE)
    assert streaming.reconstructions.device.type == "cpu"
    assert torch.equal(streaming.reconstructions, former.reconstructions)
    assert torch.equal(streaming.labels, former.labels)
    assert streaming.labels.tolist() == [c for c in CLASSES for _ in range(2)]
    assert streaming.trace.keys() == former.trace.keys()
    assert torch.equal(streaming.trace["gradients"], former.trace["gradients"])
    for key in ("loss", "poincare_loss", "initial_confidence_mean",
                "optimised_confidence_mean"):
        assert streaming.trace[key] == former.trace[key]
    # The seed matters (the comparison is not trivially equal): another one keeps others.
    torch.manual_seed(8)
    other = PPA.run(ATTACK, tiny_target(), CLASSES, tiny_prior())
    assert not torch.equal(other.reconstructions, streaming.reconstructions)


def test_streaming_holds_a_few_batches_of_images_not_every_candidate(runs):
    candidates = len(CLASSES) * ATTACK.num_candidates
    kept = len(CLASSES) * ATTACK.samples_per_class
    assert runs["former"][1] >= candidates  # the probe sees the former's full image tensor
    # a batch and its transformed copy (a third batch of slack for the transform's
    # intermediates), and the kept output while the optimised confidence is traced
    assert runs["streaming"][1] <= 3 * ATTACK.batch_size + kept < candidates


def test_final_selection_from_latents_scores_like_final_selection_on_the_images():
    torch.manual_seed(0)
    prior, target = tiny_prior().eval(), tiny_target().eval()
    latents = prior.sample_latents(23)
    labels = torch.tensor([1] * 10 + [4] * 3 + [0] * 10)  # classes out of order
    with torch.no_grad():
        images = torch.cat([prior(latents[i:i + 4]) for i in range(0, 23, 4)])
    transform = random_transform(IMAGE[1:], (0.5, 0.9), (0.8, 1.2), True)
    torch.manual_seed(1)
    expected = final_selection(images, labels, target, transform, 3, 5, 4)
    torch.manual_seed(1)
    keep = final_selection_from_latents(prior, latents, labels, target, transform, 3, 5, 4)
    assert keep.tolist() == expected.tolist() and len(keep) == 13  # 5 + 5 + 3 (class 4)
    # generate_selected: any order of any indices, each image made inside its own batch
    index = torch.tensor([22, 0, 9, 3, 8, 21])
    assert torch.equal(generate_selected(prior, latents, index, 4), images[index].clamp(0, 1))
