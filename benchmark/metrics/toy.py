"""Metrics of the toy suite's attack (docs/metrics.md, "Toy suite"): one 2-D attack run toward
the target class, judged against that class's training points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lsmia_bench.benchmark.metrics.attack import nearest_distance
from lsmia_bench.benchmark.metrics.registry import METRICS

TOY = ("toy",)
ONE_RUN = "one attack run per trial"


@dataclass
class ToyAttack:
    """The evaluation context of one toy attack run."""

    end: torch.Tensor
    """(1, 2): the attack's end point."""
    class_points: torch.Tensor
    """(M, 2): training points of the attacked class."""
    run: dict[str, Any]
    """The attack's trace of this run: ``steps``, ``confidence`` per step, ``gradients``."""
    threshold: float
    """The attack stops once the target's confidence passes it."""

    @property
    def gradients(self) -> torch.Tensor:
        """(T, 1, 2): the run's gradients as one traced sample."""
        return self.run["gradients"].unsqueeze(1)


@METRICS.metric(
    "distance_nearest", "Distance", "Euclidean distance from the attack's end point to the "
    "nearest training point of the attacked class. Higher means the attack ends further from "
    "the private data.", aggregation=ONE_RUN, direction="higher", rank=7, pipelines=TOY)
def distance_nearest(ctx: ToyAttack) -> float:
    """d = min_j ||x_end - p_j||_2 over the training points p_j of the attacked class."""
    return nearest_distance(ctx.end, ctx.class_points).item()


@METRICS.metric(
    "distance_mean", "Dist. to mean", "Euclidean distance from the attack's end point to the "
    "mean of the attacked class's training points.", aggregation=ONE_RUN, direction="higher",
    detail=True, pipelines=TOY)
def distance_mean(ctx: ToyAttack) -> float:
    """d = ||x_end - mean_j p_j||_2 over the training points p_j of the attacked class."""
    return torch.linalg.vector_norm(ctx.end[0] - ctx.class_points.mean(0)).item()


@METRICS.metric(
    "steps", "Steps", "Optimisation steps the attack ran (it stops once the target's "
    "confidence for the attacked class exceeds its threshold).", aggregation=ONE_RUN,
    unit="count", detail=True, pipelines=TOY)
def steps(ctx: ToyAttack) -> float:
    """T = number of gradient steps until p_c(x_t) > threshold (or the step limit)."""
    return float(ctx.run["steps"])


@METRICS.metric(
    "final_confidence", "Final conf.", "The target's confidence for the attacked class at the "
    "attack's end point.", aggregation=ONE_RUN, unit="percent", detail=True, pipelines=TOY)
def final_confidence(ctx: ToyAttack) -> float:
    """p_c(x_end) = softmax(f(x_end))_c, c the attacked class."""
    return float(ctx.run["confidence"][-1])


@METRICS.metric(
    "reached_confidence", "Reached", "Share of attack runs that reached the confidence "
    "threshold.", aggregation="mean over attack runs", unit="percent", detail=True,
    pipelines=TOY)
def reached_confidence(ctx: ToyAttack) -> float:
    """r = [p_c(x_end) > threshold]."""
    return float(ctx.run["confidence"][-1] > ctx.threshold)
