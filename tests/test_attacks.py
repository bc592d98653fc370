"""Attacks on a small digits target: each raises the target's confidence for its classes.

The target (an MLP) learns digits 0-4 (private); the priors see only digits 5-9 (public), as
in the digits suite. Everything is trained inside the module's fixtures in a few seconds.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.attacks.base import Attack
from lsmia_bench.attacks.gmi import GMI
from lsmia_bench.attacks.kedmi import KEDMI
from lsmia_bench.attacks.losses import poincare_loss, target_confidence, total_variation
from lsmia_bench.attacks.mi_face import MIFace
from lsmia_bench.attacks.ppa import PPA, final_selection, initial_selection
from lsmia_bench.attacks.priors.base import GeneratorPrior
from lsmia_bench.attacks.priors.kedmi import train_kedmi_gan
from lsmia_bench.attacks.priors.wgan_gp import train_wgan_gp
from lsmia_bench.kernel.component import build_component
from lsmia_bench.kernel.errors import UserError

PRIVATE = [0, 1, 2, 3, 4]


class DigitsMLP(nn.Module):
    input_shape = (1, 8, 8)

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(),
                                  nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small networks run fastest (and steadiest on a shared machine) on one thread."""


@pytest.fixture(scope="module")
def target(digits):
    images, labels, _ = digits
    torch.manual_seed(0)
    model = DigitsMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 64):
            index = order[start:start + 64]
            loss = F.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    assert (model(images).argmax(1) == labels).float().mean() > 0.95
    return model


@pytest.fixture(scope="module")
def wgan_prior(digits):
    trained = train_wgan_gp(digits[2], latent_dim=32, width=16, iterations=300, seed=0)
    return trained.prior((8, 8), 1)


@pytest.fixture(scope="module")
def kedmi_prior(digits, target):
    trained = train_kedmi_gan(digits[2], target, (1, 8, 8), latent_dim=32, width=16,
                              iterations=100, minibatch_features=16, minibatch_kernel=8, seed=0)
    return trained.prior((8, 8), 1)


def prior_confidence(target: nn.Module, prior: GeneratorPrior, n: int = 500) -> float:
    """Mean target confidence for the attacked classes on random prior samples."""
    torch.manual_seed(123)
    with torch.no_grad():
        probs = target(prior(prior.sample_latents(n))).softmax(dim=1)
    return probs[:, PRIVATE].mean().item()


def attack_confidence(target: nn.Module, output) -> float:
    return target_confidence(target, output.reconstructions, output.labels).mean().item()


def check_output(output, per_class: int, shape=(1, 8, 8)) -> None:
    assert output.reconstructions.shape == (len(PRIVATE) * per_class, *shape)
    assert sorted(output.labels.tolist()) == sorted(PRIVATE * per_class)
    assert output.reconstructions.min() >= 0 and output.reconstructions.max() <= 1
    grads = output.trace["gradients"]
    assert grads.shape[0] == len(output.trace["loss"]) and torch.isfinite(grads).all()


def test_gmi_raises_confidence(target, wgan_prior):
    torch.manual_seed(1)
    out = GMI(iterations=150, restarts=2).run(target, PRIVATE, wgan_prior)
    check_output(out, 1)
    assert out.trace["gradients"].shape[1:] == (4, 32)
    assert out.trace["loss"][-1] < out.trace["loss"][0]
    assert attack_confidence(target, out) > prior_confidence(target, wgan_prior)
    everything = GMI(iterations=5, restarts=2, keep_all_restarts=True).run(target, [3], wgan_prior)
    assert everything.labels.tolist() == [3, 3]


