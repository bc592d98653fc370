"""A plain (non-editable) install works, and the CLI runs from any folder with its configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_plain_install_ships_configs_and_cli(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    assert (target / "configs" / "toy.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = os.environ | {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import benchmark, configs; print(benchmark.__file__)"],
        check=True, capture_output=True, text=True, cwd=elsewhere, env=env,
    ).stdout
    assert where.startswith(str(target))
    listing = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "list"], capture_output=True, text=True,
        cwd=elsewhere, env=env,
    )
    assert listing.returncode == 0, listing.stderr
    assert "toy" in listing.stdout and "label_smoothing" in listing.stdout
