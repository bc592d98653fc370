"""Privacy metrics against hand-computed values and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lsmia_bench.benchmark.metrics.face import (
    FACENET_WEIGHTS,
    delta_face,
    facenet_features,
    find_facenet_weights,
    load_facenet,
)
from lsmia_bench.benchmark.metrics.features import select_feature_space
from lsmia_bench.benchmark.metrics.privacy import (
    attack_accuracy,
    delta,
    frechet_distance,
    knowledge_extraction_score,
    mean_gradient_stability,
    nearest_class_distances,
    prdc,
)
from lsmia_bench.kernel.errors import UserError


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small networks run fastest (and steadiest on a shared machine) on one thread."""


def test_attack_accuracy_top1_and_top5():
    logits = torch.tensor([
        [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],   # class 0 first
        [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],   # class 1 last of 7: not in the top 5
        [1.0, 2.0, 9.0, 3.0, 4.0, 5.0, 6.0],   # class 3: rank 5 (9, 6, 5, 4, 3)
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0],   # class 5: rank 2
    ])
    labels = torch.tensor([0, 1, 3, 5])
    assert attack_accuracy(logits, labels, k=1) == pytest.approx(1 / 4)
    assert attack_accuracy(logits, labels, k=5) == pytest.approx(3 / 4)


def test_delta_uses_the_nearest_private_feature_of_the_same_class():
    features = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.5]])
    labels = torch.tensor([0, 0, 1])
    private = torch.tensor([[1.0, 0.0], [0.0, 5.0], [10.0, 10.0], [1.0, 2.0]])
    private_labels = torch.tensor([0, 0, 1, 1])
    # 0: min(1, 25) = 1; 1: min(4 + 16, 9 + 1) = 10; 2 (class 1 only): min(81 + 90.25, 2.25)
    distances = nearest_class_distances(features, labels, private, private_labels)
    assert distances.tolist() == pytest.approx([1.0, 10.0, 2.25])
    assert delta(features, labels, private, private_labels) == pytest.approx(13.25 / 3)
    with pytest.raises(ValueError, match="class 2"):
        delta(features, torch.tensor([0, 0, 2]), private, private_labels)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    a = np.random.default_rng(0).normal(size=(400, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(torch.tensor(a), torch.tensor(a)) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift():
    a = np.random.default_rng(1).normal(size=(300, 4)) @ np.diag([1.0, 2.0, 0.5, 3.0])
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    # Same covariance: Tr(S + S - 2 (S S)^(1/2)) = 0, so FD = ||shift||^2 = 5.25.
    assert frechet_distance(a, a + shift) == pytest.approx(5.25, rel=1e-8)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(2)
    n = 40_000
    a = rng.normal(size=(n, 2)) * np.array([1.0, 2.0])
    b = rng.normal(size=(n, 2)) * np.array([2.0, 3.0]) + np.array([1.0, -2.0])
    # Diagonal covariances: FD = ||mu_a - mu_b||^2 + sum_i (sigma_a,i - sigma_b,i)^2 = 5 + 2
    assert frechet_distance(a, b) == pytest.approx(7.0, rel=0.03)


def test_frechet_distance_survives_singular_covariances():
    a = np.zeros((50, 3))
    a[:, 0] = np.random.default_rng(3).normal(size=50)  # two constant dimensions
    assert frechet_distance(a, a + np.array([0.0, 1.0, 1.0])) == pytest.approx(2.0, abs=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], a)


def test_prdc_on_points_on_a_line():
    real = np.arange(10.0).reshape(-1, 1)
    fake = np.array([[0.5], [4.5], [100.0], [200.0], [300.0]])
    # k = 3 radii (distance to the 3rd neighbour): reals 0 and 9 -> 3, the others -> 2;
    # fake 0.5 -> 199.5, so its ball holds every real.
    # precision: 0.5 and 4.5 lie in real balls, 100, 200, 300 do not -> 2/5.
    # recall: every real lies in fake 0.5's ball -> 1.
    # density: fake 0.5 lies in the balls of reals 0, 1, 2; fake 4.5 in those of 3, 4, 5, 6
    #          -> (3 + 4) / (3 * 5) = 7/15.
    # coverage: reals 0-6 have a fake within their radius, 7 (2.5 > 2), 8 (3.5 > 2) and
    #           9 (4.5 > 3) do not -> 7/10.
    values = prdc(real, fake, k=3)
    assert values == pytest.approx({"precision": 0.4, "recall": 1.0, "density": 7 / 15,
                                    "coverage": 0.7})
    with pytest.raises(ValueError, match="at least 5"):
        prdc(real, fake[:4], k=3)


def test_prdc_prints_nothing(capsys):
    points = np.random.default_rng(4).normal(size=(20, 3))
    assert prdc(points, points, k=3)["coverage"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""


def test_mean_gradient_stability_per_tracked_sample():
    steady = [[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]]  # cos = 1, 1
    flipping = [[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]]  # cos = -1, -1
    turning = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # cos = 0, 1/sqrt(2)
    gradients = torch.tensor([steady, flipping, turning]).transpose(0, 1)  # (T=3, S=3, D=2)
    expected = (1.0 + -1.0 + (0 + 1 / math.sqrt(2)) / 2) / 3
    assert mean_gradient_stability(gradients) == pytest.approx(expected)
    assert math.isnan(mean_gradient_stability(gradients[:1]))


def blobs(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0], [8.0, 8.0]])
    labels = torch.arange(4).repeat_interleave(n_per_class)
    return centers[labels] + torch.randn(len(labels), 2, generator=generator), labels


