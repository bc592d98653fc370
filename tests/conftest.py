"""Shared fixtures: one Ray instance for the whole session, the CLI run in-process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The Olivetti faces cache prepared for offline machines sits beside the checkout.
SHARED_SKLEARN_DATA = Path(
    os.environ.get("SCIKIT_LEARN_DATA", REPO.parent / "shared" / "datasets" / "scikit_learn_data")
)

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# The `mlflow server` processes the tests start serve tracking only: without this, each also
# starts MLflow's job runner (about eight huey consumers), which the tracking API never uses and
# which competes with the trials for the CI machine's two cores.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance shared by every test that runs trials; yields its GCS address."""
    import ray

    from lsmia_bench.benchmark.runner import init_ray

    init_ray(None, num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny networks on one torch thread; restore the setting afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run ``lsmia-bench ARGS`` in this process (sharing the session's Ray instance)."""
    from lsmia_bench.cli import main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def sklearn_data_home() -> Path:
    if not (SHARED_SKLEARN_DATA / "olivetti_py3.pkz").is_file():
        pytest.fail(f"Olivetti cache missing at {SHARED_SKLEARN_DATA}; set SCIKIT_LEARN_DATA")
    return SHARED_SKLEARN_DATA


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled digits as (N, 1, 8, 8) images in [0, 1]: the private digits 0-4
    (images, labels) and the public images of 5-9."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target)
    private = labels < 5
    return images[private], labels[private], images[~private]


#: One tiny digits run with every attack (white-box, GAN-based and query-only) on one target:
#: tests/test_image_attacks.py and tests/test_query_attacks_e2e.py each assert their part of
#: it, as a real suite runs all its attacks on the same targets.
DIGITS_ALL_ATTACKS = [
    "--set", "seeds=[0]", "--set", "training.epochs=2",
    "--set", "defenses=[{name: none}]",
    "--set", "priors={wgan_gp: {iterations: 10, latent_dim: 8, width: 8}, "
             "kedmi: {iterations: 5, latent_dim: 8, width: 8, minibatch_features: 4, "
             "minibatch_kernel: 4}}",
    "--set", "privacy.student_epochs=1",
    "--set", "attacks=[{name: ppa, params: {search_space_size: 20, num_candidates: 5, "
             "samples_per_class: 4, steps: 3, final_iterations: 2}}, "
             "{name: gmi, params: {iterations: 3, restarts: 1}}, "
             "{name: kedmi, params: {iterations: 3, samples_per_class: 2}}, "
             "{name: mi_face, params: {iterations: 3, patience: 3, stop_cost: 0.0}}, "
             "{name: brep_mi, params: {max_iters_at_radius: 3, initial_batches: 4, "
             "max_queries: 300}}, {name: rlb_mi, params: {episodes: 10, batch_size: 4, "
             "hidden: 8}}]",
]


@pytest.fixture(scope="session")
def digits_all_attacks(ray_cluster, tmp_path_factory) -> Path:
    """The results folder of one ``run --suite digits`` with ``DIGITS_ALL_ATTACKS``."""
    from lsmia_bench.cli import main

    results = tmp_path_factory.mktemp("digits-all-attacks")
    assert main(["run", "--suite", "digits", "--results", str(results),
                 *DIGITS_ALL_ATTACKS]) == 0
    return results
