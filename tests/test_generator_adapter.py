"""Generator adapters: any nn.Module latent -> image, and StyleGAN2-ADA checkpoints (a tiny
StyleGAN-like module, pickled with an NVlabs-shaped code folder), their shape contract and
the messages for a missing checkpoint or code."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.attacks.base import Attack
from lsmia_bench.attacks.ppa import PPA
from lsmia_bench.attacks.priors.base import GeneratorPrior
from lsmia_bench.attacks.priors.stylegan import (
    ModuleGeneratorPrior,
    StyleGANPrior,
    generator_from_reference,
    load_stylegan2_ada,
    stylegan_prior_from_checkpoint,
)
from lsmia_bench.attacks.priors.tiny_stylegan import TinyStyleGAN
from lsmia_bench.benchmark.models.cnn import SmallCNN
from lsmia_bench.kernel.errors import UserError


class TanhGenerator(nn.Module):
    """(N, 8) -> (N, 3, 12, 12) in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3 * 12 * 12)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(z)).view(-1, 3, 12, 12)


def test_any_module_is_cropped_resized_and_rescaled_for_the_target():
    torch.manual_seed(0)
    generator = TanhGenerator()
    prior = ModuleGeneratorPrior(generator, 8, value_range=(-1, 1), image_size=(6, 6),
                                 channels=3, center_crop=8)
    assert isinstance(prior, GeneratorPrior) and prior.latent_dim == 8
    z = prior.sample_latents(4, torch.Generator().manual_seed(1))
    assert z.shape == (4, 8)
    raw = generator(z)
    crop = raw[:, :, 2:10, 2:10]
    expected = F.interpolate((crop + 1) / 2, size=(6, 6), mode="bilinear",
                             align_corners=False, antialias=True)
    assert torch.allclose(prior(z), expected, atol=1e-6)
    assert prior(z).min() >= 0 and prior(z).max() <= 1

    grey = prior.for_target((5, 5), 1)
    assert type(grey) is ModuleGeneratorPrior and grey.center_crop == 8
    assert grey(z).shape == (4, 1, 5, 5)
    unit = ModuleGeneratorPrior(nn.Sequential(generator, nn.Sigmoid()), 8, value_range=(0, 1))
    assert torch.allclose(unit(z), torch.sigmoid(raw), atol=1e-6)


def test_clip_bounds_raw_images_to_the_value_range():
    class Wide(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (3 * z).view(-1, 1, 2, 2)

    z = torch.tensor([[-1.0, 0.0, 0.2, 1.0]])
    clipped = ModuleGeneratorPrior(Wide(), 4, value_range=(-1, 1), clip=True)(z)
    assert clipped.flatten().tolist() == pytest.approx([0.0, 0.5, 0.8, 1.0])


def stylegan_prior(**options) -> StyleGANPrior:
    generator = TinyStyleGAN(z_dim=16, w_dim=12, resolution=16, width=8, seed=0)
    return StyleGANPrior(generator, image_size=(10, 10), channels=3, **options).eval()


def test_stylegan_prior_samples_truncated_w_and_keeps_the_shape_contract():
    prior = stylegan_prior(center_crop=12)
    num_ws = prior.num_ws
    assert num_ws == 3 and prior.latent_shape == (1, 12) and prior.latent_dim == 12
    w = prior.sample_latents(5, torch.Generator().manual_seed(3))
    assert w.shape == (5, 1, 12)
    assert torch.equal(w, prior.sample_latents(5, torch.Generator().manual_seed(3)))
    images = prior(w)
    assert images.shape == (5, 3, 10, 10)
    repeated = w.expand(-1, num_ws, -1)
    assert torch.allclose(prior.generate(w), prior.generator.synthesis(repeated), atol=1e-6)
    assert prior.generate(w).shape == (5, 3, 16, 16)

    all_w = stylegan_prior(single_w=False).sample_latents(4)
    assert all_w.shape == (4, num_ws, 12)
    mean_w = stylegan_prior(truncation_psi=0.0, truncation_cutoff=None).sample_latents(3)
    assert torch.allclose(mean_w, prior.generator.mapping.w_avg.expand(3, 1, 12))
    with pytest.raises(ValueError, match="1 or 3"):
        prior.generate(torch.zeros(2, 2, 12))


def test_gradients_reach_w_and_for_target_keeps_the_options():
    prior = stylegan_prior(truncation_psi=0.7, center_crop=14)
    w = prior.sample_latents(2).requires_grad_(True)
    prior(w).mean().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    grey = prior.for_target((8, 8), 1)
    assert type(grey) is StyleGANPrior and grey.truncation_psi == 0.7
    assert grey.center_crop == 14 and grey(w.detach()).shape == (2, 1, 8, 8)
    assert isinstance(Attack().require_prior(grey), StyleGANPrior)


def test_modules_without_the_stylegan_interface_are_refused():
    with pytest.raises(ValueError, match="no mapping"):
        StyleGANPrior(TanhGenerator())
    conditional = TinyStyleGAN(z_dim=4, w_dim=4, resolution=8, width=4)
    conditional.c_dim = 10
    with pytest.raises(ValueError, match="conditional"):
        StyleGANPrior(conditional)


def test_ppa_runs_on_the_stylegan_prior():
    torch.manual_seed(0)
    target = SmallCNN(in_channels=3, image_size=16, num_classes=3, channels=(4, 8),
                      feature_dim=8).eval()
    prior = StyleGANPrior(TinyStyleGAN(z_dim=16, w_dim=12, resolution=16, width=8),
                          image_size=(16, 16), channels=3)
    attack = PPA(search_space_size=8, num_candidates=2, samples_per_class=1, steps=2,
                 batch_size=4, final_iterations=2)
    out = attack.run(target, [0, 2], prior)
    assert out.reconstructions.shape == (2, 3, 16, 16)
    assert out.labels.tolist() == [0, 2]
    assert out.trace["gradients"].shape[-2:] == (1, 12)


FAKE_NETWORKS = """
from lsmia_bench.attacks.priors.tiny_stylegan import TinyStyleGAN


class Generator(TinyStyleGAN):
    pass
"""
FAKE_LEGACY = """
import pickle


def load_network_pkl(f):
    return pickle.load(f)
"""


@pytest.fixture
def nvlabs_like(tmp_path, monkeypatch):
    """A folder shaped like a stylegan2-ada-pytorch clone and a network pickle whose G_ema
    class lives in it (so unpickling needs that folder, as with NVlabs' pickles)."""
    repo = tmp_path / "stylegan2-ada-pytorch"
    (repo / "dnnlib").mkdir(parents=True)
    (repo / "dnnlib" / "__init__.py").write_text("")
    (repo / "torch_utils").mkdir()
    (repo / "torch_utils" / "__init__.py").write_text("")
    (repo / "torch_utils" / "fake_networks.py").write_text(textwrap.dedent(FAKE_NETWORKS))
    (repo / "legacy.py").write_text(textwrap.dedent(FAKE_LEGACY))
    monkeypatch.setattr(sys, "path", [str(repo), *sys.path])
    from torch_utils.fake_networks import Generator  # type: ignore[import-not-found]

    checkpoint = tmp_path / "ffhq.pkl"
    with open(checkpoint, "wb") as handle:
        pickle.dump({"G_ema": Generator(z_dim=8, w_dim=8, resolution=8, width=4),
                     "D": None}, handle)
    bad = tmp_path / "no_g_ema.pkl"
    with open(bad, "wb") as handle:
        pickle.dump({"G": None}, handle)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(repo)])
    for name in [m for m in sys.modules if m.split(".")[0] in ("dnnlib", "torch_utils",
                                                                 "legacy")]:
        monkeypatch.delitem(sys.modules, name)
    yield repo, checkpoint, bad
    for name in [m for m in sys.modules if m.split(".")[0] in ("dnnlib", "torch_utils",
                                                                 "legacy")]:
        del sys.modules[name]


