"""Bad submissions: each exits with status 2 and one line naming the problem, before any
training, and leaves the recorded results (submission records, MLflow store) untouched.

All cases share one results folder holding a real MLflow store and a recorded submission;
every test checks that no file in it changed and none appeared.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml

from lsmia_bench.submission.meta import SubmissionMeta

GOOD_META = {
    "name": "my_defense",
    "display_name": "My defense",
    "authors": ["Ada Lovelace", "Alan Turing"],
    "description": "Cross-entropy with a small twist, for the tests (x < y is plain text).",
    "license": "Apache-2.0",
    "paper_url": "https://arxiv.org/abs/1701.06548",
    "hyperparameters": {"params": {"weight": 0.5}},
}

PLUGINS = {
    "good.py": '''
from typing import ClassVar

from pydantic import Field

from lsmia_bench.defenses import Defense


class Good(Defense):
    name: ClassVar[str] = "good"
    weight: float = Field(0.1, ge=0.0, le=1.0)
''',
    "broken_import.py": "import no_such_module_for_lsmia_tests\n",
    "hangs.py": '''
from lsmia_bench.defenses import Defense


class Hangs(Defense):
    def loss(self, batch):
        while True:
            pass
''',
    "exits.py": "import os\n\nprint('leaving now')\nos._exit(3)\n",
    "nan_loss.py": '''
import torch.nn.functional as F

from lsmia_bench.defenses import Defense


class NanLoss(Defense):
    def loss(self, batch):
        return F.cross_entropy(batch.logits, batch.targets) * float("nan")
''',
}


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Plug-in files, a metadata writer, and a results folder with recorded results."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("submit-errors")
    for name, text in PLUGINS.items():
        (root / name).write_text(text)
    (root / "latin1.py").write_bytes("# caf\xe9\nfrom defenses import Defense\n".encode("latin-1"))
    results = root / "results"
    results.mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    # As a run makes it: the experiment's artifacts inside the results folder.
    client.create_experiment("lsmia-bench/digits",
                             artifact_location=(results / "mlartifacts" / "digits").as_uri())
    record = {"kind": "lsmia-bench submission", "name": "existing_defense", "suite": "digits",
              "metadata": {"display_name": "Existing", "authors": ["A"]}}
    (results / "submissions").mkdir()
    (results / "submissions" / "existing_defense.json").write_text(json.dumps(record))
    return root, results, _digest(results)


def _meta(root: Path, changes: dict | None = None, **more) -> Path:
    data = {k: v for k, v in (GOOD_META | (changes or {}) | more).items() if v is not None}
    path = root / f"{time.monotonic_ns()}-meta.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _submit_fails(run_cli, world, defense: str, meta: Path, *extra: str,
                  suite: str = "digits") -> str:
    root, results, before = world
    started = time.perf_counter()
    result = run_cli("submit", defense, "--meta", meta, "--suite", suite, "--results", results,
                     *extra)
    message = " ".join(result.err.split())
    assert result.code == 2, (result.code, result.out[-2000:], message)
    assert "Traceback" not in result.err and message.startswith("error: "), message
    assert _digest(results) == before  # nothing recorded changed, nothing was added
    assert not (results / "cache").exists() and not (results / "invocations").exists()
    assert time.perf_counter() - started < 90  # it failed before any training
    return message


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"authors": None}, ["authors", "required field is missing"]),
        ({"name": "My Defense!"}, ["name", "'My Defense!'", "slug"]),
        ({"paper_url": "javascript:alert(1)"}, ["paper_url", "http(s) link"]),
        ({"code_url": "https://"}, ["code_url", "http(s) link"]),
        ({"display_name": "<b>Bold</b> defense"}, ["display_name", "HTML markup"]),
        ({"authors": ["Eve <script>alert(1)</script>"]}, ["authors", "HTML markup"]),
        ({"description": "Nice &amp; short description"}, ["description", "HTML markup"]),
        ({"license": "my own license"}, ["license", "SPDX"]),
        ({"paper_url": None}, ["paper_url", "no link given", "code_url"]),
        ({"hyperparameters": {"grid": {"weight": [0.1] * 9}}}, ["hyperparameters.grid",
                                                                  "at most 8 settings"]),
        ({"favourite_colour": "blue"}, ["favourite_colour", "unknown key"]),
    ],
    ids=["missing-field", "bad-slug", "bad-link", "empty-host-link", "html-display-name",
         "html-author", "html-entity", "bad-license", "no-link", "grid-too-large",
         "unknown-key"],
)
def test_bad_metadata_exits_2(run_cli, world, changes, needles):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good", _meta(root, changes))
    assert "meta.yaml" in message
    for needle in needles:
        assert needle in message, message


def test_meta_file_that_is_not_utf8_exits_2(run_cli, world):
    root = world[0]
    meta = root / "latin1-meta.yaml"
    meta.write_bytes(yaml.safe_dump(GOOD_META | {"display_name": "Caf\xe9 defense"},
                                    allow_unicode=True).encode("latin-1"))
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good", meta)
    assert "--meta" in message and "not UTF-8" in message and "latin1-meta.yaml" in message


def test_missing_meta_file_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good", root / "nowhere.yaml")
    assert "--meta" in message and "file not found" in message


def test_unknown_suite_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good", _meta(root), suite="digitz")
    assert "--suite" in message and "unknown suite" in message and "'digits'" in message


def test_nonexistent_path_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/nothere.py:Good", _meta(root))
    assert "DEFENSE" in message and "does not exist" in message and "nothere.py" in message


def test_unknown_entry_point_and_builtin_exit_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, "no_such_defense_xyz", _meta(root))
    assert "DEFENSE" in message and "no installed defense" in message
    message = _submit_fails(run_cli, world, "label_smoothing", _meta(root))
    assert "DEFENSE" in message and "built-in" in message


def test_plugin_file_that_is_not_utf8_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/latin1.py:Anything", _meta(root))
    assert "DEFENSE" in message and "not UTF-8" in message


def test_plugin_import_error_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/broken_import.py:Anything", _meta(root))
    assert "DEFENSE" in message and "ModuleNotFoundError" in message
    assert "no_such_module_for_lsmia_tests" in message


def test_plugin_that_hangs_is_stopped_at_the_time_limit(run_cli, world):
    root = world[0]
    started = time.perf_counter()
    message = _submit_fails(run_cli, world, f"{root}/hangs.py:Hangs",
                            _meta(root, hyperparameters=None), "--check-timeout", "4")
    assert "DEFENSE" in message and "did not finish within 4 s" in message
    assert "--check-timeout" in message
    assert time.perf_counter() - started < 60


def test_plugin_that_kills_its_interpreter_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/exits.py:Anything", _meta(root))
    assert "DEFENSE" in message and "ended with status 3 without a result" in message
    assert "leaving now" in message  # its last output is shown


def test_nan_loss_exits_2(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/nan_loss.py:NanLoss",
                            _meta(root, hyperparameters=None))
    assert "DEFENSE" in message and "nan" in message and "finite" in message


def test_hyperparameter_out_of_the_defense_range_exits_2(run_cli, world):
    root = world[0]
    meta = _meta(root, hyperparameters={"grid": {"weight": [0.5, 3.0]}})
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good", meta)
    assert "hyperparameters.grid.weight" in message and "3.0" in message
    assert "less than or equal to 1" in message


def test_name_clash_needs_replace(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good",
                            _meta(root, name="existing_defense"))
    assert "name" in message and "existing_defense" in message
    assert "already recorded" in message and "--replace" in message


def test_defenses_cannot_be_set_on_the_command_line(run_cli, world):
    root = world[0]
    message = _submit_fails(run_cli, world, f"{root}/good.py:Good", _meta(root),
                            "--set", "defenses.0.name=mid")
    assert "--set" in message and "defenses" in message


def test_plain_text_rules_allow_ordinary_text():
    meta = SubmissionMeta.model_validate(GOOD_META | {
        "display_name": "Défense à la carte", "license": "MIT OR Apache-2.0",
        "authors": ["Łukasz Kaiser"], "code_url": "http://example.org/code?x=1&y=2"})
    assert meta.display_name == "Défense à la carte" and "x < y" in meta.description
    assert meta.links() == {"paper": GOOD_META["paper_url"],
                            "code": "http://example.org/code?x=1&y=2"}
