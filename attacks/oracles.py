"""What black-box and label-only attacks see of the target: an oracle, never the model.

An attack with a restricted threat model wraps the target in one of these as the first thing
it does and keeps no other reference to it, so its algorithm cannot use logits or gradients by
mistake. Each oracle counts the images it was asked about (``queries``).
"""

from __future__ import annotations

import torch
from torch import nn


class LabelOracle:
    """The target's predicted label (argmax class) per image, and nothing else.

    Arguments:
        target (nn.Module): classifier, images in [0, 1] -> logits (N, num_classes).
        batch_size (int): most images per forward pass (memory only). (Default: 1024)

    Usage: ``labels = LabelOracle(target)(images)``, then ``oracle.queries``.
    """

    def __init__(self, target: nn.Module, batch_size: int = 1024) -> None:
        self._target = target.eval()
        self._batch_size = batch_size
        self.queries = 0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted labels (N,) of images (N, C, H, W); counts N queries."""
        self.queries += len(images)
        return torch.cat([self._target(chunk).argmax(dim=1)
                          for chunk in images.split(self._batch_size)])


class ScoreOracle:
    """The target's class probabilities (softmax of its logits) per image, without gradients.

    Arguments:
        target (nn.Module): classifier, images in [0, 1] -> logits (N, num_classes).
        batch_size (int): most images per forward pass (memory only). (Default: 1024)
    """

    def __init__(self, target: nn.Module, batch_size: int = 1024) -> None:
        self._target = target.eval()
        self._batch_size = batch_size
        self.queries = 0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, num_classes) of images (N, C, H, W); counts N queries."""
        self.queries += len(images)
        return torch.cat([torch.softmax(self._target(chunk), dim=1)
                          for chunk in images.split(self._batch_size)])
