"""Defenses that are not a loss term, through the public training hooks: TL-DMI (pre-training on
the public split, frozen early layers) and DP-SGD (Opacus; the recorded epsilon)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.models import build_classifier
from lsmia_bench.benchmark.pipelines.image_tasks import (
    load_image_classifier,
    train_image_classifier,
)
from lsmia_bench.benchmark.training import train_classifier
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.defenses.base import PublicData, TrainingSetup
from lsmia_bench.defenses.tl_dmi import default_trainable_from, frozen_parameter_names


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """As in a trial with cpu: 1."""


def _setup(model: torch.nn.Module, seed: int = 0) -> TrainingSetup:
    generator = torch.Generator().manual_seed(seed)
    images, labels = torch.rand(48, 1, 8, 8, generator=generator), torch.arange(48) % 3
    public = PublicData(torch.rand(40, 1, 8, 8, generator=generator), torch.arange(40) % 4, 4)

    def batches():
        for start in range(0, 48, 16):
            yield images[start:start + 16], labels[start:start + 16]

    return TrainingSetup(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
                         batches=batches, epochs=2, batch_size=16, train_size=48,
                         num_classes=3, device=torch.device("cpu"), seed=seed,
                         examples=lambda index: (images[index], labels[index]), public=public)


def test_tl_dmi_frozen_layers_get_no_gradient_and_keep_their_pretrained_weights():
    torch.manual_seed(0)
    model = build_classifier("resnet", {"width": 4, "blocks": [1, 1, 1]}, 1, 8, 3)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    defense = DEFENSES.get("tl_dmi")()
    setup = defense.prepare_training(_setup(model))
    frozen = set(setup.state["frozen"])
    assert frozen == set(frozen_parameter_names(model, "stages.2"))
    assert any(n.startswith("stem.") for n in frozen)
    assert not any(n.startswith(("stages.2.", "head.")) for n in frozen)
    # Pre-training on the public classes moved the early layers; the private head is the
    # freshly initialised one.
    assert not torch.equal(model.stem[0].weight, initial["stem.0.weight"])
    assert torch.equal(model.head.weight, initial["head.weight"])
    assert model.head.out_features == 3
    pretrained = {n: p.detach().clone() for n, p in model.named_parameters()}

    assert all(p.requires_grad == (n not in frozen) for n, p in model.named_parameters())
    grads: dict[str, bool] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            parameter.register_hook(lambda g, name=name: grads.__setitem__(name, True))
    train_classifier(setup.model, defense, setup.batches, setup.optimizer, setup.epochs,
                     num_classes=3, ctx=TaskContext())
    assert not frozen & set(grads), "a frozen parameter received a gradient"
    assert set(grads) == {n for n, _ in model.named_parameters()} - frozen
    for name, parameter in model.named_parameters():
        assert (parameter.grad is None) == (name in frozen), name
        same = torch.equal(parameter, pretrained[name])
        assert same if name in frozen else not same, name
    share = defense.end_training(setup)["frozen_parameter_share"]
    assert 0 < share < 1


def test_tl_dmi_default_freeze_points():
    small = build_classifier("resnet", {"width": 4, "blocks": [1, 2, 1]}, 1, 8, 3)
    assert default_trainable_from(small) == "stages.2"
    cnn = build_classifier("cnn", {"channels": [4, 8, 8], "feature_dim": 8}, 1, 8, 3)
    assert default_trainable_from(cnn) == "blocks.2"
    wrapped = DEFENSES.get("mid")().wrap_model(
        build_classifier("resnet", {"width": 4, "blocks": [1, 1]}, 1, 8, 3))
    assert default_trainable_from(wrapped) == "base.stages.1"
    # ResNet-152: layer1-3 hold 3 + 8 + 36 = 47 of the 50 bottleneck units (the authors freeze
    # IR-152's units 0-46).
    big = build_classifier("resnet152", {"pretrained": False}, 3, 32, 3)
    start = default_trainable_from(big)
    assert start == "net.layer4"
    units = {".".join(n.split(".")[:3]) for n in frozen_parameter_names(big, start)
             if n.startswith("net.layer")}
    assert len(units) == 47


def test_tl_dmi_without_public_split_needs_pretrain_false():
    model = build_classifier("cnn", {"channels": [4, 8], "feature_dim": 8}, 1, 8, 3)
    setup = dataclasses.replace(_setup(model), public=None)
    with pytest.raises(ValueError, match="pretrain: false"):
        DEFENSES.get("tl_dmi")().prepare_training(setup)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    DEFENSES.get("tl_dmi")(pretrain=False).prepare_training(setup)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert not model.blocks[0][0].weight.requires_grad and model.head.weight.requires_grad


DIGITS = {"source": "digits", "private_classes": [0, 1, 2], "public_classes": [7, 8, 9],
          "test_fraction": 0.2, "split_seed": 0, "image_size": None}


def _dp_spec(params: dict, epochs: int = 2) -> dict:
    return {
        "data": DIGITS,
        "model": {"name": "resnet", "params": {"width": 4, "blocks": [1, 1]}},
        "training": {"optimizer": "adam", "lr": 0.003, "momentum": 0.9, "weight_decay": 0.0,
                     "epochs": epochs, "batch_size": 32,
                     "scheduler": {"milestones": [0.5], "gamma": 0.1},
                     "augmentation": {"crop_padding": 1, "resized_crop_scale": None,
                                      "horizontal_flip": False, "brightness": 0.0,
                                      "contrast": 0.0}},
        "defense": {"name": "dp_sgd", "params": params},
        "seed": 0,
    }


def test_dp_sgd_records_the_epsilon_of_opacus_accountant(tmp_path):
    from opacus.accountants import RDPAccountant
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    from lsmia_bench.benchmark.data.images import load_image_splits

    params = {"noise_multiplier": 0.8, "max_grad_norm": 1.5, "delta": 1e-4}
    result = train_image_classifier(_dp_spec(params), {}, tmp_path, TaskContext())
    train_size = len(load_image_splits(DIGITS).private_train)
    rate = 32 / train_size
    steps = 2 * len(UniformWithReplacementSampler(num_samples=train_size, sample_rate=rate))
    expected = RDPAccountant()
    expected.history = [(0.8, rate, steps)]
    assert result.metrics["dp_epsilon"] == pytest.approx(expected.get_epsilon(delta=1e-4),
                                                         rel=1e-12)
    assert result.metrics["dp_delta"] == 1e-4
    # The stored target has GroupNorm instead of BatchNorm and no Opacus hooks, and loads.
    model = load_image_classifier(tmp_path)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GroupNorm" in kinds and "BatchNorm2d" not in kinds
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_dp_sgd_target_epsilon_chooses_the_noise():
    torch.manual_seed(0)
    defense = DEFENSES.get("dp_sgd")(target_epsilon=4.0, delta=1e-3)
    model = defense.wrap_model(build_classifier("cnn", {"channels": [4], "feature_dim": 8},
                                                1, 8, 3))
    setup = defense.prepare_training(_setup(model))
    train_classifier(setup.model, defense, setup.batches, setup.optimizer, setup.epochs,
                     num_classes=3, ctx=TaskContext())
    found = defense.end_training(setup)
    assert found["dp_epsilon"] <= 4.0
    assert found["dp_epsilon"] == pytest.approx(4.0, abs=0.05)
    assert found["dp_noise_multiplier"] != 1.0
