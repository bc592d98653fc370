"""Outside defenses: the README's example works as a file plug-in, and every kind of broken
plug-in stops the run before any trial with exit status 2 and one line naming it."""

from __future__ import annotations

import dataclasses
import random
import re
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lsmia_bench.benchmark.config import ComponentSpec, build_components
from lsmia_bench.defenses import DEFENSES, Defense
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
    "prepare_training_raises": ("class Plugin(Defense):\n    def prepare_training(self, setup):"
                                "\n        raise RuntimeError('no accountant here')\n", "Plugin",
                                ["prepare_training() raised RuntimeError", "no accountant here"]),
    "prepare_training_returns_none": ("class Plugin(Defense):\n    def prepare_training(self, "
                                      "setup):\n        setup.state['seen'] = True\n", "Plugin",
                                      ["prepare_training() returned NoneType, not a TrainingSetup",
                                       "dataclasses.replace(setup"]),
    "end_training_nan": ("class Plugin(Defense):\n    def end_training(self, setup):\n"
                         "        return {'x': float('nan')}\n", "Plugin",
                         ["end_training() returned 'x': nan, not a finite number"]),
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


# --- the training set-up hooks (prepare_training / end_training) ------------------------------

class _SetupRaises(Defense):
    def prepare_training(self, setup):
        raise RuntimeError("needs a public split")


class _SetupReturnsNone(Defense):
    def prepare_training(self, setup):
        setup.state["seen"] = True


class _SetupWithoutModel(Defense):
    def prepare_training(self, setup):
        return dataclasses.replace(setup, model=None)


class _NoBatches(Defense):
    def prepare_training(self, setup):
        return dataclasses.replace(setup, batches=lambda: iter(()))


class _EndNaN(Defense):
    def end_training(self, setup):
        return {"x": float("nan")}


class _EndList(Defense):
    def end_training(self, setup):
        return [0.5]


class _EndTensor(Defense):
    def end_training(self, setup):
        return {"share": torch.tensor(0.5)}


BROKEN_HOOKS = {
    "prepare_raises": (_SetupRaises, "prepare_training() raised RuntimeError: needs a public "
                       "split"),
    "prepare_returns_none": (_SetupReturnsNone, "prepare_training() returned NoneType, not a "
                             "TrainingSetup"),
    "prepare_drops_model": (_SetupWithoutModel, "set-up whose model is a NoneType, not a "
                            "torch.nn.Module"),
    "no_batches": (_NoBatches, "setup.batches() of the set-up prepare_training() returned gave "
                   "no batch"),
    "end_nan": (_EndNaN, "end_training() returned 'x': nan, not a finite number"),
    "end_list": (_EndList, "end_training() returned list, not a dict"),
    "end_tensor": (_EndTensor, "end_training() returned 'share': tensor(0.5000), not a finite "
                   "number"),
}


def _check_with_hooks(defense, hooks: bool = True) -> None:
    """The check with the set-up hooks on the generic probe (a suite's probe turns them on)."""
    from lsmia_bench.benchmark.plugin_check import ProbeClassifier, check_defense, probe_batch

    check_defense(defense, "defenses[1].name", "my_plugin.py:Plugin", ProbeClassifier(),
                  probe_batch(), 4, hooks=hooks)


@pytest.mark.parametrize("case", sorted(BROKEN_HOOKS))
def test_broken_setup_hook_is_refused_naming_the_defense_and_the_hook(case):
    cls, needle = BROKEN_HOOKS[case]
    with pytest.raises(UserError) as caught:
        _check_with_hooks(cls())
    message = str(caught.value)
    assert "defenses[1].name" in message and "my_plugin.py:Plugin" in message
    assert needle in message, message


class _Counted(Defense):
    """A correct set-up plug-in: an object kept in ``setup.state`` and used by the loss, and
    metrics from it after training. It also draws from every global generator and (against
    the frozen-model contract) counts its set-ups on itself."""

    def prepare_training(self, setup):
        import numpy as np

        random.random(), np.random.rand(), torch.rand(1)
        object.__setattr__(self, "setups", getattr(self, "setups", 0) + 1)
        setup.state["scale"] = torch.tensor(2.0)
        setup.state["losses"] = 0
        return dataclasses.replace(setup, batches=lambda: [next(iter(setup.batches()))])

    def loss(self, batch):
        batch.state["losses"] += 1
        return batch.state["scale"] * F.cross_entropy(batch.logits, batch.targets)

    def end_training(self, setup):
        return {"losses": setup.state["losses"], "scale": float(setup.state["scale"])}


