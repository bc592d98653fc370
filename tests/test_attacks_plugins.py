"""Outside attacks are checked like outside defenses: every configured setting runs once on a
tiny probe before any trial, and a broken one stops the run with exit status 2 naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.benchmark.config import ComponentSpec, build_components
from lsmia_bench.kernel.errors import UserError

HEADER = """
from typing import Any, ClassVar
import torch
from lsmia_bench.attacks import Attack, AttackOutput
"""

#: A plug-in whose run() returns ``{result}``; each case breaks one part of the contract.
BODY = """
class Plugin(Attack):
    name: ClassVar[str] = "plugin"
    probe_params: ClassVar[dict[str, Any]] = {{}}

    def run(self, target, classes, prior=None):
        shape = target.input_shape
        n = len(classes)
        images = torch.rand(n, *shape)
        labels = torch.tensor(list(classes))
        return {result}
"""

BROKEN = {
    "raises": ("1 / 0", ["run() raised ZeroDivisionError"]),
    "not_an_output": ("images", ["run() returned Tensor", "AttackOutput"]),
    "wrong_shape": ("AttackOutput(images[:, :, :2], labels)", ["reconstructions are (2, 1, 2, 4)"]),
    "out_of_range": ("AttackOutput(images * 3, labels)", ["outside the images' [0, 1]"]),
    "nan": ("AttackOutput(images * float('nan'), labels)", ["NaN or infinite"]),
    "float_labels": ("AttackOutput(images, labels.float())", ["integer class ids"]),
    "wrong_labels": ("AttackOutput(images, labels + 1)", ["labels [1, 4] were not attacked"]),
}


def _write(tmp_path: Path, case: str, result: str) -> str:
    path = tmp_path / f"{case}.py"
    path.write_text(HEADER + BODY.format(result=result))
    return f"{path}:Plugin"


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_attack_is_refused_naming_it(tmp_path, case):
    result, needles = BROKEN[case]
    reference = _write(tmp_path, case, result)
    with pytest.raises(UserError) as caught:
        build_components([ComponentSpec(name=reference)], ATTACKS, "attacks")
    message = str(caught.value)
    for needle in ["attacks[0].name", f"{case}.py:Plugin", "broken attack", *needles]:
        assert needle in message, message


def test_broken_plugin_attack_exits_2_before_any_trial(run_cli, tmp_path):
    reference = _write(tmp_path, "nan", BROKEN["nan"][0])
    config = tmp_path / "suite.yaml"
    config.write_text("name: attack-check\npipeline: toy\ndefenses:\n  - name: none\n"
                      f"attacks:\n  - name: {reference}\n")
    result = run_cli("run", "--config", config, "--results", tmp_path / "res")
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    message = " ".join(result.err.split())
    assert "attacks[0].name" in message and "NaN or infinite" in message
    assert not (tmp_path / "res" / "mlflow.db").exists()


def test_a_working_plugin_attack_passes(tmp_path):
    reference = _write(tmp_path, "good", "AttackOutput(images, labels, {'loss': [0.0]})")
    (built,) = build_components([ComponentSpec(name=reference)], ATTACKS, "attacks")
    assert built.name == "plugin"


def test_probe_params_the_fields_refuse_are_reported(tmp_path):
    path = tmp_path / "bad_probe.py"
    path.write_text(HEADER + BODY.format(result="AttackOutput(images, labels)").replace(
        "probe_params: ClassVar[dict[str, Any]] = {}", "probe_params: ClassVar[dict[str, Any]]"
        " = {'steps': 0}"))
    with pytest.raises(UserError, match="probe_params .* are refused"):
        build_components([ComponentSpec(name=f"{path}:Plugin")], ATTACKS, "attacks")


def test_probes_skipped_builds_without_running_the_attack(tmp_path):
    """A fully cached run builds its components (names and values checked) but runs no probe:
    inside ``probes_skipped`` a plug-in whose run() raises is built; outside it is refused."""
    from lsmia_bench.benchmark.plugin_check import probes_skipped

    reference = _write(tmp_path, "raises", BROKEN["raises"][0])
    with probes_skipped():
        built = build_components([ComponentSpec(name=reference)], ATTACKS, "attacks")
    assert [type(a).__name__ for a in built] == ["Plugin"]
    with pytest.raises(UserError, match="ZeroDivisionError"):
        build_components([ComponentSpec(name=reference)], ATTACKS, "attacks")
    with probes_skipped(), pytest.raises(UserError, match="unknown key"):
        build_components([ComponentSpec(name=reference, params={"nope": 1})], ATTACKS,
                         "attacks")


def test_an_unknown_threat_model_is_refused_naming_it(tmp_path):
    path = tmp_path / "spy.py"
    path.write_text(HEADER + BODY.format(result="AttackOutput(images, labels)").replace(
        'name: ClassVar[str] = "plugin"',
        'name: ClassVar[str] = "plugin"\n    threat_model: ClassVar[str] = "grey-box"'))
    with pytest.raises(UserError) as caught:
        build_components([ComponentSpec(name=f"{path}:Plugin")], ATTACKS, "attacks")
    message = str(caught.value)
    for needle in ["attacks[0].name", "spy.py:Plugin", "'grey-box'", "label-only"]:
        assert needle in message, message
