"""Defenses against model inversion: a registry by name over one file per defense.

Outside defenses plug in through the entry-point group ``lsmia_bench.defenses`` or a
``path/to/file.py:ClassName`` reference; both are looked up exactly like the built-ins.
The interface is documented in :mod:`defenses.base`.
"""

from benchmark.registry import Registry
from defenses.base import Classifier, Defense, LossInputs

DEFENSES: Registry[type[Defense]] = Registry(
    "defense",
    base=Defense,
    builtins={
        "none": "defenses.none:NoDefense",
        "label_smoothing": "defenses.label_smoothing:LabelSmoothing",
        "mid": "defenses.mid:MID",
        "bido": "defenses.bido:BiDO",
    },
    entry_point_group="lsmia_bench.defenses",
)

__all__ = ["DEFENSES", "Classifier", "Defense", "LossInputs"]
