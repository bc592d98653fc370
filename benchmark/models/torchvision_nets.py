"""torchvision's ImageNet architectures as lsmia-bench classifiers: the ``faces`` suite's
targets (ResNet-18/50/152, DenseNet-121/169 at 224 px) and evaluation model (Inception-v3 at
299 px), as in the label smoothing paper's code (``models/classifier.py`` of
github.com/LukasStruppek/Plug-and-Play-Attacks).

Every class keeps the classifier contract of ``benchmark/models/__init__.py``: images in [0, 1]
go in (normalised inside, by default (x - 0.5) / 0.5 as the paper's code does), ``embed`` gives
the globally pooled features, ``head`` is a fresh ``nn.Linear(feature_dim, num_classes)``.

ImageNet weights are never downloaded. With ``pretrained=True`` they are read from ``weights``
(a file that must exist) or from torchvision's file in the torch hub cache
(``torch.hub.get_dir()/checkpoints/resnet152-394f9c45.pth`` ...); when neither is there the
network starts from random weights and ``pretraining`` says so, for the run's record.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from lsmia_bench.kernel.errors import UserError

log = logging.getLogger("lsmia_bench")

NORMALIZATIONS = {
    "paper": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
# Old DenseNet checkpoints name "norm.1" what the modules call "norm1" (torchvision's fix).
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def imagenet_weights_file(arch: str) -> str:
    """File name of torchvision's IMAGENET1K_V1 weights of ``arch`` (its hub cache name)."""
    enum = models.get_model_weights(arch)
    return Path(enum.IMAGENET1K_V1.url).name


