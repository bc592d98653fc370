"""Named feature spaces for FID, PRDC and the delta metrics.

FID and PRDC are computed in the FID Inception network of pytorch-fid (the TensorFlow FID
Inception-v3 ported to PyTorch, 2048-d pool3 features: the literature's FID, and the network
the Plug & Play Attacks code uses in ``metrics/fid_score.py``) when its weights file
``pt_inception-2015-12-05-6726825d.pth`` is on disk: an explicit path (a suite's
``privacy.fid_inception_weights``) or the torch hub cache (``torch.hub.get_dir()/checkpoints/``,
where pytorch-fid's own download puts it). Otherwise they are computed in the evaluation
model's penultimate features, which is not the literature's FID: the FeatureSpace's ``name``
says which space, and every record and the site carry it. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lsmia_bench.kernel.errors import UserError

#: pytorch-fid's weights file (``pytorch_fid.inception.FID_WEIGHTS_URL``'s name).
FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
EVALUATION_SPACE = "evaluation_model"
FID_INCEPTION_SPACE = "fid_inception_v3"
#: What each space's name means, for records and the site.
SPACE_NOTES = {
    EVALUATION_SPACE: "the evaluation model's penultimate features (not comparable with the "
                      "literature's FID, which uses the FID Inception network)",
    FID_INCEPTION_SPACE: "pytorch-fid's FID Inception-v3 (pool3, 2048-d), as in the literature",
}


@dataclass
class FeatureSpace:
    name: str
    """Recorded beside every metric computed in it: ``evaluation_model`` or
    ``fid_inception_v3``."""
    extract: Callable[[torch.Tensor], torch.Tensor]
    """Images (N, C, H, W) in [0, 1] -> features (N, D) on CPU."""
    network: nn.Module | None = None
    """The feature network."""


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
    return FeatureSpace(EVALUATION_SPACE, lambda images: penultimate_features(model, images),
                        model)


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


def fid_inception_architecture() -> nn.Module:
    """pytorch-fid's FID Inception-v3 (``pytorch_fid.inception.fid_inception_v3``'s network:
    torchvision's Inception-v3 with 1008 classes and its FID blocks), without weights."""
    from pytorch_fid import inception as fid

    net = fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid.FIDInceptionE_1(1280)
    net.Mixed_7c = fid.FIDInceptionE_2(2048)
    return net


def load_fid_inception(weights: Path, device: torch.device | str = "cpu") -> nn.Module:
    """``pytorch_fid.inception.InceptionV3`` (pool3 block, inputs in [0, 1] resized to 299 px
    inside) with the FID weights read from ``weights``."""
    from pytorch_fid import inception as fid

    state = torch.load(weights, map_location="cpu", weights_only=True)

    def from_disk(url: str, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        if Path(url).name != FID_WEIGHTS:
            raise RuntimeError(f"pytorch-fid asked for {url}; lsmia-bench never downloads")
        return state

    # pytorch-fid only loads its weights by URL; hand it the file read above instead, so the
    # network is exactly pytorch-fid's and nothing is downloaded.
    download = fid.load_state_dict_from_url
    fid.load_state_dict_from_url = from_disk
    try:
        model = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    finally:
        fid.load_state_dict_from_url = download
    return model.to(device).eval()


@torch.no_grad()
def fid_inception_features(model: nn.Module, images: torch.Tensor,
                           batch_size: int = 64) -> torch.Tensor:
    """2048-d pool3 features of images in [0, 1] (grey -> RGB); pytorch-fid's network resizes
    to 299 px (bilinear) and scales to [-1, 1] itself. (N, 2048) on CPU."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float()
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        out.append(model(x)[0].flatten(1).cpu())
    return torch.cat(out)


def select_feature_space(evaluation_model: nn.Module, fid_weights: str | Path | None = None,
                         field: str = "privacy.fid_inception_weights") -> FeatureSpace:
    """pytorch-fid's FID Inception when its weights are found (``fid_weights`` or the torch
    hub cache), else the evaluation model's penultimate features."""
    weights = find_weights(fid_weights, FID_WEIGHTS, field)
    if weights is None:
        return evaluation_feature_space(evaluation_model)
    device = next(evaluation_model.parameters()).device
    try:
        model = load_fid_inception(weights, device)
    except (RuntimeError, ValueError, OSError) as exc:  # a corrupt or foreign file
        raise UserError(field, str(weights), f"Give pytorch-fid's {FID_WEIGHTS}.",
                        problem=f"cannot load it ({' '.join(str(exc).split())[:200]})") from None
    return FeatureSpace(FID_INCEPTION_SPACE,
                        lambda images: fid_inception_features(model, images), model)
