"""torchvision architectures as lsmia-bench classifiers: the contract, ImageNet weights from
disk only (and saying when they are absent), Inception-v3's resizing, tiny CPU inputs."""

from __future__ import annotations

import pytest
import torch
from torchvision import models

from lsmia_bench.benchmark.models import contract_problems
from lsmia_bench.benchmark.models.torchvision_nets import (
    TORCHVISION_ARCHITECTURES,
    DenseNet121,
    InceptionV3,
    ResNet18,
    find_imagenet_weights,
    imagenet_weights_file,
)
from lsmia_bench.benchmark.training import capture_features
from lsmia_bench.kernel.errors import UserError


@pytest.fixture(autouse=True)
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache without weights, so nothing on this machine is picked up."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


FEATURE_DIMS = {"resnet18": 512, "resnet50": 2048, "resnet152": 2048, "densenet121": 1024,
                "densenet169": 1664, "inception_v3": 2048}


@pytest.fixture(scope="module")
def inception() -> InceptionV3:
    """Built once: Inception-v3's initialisation alone takes seconds on a busy CPU."""
    torch.manual_seed(0)
    return InceptionV3(image_size=32, num_classes=5, pretrained=False, resize_to=75).eval()


@pytest.mark.parametrize("arch", sorted(set(TORCHVISION_ARCHITECTURES) - {"inception_v3"}))
def test_each_architecture_keeps_the_classifier_contract(arch):
    cls = TORCHVISION_ARCHITECTURES[arch]
    torch.manual_seed(0)
    model = cls(in_channels=3, image_size=32, num_classes=5).eval()
    assert contract_problems(model) == []
    assert model.feature_dim == FEATURE_DIMS[arch] and model.head.out_features == 5
    assert model.pretraining["pretrained"] is False
    assert imagenet_weights_file(arch) in model.pretraining["note"]


# One network per family runs forward (the deeper ones share the code and cost seconds each).
@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "inception_v3"])
def test_forward_embed_head_and_hidden_layers(arch, inception):
    torch.manual_seed(0)
    model = (inception if arch == "inception_v3" else
             TORCHVISION_ARCHITECTURES[arch](in_channels=3, image_size=32, num_classes=5).eval())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad(), capture_features(model, model.hidden_layers) as features:
        logits = model(x)
        embedded = model.embed(x)
    assert logits.shape == (2, 5) and embedded.shape == (2, model.feature_dim)
    assert torch.allclose(model.head(embedded), logits, atol=1e-5)
    assert set(features) == set(model.hidden_layers) and len(features) >= 3
    assert all(f.shape[0] == 2 and f.ndim == 4 for f in features.values())


def test_training_step_updates_a_resnet18_on_grey_images():
    torch.manual_seed(0)
    model = ResNet18(in_channels=1, image_size=16, num_classes=3, pretrained=False).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 0])
    before = model.net.conv1.weight.clone()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert model.net.conv1.weight.grad is not None
    assert not torch.equal(before, model.net.conv1.weight)
    assert model.pretraining == {"pretrained": False, "weights": None,
                                 "note": "random initialisation (pretrained = false)"}


def test_imagenet_weights_come_from_the_hub_cache_or_a_file(empty_hub, tmp_path):
    torch.manual_seed(1)
    imagenet = models.resnet18(weights=None)
    empty_hub.mkdir(parents=True)
    cached = empty_hub / imagenet_weights_file("resnet18")
    torch.save(imagenet.state_dict(), cached)
    model = ResNet18(image_size=32, num_classes=4)
    assert model.pretraining["pretrained"] is True
    assert model.pretraining["weights"] == str(cached.resolve())
    assert torch.equal(model.net.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    assert model.head.out_features == 4
    untouched = ResNet18(image_size=32, num_classes=4, pretrained=False)
    assert not torch.equal(untouched.net.conv1.weight, imagenet.conv1.weight)

    explicit = tmp_path / "my_resnet18.pth"
    torch.save(imagenet.state_dict(), explicit)
    cached.unlink()
    model = ResNet18(image_size=32, num_classes=4, weights=str(explicit))
    assert model.pretraining["weights"] == str(explicit.resolve())
    assert torch.equal(model.net.conv1.weight, imagenet.conv1.weight)


def test_bad_weights_are_refused_with_the_expected_file_named(tmp_path):
    with pytest.raises(ValueError, match="resnet18-f37072fd.pth"):
        ResNet18(image_size=32, weights=str(tmp_path / "absent.pth"))
    with pytest.raises(UserError) as info:
        find_imagenet_weights("resnet152", tmp_path / "absent.pth", field="target.params.weights")
    assert str(info.value).startswith("target.params.weights:")
    assert "resnet152-394f9c45.pth" in str(info.value)
    wrong = tmp_path / "densenet_as_resnet.pth"
    torch.save(models.densenet121(weights=None).state_dict(), wrong)
    with pytest.raises(ValueError, match="cannot load ImageNet weights"):
        ResNet18(image_size=32, weights=str(wrong))


def test_densenet_loads_checkpoints_with_the_old_key_names(tmp_path):
    torch.manual_seed(2)
    imagenet = models.densenet121(weights=None)
    # Checkpoints of that age have no BatchNorm num_batches_tracked entries.
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v
              for k, v in imagenet.state_dict().items() if "num_batches_tracked" not in k}
    assert any("denselayer1.norm.1.weight" in k for k in legacy)
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    model = DenseNet121(image_size=32, num_classes=3, weights=str(path))
    block = model.net.features.denseblock1.denselayer1
    assert torch.equal(block.norm1.weight, imagenet.features.denseblock1.denselayer1.norm1.weight)
    assert torch.equal(block.conv2.weight, imagenet.features.denseblock1.denselayer1.conv2.weight)


def test_inception_resizes_inputs_and_has_no_aux_logits(inception):
    assert contract_problems(inception) == [] and inception.feature_dim == 2048
    assert inception.prepare(torch.rand(2, 3, 32, 32)).shape == (2, 3, 75, 75)
    assert InceptionV3.default_resize_to == 299
    inception.train()
    try:
        out = inception(torch.rand(2, 3, 32, 32))
    finally:
        inception.eval()
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)
    with pytest.raises(ValueError, match="at least 75 px"):
        InceptionV3(image_size=299, resize_to=64, pretrained=False)


def test_normalization_lives_inside_the_model():
    paper = ResNet18(image_size=16, pretrained=False)
    imagenet = ResNet18(image_size=16, pretrained=False, normalization="imagenet")
    x = torch.full((1, 3, 16, 16), 0.5)
    assert torch.allclose(paper.prepare(x), torch.zeros_like(x))
    assert not torch.allclose(imagenet.prepare(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match="normalization"):
        ResNet18(pretrained=False, normalization="none")
    with pytest.raises(ValueError, match="in_channels"):
        ResNet18(in_channels=4, pretrained=False)