def test_gmi_batched_restarts_equal_restarts_run_one_after_another(target, wgan_prior):
    """All restarts in one batch give what each restart gives when run on its own."""
    torch.manual_seed(5)
    batched = GMI(iterations=20, restarts=3, keep_all_restarts=True).run(
        target, PRIVATE, wgan_prior)
    torch.manual_seed(5)
    alone = [GMI(iterations=20, restarts=1).run(target, PRIVATE, wgan_prior)
             for _ in range(3)]
    per_restart = torch.stack([out.reconstructions for out in alone], dim=1)  # (K, R, ...)
    assert torch.allclose(batched.reconstructions, per_restart.flatten(0, 1), atol=1e-4)
    assert batched.trace["loss"] == pytest.approx(alone[0].trace["loss"], rel=1e-4)


def test_kedmi_raises_confidence(target, kedmi_prior):
    torch.manual_seed(2)
    out = KEDMI(iterations=150, samples_per_class=3).run(target, PRIVATE, kedmi_prior)
    check_output(out, 3)
    assert out.trace["loss"][-1] < out.trace["loss"][0]
    assert attack_confidence(target, out) > prior_confidence(target, kedmi_prior)


def test_ppa_raises_confidence_beyond_its_initial_selection(target, wgan_prior):
    torch.manual_seed(3)
    attack = PPA(search_space_size=300, num_candidates=10, steps=50, batch_size=50,
                 samples_per_class=4, final_iterations=5, final_flip=False, initial_flip=False)
    out = attack.run(target, PRIVATE, wgan_prior)
    check_output(out, 4)
    assert out.trace["gradients"].shape == (50, 4, 32)
    baseline = prior_confidence(target, wgan_prior)
    # initial selection > random samples; optimisation > initial selection; the final
    # selection (by confidence under random crops) keeps samples above the random baseline.
    assert out.trace["initial_confidence_mean"] > baseline
    assert out.trace["optimised_confidence_mean"] > out.trace["initial_confidence_mean"]
    assert out.trace["loss"][-1] < out.trace["loss"][0]
    assert attack_confidence(target, out) > baseline


def test_mi_face_raises_confidence_from_a_blank_image(target):
    start = target_confidence(target, torch.zeros(5, 1, 8, 8), torch.tensor(PRIVATE))
    out = MIFace(iterations=300, stop_cost=0.05, tv_weight=0.01).run(target, PRIVATE)
    check_output(out, 1)
    assert attack_confidence(target, out) > start.mean().item()
    assert all(cost <= 0.05 for cost in out.trace["final_cost"])
    # The paper's gamma = 0.99 (an option) stops as soon as the confidence passes 0.01; the
    # default has no threshold and runs on.
    early = MIFace(iterations=300, stop_cost=0.99).run(target, PRIVATE)
    assert max(early.trace["steps"]) < 300
    assert max(MIFace(iterations=300).run(target, PRIVATE).trace["steps"]) == 300


