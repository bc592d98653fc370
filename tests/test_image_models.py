"""Every classifier keeps the contract defenses rely on: forward, embed, head, feature_dim,
hidden_layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsmia_bench.benchmark.models import ARCHITECTURES, build_classifier
from lsmia_bench.benchmark.training import capture_features
from lsmia_bench.kernel.errors import UserError

SMALL = {"cnn": {"channels": [8, 16], "feature_dim": 24}, "resnet": {"width": 8},
         "mlp": {"hidden": [32, 24]}}


@pytest.mark.parametrize("name", ["cnn", "resnet", "mlp"])
@pytest.mark.parametrize("size", [8, 32])
def test_classifier_contract(name, size):
    torch.manual_seed(0)
    model = build_classifier(name, SMALL[name], in_channels=1, image_size=size, num_classes=5)
    model.eval()
    x = torch.rand(6, 1, size, size)
    logits = model(x)
    features = model.embed(x)
    assert logits.shape == (6, 5)
    assert features.shape == (6, model.feature_dim)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 5
    assert torch.allclose(model.head(features), logits)
    with capture_features(model, model.hidden_layers) as captured:
        model(x)
    assert list(captured) == model.hidden_layers
    assert all(t.shape[0] == 6 for t in captured.values())


def test_same_seed_same_initial_weights():
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return list(build_classifier("resnet", {}, 1, 8, 5).state_dict().values())

    assert all(torch.equal(a, b) for a, b in zip(weights(0), weights(0), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights(0), weights(1), strict=True))


def test_builtin_architectures_are_registered():
    assert {"cnn", "resnet", "mlp"} <= set(ARCHITECTURES.names())


@pytest.mark.parametrize(
    ("name", "params", "field", "needle"),
    [
        ("resnett", {}, "target.name", "Did you mean 'resnet'"),
        ("cnn", {"depth": 3}, "target.params", "depth"),
        ("cnn", {"channels": [8, 8, 8, 8]}, "target.params", "divisible"),
        ("resnet", {"blocks": []}, "target.params", "blocks"),
    ],
)
def test_bad_architecture_settings_are_user_errors(name, params, field, needle):
    with pytest.raises(UserError) as caught:
        build_classifier(name, params, 1, 8, 5, field="target")
    assert caught.value.field == field
    assert needle in str(caught.value)


def test_a_plugin_architecture_without_the_contract_is_refused(tmp_path):
    plugin = tmp_path / "net.py"
    plugin.write_text("import torch.nn as nn\n"
                      "class Net(nn.Module):\n"
                      "    def __init__(self, in_channels, image_size, num_classes):\n"
                      "        super().__init__()\n"
                      "        self.fc = nn.Linear(in_channels * image_size ** 2, num_classes)\n")
    with pytest.raises(UserError) as caught:
        build_classifier(f"{plugin}:Net", {}, 1, 8, 5, field="target")
    assert "no embed(x) method" in str(caught.value)
    assert "head is not an nn.Linear" in str(caught.value)
