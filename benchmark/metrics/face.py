"""delta_face: the delta metric in FaceNet space (facenet-pytorch InceptionResnetV1, VGGFace2).

The weights are never downloaded: they come from an explicit path, the torch hub cache
(``torch.hub.get_dir()/checkpoints/20180402-114759-vggface2.pt``) or facenet-pytorch's own
download folder (``$TORCH_HOME/checkpoints/``). Without them :func:`delta_face` returns None
and the caller records the metric as missing. ``weights="random"`` (smoke runs only) uses a
seeded random initialisation, so that the code path runs without the file; its values mean
nothing and the record says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.benchmark.metrics.features import find_weights
from lsmia_bench.benchmark.metrics.privacy import nearest_class_distances

log = logging.getLogger("lsmia_bench")

FACENET_WEIGHTS = "20180402-114759-vggface2.pt"
FACENET_SIZE = 160
RANDOM_WEIGHTS = "random"


def find_facenet_weights(path: str | Path | None = None,
                         field: str = "privacy.facenet_weights") -> Path | str | None:
    """The explicit file (UserError if it does not exist), ``"random"``, or the cached file,
    else None. Cached: the torch hub folder or ``$TORCH_HOME/checkpoints``, where
    facenet-pytorch's own download puts it."""
    if path == RANDOM_WEIGHTS:
        return RANDOM_WEIGHTS
    found = find_weights(path, FACENET_WEIGHTS, field)
    if found is None:
        own = Path(torch.hub.get_dir()).parent / "checkpoints" / FACENET_WEIGHTS
        found = own if own.is_file() else None
    return found


def facenet_weights_note(path: Path | str | None) -> str:
    """What the record says about the FaceNet weights behind delta_face."""
    if path == RANDOM_WEIGHTS:
        return "random initialisation (smoke run: delta_face values mean nothing)"
    return f"VGGFace2 weights from {path}" if path is not None else "not found"


def load_facenet(weights: Path | str, device: torch.device | str = "cpu") -> nn.Module:
    """InceptionResnetV1 (512-d embeddings) with VGGFace2 weights loaded from ``weights``
    (or seeded random weights for ``"random"``)."""
    from facenet_pytorch import InceptionResnetV1

    if weights == RANDOM_WEIGHTS:
        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        model = InceptionResnetV1(pretrained=None, classify=False)
        torch.random.set_rng_state(state)
        return model.to(device).eval()
    model = InceptionResnetV1(pretrained=None, classify=False)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    model.load_state_dict(state)
    return model.to(device).eval()


def fixed_image_standardization(images: torch.Tensor) -> torch.Tensor:
    """(255 x - 127.5) / 128 for x in [0, 1]: facenet-pytorch's ``fixed_image_standardization``
    of 8-bit pixels, the input its VGGFace2 weights were trained with."""
    return (images * 255 - 127.5) / 128


def facenet_input(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> FaceNet's input: grey -> RGB, resized to 160 px (bilinear,
    antialiased when shrinking, as PPA's ``create_image`` resizes), standardised.

    The crop is the one the images already have: reconstructions come from the generator's
    center crop (the faces suite's ``prior.center_crop``, 800 of 1024 px, the crop PPA's
    ``attack.py`` hands its FaceNet distance), private images from the data's face crops."""
    x = images.float()
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if tuple(x.shape[-2:]) != (FACENET_SIZE, FACENET_SIZE):
        x = F.interpolate(x, size=(FACENET_SIZE, FACENET_SIZE), mode="bilinear",
                          align_corners=False, antialias=x.shape[-1] > FACENET_SIZE)
    return fixed_image_standardization(x)


@torch.no_grad()
def facenet_features(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Embeddings of images in [0, 1] (:func:`facenet_input`); (N, 512) on CPU."""
    device = next(model.parameters()).device
    return torch.cat([model(facenet_input(images[i:i + batch_size].to(device))).cpu()
                      for i in range(0, len(images), batch_size)])


def delta_face(reconstructions: torch.Tensor, labels: torch.Tensor, private_images: torch.Tensor,
               private_labels: torch.Tensor, weights: str | Path | None = None,
               device: torch.device | str = "cpu") -> float | None:
    """delta in FaceNet space: mean_i min_{j: y_j = y_i} ||F(x_i) - F(p_j)||^2; None without
    weights (the metric is then missing, never estimated some other way)."""
    distances = delta_face_distances(reconstructions, labels, private_images, private_labels,
                                     weights, device)
    return None if distances is None else distances.mean().item()


def delta_face_distances(reconstructions: torch.Tensor, labels: torch.Tensor,
                         private_images: torch.Tensor, private_labels: torch.Tensor,
                         weights: str | Path | None = None,
                         device: torch.device | str = "cpu") -> torch.Tensor | None:
    """min_{j: y_j = y_i} ||F(x_i) - F(p_j)||^2 per reconstruction (N,); None without weights."""
    path = find_facenet_weights(weights)
    if path is None:
        log.info("delta_face: FaceNet weights not found (%s); metric missing",
                 Path(torch.hub.get_dir()) / "checkpoints" / FACENET_WEIGHTS)
        return None
    model = load_facenet(path, device)
    return nearest_class_distances(facenet_features(model, reconstructions), labels,
                                   facenet_features(model, private_images), private_labels)
