"""``include:`` / ``append:``: a suite built on another one, and its mistakes (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lsmia_bench.benchmark.config import read_suite_file
from lsmia_bench.kernel.errors import UserError


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_extended_suites_are_their_base_plus_the_appended_entries() -> None:
    for base in ("digits", "olivetti"):
        raw_base, _ = read_suite_file(base, None)
        raw, source = read_suite_file(f"{base}-extended", None)
        assert source == f"configs/{base}-extended.yaml"
        assert raw["name"] == f"{base}-extended"
        assert "include" not in raw and "append" not in raw
        for key in ("seeds", "data", "target", "training", "priors", "privacy"):
            assert raw[key] == raw_base[key], key
        assert raw["defenses"][: len(raw_base["defenses"])] == raw_base["defenses"]
        assert raw["attacks"][: len(raw_base["attacks"])] == raw_base["attacks"]


def test_own_keys_replace_mappings_merge_and_append_adds(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", {"name": "b", "seeds": [0], "training": {"epochs": 3, "lr": 0.1},
                                    "defenses": [{"name": "none"}], "attacks": [{"name": "gmi"}]})
    child = _write(tmp_path / "child.yaml", {
        "include": "base.yaml", "name": "c", "seeds": [1, 2], "training": {"epochs": 5},
        "append": {"defenses": [{"name": "mid"}]}})
    raw, _ = read_suite_file(None, child)
    assert raw["name"] == "c" and raw["seeds"] == [1, 2]
    assert raw["training"] == {"epochs": 5, "lr": 0.1}
    assert [d["name"] for d in raw["defenses"]] == ["none", "mid"]
    assert raw["attacks"] == [{"name": "gmi"}]


@pytest.mark.parametrize(("child", "needles"), [
    ({"include": "nope.yaml"}, ["include", "nope.yaml", "file not found"]),
    ({"include": "digitz"}, ["include", "digitz", "Did you mean 'digits'"]),
    ({"include": "self.yaml"}, ["include", "cycle"]),
    ({"name": "x", "append": {"attacks": []}}, ["append", "include"]),
    ({"include": "digits", "append": {"defenses": {"name": "mid"}}}, ["append.defenses", "list"]),
])
def test_include_mistakes_name_the_field(tmp_path: Path, child: dict, needles: list[str]) -> None:
    path = _write(tmp_path / "self.yaml", child)
    with pytest.raises(UserError) as info:
        read_suite_file(None, path)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
