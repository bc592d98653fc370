"""The defense interface: MID's bottleneck model, BiDO's loss, each built-in's effect on the loss,
and in-process training of the toy MLP (no Ray)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lsmia_bench.benchmark.context import TaskContext
from lsmia_bench.benchmark.data.blobs import toy_blobs
from lsmia_bench.benchmark.metrics.utility import accuracy
from lsmia_bench.benchmark.models.mlp import ToyMLP
from lsmia_bench.benchmark.training import capture_features, predict, train_classifier
from lsmia_bench.defenses import DEFENSES, Classifier, Defense, LossInputs
from lsmia_bench.defenses.bido import BiDO
from lsmia_bench.defenses.dependence import coco, normalized_hsic
from lsmia_bench.defenses.mid import MID, gaussian_kl_to_standard_normal, split_statistics

CENTERS = [[0.0, -10.0], [-10.0, 10.0], [10.0, 10.0]]


def _toy_model() -> ToyMLP:
    torch.manual_seed(42)
    return ToyMLP(2, 20, 3)


def _batch(n: int = 60, seed: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    return toy_blobs(n, CENTERS, 1.6, random_state=seed)


def _loss_inputs(defense: Defense, model: torch.nn.Module, inputs, targets,
                 progress: float = 0.9) -> LossInputs:
    """One training-mode forward with the defense's features captured, as the loop does it."""
    model.train()
    with capture_features(model, defense.feature_layers(model)) as features:
        logits = model(inputs)
        return LossInputs(logits=logits, targets=targets, inputs=inputs, num_classes=3,
                          progress=progress, model=model, features=dict(features))


#: Defenses that change the loss; the others (tl_dmi, dp_sgd) change how training runs
#: (``prepare_training``), tested in tests/test_defenses_training_hooks.py.
LOSS_DEFENSES = [n for n in DEFENSES.names()
                 if n != "none" and DEFENSES.get(n).loss is not Defense.loss]


def test_every_defense_changes_the_loss_or_the_training():
    for name in DEFENSES.names():
        cls = DEFENSES.get(name)
        assert name == "none" or name in LOSS_DEFENSES \
            or cls.prepare_training is not Defense.prepare_training, name
    assert {"label_smoothing", "mid", "bido"} <= set(LOSS_DEFENSES)


@pytest.mark.parametrize("name", LOSS_DEFENSES)
def test_each_defense_changes_the_training_loss_relative_to_none(name):
    defense = DEFENSES.get(name)()
    model = defense.wrap_model(_toy_model())
    inputs, targets = _batch()
    batch = _loss_inputs(defense, model, inputs, targets)
    plain = DEFENSES.get("none")().loss(batch)  # cross-entropy of the very same logits
    changed = defense.loss(batch)
    assert torch.isfinite(changed)
    assert abs(changed.item() - plain.item()) > 1e-4
    changed.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_builtins_are_registered_with_metadata():
    for name in DEFENSES.names():
        cls = DEFENSES.get(name)
        assert issubclass(cls, Defense) and cls.name == name and cls.summary
    for name in (n for n in DEFENSES.names() if DEFENSES.get(n).strength is not None):
        cls = DEFENSES.get(name)
        assert cls.paper and cls.paper_url.startswith("https://arxiv.org/")
        assert cls.strength in cls.hyperparameters()


# --- MID ---------------------------------------------------------------------------------------

def test_mid_wraps_a_bottleneck_that_keeps_the_classifier_contract():
    model = MID().wrap_model(_toy_model())
    assert isinstance(model, Classifier)
    assert model.feature_dim == 10  # k = feature_dim // 2 = 20 // 2
    assert model.encoder.out_features == 20 and model.head.in_features == 10
    assert model.head.bias is None  # the toy MLP's head has no bias; so has the new one
    modules = dict(model.named_modules())
    assert model.hidden_layers == ["base.body.2", "base.body.5"]
    assert all(name in modules for name in model.hidden_layers)
    assert isinstance(model.base.head, torch.nn.Identity)  # the old head is not used
    assert MID(bottleneck_dim=3).wrap_model(_toy_model()).feature_dim == 3


def test_mid_samples_while_training_and_uses_the_mean_at_test_time():
    model = MID().wrap_model(_toy_model())
    inputs, _ = _batch()
    model.train()
    with torch.no_grad():
        statistics = model.encoder(model.base.embed(inputs))
        mu, std = split_statistics(statistics, 10)
        assert torch.allclose(std, F.softplus(statistics[:, 10:] - 5.0))
        assert not torch.allclose(model(inputs), model(inputs))  # z = mu + std * eps
    model.eval()
    with torch.no_grad():
        first, second = model(inputs), model(inputs)
        mu_eval = model.embed(inputs)
        assert torch.equal(first, second)
        assert torch.allclose(first, model.head(mu_eval))


