"""Model inversion attacks: a registry by name over one file per attack."""

from lsmia_bench.attacks.base import Attack, AttackOutput

from lsmia_bench.kernel.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry(
    "attack",
    base=Attack,
    builtins={
        "toy_sgd": "lsmia_bench.attacks.toy_sgd:ToySGD",
        "ppa": "lsmia_bench.attacks.ppa:PPA",
        "gmi": "lsmia_bench.attacks.gmi:GMI",
        "kedmi": "lsmia_bench.attacks.kedmi:KEDMI",
        "mi_face": "lsmia_bench.attacks.mi_face:MIFace",
    },
    entry_point_group="lsmia_bench.attacks",
)

__all__ = ["ATTACKS", "Attack", "AttackOutput"]
