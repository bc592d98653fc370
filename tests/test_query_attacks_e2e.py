"""BREP-MI and RLB-MI through the digits pipeline (tiny settings, real Ray Tune and MLflow): both
finish, record the queries they sent, and have no gradient stability (no gradients seen)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient


@pytest.mark.slow
def test_query_attacks_run_in_the_digits_pipeline(digits_all_attacks):
    # One run with every attack (conftest.DIGITS_ALL_ATTACKS); this test reads the query ones.
    client = MlflowClient(tracking_uri=f"sqlite:///{digits_all_attacks / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lsmia-bench/digits")
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=50)
            if r.data.tags.get("lsmia.stage") == "attacks"]
    attacks = {r.data.params["label.attack"]: r for r in runs
               if r.data.params["label.attack"] in ("brep_mi", "rlb_mi")}
    assert set(attacks) == {"brep_mi", "rlb_mi"}
    for run in attacks.values():
        assert run.info.status == "FINISHED"
        assert 0 <= run.data.metrics["attack_acc1"] <= 1
        assert "no gradients" in run.data.tags["info.missing.gradient_stability"]
    # RLB-MI: (2 images per step + 1 test image) per episode and class, 5 private classes.
    assert attacks["rlb_mi"].data.metrics["queries"] == 10 * 5 * 3
    brep = attacks["brep_mi"].data.metrics
    assert brep["queries"] >= brep["trace_start_queries"] > 0