def test_any_generator_module_works_as_a_prior(target):
    """A bare nn.Module latent -> image (here tanh output, 16 px, RGB) through the adapter."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(6, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
    prior = GeneratorPrior(generator, 6, value_range=(-1, 1), image_size=(8, 8), channels=1)
    out = PPA(search_space_size=20, num_candidates=4, steps=3, batch_size=8,
              samples_per_class=2, final_iterations=2).run(target, [1, 4], prior)
    assert out.reconstructions.shape == (4, 1, 8, 8)
    with pytest.raises(TypeError, match="GeneratorPrior"):
        PPA().run(target, [1], generator)
    with pytest.raises(ValueError, match="no discriminator"):
        GMI(iterations=1, restarts=1).run(target, [1], prior)


def test_poincare_loss_formula():
    logits = torch.tensor([[2.0, -1.0, 1.0], [0.5, 3.0, -0.5]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    expected = []
    for row, y in zip(logits.tolist(), targets.tolist(), strict=True):
        l1 = sum(abs(v) for v in row)
        u = [v / l1 for v in row]
        v = [max(0.0, (1.0 if c == y else 0.0) - 1e-4) for c in range(3)]
        uu, vv = sum(a * a for a in u), sum(b * b for b in v)
        diff = sum((a - b) ** 2 for a, b in zip(u, v, strict=True))
        expected.append(math.acosh(1 + 2 * diff / ((1 - uu) * (1 - vv))))
    assert poincare_loss(logits, targets).tolist() == pytest.approx(expected, rel=1e-9)
    # float32 loses ~1e-5 relative precision in 1 - ||v||^2 = 2e-4, nothing more.
    assert poincare_loss(logits.float(), targets).tolist() == pytest.approx(expected, rel=1e-4)
    # A logit vector closer to the target's one-hot vector has a smaller loss.
    sharper = torch.tensor([[4.0, -0.5, 0.5]], dtype=torch.float64)
    assert poincare_loss(sharper, targets[:1]) < poincare_loss(logits[:1], targets[:1])


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # horizontal differences |1 - 0| twice (mean 1), vertical differences 0 (mean 0)
    assert total_variation(image).tolist() == pytest.approx([1.0])


class BrightnessTarget(nn.Module):
    """Logits (10 * mean(x), 0): class 0 likes bright images, class 1 dark ones."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.scale * x.flatten(1).mean(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_final_selection_keeps_top_k_by_mean_confidence():
    brightness = torch.tensor([0.2, 0.9, 0.5, 0.7, 0.1, 0.3, 0.8, 0.6])
    images = brightness.view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    keep = final_selection(images, labels, BrightnessTarget(), lambda x: x.flip(-1),
                           iterations=3, keep=2, batch_size=3)
    # class 0: brightest first (0.9 at 1, 0.7 at 3); class 1: darkest first (0.1 at 4, 0.3 at 5)
    assert keep.tolist() == [1, 3, 4, 5]

    # The score is the mean over random transforms: a transform that darkens at random
    # (each call picks a factor) keeps the order of the per-sample means.
    generator = torch.Generator().manual_seed(0)
    def darken(x):
        return x * torch.rand(1, generator=generator)
    assert final_selection(images, labels, BrightnessTarget(), darken, iterations=4, keep=1,
                           batch_size=8).tolist() == [1, 4]


def test_initial_selection_keeps_the_most_confident_latents():
    class Identity(nn.Module):
        def forward(self, z):
            return z.view(-1, 1, 1, 1).sigmoid()

    prior = GeneratorPrior(Identity(), 1)
    torch.manual_seed(0)
    latents, labels = initial_selection(prior, BrightnessTarget(), [0, 1], 50, 3, flip=True,
                                        batch_size=7)
    torch.manual_seed(0)
    pool = torch.randn(50, 1)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    ranked = pool.flatten().sort(descending=True).values
    assert latents[:3].flatten().tolist() == ranked[:3].tolist()  # brightest for class 0
    assert latents[3:].flatten().tolist() == ranked.flip(0)[:3].tolist()  # darkest for class 1


def test_registry_and_hyperparameter_errors():
    for name, cls in [("ppa", PPA), ("gmi", GMI), ("kedmi", KEDMI), ("mi_face", MIFace)]:
        assert ATTACKS.get(name) is cls and issubclass(cls, Attack)
        assert cls.__doc__ and "Arguments:" in cls.__doc__ and cls.paper_url
    assert PPA().lr == 0.005 and PPA().betas == (0.1, 0.1) and PPA().samples_per_class == 50
    assert GMI().lr == 0.02 and GMI().identity_weight == 100 and GMI().clip_range == 1
    assert KEDMI().lr == 0.02 and KEDMI().iterations == 2400  # authors' recovery.py
    assert GMI.prior_kind == "wgan_gp" and KEDMI.prior_kind == "kedmi" and not MIFace.needs_prior
    with pytest.raises(UserError, match="samples_per_class"):
        build_component(PPA, {"num_candidates": 10, "samples_per_class": 20}, "attacks.ppa")
    with pytest.raises(UserError, match="uniform"):
        build_component(MIFace, {"samples_per_class": 3}, "attacks.mi_face")
    with pytest.raises(ValueError, match="input shape"):
        MIFace().run(nn.Linear(4, 2), [0])
