"""Generator priors: networks, GAN losses by hand, training on public digits, save/load,
the adapter to a target's input, and the image grids logged as artifacts."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from lsmia_bench.attacks.grids import save_prior_samples, save_reconstruction_grid
from lsmia_bench.attacks.priors import PRIORS, GeneratorPrior, adapt_images, load_trained_prior
from lsmia_bench.attacks.priors.kedmi import (
    prediction_entropy,
    soft_cross_entropy,
    train_kedmi_gan,
    unlabeled_loss,
)
from lsmia_bench.attacks.priors.nets import ImageGenerator, KPlusOneDiscriminator, WGANCritic
from lsmia_bench.attacks.priors.wgan_gp import gradient_penalty, train_wgan_gp
from lsmia_bench.benchmark.metrics.privacy import frechet_distance
from lsmia_bench.kernel.registry import import_reference


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small networks run fastest (and steadiest on a shared machine) on one thread."""


@pytest.fixture(scope="module")
def public_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images[torch.tensor(bunch.target) >= 5]


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_networks_fit_every_size(size):
    generator = ImageGenerator(latent_dim=10, channels=3, image_size=size, width=4).eval()
    images = generator(torch.randn(3, 10))
    assert images.shape == (3, 3, size, size) and images.min() >= 0 and images.max() <= 1
    assert WGANCritic(3, size, 4)(images).shape == (3,)
    features, logits = KPlusOneDiscriminator(7, 3, size, 4, 8, 5)(images)
    assert logits.shape == (3, 7) and features.shape[0] == 3


def test_unsupported_size_is_refused():
    with pytest.raises(ValueError, match="4 \\* 2\\^k"):
        ImageGenerator(image_size=12)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = w . x has gradient w everywhere: GP = (||w|| - 1)^2 = (5 - 1)^2.
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False))
    critic[1].weight.data = torch.tensor([[3.0, 4.0]])
    real, fake = torch.randn(6, 1, 1, 2), torch.randn(6, 1, 1, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)


def test_kedmi_losses_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # uniform soft labels
    # -1/2 sum_n sum_c 1/2 log p_nc: row 1 log(1/2) twice, row 2 log(3/4) + log(1/4)
    expected = -(0.5 * 2 * math.log(0.5) + 0.5 * (math.log(0.75) + math.log(0.25))) / 2
    assert soft_cross_entropy(logits, teacher).item() == pytest.approx(expected)
    entropy = -(2 * 0.5 * math.log(0.5) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert prediction_entropy(logits).item() == pytest.approx(entropy)
    # lse of rows: log 2 and log 4
    real, fake = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    by_hand = 0.5 * (softplus(math.log(2)) - math.log(2) + softplus(math.log(4)))
    assert unlabeled_loss(real, fake).item() == pytest.approx(by_hand)


def test_prior_loss_reads_each_discriminator_kind():
    generator = nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, (1, 2, 2)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))

    class Logits(nn.Module):
        def forward(self, x):
            flat = x.flatten(1)
            return flat, flat[:, :2]

    raw = torch.randn(3, 1, 2, 2)
    wgan = GeneratorPrior(generator, 2, discriminator=critic, discriminator_kind="wgan")
    assert torch.allclose(wgan.prior_loss(raw), -critic(raw).view(-1))
    kplus1 = GeneratorPrior(generator, 2, discriminator=Logits(), discriminator_kind="kplus1")
    lse = torch.logsumexp(raw.flatten(1)[:, :2], dim=1)
    assert torch.allclose(kplus1.prior_loss(raw), -F.logsigmoid(lse), atol=1e-6)
    with pytest.raises(ValueError, match="discriminator_kind"):
        GeneratorPrior(generator, 2, discriminator=critic)


def test_adapt_images_resizes_and_converts_channels():
    rgb = torch.rand(2, 3, 16, 16)
    grey = adapt_images(rgb, (8, 8), 1)
    assert grey.shape == (2, 1, 8, 8)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose(adapt_images(rgb, None, 1), (rgb * weights).sum(1, keepdim=True))
    assert torch.equal(adapt_images(grey, None, 3), grey.expand(-1, 3, -1, -1))
    assert adapt_images(grey, (32, 32), None).shape == (2, 1, 32, 32)


def test_wgan_gp_learns_the_public_digits_and_round_trips(public_digits, tmp_path):
    untrained = ImageGenerator(32, 1, 8, 16).eval()
    trained = train_wgan_gp(public_digits, latent_dim=32, width=16, iterations=150, seed=0)
    z = torch.randn(500, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = frechet_distance(untrained(z).flatten(1), public_digits.flatten(1))
        after = frechet_distance(trained.generator(z).flatten(1), public_digits.flatten(1))
    assert after < before  # pixel-space Frechet distance to the public digits
    assert len(trained.history["critic_loss"]) == 150
    assert len(trained.history["generator_loss"]) == 30  # every n_critic = 5 steps

    trained.save(tmp_path / "prior")
    meta = json.loads((tmp_path / "prior" / "prior.json").read_text())
    assert meta["kind"] == "wgan_gp" and meta["generator_args"]["image_size"] == 8
    loaded = load_trained_prior(tmp_path / "prior")
    with torch.no_grad():
        assert torch.equal(loaded.generator(z[:4]), trained.generator(z[:4]))
    prior = loaded.prior((16, 16), 3)
    assert prior(z[:2]).shape == (2, 3, 16, 16) and prior.discriminator_kind == "wgan"
    assert not prior.training

    grid = save_prior_samples(prior, tmp_path / "samples.png", n=16)
    assert Image.open(grid).size[0] > 16


def test_kedmi_gan_learns_the_targets_soft_labels(public_digits, tmp_path):
    torch.manual_seed(0)
    target = nn.Sequential(nn.Flatten(), nn.Linear(64, 5)).eval()  # any classifier
    trained = train_kedmi_gan(public_digits, target, (1, 8, 8), latent_dim=16, width=8,
                              iterations=60, minibatch_features=8, minibatch_kernel=4, seed=0)
    accuracy = trained.history["soft_label_accuracy"]
    assert sum(accuracy[-10:]) > sum(accuracy[:10])
    assert trained.discriminator_args["num_classes"] == 5
    trained.save(tmp_path / "kedmi")
    loaded = load_trained_prior(tmp_path / "kedmi")
    assert isinstance(loaded.discriminator, KPlusOneDiscriminator)
    prior = loaded.prior((8, 8), 1)
    assert prior.discriminator_kind == "kplus1"
    assert prior.prior_loss(prior.generate(prior.sample_latents(4))).shape == (4,)


def test_prior_kinds_point_at_training_functions():
    assert PRIORS.get("kedmi").per_target and not PRIORS.get("wgan_gp").per_target
    for kind in (PRIORS.get(name) for name in PRIORS.names()):
        assert callable(import_reference(kind.train, "prior", plugin=kind.train))


def test_reconstruction_grid_is_a_png(tmp_path):
    recon = torch.rand(6, 1, 8, 8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    private = torch.rand(9, 3, 8, 8)
    private_labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    path = save_reconstruction_grid(recon, labels, private, private_labels,
                                    tmp_path / "grid.png", per_class=3, title="ppa on none")
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > image.size[1]
