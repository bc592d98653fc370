"""Contract tests over EVERY registered attack, defense and prior kind (built-ins and installed
plug-ins alike), read from the registries rather than from a hand list, so a new entry is
covered the moment it is registered."""

from __future__ import annotations

import inspect

import pytest

from lsmia_bench.attacks import ATTACKS, Attack
from lsmia_bench.attacks.priors import PRIORS, PriorKind
from lsmia_bench.benchmark.plugin_check import check_attack, check_defense
from lsmia_bench.defenses import DEFENSES, Defense

#: Defenses that change nothing have no paper to cite.
WITHOUT_PAPER = {"none"}


def _undocumented(cls: type) -> list[str]:
    """Hyper-parameters with neither a field description nor a mention in the docstring."""
    doc = cls.__doc__ or ""
    return [name for name, field in cls.model_fields.items()
            if not field.description and name not in doc]


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_metadata_defaults_and_documentation(name):
    cls = ATTACKS.get(name)
    assert issubclass(cls, Attack) and cls.name == name
    assert cls.summary and cls.paper and cls.paper_url.startswith("https://")
    cls()  # the defaults construct
    assert not _undocumented(cls), f"{name}: document {_undocumented(cls)}"
    if cls.needs_prior:
        assert cls.prior_kind in PRIORS
    assert set(cls.probe_params) <= set(cls.model_fields)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_passes_the_plugin_check_with_its_defaults(name):
    cls = ATTACKS.get(name)
    # An attack that starts from fixed input coordinates (toy_sgd's 2-D start) is probed
    # with inputs of that size, as its suite does.
    start = cls.model_fields.get("start")
    shape = (len(start.get_default(call_default_factory=True)),) if start else (1, 4, 4)
    check_attack(cls(), "attacks[0].name", name, input_shape=shape)


@pytest.mark.parametrize("name", DEFENSES.names())
def test_defense_metadata_defaults_and_documentation(name):
    cls = DEFENSES.get(name)
    assert issubclass(cls, Defense) and cls.name == name and cls.summary
    if name not in WITHOUT_PAPER:
        assert cls.paper and cls.paper_url.startswith("https://")
    defense = cls()  # the defaults construct
    assert not _undocumented(cls), f"{name}: document {_undocumented(cls)}"
    if cls.strength is not None:
        assert cls.strength in cls.hyperparameters()
    assert set(cls.schedule_series.values()) <= set(cls.model_fields)
    check_defense(defense, "defenses[0].name", name)


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_kind_names_a_training_function(name):
    kind = PRIORS.get(name)
    assert isinstance(kind, PriorKind)
    parameters = inspect.signature(kind.trainer()).parameters
    assert {"seed", "device", "progress"} <= set(parameters)