def test_knowledge_extraction_score_rewards_informative_samples():
    samples, labels = blobs(30, seed=0)
    keep = labels < 3  # the attack covered classes 0-2; class 3 is not scored
    samples, labels = samples[keep], labels[keep]
    test_images, test_labels = blobs(50, seed=1)

    def student(num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, num_classes))

    informative = knowledge_extraction_score(samples, labels, test_images, test_labels, student,
                                             epochs=20, seed=0)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))]
    uninformative = knowledge_extraction_score(samples, shuffled, test_images, test_labels,
                                               student, epochs=20, seed=0)
    assert informative > 0.95
    assert uninformative < 0.7
    with pytest.raises(ValueError, match="attacked classes"):
        knowledge_extraction_score(samples, labels, test_images[-5:], test_labels[-5:], student)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    # Patch the module's setting itself: torch.hub.set_dir(previous) would pin the hub folder
    # for the rest of the session and hide later TORCH_HOME changes from other tests.
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_delta_face_is_missing_without_weights(empty_hub):
    images, labels = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    assert find_facenet_weights() is None
    assert delta_face(images, labels, images, labels) is None
    with pytest.raises(UserError, match="file not found"):
        find_facenet_weights(empty_hub / "absent.pt")


def test_delta_face_loads_weights_from_the_hub_cache(empty_hub):
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    # A checkpoint of the same layout as VGGFace2's (with its classifier, which is dropped).
    state = InceptionResnetV1(classify=True, num_classes=3).state_dict()
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(state, empty_hub / "checkpoints" / FACENET_WEIGHTS)
    assert find_facenet_weights() == empty_hub / "checkpoints" / FACENET_WEIGHTS
    faces = torch.rand(3, 1, 20, 20)
    labels = torch.tensor([0, 0, 1])
    assert delta_face(faces, labels, faces, labels) == pytest.approx(0.0, abs=1e-8)
    features = facenet_features(load_facenet(find_facenet_weights()), faces)
    assert features.shape == (3, 512)
    assert features.norm(dim=1).tolist() == pytest.approx([1.0] * 3)  # unit embeddings
    assert delta(features[:1], labels[:1], features[1:], labels[1:]) > 0


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def test_feature_space_is_named(empty_hub):
    """Without pytorch-fid's weights the evaluation model's features, named so (the FID
    Inception path: tests/test_paper_evaluation.py)."""
    model = Embedder()
    images = torch.rand(5, 1, 2, 2)
    space = select_feature_space(model)
    assert space.name == "evaluation_model"
    assert torch.allclose(space.extract(images), model.embed(images).detach())


class BlobClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 8), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def test_evaluate_attack_on_a_perfect_attack():
    """Reconstructions equal to the private training points of the attacked classes: delta 0,
    FID 0, full precision/recall/coverage, and Acc@1 = the evaluation model's own accuracy."""
    from lsmia_bench.benchmark.metrics.evaluate import PrivateData, evaluate_attack
    from lsmia_bench.kernel.attack_output import AttackOutput

    train, train_labels = blobs(70, seed=0)  # 210 per side: PRDC needs 200
    test, test_labels = blobs(20, seed=1)
    torch.manual_seed(0)
    evaluation = BlobClassifier()
    optimizer = torch.optim.Adam(evaluation.parameters(), lr=0.05)
    for _ in range(100):
        loss = nn.functional.cross_entropy(evaluation(train), train_labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    attacked = train_labels < 3
    gradients = torch.tensor([[[1.0, 0.0]], [[1.0, 0.1]], [[0.9, 0.0]]])  # (T=3, S=1, D=2)
    output = AttackOutput(train[attacked], train_labels[attacked], {"gradients": gradients})
    private = PrivateData(train, train_labels, test, test_labels)

    def student(num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, num_classes))

    metrics, info = evaluate_attack(output, evaluation, private, make_student=student,
                                    student_options={"epochs": 15})
    expected_acc = attack_accuracy(evaluation(train[attacked]).detach(), train_labels[attacked])
    assert metrics["attack_acc1"] == pytest.approx(expected_acc)
    # 3 attacked classes: the attacked class is always in the top 5, so Acc@5 means nothing.
    assert "attack_acc5" not in metrics and "Acc@5" in info["missing"]["attack_acc5"]
    assert metrics["delta_eval"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["precision"] == metrics["recall"] == metrics["coverage"] == 1.0
    assert metrics["xi"] > 0.9
    assert metrics["gradient_stability"] == pytest.approx(mean_gradient_stability(gradients))
    assert info["feature_space"] == "evaluation_model"
    # Missing only: Acc@5 (above) and metrics of a target model, which this test gives none.
    assert {k for k, why in info["missing"].items() if "no target" not in why} == {"attack_acc5"}
    assert info["private_reference_images"] == 210
    # Within-trial intervals: means over reconstructions, xi over test images, sets (FID...).
    units = {name: interval.unit for name, interval in info["intervals"].items()}
    assert units["attack_acc1"] == units["delta_eval"] == units["fid"] == "reconstructions"
    assert units["xi"] == "test images" and "gradient_stability" not in units
    for name in ("attack_acc1", "delta_eval", "xi"):  # a mean lies inside its interval
        interval = info["intervals"][name]
        assert interval.low - 1e-9 <= metrics[name] <= interval.high + 1e-9
    assert list(info["per_reconstruction"]) == ["label", "attack_acc1", "delta_eval"]

    few = AttackOutput(train[:3], train_labels[:3], {"gradients": gradients[:1]})
    metrics, info = evaluate_attack(few, evaluation, private)
    assert "precision" not in metrics and "at least 200" in info["missing"]["precision"]
    assert set(info["missing"]) >= {"xi", "gradient_stability"}


def test_prdc_on_resampled_rows_equals_the_authors_package():
    """The interval's fast PRDC (distances computed once) gives the package's numbers on the
    whole set and on a resample with duplicates (the package run on the resampled array)."""
    from lsmia_bench.benchmark.metrics.privacy import PrdcOnRows

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(0.3, 1.0, size=(40, 4))
    fast = PrdcOnRows(real, fake, k=3)
    assert fast(np.arange(40)) == pytest.approx(prdc(real, fake, k=3), abs=1e-12)
    rows = rng.integers(0, 40, 40)
    assert fast(rows) == pytest.approx(prdc(real, fake[rows], k=3), abs=1e-12)
