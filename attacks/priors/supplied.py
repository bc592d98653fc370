"""Generators the user supplies (the faces suite's ``prior`` section), built for a target.

Three kinds, all returned as :class:`attacks.priors.base.GeneratorPrior` objects:

- ``stylegan2_ada``: NVlabs' network pickle (``checkpoint``) with their code
  (``stylegan_repo``), searched in w space as PPA does (:mod:`attacks.priors.stylegan`);
- ``module``: ``generator: path/to/file.py:make_generator`` (or ``package.module:fn``)
  called with ``params``; a module with StyleGAN's interface is searched in w space, any other
  ``nn.Module`` latent -> image in its input space (``latent_dim``, ``value_range``);
- ``tiny_stylegan``: a small random-initialised StyleGAN-like generator
  (:class:`attacks.priors.tiny_stylegan.TinyStyleGAN`, ``params``) for smoke runs on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lsmia_bench.attacks.priors.base import GeneratorPrior
from lsmia_bench.attacks.priors.stylegan import (
    ModuleGeneratorPrior,
    StyleGANPrior,
    check_stylegan_files,
    generator_from_reference,
    stylegan_prior_from_checkpoint,
    stylegan_problems,
)
from lsmia_bench.kernel.errors import UserError

STYLEGAN_OPTIONS = ("truncation_psi", "truncation_cutoff", "single_w", "center_crop")


def _stylegan_options(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: spec[key] for key in STYLEGAN_OPTIONS} | {
        "value_range": tuple(spec["value_range"])}


def check_supplied_prior(spec: dict[str, Any]) -> None:
    """Fail early (UserError naming the field) when the generator cannot be found or built;
    reads no network pickle."""
    if spec["kind"] == "stylegan2_ada":
        check_stylegan_files(spec.get("checkpoint"), spec.get("stylegan_repo"), field="prior")
    elif spec["kind"] == "module":
        if not spec.get("generator"):
            raise UserError("prior.generator", spec.get("generator"), "Give "
                            "path/to/file.py:make_generator returning an nn.Module "
                            "latents -> images.", problem="prior.kind is module, no generator")
        build_supplied_prior(spec, 8, 3)


def checkpoint_fingerprint(spec: dict[str, Any]) -> dict[str, Any]:
    """Size and modification time of the checkpoint, so a replaced file is not taken from the
    cache (job specs hold paths, not contents)."""
    path = spec.get("checkpoint")
    if not path or not Path(path).expanduser().is_file():
        return {}
    stat = Path(path).expanduser().stat()
    return {"checkpoint_size": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns}


def build_supplied_prior(spec: dict[str, Any], image_size: int, channels: int,
                         device: torch.device | str = "cpu") -> GeneratorPrior:
    """The prior of a ``prior`` section for a target with ``image_size`` px and ``channels``."""
    size = (image_size, image_size)
    kind = spec["kind"]
    if kind == "stylegan2_ada":
        return stylegan_prior_from_checkpoint(spec.get("checkpoint"), spec.get("stylegan_repo"),
                                              size, channels, device, field="prior",
                                              **_stylegan_options(spec))
    if kind == "tiny_stylegan":
        from lsmia_bench.attacks.priors.tiny_stylegan import TinyStyleGAN

        try:
            generator = TinyStyleGAN(**spec.get("params", {}))
        except (TypeError, ValueError) as exc:
            raise UserError("prior.params", spec.get("params"), "Check the arguments of "
                            "lsmia_bench.attacks.priors.tiny_stylegan.TinyStyleGAN.",
                            problem=str(exc)) from None
    else:
        generator = generator_from_reference(spec["generator"], spec.get("params"))
    generator = generator.eval().requires_grad_(False).to(device)
    try:
        if not stylegan_problems(generator):
            return StyleGANPrior(generator, size, channels, **_stylegan_options(spec)).eval()
        return ModuleGeneratorPrior(generator, spec["latent_dim"], tuple(spec["value_range"]),
                                    size, channels, spec["center_crop"]).eval()
    except (TypeError, ValueError) as exc:
        raise UserError("prior", kind, "Check the prior's options against the generator.",
                        problem=str(exc)) from None
