"""The paper's evaluation on faces: FID/PRDC feature space, the evaluation model's input path,
xi's student transform, FaceNet's input, and the site's name for the feature space."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
import yaml
from torch import nn

from lsmia_bench.attacks.priors.supplied import build_supplied_prior
from lsmia_bench.benchmark.metrics.evaluate import AttackEvaluation, PrivateData
from lsmia_bench.benchmark.metrics.face import facenet_input, fixed_image_standardization
from lsmia_bench.benchmark.metrics.features import (
    FID_WEIGHTS,
    fid_inception_architecture,
    select_feature_space,
)
from lsmia_bench.benchmark.metrics.inputs import GeneratedImages, student_augmentation
from lsmia_bench.benchmark.pipelines.face_tasks import face_evaluation_inputs
from lsmia_bench.benchmark.pipelines.faces import FacesConfig, FacesPipeline, SuppliedPrior
from lsmia_bench.kernel.attack_output import AttackOutput
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.leaderboard.columns import in_feature_spaces, metric_info


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


class Embedder(nn.Module):
    """A stand-in evaluation model with the classifier contract (embed + head)."""

    def __init__(self, pixels: int = 3 * 8 * 8, classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Linear(pixels, 6)
        self.head = nn.Linear(6, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@pytest.fixture(scope="module")
def fid_state():
    torch.manual_seed(0)
    return fid_inception_architecture().state_dict()


def reference_pool3(state: dict, images: torch.Tensor) -> torch.Tensor:
    """FID Inception pool3 features written out: torchvision's forward with the head removed
    on 2 x - 1 of the images resized to 299 px (bilinear)."""
    net = fid_inception_architecture()
    net.load_state_dict(state)
    net.fc = nn.Identity()
    x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        return net.eval()(2 * x - 1)


def test_fid_space_is_the_evaluation_model_without_weights(empty_hub):
    model = Embedder()
    images = torch.rand(4, 3, 8, 8)
    space = select_feature_space(model)
    assert space.name == "evaluation_model"
    assert torch.allclose(space.extract(images), model.embed(images).detach())
    with pytest.raises(UserError, match="privacy.fid_inception_weights"):
        select_feature_space(model, empty_hub / "absent.pth")


def test_fid_space_is_pytorch_fids_inception_with_weights_on_disk(empty_hub, tmp_path,
                                                                  fid_state):
    """Random weights of the FID network's architecture, from an explicit file and from the
    torch hub cache: the pool3 features of pytorch-fid's InceptionV3 equal the reference."""
    explicit = tmp_path / "weights.pth"
    torch.save(fid_state, explicit)
    images = torch.rand(1, 3, 40, 40)  # one image: Inception at 299 px is slow on a CPU
    expected = reference_pool3(fid_state, images)
    space = select_feature_space(Embedder(), explicit)
    assert space.name == "fid_inception_v3"
    features = space.extract(images)
    assert features.shape == (1, 2048)
    assert torch.allclose(features, expected, atol=1e-4)

    cached = empty_hub / "checkpoints" / FID_WEIGHTS
    cached.parent.mkdir(parents=True)
    torch.save(fid_state, cached)
    space = select_feature_space(Embedder())
    assert space.name == "fid_inception_v3"
    assert torch.equal(space.network.blocks[0][0].conv.weight,
                       fid_state["Conv2d_1a_3x3.conv.weight"])


def test_foreign_weights_are_a_user_error(tmp_path):
    path = tmp_path / FID_WEIGHTS
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(UserError, match="privacy.fid_inception_weights"):
        select_feature_space(Embedder(), path)


def tiny_prior(size: int, crop: int = 50):
    spec = SuppliedPrior(kind="tiny_stylegan", center_crop=crop,
                         params={"z_dim": 16, "w_dim": 16, "resolution": 64, "width": 8,
                                 "seed": 0}).model_dump()
    return build_supplied_prior(spec, size, 3)


