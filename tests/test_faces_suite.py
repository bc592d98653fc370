"""The faces suite: the smoke run end to end through real Ray Tune and MLflow, and the
messages for missing data, generator files and unsupported attacks (exit 2 before any trial).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lsmia_bench.benchmark.data.fake_faces import make_fake_facescrub

TARGET_METRICS = {"test_accuracy", "ece", "class_separation", "final_train_accuracy"}
ATTACK_METRICS = {"attack_acc1", "attack_acc5", "delta_eval", "delta_face", "xi",
                  "gradient_stability"}
#: Meaningful only with enough samples per side (the registry's validity rules): with the
#: smoke run's 18 reconstructions they are recorded as missing with their reason instead.
SAMPLE_SIZE_METRICS = {"fid", "precision", "recall", "density", "coverage"}


@pytest.fixture
def fake_data_home(tmp_path, monkeypatch) -> Path:
    """Generated smoke data goes to the test's folder, not the machine's shared temp."""
    folder = tmp_path / "generated"
    monkeypatch.setenv("LSMIA_BENCH_DATA", str(folder))
    return folder


#: The smoke suite with fewer training steps: 3 epochs instead of 4 on 8 generated images per
#: identity instead of 12. Its bf16 training stays: on a CPU without native bf16 every step is
#: emulated (about 30 times an fp32 step), which made training most of this module's time.
SHORTER = ["--set", "training.epochs=3", "--set", "data.generate.images_per_identity=8"]


def test_smoke_run_end_to_end(ray_cluster, run_cli, tmp_path, fake_data_home):
    results = tmp_path / "results"
    result = run_cli("run", "--suite", "faces", "--smoke", "--results", results, *SHORTER)
    assert result.code == 0, result.out + result.err
    assert "faces-smoke: results" in result.out
    # The data set was generated in FaceScrub's layout and read by the real loader.
    (generated,) = fake_data_home.glob("fake-facescrub-*")
    assert len(list((generated / "actors" / "faces").iterdir())) == 3

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lsmia-bench/faces-smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("lsmia.kind") == "trial"]
    by_stage: dict[str, list] = {}
    for run in trials:
        assert run.info.status == "FINISHED", run.data.tags
        by_stage.setdefault(run.data.tags["lsmia.stage"], []).append(run)
    assert {k: len(v) for k, v in by_stage.items()} == {"prerequisites": 1, "targets": 3,
                                                        "attacks": 3}
    for run in [*by_stage["targets"], *by_stage["prerequisites"]]:
        assert set(run.data.metrics) >= TARGET_METRICS
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3
        # eval_every 2 of 3 epochs: after epoch 2 and after the last one
        assert len(client.get_metric_history(run.info.run_id, "test_accuracy_by_epoch")) == 2
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"embedding.png", "model.json"} <= artifacts
    (evaluation,) = by_stage["prerequisites"]
    assert evaluation.data.params["label.architecture"] == "inception_v3"
    for run in by_stage["attacks"]:
        assert set(run.data.metrics) >= ATTACK_METRICS, set(run.data.metrics)
        for name in SAMPLE_SIZE_METRICS:
            assert (name in run.data.metrics) != bool(
                run.data.tags.get(f"info.missing.{name}")), name
        assert 0 <= run.data.metrics["attack_acc1"] <= run.data.metrics["attack_acc5"] <= 1
        # 6 identities x 3 samples kept by PPA's final selection
        assert run.data.metrics["reconstructions"] == 18
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"reconstructions.png", "prior_samples.png"} <= artifacts

    records = [p for p in (results / "cache").glob("*/result.json")]
    texts = {p.parent.name: p.read_text() for p in records}
    # The record says what stood in for the real weights: bf16 training, random FaceNet,
    # no ImageNet weights, the generated data set.
    assert any('"precision": "bf16"' in t and '"pretrained": false' in t for t in texts.values())
    assert sum("random initialisation (smoke run" in t for t in texts.values()) == 3

    table = pd.read_csv(next((results / "reports" / "faces-smoke").glob("*/table.csv")))
    assert len(table) == 4 and (table["status"] == "finished").all()
    assert table["ppa_acc1"].notna().sum() == 3

    # The leaderboard reads the faces records like any other suite's.
    site = tmp_path / "site"
    built = run_cli("leaderboard", "build", "--results", results, "--out", site)
    assert built.code == 0, built.out + built.err
    assert "faces-smoke" in (site / "index.html").read_text()


def _one_line_error(result, *fragments: str, results: Path | None = None) -> str:
    """Exit 2, one line naming the fragments, and (``results``) no results folder written."""
    assert result.code == 2, result.out + result.err
    if results is not None:
        assert not results.exists(), sorted(p.name for p in results.iterdir())
    message = result.err.strip()
    assert "Traceback" not in result.out + result.err
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_root_names_the_option(run_cli, tmp_path):
    result = run_cli("run", "--suite", "faces", "--results", tmp_path / "r")
    _one_line_error(result, "data.root", "--data-root")
    assert not (tmp_path / "r").exists()


def test_missing_folder_names_path_layout_and_source(run_cli, tmp_path):
    missing = tmp_path / "no-such-facescrub"
    result = run_cli("run", "--suite", "faces", "--data-root", missing,
                     "--results", tmp_path / "r")
    _one_line_error(result, "data.root", str(missing), "actors/faces/<Identity_Name>",
                    "vintage.winklerbros.net/facescrub.html", results=tmp_path / "r")


def test_incomplete_facescrub_is_refused(run_cli, tmp_path):
    root = make_fake_facescrub(tmp_path / "facescrub", identities=4, images_per_identity=2,
                               size=16)
    result = run_cli("run", "--suite", "faces", "--data-root", root,
                     "--results", tmp_path / "r")
    _one_line_error(result, "found 4 identity folders, expected 530", results=tmp_path / "r")


def test_missing_celeba_files_are_named(run_cli, tmp_path):
    root = tmp_path / "celeba"
    root.mkdir()
    result = run_cli("run", "--suite", "faces", "--data-root", root, "--set",
                     "data.source=celeba", "--results", tmp_path / "r")
    _one_line_error(result, "identity_CelebA.txt", "img_align_celeba",
                    "mmlab.ie.cuhk.edu.hk/projects/CelebA.html", results=tmp_path / "r")


def test_missing_generator_files_are_named(run_cli, tmp_path):
    root = make_fake_facescrub(tmp_path / "facescrub", identities=4, images_per_identity=2,
                               size=16)
    common = ["run", "--suite", "faces", "--data-root", root, "--results", tmp_path / "r",
              "--set", "data.expected_identities=null", "--set", "defenses=[{name: none}]",
              "--set", "data.image_size=32"]
    result = run_cli(*common)
    _one_line_error(result, "prior.checkpoint", "ffhq.pkl", results=tmp_path / "r")
    checkpoint = tmp_path / "ffhq.pkl"
    checkpoint.write_bytes(b"not read before the code is there")
    result = run_cli(*common, "--set", f"prior.checkpoint={checkpoint}", "--set",
                     f"prior.stylegan_repo={tmp_path / 'stylegan2-ada-pytorch'}")
    _one_line_error(result, "prior.stylegan_repo", "dnnlib", "legacy.py",
                    "github.com/NVlabs/stylegan2-ada-pytorch", results=tmp_path / "r")


def test_attack_needing_a_discriminator_is_refused(run_cli, tmp_path, fake_data_home):
    result = run_cli("run", "--suite", "faces", "--smoke", "--results", tmp_path / "r",
                     "--set", "attacks=[{name: gmi}]")
    _one_line_error(result, "attacks[0].name", "gmi", "discriminator", results=tmp_path / "r")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--suite", "toy", "--smoke"], "no smoke version"),
    (["--smoke"], "--smoke"),
])
def test_smoke_needs_a_suite_with_a_smoke_version(run_cli, tmp_path, args, fragment):
    result = run_cli("run", *args, "--results", tmp_path / "r")
    _one_line_error(result, fragment, results=tmp_path / "r")


def test_trial_no_node_can_run_is_refused(ray_cluster, run_cli, tmp_path, fake_data_home):
    """gpu: 1 on a cluster without GPUs would leave Ray waiting forever."""
    result = run_cli("run", "--suite", "faces", "--smoke", "--results", tmp_path / "r",
                     "--set", "resources.prerequisites.gpu=1")
    _one_line_error(result, "resources.prerequisites.gpu", "no node of the Ray cluster",
                    "GPUs")
    assert not (tmp_path / "r").exists()  # refused before anything was recorded


@pytest.mark.parametrize(("params", "fragment"), [
    ("{pretrained: true, weights: /no/such/resnet18.pth}", "ImageNet weights file"),
    ("{pretrained: false, weights: /no/such/resnet18.pth}", "given with pretrained false"),
])
def test_bad_imagenet_weights_are_refused_before_any_trial(run_cli, tmp_path, fake_data_home,
                                                           params, fragment):
    result = run_cli("run", "--suite", "faces", "--smoke", "--results", tmp_path / "r",
                     "--set", f"target.params={params}")
    _one_line_error(result, "target.params", fragment, "/no/such/resnet18.pth")
    assert not (tmp_path / "r").exists()
