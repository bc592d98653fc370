"""User-supplied generators as priors: any ``nn.Module`` latent -> image, and StyleGAN2-ADA.

The label smoothing paper attacks with PPA through a StyleGAN2-ADA trained on FFHQ
(``ffhq.pkl`` of github.com/NVlabs/stylegan2-ada-pytorch, 1024 px). PPA optimises the
intermediate latent w: initial latents are z ~ N(0, I) mapped to w with truncation
(psi 0.5, cutoff 8), one w per image (``single_w``) repeated over the synthesis layers,
images center-cropped to 800 px and resized to the target's 224 px (the authors'
``configs/attacking/default_attacking_local.yaml``). Both adapters below are
:class:`attacks.priors.base.GeneratorPrior` objects, so every attack takes them.

What the user provides for StyleGAN2-ADA:

1. the checkpoint: a network pickle written by NVlabs' ``train.py`` or downloaded from them,
   e.g. https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl; its
   ``G_ema`` entry (the moving average of the generator) is used;
2. the code that pickle needs: a clone of https://github.com/NVlabs/stylegan2-ada-pytorch
   (or stylegan3, same pickle format). Its folder must hold ``dnnlib/``, ``torch_utils/`` and
   ``legacy.py``; lsmia-bench puts it first on ``sys.path`` and reads the pickle with
   ``legacy.load_network_pkl``. Unpickling runs code from the pickle: load only checkpoints
   you trust. On a CPU the custom CUDA ops fall back to their slow reference code.
"""

from __future__ import annotations

import importlib
import math
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from lsmia_bench.attacks.priors.base import DiscriminatorKind, GeneratorPrior
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.registry import import_reference, is_path_reference, load_path_reference

STYLEGAN_REPO_URL = "https://github.com/NVlabs/stylegan2-ada-pytorch"
FFHQ_CHECKPOINT_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl"
REPO_ENTRIES = ("dnnlib", "torch_utils", "legacy.py")
SYNTHESIS_KWARGS = {"noise_mode": "const", "force_fp32": True}
"""How PPA calls StyleGAN2-ADA's synthesis network: no random noise, fp32."""


class ModuleGeneratorPrior(GeneratorPrior):
    """Any ``nn.Module`` mapping latents (N, *latent_shape) to images (N, C, H, W), adapted to
    the target: optional clipping to ``value_range``, center crop (in generator pixels), then
    the base class's rescaling to [0, 1], resize and channel conversion.

    Arguments:
        generator (nn.Module): latents -> images.
        latent_shape (int | sequence): shape of one latent; latents are sampled N(0, I).
        value_range (tuple): range of the generator's output. (Default: (-1, 1), tanh and
            StyleGAN outputs; (0, 1) for sigmoid outputs)
        image_size (tuple | None): the target's input (H, W). (Default: None, the generator's)
        channels (int | None): the target's input channels. (Default: None, the generator's)
        center_crop (int | None): square crop of the raw image before resizing. (Default: None;
            PPA uses 800 for 1024 px FFHQ images)
        clip (bool): clamp raw images to ``value_range`` first. (Default: False, PPA)
        discriminator, discriminator_kind: as in GeneratorPrior. (Default: None)
    """

    def __init__(self, generator: nn.Module, latent_shape: int | Sequence[int],
                 value_range: tuple[float, float] = (-1.0, 1.0),
                 image_size: Sequence[int] | None = None, channels: int | None = None,
                 center_crop: int | None = None, clip: bool = False,
                 discriminator: nn.Module | None = None,
                 discriminator_kind: DiscriminatorKind | None = None) -> None:
        super().__init__(generator, latent_shape, value_range, image_size, channels,
                         discriminator, discriminator_kind)
        if center_crop is not None and center_crop < 1:
            raise ValueError(f"center_crop must be a positive size, got {center_crop}")
        self.center_crop = center_crop
        self.clip = clip

    @property
    def latent_dim(self) -> int:
        """Number of values in one latent."""
        return math.prod(self.latent_shape)

    def options(self) -> dict[str, Any]:
        """Constructor arguments other than the modules and the target's size/channels."""
        return {"latent_shape": self.latent_shape, "value_range": self.value_range,
                "center_crop": self.center_crop, "clip": self.clip}

    def for_target(self, image_size: Sequence[int] | None,
                   channels: int | None) -> ModuleGeneratorPrior:
        return type(self)(self.generator, image_size=image_size, channels=channels,
                          discriminator=self.discriminator,
                          discriminator_kind=self.discriminator_kind, **self.options())

    def to_target(self, raw: torch.Tensor) -> torch.Tensor:
        if self.clip:
            raw = raw.clamp(*self.value_range)
        if self.center_crop is not None:
            raw = TF.center_crop(raw, [self.center_crop, self.center_crop])
        return super().to_target(raw)


