"""Damaged cache entries are found, set aside and made again; dependants use the new result."""

from __future__ import annotations

import json
from pathlib import Path

from lsmia_bench.benchmark.cache import DAMAGED_DIR, MANIFEST_FILE, RESULT_FILE, ArtifactStore
from lsmia_bench.benchmark.context import TaskResult
from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.trial import execute_job

RUNS: list[str] = []


def make_weights(spec, inputs, out: Path, ctx) -> TaskResult:
    """A stand-in training task: writes a 'model' and counts how often it ran."""
    RUNS.append("model")
    (out / "model.pt").write_bytes(bytes(range(256)) * 8)
    return TaskResult(metrics={"value": float(spec["value"])})


def read_weights(spec, inputs, out: Path, ctx) -> TaskResult:
    """A dependant: reads its input's model, as an attack reads its target."""
    RUNS.append("attack")
    size = (inputs["target"] / "model.pt").stat().st_size
    return TaskResult(metrics={"input_bytes": float(size)})


def _jobs() -> tuple[Job, Job]:
    model = Job("targets", f"{__name__}:make_weights", "model", {"value": 1})
    attack = Job("attacks", f"{__name__}:read_weights", "attack", {}, needs={"target": model.key})
    return model, attack


def _run_both(store: ArtifactStore) -> list[bool]:
    model, attack = _jobs()
    return [execute_job(job, store)[1] for job in (model, attack)]


def test_entries_list_their_files_and_a_clean_rerun_is_cached(tmp_path):
    RUNS.clear()
    store = ArtifactStore(tmp_path)
    assert _run_both(store) == [False, False]
    model, _ = _jobs()
    manifest = json.loads((store.path(model.key) / MANIFEST_FILE).read_text())
    assert set(manifest) == {"model.pt", RESULT_FILE}
    assert manifest["model.pt"]["size"] == 2048
    assert _run_both(store) == [True, True]
    assert RUNS == ["model", "attack"]


def test_truncated_weights_are_set_aside_and_made_again(tmp_path):
    RUNS.clear()
    store = ArtifactStore(tmp_path)
    _run_both(store)
    model, attack = _jobs()
    weights = store.path(model.key) / "model.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    assert not store.has(model.key)
    (damaged,) = (tmp_path / DAMAGED_DIR).iterdir()
    assert damaged.name.startswith(model.key) and (damaged / "model.pt").stat().st_size == 100
    assert execute_job(model, store)[1] is False  # made again
    assert (store.path(model.key) / "model.pt").stat().st_size == 2048
    assert RUNS == ["model", "attack", "model"]


def test_same_size_corruption_is_caught_by_the_digest(tmp_path):
    store = ArtifactStore(tmp_path)
    _run_both(store)
    model, _ = _jobs()
    weights = store.path(model.key) / "model.pt"
    data = bytearray(weights.read_bytes())
    data[10] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert store.has(model.key)  # sizes agree: the cheap check passes
    assert not store.verified(model.key)  # the digest does not
    assert execute_job(model, store)[1] is False


def test_missing_result_file_is_repaired(tmp_path):
    """An entry without result.json: the job runs again and its new result is kept (it was
    once thrown away because the folder existed)."""
    store = ArtifactStore(tmp_path)
    _run_both(store)
    model, _ = _jobs()
    (store.path(model.key) / RESULT_FILE).unlink()
    result, cached = execute_job(model, store)
    assert cached is False and result["metrics"] == {"value": 1.0}
    assert store.verified(model.key)


def test_a_dependant_never_reads_a_damaged_input(tmp_path):
    store = ArtifactStore(tmp_path)
    model, attack = _jobs()
    execute_job(model, store)
    (store.path(model.key) / "model.pt").write_bytes(b"broken")
    try:
        execute_job(attack, store)
    except RuntimeError as exc:
        assert "not in the artifact store" in str(exc)
    else:
        raise AssertionError("the attack ran on a damaged input")
    assert not store.path(model.key).exists()
