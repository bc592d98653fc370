"""A new SQLite MLflow store is a copy of an empty store built once per MLflow version (MLflow's
schema migrations take seconds for every new store); without a writable cache folder MLflow
builds it in place as before. Either way MLflow can use it."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from lsmia_bench.benchmark.tracking import prepare_sqlite_store, store_cache_dir


def _usable(db: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.create_experiment("probe", artifact_location=(db.parent / "a").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_new_stores_are_copies_of_one_template(tmp_path, monkeypatch):
    monkeypatch.setenv("LSMIA_CACHE_DIR", str(tmp_path / "cache"))
    assert store_cache_dir() == tmp_path / "cache"
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    prepare_sqlite_store(f"sqlite:///{first}", first.parent / "mlartifacts")
    templates = list((tmp_path / "cache").glob("mlflow-*-empty.db"))
    assert len(templates) == 1
    made = templates[0].stat().st_mtime_ns
    prepare_sqlite_store(f"sqlite:///{second}", second.parent / "mlartifacts")
    assert templates[0].stat().st_mtime_ns == made  # built once
    assert second.read_bytes() == templates[0].read_bytes()
    assert not list(second.parent.glob(".mlflow.db.creating-*"))
    _usable(second)
    # An existing store is checked against the schema facts kept beside the template.
    prepare_sqlite_store(f"sqlite:///{second}", second.parent / "mlartifacts")
    assert list((tmp_path / "cache").glob("mlflow-*-schema.json"))


def test_without_a_writable_cache_folder_mlflow_builds_the_store(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("LSMIA_CACHE_DIR", str(blocker / "cache"))
    db = tmp_path / "r" / "mlflow.db"
    prepare_sqlite_store(f"sqlite:///{db}", db.parent / "mlartifacts")
    _usable(db)
