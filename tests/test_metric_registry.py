"""The metric registry: every recorded metric declared completely, validity rules, and an
evaluation that computes exactly the metrics a suite lists."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsmia_bench.benchmark.config import validate_suite
from lsmia_bench.benchmark.metrics import METRICS
from lsmia_bench.benchmark.metrics.evaluate import PrivateData, evaluate_attack
from lsmia_bench.benchmark.pipelines.image import ImageConfig
from lsmia_bench.benchmark.pipelines.toy import ToyConfig
from lsmia_bench.kernel.attack_output import AttackOutput
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.metrics import Setting
from lsmia_bench.leaderboard.columns import ATTACK_METRICS, TARGET_METRICS, metric_info
from lsmia_bench.leaderboard.ranking import RANKING_PRIVACY_METRICS

PIPELINES = {"image", "faces", "toy"}


@pytest.mark.parametrize("spec", list(METRICS), ids=lambda s: s.name)
def test_every_declaration_is_complete(spec):
    for text in (spec.name, spec.title, spec.explanation, spec.formula, spec.aggregation):
        assert isinstance(text, str) and text.strip(), spec
    assert "\n" not in spec.formula
    assert spec.scope in ("target", "attack")
    assert spec.direction in ("higher", "lower", None)
    assert spec.unit in ("percent", "float", "seconds", "count")
    assert set(spec.pipelines) <= PIPELINES
    if spec.pipelines:  # computed by an evaluation: a function, first docstring line = formula
        assert callable(spec.compute) and spec.scope == "attack"
        assert spec.compute.__doc__.strip().splitlines()[0] == spec.formula
    if spec.rank is not None:  # a ranking metric must say which way leaks less
        assert spec.scope == "attack" and spec.direction is not None
    assert all(rule(Setting()) is None for rule in spec.rules)  # unknown setting: no objection


def test_names_ranks_and_columns_are_unique():
    names = [s.name for s in METRICS]
    assert len(names) == len(set(names))
    ranks = [s.rank for s in METRICS if s.rank is not None]
    assert len(ranks) == len(set(ranks))
    for pipeline in PIPELINES:
        columns = [s.column for s in METRICS if pipeline in s.pipelines and s.column]
        assert len(columns) == len(set(columns))


def test_leaderboard_reads_the_registry():
    assert list(TARGET_METRICS) == METRICS.names("target")
    assert list(ATTACK_METRICS) == METRICS.names("attack")
    assert RANKING_PRIVACY_METRICS[0] == "attack_acc1"
    assert list(RANKING_PRIVACY_METRICS) == METRICS.ranking()
    spec, info = METRICS.get("xi"), metric_info("xi", "attacks")
    assert (info.title, info.explanation, info.better, info.fmt) == \
        (spec.title, spec.explanation, spec.direction, spec.unit)


def test_acc5_with_five_attacked_classes_is_invalid_with_a_reason():
    acc5 = METRICS.get("attack_acc5")
    reason = acc5.invalid_reason(Setting(attacked_classes=5))
    assert reason is not None and "Acc@5" in reason and "5" in reason
    assert acc5.invalid_reason(Setting(attacked_classes=6)) is None
    assert METRICS.get("attack_acc1").invalid_reason(Setting(attacked_classes=5)) is None


def test_fid_and_prdc_need_samples_on_each_side():
    """FID needs more samples than feature dimensions per side (a full-rank covariance), PRDC
    200 per side; each reason names its source, and a setting with enough passes."""
    few = Setting(reconstructions=25, references=700, prdc_k=3, feature_dim=128)
    prdc_reason = METRICS.get("precision").invalid_reason(few)
    assert "at least 200" in prdc_reason and "Naeem" in prdc_reason
    assert "25 reconstructions" in prdc_reason
    fid_reason = METRICS.get("fid").invalid_reason(few)
    assert "at least 129" in fid_reason and "Chong & Forsyth" in fid_reason
    enough = Setting(reconstructions=250, references=700, prdc_k=3, feature_dim=128)
    for name in ("fid", "precision", "recall", "density", "coverage"):
        assert METRICS.get(name).invalid_reason(enough) is None, name
    assert "at least 2" in METRICS.get("fid").invalid_reason(Setting(references=1))


def test_xi_near_chance_is_flagged_not_hidden():
    flag = METRICS.get("xi").flag
    assert "near chance" in flag(0.22, Setting(attacked_classes=5, test_images=180))
    assert flag(0.9, Setting(attacked_classes=5, test_images=180)) is None


class Linear(nn.Module):
    """A fixed classifier on 2-D points, with the ``embed`` the metrics use."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.head = nn.Linear(2, weight.shape[0], bias=False)
        self.head.weight.data = weight

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def _five_class_attack() -> tuple[AttackOutput, nn.Module, PrivateData]:
    angles = torch.arange(5) * 2 * torch.pi / 5
    centres = torch.stack([angles.cos(), angles.sin()], 1)
    model = Linear(centres.clone())
    labels = torch.arange(5).repeat_interleave(4)
    points = centres[labels] + 0.05 * torch.randn(len(labels), 2, generator=torch.Generator()
                                                   .manual_seed(0))
    return AttackOutput(points, labels), model, PrivateData(points, labels, points, labels)


def test_acc5_is_recorded_missing_and_unlisted_metrics_are_skipped():
    output, model, private = _five_class_attack()
    metrics, info = evaluate_attack(output, model, private,
                                    metrics=["attack_acc1", "attack_acc5", "delta_eval"])
    assert set(metrics) == {"attack_acc1", "delta_eval"}
    assert metrics["attack_acc1"] == 1.0 and metrics["delta_eval"] == pytest.approx(0.0)
    assert set(info["missing"]) == {"attack_acc5"}
    assert "got 5" in info["missing"]["attack_acc5"]


def test_suites_list_known_metrics_only():
    raw = {"name": "t", "pipeline": "toy", "defenses": [{"name": "none"}]}
    assert validate_suite(raw, "t", ToyConfig).metrics == METRICS.for_pipeline("toy")
    assert validate_suite(raw | {"metrics": ["steps"]}, "t", ToyConfig).metrics == ["steps"]
    with pytest.raises(UserError) as error:
        validate_suite(raw | {"metrics": ["attack_acc1"]}, "t", ToyConfig)
    assert "metrics" in str(error.value) and "attack_acc1" in str(error.value)
    assert "xi" in ImageConfig.model_fields["metrics"].default_factory()


def test_target_confidence_equals_its_formula_on_a_hand_built_target():
    # Target logits (x1, x2, 0) on 2-D points: softmax by hand for two reconstructions.
    target = Linear(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    points = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    output, private = AttackOutput(points, labels), PrivateData(points, labels, points, labels)
    metrics, info = evaluate_attack(output, target, private, target=target,
                                    metrics=["target_confidence"])
    e = torch.e
    expected = (e ** 2 / (e ** 2 + 1 + 1) + e / (1 + e + 1)) / 2
    assert metrics == {"target_confidence": pytest.approx(expected)}
    _, info = evaluate_attack(output, target, private, metrics=["target_confidence"])
    assert info["missing"] == {"target_confidence": "no target model given"}
