"""A tiny generator with StyleGAN2-ADA's interface, for smoke runs and tests on a CPU.

It has what :class:`attacks.priors.stylegan.StyleGANPrior` uses of NVlabs' ``Generator``:
``mapping(z, c, truncation_psi=, truncation_cutoff=)`` -> w (N, num_ws, w_dim) with
truncation toward a mean w, ``synthesis(ws, **kwargs)`` -> images (N, C, R, R) in about
[-1, 1], and ``z_dim``, ``w_dim``, ``c_dim`` (0), ``num_ws``, ``img_resolution``,
``img_channels``. The synthesis network projects the first w to a 4x4 map (StyleGAN starts
from a learned constant; a random constant would make all random samples look alike), then
one block per doubling (upsample, 3x3 conv, instance norm, per-channel scale and shift from
the block's own w, i.e. AdaIN) and a tanh RGB layer modulated by the last w ("Analyzing and
Improving the Image Quality of StyleGAN", Karras et al., CVPR 2020,
https://arxiv.org/abs/1912.04958, much simplified). Random weights give smooth
random images; nothing here is trained.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TinyMapping(nn.Module):
    """z -> w by an MLP (after normalising z), broadcast to num_ws, truncated toward w_avg."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, layers: int = 2) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = z_dim
        for _ in range(layers):
            blocks += [nn.Linear(previous, w_dim), nn.LeakyReLU(0.2)]
            previous = w_dim
        self.net = nn.Sequential(*blocks)
        self.num_ws = num_ws
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: Any = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, **_: Any) -> torch.Tensor:
        z = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        ws = self.net(z).unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class TinySynthesis(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, channels, resolution, resolution) in [-1, 1]."""

    def __init__(self, w_dim: int, resolution: int, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        stages = math.log2(resolution / 4)
        if resolution < 8 or not stages.is_integer():
            raise ValueError(f"resolution must be 4 * 2^k >= 8, got {resolution}")
        self.start = nn.Linear(w_dim, width * 16)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1)
                                   for _ in range(int(stages)))
        self.styles = nn.ModuleList(nn.Linear(w_dim, 2 * width) for _ in range(int(stages)))
        self.to_rgb_style = nn.Linear(w_dim, width)
        self.to_rgb = nn.Conv2d(width, channels, 1)
        self.num_ws = int(stages) + 1  # w[:, i] styles block i, w[:, -1] the RGB layer
        self.resolution = resolution

    def forward(self, ws: torch.Tensor, **_: Any) -> torch.Tensor:
        x = F.instance_norm(self.start(ws[:, 0]).view(len(ws), -1, 4, 4))
        for i, (conv, style) in enumerate(zip(self.convs, self.styles, strict=True)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            scale, shift = style(ws[:, i]).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
            x = F.leaky_relu(F.instance_norm(conv(x)) * (1 + scale) + shift, 0.2)
        x = x * (1 + self.to_rgb_style(ws[:, -1])).unsqueeze(-1).unsqueeze(-1)
        return torch.tanh(self.to_rgb(x))


class TinyStyleGAN(nn.Module):
    """A random-initialised StyleGAN-like generator (see the module docstring).

    Arguments:
        z_dim (int): input latent size. (Default: 64)
        w_dim (int): intermediate latent size. (Default: 64)
        resolution (int): output size, 4 * 2^k. (Default: 32)
        channels (int): output channels. (Default: 3)
        width (int): feature channels of the synthesis network. (Default: 32)
        seed (int | None): seed of the initial weights and of the mean w. (Default: 0)
    """

    def __init__(self, z_dim: int = 64, w_dim: int = 64, resolution: int = 32,
                 channels: int = 3, width: int = 32, seed: int | None = 0) -> None:
        super().__init__()
        if seed is not None:
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)
        self.synthesis = TinySynthesis(w_dim, resolution, channels, width)
        self.mapping = TinyMapping(z_dim, w_dim, self.synthesis.num_ws)
        self.z_dim, self.w_dim, self.c_dim = z_dim, w_dim, 0
        self.num_ws = self.synthesis.num_ws
        self.img_resolution, self.img_channels = resolution, channels
        with torch.no_grad():
            self.mapping.w_avg.copy_(self.mapping(torch.randn(1000, z_dim))[:, 0].mean(dim=0))
        if seed is not None:
            torch.random.set_rng_state(state)

    def forward(self, z: torch.Tensor, c: Any = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, **synthesis_kwargs: Any) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)
