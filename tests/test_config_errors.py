"""Every user mistake: exit status 2, one message naming the field and value, no traceback."""

from __future__ import annotations

import pytest

from lsmia_bench.benchmark.state import ResultsLock


def _fails_cleanly(result, *needles: str) -> None:
    assert result.code == 2, (result.out, result.err)
    message = " ".join(result.err.split())
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--suite", "toys"], ["--suite", "'toys'", "Did you mean 'toy'"]),
        (["--suite", "toy", "--set", "colour=red"], ["colour", "unknown key", "Allowed keys"]),
        (["--suite", "toy", "--set", "training.iterations=many"],
         ["training.iterations", "'many'"]),
        (["--suite", "toy", "--set", "training.learning_rate=0.1"],
         ["training.learning_rate", "unknown key", "iterations"]),
        (["--suite", "toy", "--set", "defenses.0.name=label_smothing"],
         ["defenses[0].name", "'label_smothing'", "Did you mean 'label_smoothing'"]),
        (["--suite", "toy", "--set", "defenses.0.grid.alpha=[0.1,1.5]"],
         ["defenses[0].grid.alpha", "1.5", "less than 1"]),
        (["--suite", "toy", "--set", "defenses.0.params.ramp_start=2"],
         ["defenses[0].params.ramp_start", "2", "less than or equal to 1"]),
        (["--suite", "toy", "--set", "defenses.0.grid.alpha=[-1]"],
         ["defenses[0].grid.alpha", "-1", "greater than -1"]),
        (["--suite", "toy", "--set", "attacks.0.name=ppaa"], ["attacks[0].name", "'ppaa'"]),
        (["--suite", "toy", "--set", "attacks.0.params.lr=-0.1"], ["attacks[0].params.lr"]),
        (["--suite", "toy", "--set", "seeds"], ["--set", "key=value"]),
        (["--suite", "toy", "--set", "defenses.7.name=none"], ["--set", "index below 1"]),
        (["--suite", "toy", "--set", "seeds=[1,1]"], ["seeds", "distinct"]),
        (["--suite", "toy", "--set", "target_class=7"], ["target_class", "7"]),
        (["--suite", "toy", "--set", "pipeline=imagez"], ["pipeline", "'imagez'"]),
        (["--suite", "toy", "--set", "device=tpu"], ["device", "'tpu'"]),
        (["--suite", "toy", "--max-concurrent", "0"], ["--max-concurrent"]),
        # A key for the wrong defense names every defense by position with its keys.
        (["--suite", "digits", "--set", "defenses.0.grid.alpha=[0.7]"],
         ["defenses[0].grid.alpha", "unknown key for defense 'none'", "defenses.0 none (no keys)",
          "defenses.1 label_smoothing (alpha,", "defenses.2 mid (beta"]),
    ],
)
def test_bad_input_exits_2_naming_the_field(run_cli, tmp_path, args, needles):
    result = run_cli("run", *args, "--results", tmp_path / "res")
    _fails_cleanly(result, *needles)
    assert not (tmp_path / "res" / "mlflow.db").exists()


def test_bad_yaml_file(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npipeline: toy\ndefenses: [\n  - name: none\n")
    _fails_cleanly(run_cli("run", "--config", bad, "--results", tmp_path), "bad.yaml",
                   "not valid YAML at line")


def test_config_file_missing_or_not_utf8(run_cli, tmp_path):
    _fails_cleanly(run_cli("run", "--config", tmp_path / "nope.yaml"), "--config", "not found")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    _fails_cleanly(run_cli("run", "--config", latin), "--config", "not UTF-8")


def test_missing_required_field(run_cli, tmp_path):
    cfg = tmp_path / "nodef.yaml"
    cfg.write_text("name: x\npipeline: toy\n")
    _fails_cleanly(run_cli("run", "--config", cfg), "defenses", "missing")


def test_resume_with_nothing_to_resume(run_cli, tmp_path):
    _fails_cleanly(run_cli("run", "--suite", "toy", "--resume", "--results", tmp_path),
                   "--resume", "no unfinished run")


def test_second_run_on_a_locked_results_folder_is_refused(run_cli, tmp_path):
    with ResultsLock(tmp_path):
        result = run_cli("run", "--suite", "toy", "--results", tmp_path)
    _fails_cleanly(result, "--results", "another lsmia-bench run")


def test_no_suite_given(run_cli):
    _fails_cleanly(run_cli("run"), "--suite", "no suite given")
