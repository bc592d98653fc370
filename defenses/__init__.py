"""Defenses against model inversion: a registry by name over one file per defense.

Outside defenses plug in through the entry-point group ``defenses`` or a
``path/to/file.py:ClassName`` reference; both are looked up exactly like the built-ins.
The interface is documented in :mod:`defenses.base`.
"""

from lsmia_bench.defenses.base import Defense, LossInputs

from lsmia_bench.kernel.classifier import Classifier
from lsmia_bench.kernel.registry import Registry

DEFENSES: Registry[type[Defense]] = Registry(
    "defense",
    base=Defense,
    builtins={
        "none": "lsmia_bench.defenses.none:NoDefense",
        "label_smoothing": "lsmia_bench.defenses.label_smoothing:LabelSmoothing",
        "mid": "lsmia_bench.defenses.mid:MID",
        "bido": "lsmia_bench.defenses.bido:BiDO",
    },
    entry_point_group="lsmia_bench.defenses",
)

__all__ = ["DEFENSES", "Classifier", "Defense", "LossInputs"]
