"""Defenses against model inversion: a registry by name over one file per defense.

Outside defenses plug in through the entry-point group ``defenses`` or a
``path/to/file.py:ClassName`` reference; both are looked up exactly like the built-ins.
The interface is documented in :mod:`defenses.base`.
``Defense``, ``LossInputs`` and ``Classifier`` load on first use, so importing the registry
(``lsmia-bench list``) starts no PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsmia_bench.kernel.registry import Registry

if TYPE_CHECKING:
    from lsmia_bench.defenses.base import Defense

DEFENSES: Registry[type[Defense]] = Registry(
    "defense",
    base="lsmia_bench.defenses.base:Defense",
    builtins={
        "none": "lsmia_bench.defenses.none:NoDefense",
        "label_smoothing": "lsmia_bench.defenses.label_smoothing:LabelSmoothing",
        "mid": "lsmia_bench.defenses.mid:MID",
        "bido": "lsmia_bench.defenses.bido:BiDO",
        "tl_dmi": "lsmia_bench.defenses.tl_dmi:TLDMI",
        "dp_sgd": "lsmia_bench.defenses.dp_sgd:DPSGD",
        "trap_mid": "lsmia_bench.defenses.trap_mid:TrapMID",
    },
    entry_point_group="lsmia_bench.defenses",
)

__all__ = ["DEFENSES", "Classifier", "Defense", "LossInputs"]


def __getattr__(name: str) -> object:
    if name in ("Defense", "LossInputs"):
        from lsmia_bench.defenses import base

        return getattr(base, name)
    if name == "Classifier":
        from lsmia_bench.kernel.classifier import Classifier

        return Classifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