class StyleGANPrior(ModuleGeneratorPrior):
    """A StyleGAN2-ADA generator (``G_ema``) searched in w space, the way PPA does.

    ``generator`` needs ``mapping(z, c, truncation_psi=, truncation_cutoff=)`` -> w
    (N, num_ws, w_dim), ``synthesis(w, **synthesis_kwargs)`` -> images (N, C, H, W) and the
    attributes ``z_dim``, ``w_dim``, ``num_ws`` (and ``c_dim`` = 0: unconditional), as NVlabs'
    ``Generator`` has. Latents are w vectors: (N, 1, w_dim) with ``single_w``, repeated over
    the ``num_ws`` synthesis inputs, else (N, num_ws, w_dim).

    Arguments:
        generator (nn.Module): the StyleGAN generator.
        image_size, channels, center_crop, clip: as in :class:`ModuleGeneratorPrior`.
        truncation_psi (float): truncation of sampled w toward the mean w. (Default: 0.5, PPA)
        truncation_cutoff (int | None): truncate only the first this many w. (Default: 8, PPA)
        single_w (bool): optimise one w per image. (Default: True, PPA)
        synthesis_kwargs (dict | None): keyword arguments of ``synthesis``.
            (Default: {"noise_mode": "const", "force_fp32": True}, PPA)
        value_range (tuple): range of the synthesis output. (Default: (-1, 1))
    """

    def __init__(self, generator: nn.Module, image_size: Sequence[int] | None = None,
                 channels: int | None = None, truncation_psi: float = 0.5,
                 truncation_cutoff: int | None = 8, single_w: bool = True,
                 center_crop: int | None = None, clip: bool = False,
                 synthesis_kwargs: dict[str, Any] | None = None,
                 value_range: tuple[float, float] = (-1.0, 1.0),
                 discriminator: nn.Module | None = None,
                 discriminator_kind: DiscriminatorKind | None = None) -> None:
        problems = stylegan_problems(generator)
        if problems:
            raise ValueError(f"{type(generator).__name__} is not a StyleGAN generator: "
                             + "; ".join(problems))
        num_ws, w_dim = int(generator.num_ws), int(generator.w_dim)
        shape = (1 if single_w else num_ws, w_dim)
        super().__init__(generator, shape, value_range, image_size, channels, center_crop,
                         clip, discriminator, discriminator_kind)
        self.num_ws = num_ws
        self.z_dim = int(generator.z_dim)
        self.truncation_psi = truncation_psi
        self.truncation_cutoff = truncation_cutoff
        self.single_w = single_w
        self.synthesis_kwargs = dict(SYNTHESIS_KWARGS if synthesis_kwargs is None
                                     else synthesis_kwargs)

    def options(self) -> dict[str, Any]:
        return {"truncation_psi": self.truncation_psi,
                "truncation_cutoff": self.truncation_cutoff, "single_w": self.single_w,
                "center_crop": self.center_crop, "clip": self.clip,
                "synthesis_kwargs": self.synthesis_kwargs, "value_range": self.value_range}

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       batch_size: int = 1024) -> torch.Tensor:
        """n w vectors: z ~ N(0, I) (drawn on the CPU with ``generator``) through the mapping
        network with truncation; shape (n, *latent_shape) on the prior's device."""
        z = torch.randn((n, self.z_dim), generator=generator).to(self.device)
        ws = [self.generator.mapping(z[i:i + batch_size], None,
                                     truncation_psi=self.truncation_psi,
                                     truncation_cutoff=self.truncation_cutoff)
              for i in range(0, n, batch_size)]
        w = torch.cat(ws) if ws else z.new_empty((0, self.num_ws, self.latent_shape[-1]))
        return w[:, :1].contiguous() if self.single_w else w

    def generate(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw synthesis output for w (N, 1 or num_ws, w_dim)."""
        if latents.ndim != 3 or latents.shape[1] not in (1, self.num_ws):
            raise ValueError(f"StyleGAN latents must be (N, 1 or {self.num_ws}, w_dim), "
                             f"got {tuple(latents.shape)}")
        if latents.shape[1] == 1 and self.num_ws > 1:
            latents = latents.expand(-1, self.num_ws, -1)
        return self.generator.synthesis(latents, **self.synthesis_kwargs)


def stylegan_problems(generator: nn.Module) -> list[str]:
    """What ``generator`` lacks of the StyleGAN interface (empty when it has it all)."""
    problems = [f"no {name}()" for name in ("mapping", "synthesis")
                if not callable(getattr(generator, name, None))]
    problems += [f"no integer {name}" for name in ("z_dim", "w_dim", "num_ws")
                 if not isinstance(getattr(generator, name, None), int)]
    if getattr(generator, "c_dim", 0):
        problems.append(f"conditional generator (c_dim={generator.c_dim}); lsmia-bench needs "
                        "an unconditional one")
    return problems


def check_stylegan_files(checkpoint: str | Path | None, repo: str | Path | None,
                         field: str = "prior") -> tuple[Path, Path | None]:
    """Check, without unpickling, that the checkpoint file and the NVlabs code are there;
    UserError naming every missing path. Returns (checkpoint, repo or None)."""
    if not checkpoint:
        raise UserError(f"{field}.checkpoint", checkpoint, "Give the path of a StyleGAN2-ADA "
                        f"network pickle, e.g. ffhq.pkl from {FFHQ_CHECKPOINT_URL}.",
                        problem="no generator checkpoint given")
    path = Path(checkpoint).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{field}.checkpoint", str(path), "Give the path of a StyleGAN2-ADA "
                        f"network pickle, e.g. ffhq.pkl from {FFHQ_CHECKPOINT_URL}; "
                        "lsmia-bench never downloads it.", problem="checkpoint file not found")
    if not repo:
        if _importable("dnnlib") and _importable("torch_utils"):
            return path, None
        raise UserError(f"{field}.stylegan_repo", repo, f"git clone {STYLEGAN_REPO_URL} and "
                        "give its folder (it holds dnnlib/, torch_utils/ and legacy.py), which "
                        "the pickle's code needs.",
                        problem="NVlabs' dnnlib and torch_utils are not importable")
    code = Path(repo).expanduser().resolve()
    missing = [str(code / entry) for entry in REPO_ENTRIES if not (code / entry).exists()]
    if missing:
        raise UserError(f"{field}.stylegan_repo", str(code), f"Give the folder of a clone of "
                        f"{STYLEGAN_REPO_URL} (it holds dnnlib/, torch_utils/ and legacy.py).",
                        problem=f"missing {', '.join(missing)}")
    return path, code


def load_stylegan2_ada(checkpoint: str | Path | None, repo: str | Path | None = None,
                       device: torch.device | str = "cpu", field: str = "prior") -> nn.Module:
    """``G_ema`` of a StyleGAN2-ADA network pickle, in eval mode without gradients.

    ``repo``: the NVlabs stylegan2-ada-pytorch (or stylegan3) folder, put first on
    ``sys.path``; None uses ``dnnlib``/``torch_utils`` already importable. Failures name the
    config field (``<field>.checkpoint`` / ``<field>.stylegan_repo``) in a UserError.
    """
    path, code = check_stylegan_files(checkpoint, repo, field)
    if code is not None and str(code) not in sys.path:
        sys.path.insert(0, str(code))
    try:
        with open(path, "rb") as handle:
            data = _read_network_pickle(handle)
    except Exception as exc:  # unpickling runs arbitrary code: any error may come out
        raise UserError(f"{field}.checkpoint", str(path), "Give a StyleGAN2-ADA network "
                        f"pickle and the matching NVlabs code ({STYLEGAN_REPO_URL}).",
                        problem=f"loading failed ({type(exc).__name__}: {exc})") from None
    generator = data.get("G_ema") if isinstance(data, dict) else None
    if not isinstance(generator, nn.Module):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{field}.checkpoint", str(path), "Give a network pickle with a G_ema "
                        "generator (as NVlabs' train.py writes).",
                        problem=f"no G_ema generator in it (found {keys})")
    return generator.eval().requires_grad_(False).to(device)


def stylegan_prior_from_checkpoint(checkpoint: str | Path | None, repo: str | Path | None,
                                   image_size: Sequence[int] | None, channels: int | None,
                                   device: torch.device | str = "cpu", field: str = "prior",
                                   **options: Any) -> StyleGANPrior:
    """:class:`StyleGANPrior` (eval mode) around :func:`load_stylegan2_ada`'s ``G_ema``;
    ``options``: truncation_psi, truncation_cutoff, single_w, center_crop, clip, ..."""
    generator = load_stylegan2_ada(checkpoint, repo, device, field)
    try:
        prior = StyleGANPrior(generator, image_size=image_size, channels=channels, **options)
    except (TypeError, ValueError) as exc:
        raise UserError(field, options, "Check the StyleGAN prior's options (see "
                        "lsmia_bench.attacks.priors.stylegan.StyleGANPrior).",
                        problem=str(exc)) from None
    return prior.eval()


def generator_from_reference(reference: str, params: dict[str, Any] | None = None,
                             field: str = "prior.generator") -> nn.Module:
    """Call a user's factory ``path/to/file.py:make_generator`` or
    ``package.module:make_generator`` with ``params``; it must return an ``nn.Module``."""
    if is_path_reference(reference):
        factory = load_path_reference(reference, field)
    elif ":" in reference:
        factory = import_reference(reference, field, plugin=reference)
    else:
        raise UserError(field, reference, "Write path/to/file.py:make_generator or "
                        "package.module:make_generator.", problem="not a factory reference")
    try:
        module = factory(**(params or {}))
    except Exception as exc:
        raise UserError(field, reference, "Fix the generator factory or its parameters.",
                        problem=f"calling it failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(module, nn.Module):
        raise UserError(field, reference, "Return a torch.nn.Module (latents -> images).",
                        problem=f"the factory returned {type(module).__name__}")
    return module


def _read_network_pickle(handle: Any) -> Any:
    """NVlabs' ``legacy.load_network_pkl`` (also converts TensorFlow pickles) when the code
    has it, else a plain unpickling."""
    try:
        legacy = importlib.import_module("legacy")
    except ImportError:
        legacy = None
    if legacy is not None and hasattr(legacy, "load_network_pkl"):
        return legacy.load_network_pkl(handle)
    return pickle.load(handle)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
