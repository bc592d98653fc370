"""Generator priors for model inversion attacks, trained only on a suite's public data.

``PRIOR_KINDS`` tells the pipeline, per kind named by an attack's ``prior_kind``, which
function trains it and whether it depends on the target (then it is trained per target).
"""

from __future__ import annotations

from dataclasses import dataclass

from lsmia_bench.attacks.priors.base import (
    GeneratorPrior,
    TrainedPrior,
    adapt_images,
    load_trained_prior,
)


@dataclass(frozen=True)
class PriorKind:
    train: str
    """``module:function`` that trains it (public images, keyword hyper-parameters)."""
    per_target: bool
    """True when training needs the target (its soft labels), so one prior per target."""


PRIOR_KINDS: dict[str, PriorKind] = {
    "wgan_gp": PriorKind("lsmia_bench.attacks.priors.wgan_gp:train_wgan_gp", per_target=False),
    "kedmi": PriorKind("lsmia_bench.attacks.priors.kedmi:train_kedmi_gan", per_target=True),
}

__all__ = ["PRIOR_KINDS", "GeneratorPrior", "PriorKind", "TrainedPrior", "adapt_images",
           "load_trained_prior"]
