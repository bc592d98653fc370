"""BREP-MI and RLB-MI through the digits pipeline (tiny settings, real Ray Tune and MLflow): both
finish, record the queries they sent, and have no gradient stability (no gradients seen)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

TINY = [
    "--set", "seeds=[0]", "--set", "training.epochs=2",
    "--set", "defenses=[{name: none}]",
    "--set", "priors={wgan_gp: {iterations: 10, latent_dim: 8, width: 8}}",
    "--set", "privacy.student_epochs=1",
    "--set", "attacks=[{name: brep_mi, params: {max_iters_at_radius: 3, initial_batches: 4, "
             "max_queries: 300}}, {name: rlb_mi, params: {episodes: 10, batch_size: 4, "
             "hidden: 8}}]",
]


@pytest.mark.slow
def test_query_attacks_run_in_the_digits_pipeline(run_cli, ray_cluster, tmp_path):
    result = run_cli("run", "--suite", "digits", "--results", tmp_path, *TINY)
    assert result.code == 0, result.err[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lsmia-bench/digits")
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=50)
            if r.data.tags.get("lsmia.stage") == "attacks"]
    attacks = {r.data.params["label.attack"]: r for r in runs}
    assert set(attacks) == {"brep_mi", "rlb_mi"}
    for run in attacks.values():
        assert run.info.status == "FINISHED"
        assert 0 <= run.data.metrics["attack_acc1"] <= 1
        assert "no gradients" in run.data.tags["info.missing.gradient_stability"]
    # RLB-MI: (2 images per step + 1 test image) per episode and class, 5 private classes.
    assert attacks["rlb_mi"].data.metrics["queries"] == 10 * 5 * 3
    brep = attacks["brep_mi"].data.metrics
    assert brep["queries"] >= brep["trace_start_queries"] > 0
