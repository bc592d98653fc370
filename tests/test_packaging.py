"""A plain (non-editable) install: one namespace, every subpackage, the configs, a working CLI,
and the layer contracts of ``pyproject.toml`` (import-linter) holding on the installed code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Repository folder -> installed package (``[tool.setuptools.package-dir]``).
MAPPED = {"lsmia_bench": "lsmia_bench", "benchmark": "lsmia_bench/benchmark",
          "attacks": "lsmia_bench/attacks", "defenses": "lsmia_bench/defenses",
          "leaderboard": "lsmia_bench/leaderboard", "configs": "lsmia_bench/configs"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    # Build from a copy of the checkout's files: setuptools leaves build/ behind, and a stale
    # build/ would install modules that the checkout no longer has.
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, cwd=target,
    )
    return target


def _env(site: Path) -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(site)}


def test_one_namespace_and_no_generic_top_level_names(installed):
    # ``bin/`` holds the console script, not a module.
    top = {p.name for p in installed.iterdir()
           if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert top == {"lsmia_bench"}, top
    for generic in ("benchmark", "attacks", "defenses", "leaderboard", "configs"):
        assert not (installed / generic).exists()


def test_every_subpackage_and_config_is_installed(installed):
    for folder, package in MAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            assert (installed / package / relative / "__init__.py").is_file(), (
                f"{init.parent} is not installed: list it in pyproject's [tool.setuptools]")
    shipped = {p.name for p in (installed / "lsmia_bench" / "configs").glob("*.yaml")}
    assert shipped == {p.name for p in (REPO / "configs").glob("*.yaml")}


def test_installed_cli_runs_from_any_folder(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import lsmia_bench, lsmia_bench.benchmark; "
         "print(lsmia_bench.benchmark.__file__)"],
        check=True, capture_output=True, text=True, cwd=elsewhere, env=_env(installed),
    ).stdout
    assert where.startswith(str(installed))
    listing = subprocess.run([sys.executable, "-m", "lsmia_bench", "list"], capture_output=True,
                             text=True, cwd=elsewhere, env=_env(installed))
    assert listing.returncode == 0, listing.stderr
    assert "toy" in listing.stdout and "label_smoothing" in listing.stdout


def _lint_imports(site: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=site, env=_env(site))


def test_layer_contracts_hold(installed):
    done = _lint_imports(installed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_back_import_breaks_the_layer_contract(installed, tmp_path):
    """The contract can fail: the kernel importing the benchmark layer is reported."""
    scratch = tmp_path / "site"
    shutil.copytree(installed / "lsmia_bench", scratch / "lsmia_bench")
    files = scratch / "lsmia_bench" / "kernel" / "files.py"
    files.write_text(files.read_text() + "\nfrom lsmia_bench.benchmark import jobs  # noqa\n")
    done = _lint_imports(scratch)
    assert done.returncode != 0
    assert "lsmia_bench.kernel.files -> lsmia_bench.benchmark.jobs" in done.stdout
