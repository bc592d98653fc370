"""Classifier architectures by name, and the contract every classifier keeps.

Every classifier is an ``nn.Module`` built as ``cls(in_channels=, image_size=, num_classes=,
**params)`` that exposes ``forward(x) -> logits``, ``embed(x)`` (penultimate features of
shape (B, feature_dim)), ``head`` (the final ``nn.Linear``, so that ``forward(x) ==
head(embed(x))``), ``feature_dim`` (int) and ``hidden_layers`` (names from
``named_modules()`` whose outputs are the hidden blocks' outputs). Defenses rely on it: MID
puts a bottleneck between ``embed`` and ``head``, BiDO hooks ``hidden_layers``.

Outside architectures plug in through the entry-point group ``architectures`` or a
``path/to/file.py:ClassName`` reference.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.registry import Registry

ARCHITECTURES: Registry[type[nn.Module]] = Registry(
    "architecture",
    base=nn.Module,
    builtins={
        "cnn": "lsmia_bench.benchmark.models.cnn:SmallCNN",
        "resnet": "lsmia_bench.benchmark.models.resnet:SmallResNet",
        "mlp": "lsmia_bench.benchmark.models.image_mlp:ImageMLP",
        # torchvision's ImageNet networks (the faces suite): names as torchvision spells them.
        "resnet18": "lsmia_bench.benchmark.models.torchvision_nets:ResNet18",
        "resnet50": "lsmia_bench.benchmark.models.torchvision_nets:ResNet50",
        "resnet152": "lsmia_bench.benchmark.models.torchvision_nets:ResNet152",
        "densenet121": "lsmia_bench.benchmark.models.torchvision_nets:DenseNet121",
        "densenet169": "lsmia_bench.benchmark.models.torchvision_nets:DenseNet169",
        "inception_v3": "lsmia_bench.benchmark.models.torchvision_nets:InceptionV3",
    },
    entry_point_group="lsmia_bench.architectures",
)


def build_classifier(name: str, params: dict[str, Any], in_channels: int, image_size: int,
                     num_classes: int, field: str = "target") -> nn.Module:
    """Instantiate an architecture by name; bad names or parameters raise UserError."""
    cls = ARCHITECTURES.get(name, field=f"{field}.name")
    try:
        model = cls(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                    **params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{field}.params", params, "Check the parameters of this architecture "
                        f"(see the docstring of {cls.__module__}.{cls.__name__}).",
                        problem=str(exc)) from None
    problems = contract_problems(model)
    if problems:
        raise UserError(f"{field}.name", name, "Give the class embed(), head, feature_dim and "
                        "hidden_layers (see benchmark/models/__init__.py).",
                        problem="; ".join(problems))
    return model


def contract_problems(model: nn.Module) -> list[str]:
    """What ``model`` lacks of the classifier contract (an empty list when it keeps it)."""
    problems = []
    if not callable(getattr(model, "embed", None)):
        problems.append("no embed(x) method")
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        problems.append("head is not an nn.Linear")
    feature_dim = getattr(model, "feature_dim", None)
    if not isinstance(feature_dim, int):
        problems.append("feature_dim is not an int")
    elif isinstance(head, nn.Linear) and head.in_features != feature_dim:
        problems.append(f"head takes {head.in_features} features, feature_dim is {feature_dim}")
    hidden = getattr(model, "hidden_layers", None)
    names = {name for name, _ in model.named_modules()}
    if not isinstance(hidden, list) or not hidden:
        problems.append("hidden_layers is not a non-empty list of module names")
    else:
        missing = [n for n in hidden if n not in names]
        if missing:
            problems.append(f"hidden_layers names unknown submodules {missing}")
    return problems


__all__ = ["ARCHITECTURES", "build_classifier", "contract_problems"]