def test_evaluation_inputs_come_from_the_latents_at_the_evaluation_size():
    """As PPA's code: raw -> center crop -> resized straight to the evaluation size (299 px on
    faces), not via the target's size; values mapped to [0, 1] and not clamped."""
    prior = tiny_prior(size=16)
    with torch.no_grad():
        latents = prior.sample_latents(5, torch.Generator().manual_seed(1))
        raw = prior.generate(latents)
        reconstructions = prior(latents).clamp(0, 1)
    expected = F.interpolate((TF.center_crop(raw, [50, 50]) + 1) / 2, size=(40, 40),
                             mode="bilinear", align_corners=False, antialias=True)
    generated = GeneratedImages(prior, latents, 40, batch_size=2)
    assert len(generated) == 5
    assert torch.allclose(generated[0:5], expected, atol=1e-5)
    assert torch.allclose(generated[1:3], expected[1:3], atol=1e-5)
    via_target = F.interpolate(reconstructions, size=(40, 40), mode="bilinear",
                               align_corners=False)
    assert not torch.allclose(generated[0:5], via_target, atol=1e-3)

    evaluation = Embedder(3 * 40 * 40)
    evaluation.resize_to = 40
    output = AttackOutput(reconstructions, torch.tensor([0, 1, 2, 0, 1]), latents=latents)
    inputs, note = face_evaluation_inputs(output, prior, evaluation, 16)
    assert isinstance(inputs, GeneratedImages) and "center crop 50" in note and "40 px" in note
    private = PrivateData(torch.rand(6, 3, 40, 40), torch.tensor([0, 1, 2] * 2),
                          torch.rand(3, 3, 40, 40), torch.tensor([0, 1, 2]))
    context = AttackEvaluation(output, evaluation, private, evaluation_inputs=inputs)
    with torch.no_grad():
        assert torch.allclose(context.evaluation_logits, evaluation(expected), atol=1e-5)
        assert torch.allclose(context.space_features, evaluation.embed(expected), atol=1e-5)

    without, note = face_evaluation_inputs(AttackOutput(reconstructions, output.labels), prior,
                                           evaluation, 16)
    assert without is None and note == "the reconstructions at 16 px, resized to 40 px"


def test_student_augmentation_is_crop_flip_clamp():
    images = torch.rand(4, 3, 12, 12) * 1.4 - 0.2  # outside [0, 1]: the clamp shows
    keep = student_augmentation(12, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)
    assert torch.allclose(keep(images), images.clamp(0, 1))
    flipped = student_augmentation(12, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    assert torch.allclose(flipped(images), images.flip(-1).clamp(0, 1))
    torch.manual_seed(0)
    cropped = student_augmentation(12, scale=(0.8, 1.0))(images)
    assert cropped.shape == images.shape
    assert cropped.min() >= 0 and cropped.max() <= 1


def test_facenet_input_is_fixed_image_standardization():
    from facenet_pytorch import fixed_image_standardization as facenet_standardization

    x = torch.rand(2, 3, 160, 160)
    assert torch.allclose(fixed_image_standardization(x), (255 * x - 127.5) / 128)
    assert torch.allclose(facenet_input(x), facenet_standardization(x * 255), atol=1e-6)
    big = torch.rand(2, 3, 224, 224)
    resized = F.interpolate(big, size=(160, 160), mode="bilinear", align_corners=False,
                            antialias=True)
    assert torch.allclose(facenet_input(big), (255 * resized - 127.5) / 128, atol=1e-5)
    grey = torch.rand(1, 1, 160, 160)
    assert torch.allclose(facenet_input(grey), fixed_image_standardization(grey).expand(
        -1, 3, -1, -1))


def test_site_names_the_feature_space():
    fid = metric_info("fid", "attacks")
    assert in_feature_spaces(fid, {"evaluation_model"}).title == "FID (eval-model features)"
    assert "not comparable" in in_feature_spaces(fid, {"evaluation_model"}).explanation
    assert in_feature_spaces(fid, {"fid_inception_v3"}).title == "FID"
    assert in_feature_spaces(metric_info("precision", "attacks"),
                             {"evaluation_model"}).title.endswith("(eval-model features)")
    assert "mixed" in in_feature_spaces(fid, {"evaluation_model", "fid_inception_v3"}).title
    acc = metric_info("attack_acc1", "attacks")
    assert in_feature_spaces(acc, {"evaluation_model"}) == acc


def test_faces_suite_follows_the_authors_student(tmp_path):
    from pathlib import Path

    from lsmia_bench.configs import __file__ as configs_init

    raw = yaml.safe_load((Path(configs_init).parent / "faces.yaml").read_text())
    raw["data"]["root"] = str(tmp_path)
    config = FacesConfig.model_validate(raw)
    assert config.privacy.student.name == "resnet50"
    assert config.privacy.student_augmentation.resized_crop_scale == (0.8, 1.0)
    attacks = [job for job in FacesPipeline().plan(config) if job.stage == "attacks"]
    assert attacks and all(job.spec["student"]["name"] == "resnet50" for job in attacks)
    assert attacks[0].spec["privacy"]["student_augmentation"]["flip"] == 0.5