def test_mid_loss_is_cross_entropy_plus_beta_times_kl_of_the_same_forward():
    defense = MID(beta=0.02)
    model = defense.wrap_model(_toy_model())
    inputs, targets = _batch()
    batch = _loss_inputs(defense, model, inputs, targets)
    mu, std = split_statistics(batch.features["encoder"], 10)
    expected = F.cross_entropy(batch.logits, targets) + 0.02 * gaussian_kl_to_standard_normal(
        mu, std)
    assert defense.loss(batch).item() == pytest.approx(expected.item(), rel=1e-6)
    assert MID(beta=0.0).loss(batch).item() == pytest.approx(
        F.cross_entropy(batch.logits, targets).item(), rel=1e-6)


def test_mid_refuses_negative_beta():
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        MID(beta=-0.1)


# --- BiDO --------------------------------------------------------------------------------------

def test_bido_defaults_follow_the_authors():
    hsic = BiDO()
    assert (hsic.measure, hsic.lambda_x, hsic.lambda_y) == ("hsic", 0.05, 0.5)
    assert (hsic.label_kernel, hsic.sigma) == ("linear", 5.0)
    coco_default = BiDO(measure="COCO")
    assert (coco_default.measure, coco_default.lambda_x, coco_default.lambda_y) == (
        "coco", 1.0, 50.0)
    assert BiDO(measure="coco", lambda_y=5.0).lambda_x == 1.0
    assert BiDO(measure="coco", lambda_y=5.0).lambda_y == 5.0
    with pytest.raises(ValueError):
        BiDO(measure="mutual_information")
    with pytest.raises(ValueError):
        BiDO(lambda_x=-1.0)


@pytest.mark.parametrize(("measure", "label_kernel"), [("hsic", "linear"), ("coco", "gaussian")])
def test_bido_loss_matches_the_authors_formula(measure, label_kernel):
    defense = BiDO(measure=measure, label_kernel=label_kernel, lambda_x=0.3, lambda_y=2.0)
    model = _toy_model()
    inputs, targets = _batch()
    batch = _loss_inputs(defense, model, inputs, targets)
    assert list(batch.features) == ["body.2", "body.5"]  # the model's hidden_layers
    dep = normalized_hsic if measure == "hsic" else coco
    onehot = F.one_hot(targets, 3).float()
    expected = F.cross_entropy(batch.logits, targets)
    for hidden in batch.features.values():
        # Authors: Gaussian kernels on activations and inputs; ``ktype`` only on the labels.
        expected = expected + 0.3 * dep(hidden, inputs, "gaussian", "gaussian", 5.0)
        expected = expected - 2.0 * dep(hidden, onehot, "gaussian", label_kernel, 5.0)
    assert defense.loss(batch).item() == pytest.approx(expected.item(), rel=1e-4)


def test_bido_layers_are_configurable_and_checked():
    model = _toy_model()
    assert BiDO().feature_layers(model) == ["body.2", "body.5"]
    assert BiDO(layers=["body.5"]).feature_layers(model) == ["body.5"]
    with pytest.raises(ValueError, match="no submodules"):
        BiDO(layers=["body.9"]).feature_layers(model)


def test_bido_on_image_shaped_inputs_flattens_per_sample():
    from lsmia_bench.benchmark.plugin_check import ProbeClassifier, probe_batch

    defense, model = BiDO(), ProbeClassifier()
    inputs, targets = probe_batch()
    model.train()
    with capture_features(model, defense.feature_layers(model)) as features:
        logits = model(inputs)
        batch = LossInputs(logits, targets, inputs, 4, 0.0, model, dict(features))
    pairs = defense.dependencies(batch)
    assert len(pairs) == 2 and all(torch.isfinite(torch.stack(p)).all() for p in pairs)


# --- training (the shared loop, no Ray) ---------------------------------------------------------

@pytest.mark.parametrize("defense", [MID(), BiDO(), BiDO(measure="coco")],
                         ids=["mid", "bido-hsic", "bido-coco"])
def test_defense_trains_the_toy_mlp(defense, one_torch_thread):
    x_train, y_train = _batch(150, seed=17)
    x_test, y_test = _batch(150, seed=18)
    torch.manual_seed(0)
    model = defense.wrap_model(_toy_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    history = train_classifier(model, defense, lambda: [(x_train, y_train)], optimizer, 150,
                               num_classes=3, ctx=TaskContext())
    assert history.train_loss[-1] < history.train_loss[0]
    assert accuracy(predict(model, x_test), y_test) > 0.9


# --- the image architectures -------------------------------------------------------------------

@pytest.mark.parametrize("architecture", ["cnn", "resnet", "mlp"])
def test_mid_and_bido_fit_every_image_architecture(architecture, one_torch_thread):
    from lsmia_bench.benchmark.models import build_classifier, contract_problems
    from lsmia_bench.benchmark.plugin_check import check_defense

    inputs, targets = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    for defense in (MID(), BiDO(), BiDO(measure="coco")):
        model = build_classifier(architecture, {}, in_channels=1, image_size=8, num_classes=10)
        check_defense(defense, "defenses[0].name", defense.name, model, (inputs, targets), 10)
        wrapped = defense.wrap_model(
            build_classifier(architecture, {}, in_channels=1, image_size=8, num_classes=10))
        assert contract_problems(wrapped) == []
