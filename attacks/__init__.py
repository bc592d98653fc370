"""Model inversion attacks: a registry by name over one file per attack."""

from attacks.base import Attack, AttackOutput
from benchmark.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry(
    "attack",
    base=Attack,
    builtins={
        "toy_sgd": "attacks.toy_sgd:ToySGD",
        "ppa": "attacks.ppa:PPA",
        "gmi": "attacks.gmi:GMI",
        "kedmi": "attacks.kedmi:KEDMI",
        "mi_face": "attacks.mi_face:MIFace",
    },
    entry_point_group="lsmia_bench.attacks",
)

__all__ = ["ATTACKS", "Attack", "AttackOutput"]