def test_stylegan_checkpoint_loads_with_the_users_code_folder(nvlabs_like):
    repo, checkpoint, _ = nvlabs_like
    generator = load_stylegan2_ada(checkpoint, repo)
    assert type(generator).__name__ == "Generator" and not generator.training
    assert not any(p.requires_grad for p in generator.parameters())
    prior = stylegan_prior_from_checkpoint(checkpoint, repo, image_size=(6, 6), channels=3,
                                           truncation_psi=0.5, center_crop=6)
    assert prior(prior.sample_latents(2)).shape == (2, 3, 6, 6)


def test_missing_checkpoint_or_code_is_a_user_error(nvlabs_like, tmp_path):
    repo, checkpoint, bad = nvlabs_like
    with pytest.raises(UserError) as info:
        load_stylegan2_ada(tmp_path / "absent.pkl", repo, field="attacks.ppa.prior")
    message = str(info.value)
    assert message.startswith("attacks.ppa.prior.checkpoint:")
    assert "checkpoint file not found" in message and "ffhq.pkl" in message
    with pytest.raises(UserError, match="no generator checkpoint given"):
        load_stylegan2_ada(None, repo)
    with pytest.raises(UserError) as info:
        load_stylegan2_ada(checkpoint, None)
    assert "dnnlib and torch_utils are not importable" in str(info.value)
    assert "github.com/NVlabs/stylegan2-ada-pytorch" in str(info.value)
    with pytest.raises(UserError) as info:
        load_stylegan2_ada(checkpoint, tmp_path)
    assert str(tmp_path / "dnnlib") in str(info.value)
    assert str(tmp_path / "legacy.py") in str(info.value)
    with pytest.raises(UserError, match="no G_ema generator"):
        load_stylegan2_ada(bad, repo)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="loading failed"):
        load_stylegan2_ada(tmp_path / "junk.pkl", repo)


def test_generator_factory_from_a_file(tmp_path):
    factory = tmp_path / "my_gan.py"
    factory.write_text(textwrap.dedent("""
        from torch import nn


        def make_generator(latent_dim=4):
            return nn.Sequential(nn.Linear(latent_dim, 12), nn.Unflatten(1, (3, 2, 2)))


        def not_a_module():
            return 3
    """))
    module = generator_from_reference(f"{factory}:make_generator", {"latent_dim": 5})
    prior = ModuleGeneratorPrior(module, 5, value_range=(-1, 1), image_size=(4, 4))
    assert prior(prior.sample_latents(2)).shape == (2, 3, 4, 4)
    with pytest.raises(UserError, match="returned int"):
        generator_from_reference(f"{factory}:not_a_module")
    with pytest.raises(UserError, match="calling it failed"):
        generator_from_reference(f"{factory}:make_generator", {"width": 3})
    with pytest.raises(UserError, match="does not exist"):
        generator_from_reference(f"{Path(tmp_path) / 'absent.py'}:make_generator")
