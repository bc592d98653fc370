"""Named feature spaces for FID, PRDC and the delta metrics.

FID and PRDC are computed in Inception-v3 features when ImageNet weights are on disk (an
explicit path or torchvision's file in the torch hub cache), otherwise in the evaluation
model's penultimate features; the FeatureSpace's ``name`` says which, for the report.
Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.kernel.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FeatureSpace:
    name: str
    """Recorded beside every metric computed in it, e.g. ``evaluation_model``."""
    extract: Callable[[torch.Tensor], torch.Tensor]
    """Images (N, C, H, W) in [0, 1] -> features (N, D) on CPU."""


@torch.no_grad()
def penultimate_features(model: nn.Module, images: torch.Tensor,
                         batch_size: int = 256) -> torch.Tensor:
    """``model.embed(x)`` (penultimate features of lsmia-bench classifiers), batched, on CPU;
    ``images`` is a tensor or anything sliced like one (``LazyImages``)."""
    model.eval()
    device = next(model.parameters()).device
    embed = getattr(model, "embed", None)
    if embed is None:
        raise ValueError(f"{type(model).__name__} has no embed() giving penultimate features")
    return torch.cat([embed(images[i:i + batch_size].to(device)).flatten(1).float().cpu()
                      for i in range(0, len(images), batch_size)])


def evaluation_feature_space(model: nn.Module) -> FeatureSpace:
    return FeatureSpace("evaluation_model", lambda images: penultimate_features(model, images))


def find_weights(explicit: str | Path | None, cached_name: str, field: str) -> Path | None:
    """An explicit weights file (must exist) or ``torch.hub.get_dir()/checkpoints/<name>``."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(field, str(explicit), "Give the path of an existing weights file "
                            "or leave it empty to use the torch hub cache.",
                            problem="file not found")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / cached_name
    return cached if cached.is_file() else None


def inception_weights_name() -> str:
    from torchvision.models import Inception_V3_Weights

    return Path(Inception_V3_Weights.IMAGENET1K_V1.url).name


def load_inception(weights: Path, device: torch.device | str = "cpu") -> nn.Module:
    """torchvision's Inception-v3 with its ImageNet weights from disk, classifier removed."""
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, transform_input=True,
                         init_weights=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.fc = nn.Identity()
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: nn.Module, images: torch.Tensor,
                       batch_size: int = 64) -> torch.Tensor:
    """2048-d pool features of images in [0, 1], resized to 299 px, grey -> RGB."""
    device = next(model.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float()
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(model((x - mean) / std).cpu())
    return torch.cat(out)


def select_feature_space(evaluation_model: nn.Module, inception_weights: str | Path | None = None,
                         field: str = "metrics.inception_weights") -> FeatureSpace:
    """Inception-v3 (torchvision ImageNet weights) when found, else the evaluation model."""
    weights = find_weights(inception_weights, inception_weights_name(), field)
    if weights is None:
        return evaluation_feature_space(evaluation_model)
    device = next(evaluation_model.parameters()).device
    model = load_inception(weights, device)
    return FeatureSpace("inception_v3_imagenet", lambda images: inception_features(model, images))