def test_correct_setup_plugin_passes_and_leaves_its_object_and_the_generators_alone():
    import numpy as np

    from lsmia_bench.benchmark.plugin_check import ProbeClassifier, check_defense, probe_batch

    defense, model, batch = _Counted(), ProbeClassifier(), probe_batch()
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    check_defense(defense, "defenses[1].name", "my_plugin.py:Plugin", model, batch, 4,
                  hooks=True)
    assert torch.equal(before[0], torch.get_rng_state())
    assert before[1] == random.getstate()
    assert (before[2] == np.random.get_state()[1]).all()
    assert not hasattr(defense, "setups")  # the probe ran on a copy
    # The same plug-in without its state in LossInputs would fail: the check passes it on.
    with pytest.raises(UserError, match=r"loss\(\) raised KeyError: 'losses'"):
        _check_with_hooks(_Counted(), hooks=False)


def test_builtin_defenses_pass_the_setup_hooks_on_an_image_architecture():
    """DP-SGD (Opacus wrappers, epsilon), TL-DMI (public pre-training, freezing) and Trap-MID
    (state, trapdoor success on the test split) run their hooks on a small CNN."""
    from lsmia_bench.benchmark.models import build_classifier
    from lsmia_bench.benchmark.plugin_check import check_defense

    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.rand(8, 1, 8, 8, generator=generator), torch.arange(8) % 4
    for name in DEFENSES.names():
        model = build_classifier("cnn", {}, in_channels=1, image_size=8, num_classes=4)
        check_defense(DEFENSES.get(name)(), "defenses[0].name", name, model, (inputs, targets),
                      4)
        # end_training ran: DP-SGD removed the 16 hooks Opacus put on this CNN's modules.
        hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())
        assert hooks == 0, name


def test_a_defense_needing_what_the_suite_does_not_give_exits_2_as_not_fitting(run_cli,
                                                                                tmp_path):
    # The toy's training gives per-example access but no public split: DP-SGD fits it,
    # TL-DMI's pre-training does not, and says so before any trial (not "broken").
    from lsmia_bench.benchmark.config import read_suite_file, validate_suite
    from lsmia_bench.benchmark.pipelines.toy import ToyConfig, ToyPipeline

    raw, source = read_suite_file(None, _suite(tmp_path, "dp_sgd", "{noise_multiplier: 1.0}"))
    ToyPipeline().check(validate_suite(raw, source, ToyConfig))
    message = _fails_cleanly(
        run_cli("run", "--config", _suite(tmp_path, "tl_dmi", "{trainable_from: head}"),
                "--results", tmp_path / "res"),
        "defenses[1].name", "'tl_dmi'", "does not fit this suite",
        "gives no public split (setup.public)", "this pipeline gives no public split",
        "Remove it from this suite")
    assert "broken" not in message
    assert not (tmp_path / "res" / "mlflow.db").exists()
    raw, source = read_suite_file(None, _suite(tmp_path, "tl_dmi",
                                               "{pretrain: false, trainable_from: head}"))
    ToyPipeline().check(validate_suite(raw, source, ToyConfig))


def test_a_defense_that_fails_with_everything_given_is_still_broken():
    from lsmia_bench.benchmark.plugin_check import check_defense, probe_batch

    class SetUpFails(Defense):
        def prepare_training(self, setup):
            raise RuntimeError("always")

    inputs, targets = probe_batch()
    with pytest.raises(UserError) as caught:
        check_defense(SetUpFails(), "defenses[1].name", "p.py:SetUpFails",
                      torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4)),
                      (inputs, targets), 4, hooks=True, extras=frozenset())
    assert "broken defense: prepare_training() raised RuntimeError: always" in str(caught.value)
