"""The attack interface: target + classes (+ generator prior) -> reconstructions + trace.

Contract for every attack:

- ``target`` is a classifier in eval mode that maps images in [0, 1] of shape (N, C, H, W)
  (its input space; any normalisation lives inside the model) to logits (N, num_classes).
- ``prior`` is an :class:`attacks.priors.base.GeneratorPrior` (any ``nn.Module`` mapping
  latents to images, adapted to the target's input size and channels) for attacks with
  ``needs_prior``; ``None`` otherwise.
- The result holds the final reconstructions in the target's input space (values in [0, 1]),
  the class of each, and the optimisation trace of one run.
- A target may carry ``input_shape`` (C, H, W); attacks that optimise inputs directly may
  read it.

Built-in attacks are registered in :data:`attacks.ATTACKS`; outside attacks plug in through
the entry-point group ``lsmia_bench.attacks`` or a ``path/to/file.py:ClassName`` reference, and
are run once on a tiny probe before any trial (:func:`benchmark.plugin_check.check_attack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from lsmia_bench.kernel.attack_output import AttackOutput
from lsmia_bench.kernel.component import Component, ThreatModel


class Attack(Component):
    """Base of every attack. Hyper-parameters are fields with the authors' defaults."""

    #: What the attack sees of the target: "white-box" (gradients), "black-box" (output
    #: scores) or "label-only" (the predicted label). Undeclared means white-box, the most
    #: access, so that no attack claims a weaker threat model than it uses. Built-ins state it
    #: as a literal in their class body (read from the source by ``lsmia-bench list``).
    threat_model: ClassVar[ThreatModel] = "white-box"
    #: Whether the attack needs a generator prior trained on public data.
    needs_prior: ClassVar[bool] = False
    #: Whether its loss needs the prior's discriminator (a generator alone will not do).
    needs_discriminator: ClassVar[bool] = False
    #: Which prior the pipeline trains for it: a name in ``attacks.priors.PRIORS``.
    prior_kind: ClassVar[str | None] = None
    #: How many samples of the first run have their gradients recorded in ``trace["gradients"]``.
    trace_samples: ClassVar[int] = 4
    #: Hyper-parameters that make one run tiny (iterations, candidates, samples per class),
    #: merged over each configured setting by the plug-in check, which runs every attack once
    #: on a tiny probe target before any trial. Without them the setting runs in full there.
    probe_params: ClassVar[dict[str, Any]] = {}

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        raise NotImplementedError

    def require_prior(self, prior: nn.Module | None) -> Any:
        """The prior as a GeneratorPrior; a bare ``nn.Module`` latent -> image is refused
        with a message saying how to wrap it."""
        from lsmia_bench.attacks.priors.base import GeneratorPrior

        if isinstance(prior, GeneratorPrior):
            return prior
        raise TypeError(
            f"attack {self.name!r} needs a generator prior: wrap your generator as "
            "lsmia_bench.attacks.priors.base.GeneratorPrior(generator, latent_shape=..., "
            f"image_size=..., channels=...), got {type(prior).__name__}"
        )

    def prepare(self, target: nn.Module, prior: nn.Module | None) -> tuple[Any, torch.device]:
        """The prior (checked), with target and prior in eval mode on the target's device."""
        prior = self.require_prior(prior)
        target.eval()
        prior.eval()
        device = model_device(target)
        prior.to(device)
        return prior, device


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
