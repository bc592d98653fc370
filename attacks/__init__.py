"""Model inversion attacks: a registry by name over one file per attack.

``Attack`` and ``AttackOutput`` load on first use, so importing the registry (``lsmia-bench
list``) starts no PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsmia_bench.kernel.registry import Registry

if TYPE_CHECKING:
    from lsmia_bench.attacks.base import Attack, AttackOutput

ATTACKS: Registry[type[Attack]] = Registry(
    "attack",
    base="lsmia_bench.attacks.base:Attack",
    builtins={
        "toy_sgd": "lsmia_bench.attacks.toy_sgd:ToySGD",
        "ppa": "lsmia_bench.attacks.ppa:PPA",
        "gmi": "lsmia_bench.attacks.gmi:GMI",
        "kedmi": "lsmia_bench.attacks.kedmi:KEDMI",
        "mi_face": "lsmia_bench.attacks.mi_face:MIFace",
        "brep_mi": "lsmia_bench.attacks.brep_mi:BREPMI",
        "rlb_mi": "lsmia_bench.attacks.rlb_mi:RLBMI",
    },
    entry_point_group="lsmia_bench.attacks",
)

__all__ = ["ATTACKS", "Attack", "AttackOutput"]


def __getattr__(name: str) -> object:
    if name in ("Attack", "AttackOutput"):
        from lsmia_bench.attacks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
