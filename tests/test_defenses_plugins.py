"""Outside defenses: the README's example works as a file plug-in, and every kind of broken
plug-in stops the run before any trial with exit status 2 and one line naming it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from lsmia_bench.benchmark.config import ComponentSpec, build_components
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.kernel.errors import UserError

README = Path(__file__).resolve().parents[1] / "docs" / "extending.md"

HEADER = """
from typing import ClassVar
import torch
import torch.nn.functional as F
from pydantic import Field
from lsmia_bench.defenses import Defense, LossInputs
"""

BROKEN = {
    "import_error": ("import not_a_real_module_xyz\n", "Plugin",
                     ["loading it failed", "ModuleNotFoundError", "not_a_real_module_xyz"]),
    "no_such_class": ("class Other(Defense):\n    pass\n", "Plugin",
                      ["has no attribute 'Plugin'"]),
    "not_a_defense": ("class Plugin:\n    def loss(self, batch):\n        return 0.0\n", "Plugin",
                      ["is not a defense class", "subclass of lsmia_bench.defenses.base.Defense"]),
    "misspelt_method": ("class Plugin(Defense):\n    def los(self, batch):\n"
                        "        return F.cross_entropy(batch.logits, batch.targets) * 2\n",
                        "Plugin", ["defines 'los' but not 'loss'", "Rename 'los' to 'loss'"]),
    "returns_float": ("class Plugin(Defense):\n    def loss(self, batch):\n        return 1.0\n",
                      "Plugin", ["loss() returned a float, not a scalar tensor"]),
    "returns_vector": ("class Plugin(Defense):\n    def loss(self, batch):\n        return "
                       "F.cross_entropy(batch.logits, batch.targets, reduction='none')\n",
                       "Plugin", ["loss() returned a tensor of shape (12,)", "0-dim"]),
    "nan_loss": ("class Plugin(Defense):\n    def loss(self, batch):\n        return "
                 "F.cross_entropy(batch.logits, batch.targets) * float('nan')\n",
                 "Plugin", ["loss() is nan on a probe batch"]),
    "detached_loss": ("class Plugin(Defense):\n    def loss(self, batch):\n        return "
                      "torch.tensor(1.0)\n", "Plugin", ["does not depend on the model"]),
    "loss_raises": ("class Plugin(Defense):\n    def loss(self, batch):\n        return "
                    "batch.features['penultimate']\n", "Plugin",
                    ["loss() raised KeyError", "penultimate"]),
    "wrap_returns_none": ("class Plugin(Defense):\n    def wrap_model(self, model):\n"
                          "        model.head = None\n", "Plugin",
                          ["wrap_model() returned NoneType", "torch.nn.Module"]),
    "unknown_feature_layer": ("class Plugin(Defense):\n    def feature_layers(self, model):\n"
                              "        return ['layer4']\n", "Plugin",
                              ["feature_layers() names unknown submodules ['layer4']"]),
    "at_epoch_returns_number": ("class Plugin(Defense):\n    def at_epoch(self, epoch, epochs):\n"
                                "        return epoch / epochs\n", "Plugin",
                                ["at_epoch(0, 4) returned float, not a Plugin"]),
    "schedule_names_no_number": ("class Plugin(Defense):\n    schedule_series: ClassVar["
                                 "dict[str, str]] = {'w': 'weight'}\n", "Plugin",
                                 ["schedule_series['w'] names 'weight', which is None"]),
}


def _suite(tmp_path: Path, name: str, params: str = "{}") -> Path:
    config = tmp_path / "suite.yaml"
    config.write_text(f"name: plugin-check\npipeline: toy\ndefenses:\n  - name: none\n"
                      f"  - name: {name}\n    params: {params}\n")
    return config


def _fails_cleanly(result, *needles: str) -> str:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    message = " ".join(result.err.split())
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_exits_2_naming_plugin_and_problem(run_cli, tmp_path, case):
    body, cls, needles = BROKEN[case]
    plugin = tmp_path / f"{case}.py"
    plugin.write_text(HEADER + body)
    reference = f"{plugin}:{cls}"
    result = run_cli("run", "--config", _suite(tmp_path, reference), "--results", tmp_path / "res")
    _fails_cleanly(result, "defenses[1].name", f"{case}.py:{cls}", *needles)
    assert not (tmp_path / "res" / "mlflow.db").exists()


def test_plugin_hyperparameter_out_of_range_exits_2_naming_plugin(run_cli, tmp_path):
    plugin = tmp_path / "ranged.py"
    plugin.write_text(HEADER + "class Ranged(Defense):\n"
                      "    strength: ClassVar[str | None] = 'weight'\n"
                      "    weight: float = Field(0.5, ge=0.0, le=1.0)\n")
    config = _suite(tmp_path, f"{plugin}:Ranged", "{weight: 5}")
    _fails_cleanly(run_cli("run", "--config", config, "--results", tmp_path / "res"),
                   "defenses[1].params.weight", "got 5", "less than or equal to 1",
                   "ranged.py:Ranged")


def test_layer_names_are_checked_against_the_suite_model(run_cli, tmp_path):
    # The toy pipeline probes with its own MLP, whose hidden blocks are body.2 and body.5.
    good = _suite(tmp_path, "bido", "{layers: [body.5]}")
    from lsmia_bench.benchmark.config import read_suite_file, validate_suite
    from lsmia_bench.benchmark.pipelines.toy import ToyConfig, ToyPipeline

    raw, source = read_suite_file(None, good)
    ToyPipeline().check(validate_suite(raw, source, ToyConfig))
    bad = _suite(tmp_path, "bido", "{layers: [body.9]}")
    _fails_cleanly(run_cli("run", "--config", bad, "--results", tmp_path / "res"),
                   "defenses[1].name", "'bido'", "feature_layers() raised ValueError",
                   "no submodules ['body.9']", "['body.2', 'body.5']")


def _readme_block(language: str, index: int = 0) -> str:
    section = README.read_text().split("## Write a defense", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return textwrap.dedent(blocks[index])


def test_readme_example_loads_from_a_relative_path_and_passes_the_checks(tmp_path,
                                                                        monkeypatch):
    (tmp_path / "my_defense.py").write_text(_readme_block("python"))
    monkeypatch.chdir(tmp_path)
    suite = _readme_block("yaml")
    reference = re.search(r"name: (\./my_defense\.py:\w+)", suite).group(1)
    spec = ComponentSpec(name=reference, grid={"weight": [0.1, 1.0]})
    assert Path(spec.name.rpartition(":")[0]).is_absolute()  # workers run elsewhere
    built = build_components([spec], DEFENSES, "defenses")
    assert [d.label() for d in built] == ["my_confidence_penalty(weight=0.1)",
                                         "my_confidence_penalty(weight=1.0)"]
    with pytest.raises(UserError, match="less than or equal to 10"):
        build_components([ComponentSpec(name=reference, params={"weight": 50})], DEFENSES,
                         "defenses")


def test_builtin_defenses_pass_the_plugin_checks():
    from lsmia_bench.benchmark.plugin_check import check_defense

    for name in DEFENSES.names():
        for params in ({}, {"measure": "coco"} if name == "bido" else {}):
            check_defense(DEFENSES.get(name)(**params), "defenses[0].name", name)
