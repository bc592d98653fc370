"""The bad-input catalogue: user mistakes across the CLI, suite configs, data folders, plug-ins
and submission metadata. Each exits with status 2 and one clear line (no traceback), and
leaves a results folder that already holds a recorded run exactly as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = ["--set", "training.iterations=100", "--set", "attacks.0.params.max_steps=200"]


def _snapshot(results: Path) -> dict[str, str]:
    """Every file of the results folder with a digest of its content."""
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(results.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, ray_cluster):
    from lsmia_bench.cli import main

    results = tmp_path_factory.mktemp("recorded")
    assert main(["run", "--suite", "toy", "--results", str(results), *TINY]) == 0
    return results


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (arguments after `lsmia-bench`, words the message must contain)."""
    broken_yaml = _write(tmp, "broken.yaml", "name: x\npipeline: toy\ndefenses: [\n")
    latin = _write(tmp, "latin.yaml", "name: caf\xe9\n".encode("latin-1"))
    syntax = _write(tmp, "syntax_error.py", "class Broken(:\n")
    not_defense = _write(tmp, "not_defense.py", "class Plain:\n    pass\n")
    empty_home = tmp / "empty_data_home"
    empty_home.mkdir(exist_ok=True)

    def run(*args: str) -> list[str]:
        return ["run", "--suite", "toy", *args]

    return {
        # command line
        "unknown command": (["frobnicate"], ["No such command"]),
        "option value of the wrong type": (run("--max-concurrent", "two"),
                                           ["--max-concurrent"]),
        "unknown suite": (["run", "--suite", "toyy"], ["--suite", "Did you mean 'toy'"]),
        "--set without =": (run("--set", "seeds"), ["--set", "key=value"]),
        "--set into a value": (run("--set", "name.sub=1"), ["--set", "not a section"]),
        "nothing to resume": (run("--resume"), ["--resume", "no unfinished run"]),
        "missing config file": (["run", "--config", str(tmp / "nope.yaml")],
                                ["--config", "not found"]),
        # suite configuration
        "unknown key": (run("--set", "epochs=3"), ["epochs", "unknown key"]),
        "wrong type": (run("--set", "training.iterations=lots"), ["training.iterations"]),
        "alpha out of range": (run("--set", "defenses.0.grid.alpha=[0.1,1.0]"),
                               ["defenses[0].grid.alpha", "less than 1"]),
        "unknown defense": (run("--set", "defenses.0.name=labelsmoothing"),
                            ["defenses[0].name", "Did you mean 'label_smoothing'"]),
        "unknown attack": (run("--set", "attacks.0.name=toysgd"), ["attacks[0].name"]),
        "repeated seeds": (run("--set", "seeds=[3,3]"), ["seeds", "distinct"]),
        "unknown device": (run("--set", "device=gpu0"), ["device", "'gpu0'"]),
        "broken YAML": (["run", "--config", str(broken_yaml)], ["broken.yaml", "not valid YAML"]),
        "config not UTF-8": (["run", "--config", str(latin)], ["--config", "not UTF-8"]),
        # data folders
        "olivetti data missing": (["run", "--suite", "olivetti", "--data-home", str(empty_home)],
                                  ["data_home"]),
        "overlapping private/public classes": (
            ["run", "--suite", "digits", "--set", "data.public_classes=[4,5,6]"],
            ["public_classes"]),
        # plug-ins
        "plug-in file missing": (run("--set", f"defenses.0.name={tmp / 'absent.py'}:X"),
                                 ["defenses[0].name", "does not exist"]),
        "plug-in does not import": (run("--set", f"defenses.0.name={syntax}:Broken"),
                                    ["defenses[0].name", "SyntaxError"]),
        "plug-in is not a defense": (run("--set", f"defenses.0.name={not_defense}:Plain"),
                                     ["not a defense class"]),
        # leaderboard
        "leaderboard without a store": (["leaderboard", "build", "--results",
                                         str(tmp / "no_results")], ["--results"]),
    }


CASE_NAMES = [
    "unknown command", "option value of the wrong type", "unknown suite", "--set without =",
    "--set into a value", "nothing to resume", "missing config file", "unknown key",
    "wrong type", "alpha out of range", "unknown defense", "unknown attack", "repeated seeds",
    "unknown device", "broken YAML", "config not UTF-8", "olivetti data missing",
    "overlapping private/public classes", "plug-in file missing", "plug-in does not import",
    "plug-in is not a defense", "leaderboard without a store",
]


def test_catalogue_is_complete(tmp_path):
    assert sorted(_cases(tmp_path)) == sorted(CASE_NAMES)
    assert len(CASE_NAMES) >= 20


@pytest.mark.parametrize("case", CASE_NAMES)
def test_mistake_exits_2_with_one_clear_line_and_loses_nothing(case, recorded, run_cli,
                                                              tmp_path):
    args, needles = _cases(tmp_path)[case]
    before = _snapshot(recorded)
    if args[0] in ("run", "leaderboard") and "--results" not in args:
        args = [*args, "--results", str(recorded)]
    result = run_cli(*args)
    assert result.code == 2, (case, result.out[-500:], result.err[-1500:])
    message = " ".join(result.err.split())
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in message, f"{case}: {needle!r} not in {message!r}"
    assert _snapshot(recorded) == before, f"{case} changed the recorded results"
