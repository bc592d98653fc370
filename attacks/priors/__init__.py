"""Generator priors for model inversion attacks, trained only on a suite's public data.

:data:`PRIORS` is the registry of prior kinds, by the name an attack's ``prior_kind`` gives:
each :class:`PriorKind` says which function trains it and whether it depends on the target
(then it is trained per target). Outside kinds plug in like attacks and defenses: an entry
point in the group ``lsmia_bench.priors`` (or a ``path/to/file.py:NAME`` reference as the
attack's ``prior_kind``) naming a :class:`PriorKind` object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsmia_bench.attacks.priors.base import (
    GeneratorPrior,
    TrainedPrior,
    adapt_images,
    load_trained_prior,
)
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.registry import (
    Registry,
    import_reference,
    is_path_reference,
    load_path_reference,
)


@dataclass(frozen=True)
class PriorKind:
    """How the pipeline trains one kind of generator prior.

    The training function is called as ``train(public_images, [target, image_shape,]
    **params, seed=..., device=..., progress=...)`` (the target and the image shape only when
    ``per_target``) and returns a :class:`TrainedPrior`; ``params`` come from the suite's
    ``priors.<kind>`` section, checked against the function's signature before any trial.
    """

    train: str
    """``module:function`` (or ``path/to/file.py:function``) that trains it; a string, so that
    a trial imports it where it runs."""
    per_target: bool
    """True when training needs the target (its soft labels), so one prior per target."""

    def trainer(self, field: str = "prior") -> Callable[..., TrainedPrior]:
        """The training function (imported now; a failure is a UserError naming it)."""
        if is_path_reference(self.train):
            function: Any = load_path_reference(self.train, field)
        else:
            function = import_reference(self.train, field, plugin=self.train)
        if not callable(function):
            raise UserError(field, self.train, "Name a function that trains the prior.",
                            problem="not callable")
        return function


class PriorRegistry(Registry[PriorKind]):
    """A registry whose entries are :class:`PriorKind` objects (not classes)."""

    def _check(self, name: str, obj: object, field: str | None = None) -> None:
        if not isinstance(obj, PriorKind):
            raise UserError(field or self.kind, name,
                            "A prior kind must be a lsmia_bench.attacks.priors.PriorKind.",
                            problem=f"{obj!r} is not a prior kind")


WGAN_GP = PriorKind("lsmia_bench.attacks.priors.wgan_gp:train_wgan_gp", per_target=False)
KEDMI = PriorKind("lsmia_bench.attacks.priors.kedmi:train_kedmi_gan", per_target=True)

PRIORS: PriorRegistry = PriorRegistry(
    "prior kind",
    builtins={"wgan_gp": "lsmia_bench.attacks.priors:WGAN_GP",
              "kedmi": "lsmia_bench.attacks.priors:KEDMI"},
    entry_point_group="lsmia_bench.priors",
)

__all__ = ["PRIORS", "GeneratorPrior", "PriorKind", "PriorRegistry", "TrainedPrior",
           "adapt_images", "load_trained_prior"]
