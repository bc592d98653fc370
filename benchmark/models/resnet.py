"""A ResNet adapted to small inputs (the CIFAR variant of He et al.)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the (projected) input, -> ReLU.

    torchvision's block is the same; importing torchvision costs seconds in every trial.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class SmallResNet(nn.Module):
    """ResNet with BasicBlocks for small images: 3x3 stem without max-pool, one stage per
    entry of ``blocks`` (width doubling and stride 2 from the second stage on), global average
    pooling (the penultimate features), Linear head.

    "Deep Residual Learning for Image Recognition", He et al., CVPR 2016
    (https://arxiv.org/abs/1512.03385), §4.2 (the CIFAR-10 networks). The paper's own
    experiments use ResNet-152 at 224 px; this is its small-input counterpart for CPU suites.

    Arguments:
        in_channels (int): image channels. (Default: 1)
        image_size (int): height = width of the input (any size >= 2**(len(blocks)-1)).
            (Default: 32)
        num_classes (int): number of classes. (Default: 10)
        width (int): channels of the first stage. (Default: 16, as in He et al. §4.2)
        blocks (list of int): BasicBlocks per stage. (Default: [1, 1, 1]; He et al.'s
            ResNet-20 is [3, 3, 3])
    """

    def __init__(self, in_channels: int = 1, image_size: int = 32, num_classes: int = 10,
                 width: int = 16, blocks: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        if not blocks or min(blocks) < 1:
            raise ValueError("blocks must list at least one stage with at least one block")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, previous = [], width
        for index, count in enumerate(blocks):
            planes, stride = width * 2 ** index, 1 if index == 0 else 2
            layers = []
            for block in range(count):
                layers.append(BasicBlock(previous, planes, stride=stride if block == 0 else 1))
                previous = planes
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(previous, num_classes)
        self.feature_dim = previous
        self.hidden_layers = ["stem"] + [f"stages.{i}" for i in range(len(blocks))]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (globally pooled last stage), shape (B, feature_dim)."""
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