def find_imagenet_weights(arch: str, weights: str | Path | None,
                          field: str = "target.params.weights") -> Path | None:
    """An explicit weights file (UserError if it is missing) or the hub cache file, else None."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(field, str(weights), "Give the path of an existing ImageNet weights "
                            f"file for {arch} (torchvision's {imagenet_weights_file(arch)}), or "
                            "leave it empty to use the torch hub cache.",
                            problem="file not found")
        return path.resolve()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / imagenet_weights_file(arch)
    return cached if cached.is_file() else None


class TorchvisionClassifier(nn.Module):
    """A torchvision ImageNet architecture with a new head (see the module docstring).

    Arguments:
        in_channels (int): 3, or 1 for grey images (repeated to 3 channels). (Default: 3)
        image_size (int): height = width of the images given to forward. (Default: 224)
        num_classes (int): identities. (Default: 530, FaceScrub)
        pretrained (bool): start from ImageNet weights when they are on disk. (Default: True,
            paper)
        weights (str | None): ImageNet weights file; None looks in the torch hub cache.
            (Default: None)
        normalization ("paper" | "imagenet"): input normalisation inside the model.
            (Default: "paper", (x - 0.5) / 0.5 as the paper's code)
        resize_to (int | None): resize inputs to this size inside the model, so that a 299 px
            network judges 224 px reconstructions. (Default: None; 299 for Inception-v3)

    Shape: (B, in_channels, image_size, image_size) in [0, 1] -> logits (B, num_classes).
    """

    arch: ClassVar[str] = ""
    head_attribute: ClassVar[str] = "fc"
    block_names: ClassVar[list[str]] = []
    min_input_size: ClassVar[int] = 32
    default_resize_to: ClassVar[int | None] = None

    def __init__(self, in_channels: int = 3, image_size: int = 224, num_classes: int = 530,
                 pretrained: bool = True, weights: str | None = None,
                 normalization: str = "paper", resize_to: int | None = None) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, "
                             f"got {normalization!r}")
        self.resize_to = resize_to if resize_to is not None else self.default_resize_to
        network_size = self.resize_to or image_size
        if network_size < self.min_input_size:
            raise ValueError(f"{self.arch} needs inputs of at least {self.min_input_size} px, "
                             f"got {network_size} (set resize_to or a larger image_size)")
        if weights and not pretrained:
            raise ValueError(f"weights {weights} given with pretrained false; set pretrained "
                             "true to use them, or drop weights")
        self.in_channels = in_channels
        self.image_size = image_size
        mean, std = NORMALIZATIONS[normalization]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.net = self.build_network(pretrained)
        old_head = getattr(self.net, self.head_attribute)
        self.feature_dim = int(old_head.in_features)
        setattr(self.net, self.head_attribute, nn.Identity())
        self.pretraining = self._load_pretrained(weights) if pretrained else {
            "pretrained": False, "weights": None, "note": "random initialisation (pretrained "
            "= false)"}
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.hidden_layers = [f"net.{name}" for name in self.block_names]

    def build_network(self, pretrained: bool) -> nn.Module:
        """The torchvision network with random weights (never downloads)."""
        return models.get_model(self.arch, weights=None)

    def _load_pretrained(self, weights: str | None) -> dict[str, Any]:
        """Load ImageNet weights into ``net``; ValueError (a UserError through
        ``build_classifier``) for a missing explicit file or weights that do not fit."""
        expected = imagenet_weights_file(self.arch)
        if weights and not Path(weights).expanduser().is_file():
            raise ValueError(f"ImageNet weights file {weights} not found; give torchvision's "
                             f"{expected} for {self.arch} or leave weights empty to use the "
                             "torch hub cache")
        path = find_imagenet_weights(self.arch, weights)
        if path is None:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / expected
            note = (f"ImageNet weights not found (looked for {cached}); random initialisation. "
                    "Put the file there or set the model's weights parameter.")
            log.warning("%s: %s", self.arch, note)
            return {"pretrained": False, "weights": None, "note": note}
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.net.load_state_dict(self.adapt_state_dict(state))
        except Exception as exc:  # a corrupt file or another architecture's weights
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ValueError(f"cannot load ImageNet weights {path} into {self.arch} ({detail}); "
                             f"give torchvision's {expected}") from None
        log.info("%s: ImageNet weights from %s", self.arch, path)
        return {"pretrained": True, "weights": str(path), "note": f"ImageNet weights from {path}"}

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop the ImageNet head (replaced by ``head``)."""
        prefix = f"{self.head_attribute}."
        return {k: v for k, v in state.items() if not k.startswith(prefix)}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the network's input: 3 channels, resized, normalised."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize_to is not None and tuple(x.shape[-2:]) != (self.resize_to,) * 2:
            x = F.interpolate(x, size=(self.resize_to, self.resize_to), mode="bilinear",
                              align_corners=False, antialias=x.shape[-1] > self.resize_to)
        return (x - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled penultimate features, shape (B, feature_dim)."""
        return self.net(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class ResNet18(TorchvisionClassifier):
    """ResNet-18 ("Deep Residual Learning for Image Recognition", He et al., CVPR 2016,
    https://arxiv.org/abs/1512.03385). Arguments: see :class:`TorchvisionClassifier`."""

    arch = "resnet18"
    block_names = ["layer1", "layer2", "layer3", "layer4"]
    min_input_size = 16


class ResNet50(ResNet18):
    """ResNet-50 (He et al., CVPR 2016). Arguments: see :class:`TorchvisionClassifier`."""

    arch = "resnet50"


class ResNet152(ResNet18):
    """ResNet-152 (He et al., CVPR 2016), the paper's target. Arguments: see
    :class:`TorchvisionClassifier`."""

    arch = "resnet152"


class DenseNet121(TorchvisionClassifier):
    """DenseNet-121 ("Densely Connected Convolutional Networks", Huang et al., CVPR 2017,
    https://arxiv.org/abs/1608.06993). Arguments: see :class:`TorchvisionClassifier`."""

    arch = "densenet121"
    head_attribute = "classifier"
    block_names = [f"features.denseblock{i}" for i in range(1, 5)]

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        renamed = {}
        for key, value in state.items():
            match = _DENSENET_KEY.match(key)
            renamed[match.group(1) + match.group(2) if match else key] = value
        return super().adapt_state_dict(renamed)


class DenseNet169(DenseNet121):
    """DenseNet-169 (Huang et al., CVPR 2017). Arguments: see :class:`TorchvisionClassifier`."""

    arch = "densenet169"


class InceptionV3(TorchvisionClassifier):
    """Inception-v3 ("Rethinking the Inception Architecture for Computer Vision", Szegedy et
    al., CVPR 2016, https://arxiv.org/abs/1512.00567), the paper's evaluation model at 299 px.

    Inputs are resized to ``resize_to`` (Default: 299) inside the model. Without auxiliary
    logits: the paper's code trains with them (loss = CE(main) + CE(aux)); the shared training
    loop of lsmia-bench uses the main logits only. As torchvision does for its ImageNet weights,
    ``transform_input`` is on when ``pretrained`` is. Arguments: see
    :class:`TorchvisionClassifier`; the network needs at least 75 px.
    """

    arch = "inception_v3"
    block_names = ["Mixed_5d", "Mixed_6e", "Mixed_7c"]
    min_input_size = 75
    default_resize_to = 299

    def build_network(self, pretrained: bool) -> nn.Module:
        return models.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                   transform_input=pretrained)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        return super().adapt_state_dict(state)


TORCHVISION_ARCHITECTURES = {cls.arch: cls for cls in (
    ResNet18, ResNet50, ResNet152, DenseNet121, DenseNet169, InceptionV3)}
"""torchvision name -> class, for the ``ARCHITECTURES`` registry's builtins."""
