"""Submission records on disk: written atomically, never overwritten without --replace (the
earlier record is kept byte for byte), and cached trials of the submitted defense reused only
when an earlier record made them with the same code."""

from __future__ import annotations

import json

import pytest

from lsmia_bench.benchmark.cache import ArtifactStore
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.files import write_json_atomic
from lsmia_bench.submission.record import existing_records, record_path, write_record
from lsmia_bench.submission.submit import retire_stale


def test_replace_keeps_the_earlier_record_as_history(tmp_path):
    first = {"name": "x", "finished_at": "2026-01-02T03:04:05+00:00", "value": 1}
    path, history = write_record(tmp_path, "x", dict(first), replace=False, meta_file="m.yaml")
    assert history is None and json.loads(path.read_text()) == first
    before = path.read_bytes()
    with pytest.raises(UserError, match="already recorded.*--replace"):
        write_record(tmp_path, "x", {"name": "x", "value": 2}, replace=False, meta_file="m.yaml")
    assert path.read_bytes() == before
    path, history = write_record(tmp_path, "x", {"name": "x", "value": 2}, replace=True,
                                 meta_file="m.yaml")
    assert history.name == "x-20260102T030405Z.json" and history.read_bytes() == before
    assert json.loads(path.read_text())["replaces"] == "history/x-20260102T030405Z.json"
    _, again = write_record(tmp_path, "x", {"name": "x", "value": 3}, replace=True,
                            meta_file="m.yaml")
    assert again != history and again.parent == history.parent  # no history is overwritten
    assert sorted(r["value"] for r in existing_records(tmp_path)) == [1, 2, 3]


def test_cached_trials_are_reused_only_for_the_same_code(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    for key in ("aaaa", "bbbb"):
        with store.writing(key) as out:
            write_json_atomic(out / "result.json", {"key": key})
    write_json_atomic(record_path(tmp_path, "old"), {
        "defense": {"fingerprint": "same-code"}, "trials": [{"job_key": "aaaa"}]})
    moved = retire_stale(tmp_path, {"aaaa", "bbbb", "cccc"}, "same-code")
    assert moved == ["bbbb"]  # made by a plain run or other code: trained again
    assert store.has("aaaa") and not store.has("bbbb")
    (kept,) = (tmp_path / "superseded").iterdir()
    assert kept.name.startswith("bbbb-") and (kept / "result.json").is_file()
    assert retire_stale(tmp_path, {"aaaa"}, "changed-code") == ["aaaa"]
