"""What black-box and label-only attacks see of the target: an oracle, never the model.

An attack with a restricted threat model wraps the target in one of these as the first thing
it does and keeps no other reference to it, so its algorithm cannot use logits or gradients by
mistake. Each oracle counts the images it was asked about (``queries``).
"""

from __future__ import annotations

import torch
from torch import nn


class _Oracle:
    """Queries the target in chunks without gradients, counts them, and answers with
    :meth:`_answer` of the logits (what the subclass's threat model reveals)."""

    def __init__(self, target: nn.Module, batch_size: int = 1024) -> None:
        self._target = target.eval()
        self._batch_size = batch_size
        self.queries = 0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.queries += len(images)
        return torch.cat([self._answer(self._target(chunk))
                          for chunk in images.split(self._batch_size)])

    @staticmethod
    def _answer(logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LabelOracle(_Oracle):
    """The target's predicted label (argmax class) per image, and nothing else: labels (N,)
    of images (N, C, H, W), N queries counted.

    Arguments:
        target (nn.Module): classifier, images in [0, 1] -> logits (N, num_classes).
        batch_size (int): most images per forward pass (memory only). (Default: 1024)

    Usage: ``labels = LabelOracle(target)(images)``, then ``oracle.queries``.
    """

    @staticmethod
    def _answer(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)


class ScoreOracle(_Oracle):
    """The target's class probabilities (softmax of its logits) per image, without gradients:
    (N, num_classes) of images (N, C, H, W), N queries counted.

    Arguments:
        target (nn.Module): classifier, images in [0, 1] -> logits (N, num_classes).
        batch_size (int): most images per forward pass (memory only). (Default: 1024)
    """

    @staticmethod
    def _answer(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)
