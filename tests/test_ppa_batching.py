"""PPA with several of the authors' batches (and identities) per generator call: the same
attack result for the same seed as one batch per call (the crops drawn batch by batch in the
same order, each batch its own loss), through the tiny StyleGAN-like generator; fewer and
larger generator calls; bf16 autocast runs and hands back float32 images."""

from __future__ import annotations

import pytest
import torch

from lsmia_bench.attacks.ppa import PPA
from lsmia_bench.attacks.priors.supplied import build_supplied_prior
from lsmia_bench.benchmark.models import build_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = [0, 2, 3]
SIZES = {"search_space_size": 30, "num_candidates": 6, "steps": 3, "batch_size": 3,
         "samples_per_class": 2, "final_iterations": 2}
PRIOR = {"kind": "tiny_stylegan", "checkpoint": None, "stylegan_repo": None, "generator": None,
         "latent_dim": 512, "value_range": [-1.0, 1.0], "truncation_psi": 0.5,
         "truncation_cutoff": 8, "single_w": True,
         "params": {"z_dim": 16, "w_dim": 16, "resolution": 32, "width": 4},
         "center_crop": 24}


class CallSizes(torch.nn.Module):
    """The generator's synthesis, recording the batch of each call."""

    def __init__(self, synthesis: torch.nn.Module) -> None:
        super().__init__()
        self.synthesis = synthesis
        self.sizes: list[int] = []

    def forward(self, ws, **kwargs):
        self.sizes.append(len(ws))
        return self.synthesis(ws, **kwargs)


def attack(**options):
    torch.manual_seed(0)
    prior = build_supplied_prior(PRIOR, 12, 3, torch.device("cpu"))
    prior.generator.synthesis = CallSizes(prior.generator.synthesis)
    target = build_classifier("cnn", {"channels": [4, 8], "feature_dim": 12}, in_channels=3,
                              image_size=12, num_classes=5)
    torch.manual_seed(1)
    output = PPA(**SIZES, **options).run(target, CLASSES, prior)
    return output, prior.generator.synthesis.sizes


def test_several_batches_per_generator_call_give_the_same_attack():
    one, one_calls = attack()
    many, many_calls = attack(generator_batch=9)  # three batches, two identities per call
    assert torch.equal(one.labels, many.labels)
    assert torch.allclose(one.latents, many.latents, atol=1e-6)  # conv rounding by batch
    assert torch.allclose(one.reconstructions, many.reconstructions, atol=1e-5)
    assert many.trace["loss"] == pytest.approx(one.trace["loss"], rel=1e-6)
    assert many.trace["gradients"].shape == one.trace["gradients"].shape
    assert max(one_calls) == 3 and max(many_calls) == 9
    assert len(many_calls) < len(one_calls) / 2


def test_generator_batch_must_be_a_multiple_of_batch_size():
    with pytest.raises(ValueError, match="multiple of batch_size"):
        PPA(**SIZES, generator_batch=4)


def test_bf16_runs_and_returns_float32_images():
    output, _ = attack(precision="bf16", generator_batch=6)
    assert output.reconstructions.dtype == torch.float32
    assert torch.isfinite(output.reconstructions).all()
    assert output.reconstructions.shape == (len(CLASSES) * 2, 3, 12, 12)
