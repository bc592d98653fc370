"""Units of the faces suite on tiny generated data: lazy image reading (``LazyImages``) and its
equivalence with stacked tensors in the attack metrics, generated data sets on disk, the
supplied generator priors, the torchvision architectures in the registry, and the faces
pipeline's training task run directly (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lsmia_bench.attacks.priors.stylegan import ModuleGeneratorPrior, StyleGANPrior
from lsmia_bench.attacks.priors.supplied import build_supplied_prior, check_supplied_prior
from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.data.face_folders import (
    FaceImageDataset,
    LazyImages,
    face_eval_transform,
)
from lsmia_bench.benchmark.data.face_suite import (
    DATA_ENV,
    ensure_generated,
    generated_root,
    load_face_splits,
)
from lsmia_bench.benchmark.data.facescrub import load_facescrub
from lsmia_bench.benchmark.data.fake_faces import make_fake_facescrub
from lsmia_bench.benchmark.metrics.evaluate import PrivateData, evaluate_attack
from lsmia_bench.benchmark.models import ARCHITECTURES, build_classifier
from lsmia_bench.benchmark.pipelines.faces import SuppliedPrior
from lsmia_bench.kernel.attack_output import AttackOutput
from lsmia_bench.kernel.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_CNN = {"channels": [4, 8], "feature_dim": 16}
GENERATE = {"identities": 4, "images_per_identity": 6, "size": 24, "seed": 0}


def data_section(source: str, **extra) -> dict:
    return {"source": source, "root": None, "generate": dict(GENERATE), "train_fraction": 0.75,
            "split_seed": 42, "num_identities": 4, "image_folder": None,
            "expected_identities": None, **extra}


@pytest.fixture(scope="module")
def train_set(tmp_path_factory) -> FaceImageDataset:
    root = make_fake_facescrub(tmp_path_factory.mktemp("lazy"), identities=4,
                               images_per_identity=5, size=24)
    splits = load_facescrub(root)
    return splits.dataset("train", face_eval_transform(16))


# --- LazyImages --------------------------------------------------------------------------


def test_lazy_images_length_and_slices_match_stack(train_set):
    images = LazyImages(train_set, threads=1)
    assert len(images) == len(train_set) == 18  # int(0.9 * 20)
    for i, j in ((0, 5), (3, 11), (10, 18), (0, 18)):
        chunk = images[i:j]
        assert isinstance(chunk, torch.Tensor)
        assert chunk.shape == (j - i, 3, 16, 16)
        assert torch.equal(chunk, train_set.stack(range(i, j))[0])
    # A slice past the end is clipped like a tensor's; a step is honoured.
    assert torch.equal(images[15:100], train_set.stack(range(15, 18))[0])
    assert torch.equal(images[1:9:3], train_set.stack([1, 4, 7])[0])
    # Images differ from row to row (the comparison above is not vacuous).
    assert not torch.equal(images[0:1], images[1:2])


def test_lazy_images_int_index_returns_one_image(train_set):
    images = LazyImages(train_set, threads=1)
    one = images[4]
    assert one.shape == (3, 16, 16)
    assert torch.equal(one, train_set[4][0])
    assert torch.equal(images[np.int64(7)], train_set[7][0])
    assert torch.equal(images[-1], train_set[len(train_set) - 1][0])


def test_lazy_images_mask_and_index_tensor_give_subsets(train_set):
    images = LazyImages(train_set, threads=1)
    labels = torch.tensor(train_set.labels)
    mask = torch.isin(labels, torch.tensor([0, 2]))
    chosen = torch.nonzero(mask).flatten().tolist()
    assert 0 < len(chosen) < len(train_set)

    subset = images[mask]
    assert isinstance(subset, LazyImages)
    assert len(subset) == len(chosen)
    assert torch.equal(subset[0:len(subset)], train_set.stack(chosen)[0])
    assert torch.equal(subset[1], train_set[chosen[1]][0])

    index = torch.tensor([9, 2, 2, 14])
    picked = images[index]
    assert isinstance(picked, LazyImages)
    assert torch.equal(picked[:], train_set.stack([9, 2, 2, 14])[0])
    # A subset of a subset maps through both index lists.
    nested = subset[torch.tensor([len(chosen) - 1, 0])]
    assert torch.equal(nested[0:2], train_set.stack([chosen[-1], chosen[0]])[0])
    # A numpy index array works like a tensor.
    assert torch.equal(images[np.array([5, 3])][0:2], train_set.stack([5, 3])[0])


def test_lazy_images_threads_give_identical_tensors(train_set):
    serial, threaded = LazyImages(train_set, threads=1), LazyImages(train_set, threads=4)
    assert torch.equal(serial[0:len(serial)], threaded[0:len(threaded)])
    assert torch.equal(serial[2:13], threaded[2:13])
    mask = torch.arange(len(train_set)) % 3 == 0
    assert torch.equal(serial[mask][0:6], threaded[mask][0:6])
    assert threaded[mask].threads == 4


def test_lazy_images_empty_slice_and_empty_subset(train_set):
    images = LazyImages(train_set, threads=4)
    assert images[5:5].numel() == 0
    assert images[20:30].numel() == 0
    empty = images[torch.zeros(len(train_set), dtype=torch.bool)]
    assert isinstance(empty, LazyImages)
    assert len(empty) == 0
    assert empty[0:10].numel() == 0


# --- evaluate_attack: LazyImages == stacked tensors ----------------------------------------


def test_evaluate_attack_same_metrics_for_lazy_and_stacked_images(tmp_path):
    root = make_fake_facescrub(tmp_path / "faces", identities=4, images_per_identity=5, size=24)
    splits = load_facescrub(root)
    train = splits.dataset("train", face_eval_transform(16))
    test = splits.dataset("test", face_eval_transform(16))
    k = splits.num_classes
    train_labels, test_labels = torch.tensor(train.labels), torch.tensor(test.labels)
    stacked = PrivateData(train.stack()[0], train_labels, test.stack()[0], test_labels)
    lazy = PrivateData(LazyImages(train, threads=2), train_labels,
                       LazyImages(test, threads=2), test_labels)

    torch.manual_seed(0)
    evaluation = build_classifier("cnn", TINY_CNN, 3, 16, k, field="evaluation")
    attacked = test_labels.unique()[:2]  # classes with private test images (for xi)
    labels = attacked.repeat_interleave(3)
    output = AttackOutput(torch.rand(len(labels), 3, 16, 16, generator=torch.Generator()
                                     .manual_seed(1)), labels)

    def make_student(num_classes: int) -> nn.Module:
        return build_classifier("cnn", TINY_CNN, 3, 16, num_classes, field="student")

    options = {"num_classes": k, "epochs": 1, "batch_size": 8, "lr": 0.1, "seed": 0}
    results = [evaluate_attack(output, evaluation, private, face_suite=True,
                               facenet_weights="random", make_student=make_student,
                               student_options=options, prdc_k=2)
               for private in (stacked, lazy)]
    (metrics_stacked, info_stacked), (metrics_lazy, info_lazy) = results
    for name in ("attack_acc1", "delta_eval", "delta_face", "xi"):
        assert name in metrics_stacked, (name, info_stacked["missing"])
    # 2 attacked classes: the attacked class is always in the top 5, so Acc@5 means nothing.
    assert "Acc@5" in info_stacked["missing"]["attack_acc5"]
    assert metrics_lazy.keys() == metrics_stacked.keys()
    for name, value in metrics_stacked.items():
        assert metrics_lazy[name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert info_lazy["missing"] == info_stacked["missing"]
    assert info_lazy["private_reference_images"] == info_stacked["private_reference_images"] \
        == int(torch.isin(train_labels, attacked).sum())
    assert "random" in info_lazy["facenet_weights"]
    assert "random" in info_stacked["facenet_weights"]


def test_xi_is_missing_not_fatal_when_attacked_identities_have_no_test_images():
    """The paper's split is not stratified: with few images an identity can lack test images
    (found on the GPU check with 8 images per identity); the attack still gets its metrics."""
    torch.manual_seed(0)
    images = torch.rand(12, 3, 16, 16)
    train_labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    private = PrivateData(images, train_labels, images[:2], torch.tensor([3, 3]))
    evaluation = build_classifier("cnn", TINY_CNN, 3, 16, 4, field="evaluation")
    labels = torch.tensor([0, 0, 1, 1])
    output = AttackOutput(torch.rand(4, 3, 16, 16), labels)

    def make_student(num_classes: int) -> nn.Module:
        return build_classifier("cnn", TINY_CNN, 3, 16, num_classes, field="student")

    metrics, info = evaluate_attack(output, evaluation, private, make_student=make_student,
                                    student_options={"num_classes": 4, "epochs": 1}, prdc_k=1)
    assert "xi" not in metrics
    assert "no private test images" in info["missing"]["xi"]
    assert {"attack_acc1", "delta_eval"} <= set(metrics)


# --- generated data sets on disk ---------------------------------------------------------


def test_ensure_generated_writes_once_under_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "base"))
    settings = dict(GENERATE)
    root = ensure_generated("facescrub", settings)
    assert root.parent == tmp_path / "base"
    assert root == generated_root("facescrub", settings)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 4 * 6
    mtimes = {p: p.stat().st_mtime_ns for p in files}

    again = ensure_generated("facescrub", dict(settings))
    assert again == root
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    assert sorted(p for p in root.rglob("*") if p.is_file()) == files
    # No scratch folder is left behind.
    assert [p.name for p in (tmp_path / "base").iterdir()] == [root.name]


def test_generated_folders_differ_by_settings_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    base = generated_root("facescrub", GENERATE)
    others = [generated_root("facescrub", GENERATE | {"seed": 1}),
              generated_root("facescrub", GENERATE | {"size": 32}),
              generated_root("facescrub", GENERATE | {"identities": 5}),
              generated_root("celeba", GENERATE)]
    assert len({base, *others}) == 5
    assert all(p.parent == tmp_path for p in others)
    small = ensure_generated("facescrub", GENERATE | {"size": 16, "images_per_identity": 2})
    big = ensure_generated("facescrub", GENERATE | {"size": 20, "images_per_identity": 2})
    assert small != big
    from PIL import Image

    with Image.open(next(small.rglob("*.jpeg"))) as image:
        assert image.size == (16, 16)
    with Image.open(next(big.rglob("*.jpeg"))) as image:
        assert image.size == (20, 20)


def test_data_env_decides_base_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "one"))
    first = generated_root("celeba", GENERATE)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "two"))
    second = generated_root("celeba", GENERATE)
    assert first.parent == tmp_path / "one"
    assert second.parent == tmp_path / "two"
    assert first.name == second.name


@pytest.mark.parametrize("source", ["facescrub", "celeba"])
def test_load_face_splits_generated(source, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    splits = load_face_splits(data_section(source))
    assert splits.source == source
    assert Path(splits.root).parent == tmp_path
    assert splits.num_classes == 4
    assert len(splits.train_files) == 18 and len(splits.test_files) == 6  # 0.75 of 24
    assert set(splits.train_labels) | set(splits.test_labels) == {0, 1, 2, 3}
    assert set(splits.train_files).isdisjoint(splits.test_files)
    assert all(Path(f).is_file() and Path(f).is_relative_to(tmp_path)
               for f in splits.train_files + splits.test_files)

    again = load_face_splits(data_section(source))
    assert again.train_files == splits.train_files
    assert again.test_files == splits.test_files
    assert again.train_labels == splits.train_labels
    assert again.test_labels == splits.test_labels
    assert again.classes == splits.classes

    reshuffled = load_face_splits(data_section(source, split_seed=7))
    assert sorted(reshuffled.train_files + reshuffled.test_files) == \
        sorted(splits.train_files + splits.test_files)
    assert reshuffled.train_files != splits.train_files


# --- supplied priors ---------------------------------------------------------------------


GENERATOR_FILE = '''
from torch import nn


def make_generator(latent_dim=8, size=32):
    return nn.Sequential(nn.Linear(latent_dim, 3 * size * size), nn.Tanh(),
                         nn.Unflatten(1, (3, size, size)))


def make_nothing():
    return "not a module"
'''


def prior_spec(**fields) -> dict:
    return SuppliedPrior(**fields).model_dump()


def test_tiny_stylegan_prior_samples_at_target_size():
    spec = prior_spec(kind="tiny_stylegan", center_crop=24,
                      params={"z_dim": 16, "w_dim": 16, "resolution": 32, "width": 8, "seed": 0})
    prior = build_supplied_prior(spec, 16, 3)
    assert isinstance(prior, StyleGANPrior)
    assert prior.center_crop == 24
    with torch.no_grad():
        latents = prior.sample_latents(3, torch.Generator().manual_seed(0))
        images = prior(latents)
        raw = prior.generate(latents)
    assert latents.shape == (3, 1, 16)  # single_w
    assert raw.shape == (3, 3, 32, 32)
    assert images.shape == (3, 3, 16, 16)
    assert torch.isfinite(images).all()
    assert images.min() >= -1e-5 and images.max() <= 1 + 1e-5
    assert images.std() > 1e-3
    assert not torch.allclose(images[0], images[1])
    # The same seed gives the same generator.
    again = build_supplied_prior(spec, 16, 3)
    with torch.no_grad():
        assert torch.allclose(again(latents), images)


def test_module_prior_from_file_reference(tmp_path):
    path = tmp_path / "my_generator.py"
    path.write_text(GENERATOR_FILE)
    spec = prior_spec(kind="module", generator=f"{path}:make_generator", latent_dim=8,
                      value_range=(-1.0, 1.0), center_crop=None)
    prior = build_supplied_prior(spec, 16, 3)
    assert isinstance(prior, ModuleGeneratorPrior)
    assert not isinstance(prior, StyleGANPrior)
    assert prior.latent_shape == (8,)
    latents = prior.sample_latents(4)
    assert latents.shape == (4, 8)
    with torch.no_grad():
        images = prior(latents)
    assert images.shape == (4, 3, 16, 16)
    assert images.min() >= 0 and images.max() <= 1
    assert not any(p.requires_grad for p in prior.generator.parameters())
    check_supplied_prior(spec)  # a working module passes the early check


def test_module_prior_rejects_factory_returning_non_module(tmp_path):
    path = tmp_path / "bad_generator.py"
    path.write_text(GENERATOR_FILE)
    spec = prior_spec(kind="module", generator=f"{path}:make_nothing", latent_dim=8,
                      center_crop=None)
    with pytest.raises(UserError) as caught:
        build_supplied_prior(spec, 16, 3)
    assert caught.value.field == "prior.generator"
    assert "prior.generator" in str(caught.value)
    assert "str" in str(caught.value)
    with pytest.raises(UserError) as checked:
        check_supplied_prior(spec)
    assert checked.value.field == "prior.generator"


def test_stylegan2_ada_missing_checkpoint_names_field(tmp_path):
    spec = prior_spec(kind="stylegan2_ada", checkpoint=str(tmp_path / "missing.pkl"))
    with pytest.raises(UserError) as caught:
        build_supplied_prior(spec, 16, 3)
    assert caught.value.field == "prior.checkpoint"
    assert "missing.pkl" in str(caught.value)
    with pytest.raises(UserError) as checked:
        check_supplied_prior(spec)
    assert checked.value.field == "prior.checkpoint"
    with pytest.raises(UserError) as none_given:
        check_supplied_prior(prior_spec(kind="stylegan2_ada"))
    assert none_given.value.field == "prior.checkpoint"


def test_check_module_prior_without_generator():
    with pytest.raises(UserError) as caught:
        check_supplied_prior(prior_spec(kind="module"))
    assert caught.value.field == "prior.generator"
    assert "prior.generator" in str(caught.value)


# --- architectures -----------------------------------------------------------------------


def test_torchvision_architectures_registered():
    from lsmia_bench.benchmark.models.torchvision_nets import TORCHVISION_ARCHITECTURES

    names = ["resnet18", "resnet50", "resnet152", "densenet121", "densenet169", "inception_v3"]
    assert set(names) <= set(ARCHITECTURES.names())
    assert set(TORCHVISION_ARCHITECTURES) == set(names)
    for name in names:
        assert name in ARCHITECTURES
        assert ARCHITECTURES.get(name) is TORCHVISION_ARCHITECTURES[name]
    assert len({ARCHITECTURES.get(n) for n in names}) == len(names)


# --- train_face_classifier ---------------------------------------------------------------


def face_training_spec() -> dict:
    return {
        "data": data_section("celeba", image_size=16, num_workers=0),
        "model": {"name": "cnn", "params": dict(TINY_CNN)},
        "training": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0,
                     "epochs": 2, "batch_size": 8,
                     "scheduler": {"milestones": [], "gamma": 0.1},
                     "augmentation": {"resized_crop_scale": [0.85, 1.0],
                                      "resized_crop_ratio": [1.0, 1.0],
                                      "color_jitter": [0.2, 0.2, 0.1, 0.1], "flip": 0.5},
                     "precision": None, "eval_every": 1},
        "defense": {"name": "none", "params": {}},
        "seed": 0,
    }


def test_train_face_classifier_on_generated_celeba(tmp_path, monkeypatch):
    from lsmia_bench.benchmark.pipelines.face_tasks import train_face_classifier
    from lsmia_bench.benchmark.pipelines.image_tasks import load_image_classifier

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    out = tmp_path / "out"
    out.mkdir()
    result = train_face_classifier(face_training_spec(), {}, out, TaskContext())
    for name in ("model.pt", "model.json", "embedding.png"):
        assert (out / name).is_file(), name
    assert 0 <= result.metrics["test_accuracy"] <= 1
    assert 0 <= result.metrics["final_train_accuracy"] <= 1
    assert result.metrics["epochs"] == 2
    assert len(result.series["test_accuracy_by_epoch"]) == 2
    assert all(0 <= a <= 1 for a in result.series["test_accuracy_by_epoch"])
    assert result.info["data"]["source"] == "celeba"
    assert result.info["data"]["num_classes"] == 4
    assert Path(result.info["data"]["root"]).parent == tmp_path / "data"
    model_spec = json.loads((out / "model.json").read_text())
    assert model_spec["num_classes"] == 4 and model_spec["image_size"] == 16

    model = load_image_classifier(out)
    assert not model.training
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 4)
    state = torch.load(out / "model.pt", weights_only=True)
    rebuilt = build_classifier("cnn", TINY_CNN, 3, 16, 4)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), logits)


def test_train_face_classifier_is_reproducible(tmp_path, monkeypatch):
    from lsmia_bench.benchmark.pipelines.face_tasks import train_face_classifier

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    states, results = [], []
    for name in ("first", "second"):
        out = tmp_path / name
        out.mkdir()
        results.append(train_face_classifier(face_training_spec(), {}, out, TaskContext()))
        states.append(torch.load(out / "model.pt", weights_only=True))
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert results[0].series["train_loss"] == results[1].series["train_loss"]
    assert results[0].metrics["test_accuracy"] == results[1].metrics["test_accuracy"]


def test_generated_celeba_caps_identities_at_those_generated(tmp_path, monkeypatch):
    """The faces suite's default num_identities (1000, paper) on a generated set of 4."""
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    splits = load_face_splits(data_section("celeba", num_identities=1000))
    assert splits.num_classes == 4
    assert len(load_face_splits(data_section("celeba", num_identities=3)).classes) == 3
