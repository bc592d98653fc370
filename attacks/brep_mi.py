"""BREP-MI: label-only model inversion by boundary repulsion in a generator's latent space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from lsmia_bench.attacks.base import Attack, AttackOutput
from lsmia_bench.attacks.oracles import LabelOracle
from lsmia_bench.kernel.component import ThreatModel


def sphere_directions(points: int, shape: Sequence[int], radius: float,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """delta_i = r * u_i / ||u_i||, u_i ~ N(0, I): ``points`` offsets uniform on a sphere."""
    u = torch.randn(points, *shape, device=device)
    norms = u.reshape(points, -1).norm(dim=1).reshape(points, *([1] * len(shape)))
    return radius * u / norms


def repulsion_direction(inside: torch.Tensor, directions: torch.Tensor,
                        radius: float) -> torch.Tensor:
    """g = mean_i(s_i * delta_i) / r with s_i = 0 inside the class, -1 outside."""
    signs = inside.to(directions.dtype) - 1.0
    return (signs.reshape(-1, *([1] * (directions.dim() - 1))) * directions).mean(dim=0) / radius


def radius_grows(inside: torch.Tensor, threshold: float) -> bool:
    """sum_i(+1 inside, -1 outside) > threshold * n: with n = 32, 0.75 means >= 29 inside."""
    n = inside.numel()
    return bool(2 * int(inside.sum()) - n > threshold * n)


class BREPMI(Attack):
    """Boundary-repelling latent walk that sees only the target's predicted label.

    Paper: "Label-Only Model Inversion Attacks via Boundary Repulsion", Kahla et al., CVPR
    2022, https://arxiv.org/abs/2203.01925. Follows the authors' ``brep_mi.py``,
    ``brep_mi_utils.py`` and ``config2.yaml``
    (github.com/m-kahla/Label-Only-Model-Inversion-Attacks-via-Boundary-Repulsion): the start
    point of a class is the first latent z ~ N(0, I), clamped to +-1.5, that the target labels
    as the class (batches of 256). Each round samples 32 points on a sphere of radius r around
    z and asks their labels; when at least 29 of 32 are inside the class the radius grows
    (r <- 1.3 r); the step is z + min(r / 3, 3) * g with g = mean(s_i delta_i) / r (s_i = 0
    inside, -1 outside: repulsion only), clamped to +-1.5, and is rejected when the target
    no longer labels it as the class. The attack stops after 1000 accepted steps without
    radius growth (rejected steps and growth steps do not count, as in the authors' loop); the
    reconstruction is the point reached at the last radius growth (the one the authors judge),
    or the start point when the radius never grew.

    The target is reached only through a :class:`~attacks.oracles.LabelOracle`; the number of
    images it was asked about is ``AttackOutput.queries``.

    Arguments:
        sphere_points (int): points sampled on the sphere per round. (Default: 32, authors)
        initial_radius (float): starting sphere radius. (Default: 2, authors)
        expansion (float): radius growth factor. (Default: 1.3, authors)
        growth_threshold (float): the radius grows when the sum of +-1 decisions exceeds
            this share of the points. (Default: 0.75, authors; 29 of 32 inside)
        max_step (float): largest step; the step is min(r / 3, max_step). (Default: 3, authors)
        clamp (float): latents are clamped to [-clamp, clamp]. (Default: 1.5, authors)
        max_iters_at_radius (int): stop after this many accepted steps without radius
            growth. (Default: 1000, authors)
        initial_batch_size (int): latents drawn per batch when searching start points.
            (Default: 256, authors)
        initial_batches (int): most batches searched for start points; a class the target
            never predicts keeps a random latent and is not attacked. (Default: 100, ours; the
            authors search without limit)
        max_queries (int | None): most queries per class after its start point, a budget for
            small suites; None runs until the stopping rule. (Default: None, authors)

    Shape: reconstructions (len(classes), C, H, W).
    Usage: ``BREPMI(max_iters_at_radius=200).run(target, [0, 1, 2], prior)``.
    """

    name: ClassVar[str] = "brep_mi"
    paper: ClassVar[str] = (
        "Label-Only Model Inversion Attacks via Boundary Repulsion (Kahla et al., CVPR 2022)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2203.01925"
    summary: ClassVar[str] = "Latent walk repelled from the class boundary, seeing labels only."
    threat_model: ClassVar[ThreatModel] = "label-only"
    needs_prior: ClassVar[bool] = True
    prior_kind: ClassVar[str | None] = "wgan_gp"
    probe_params: ClassVar[dict[str, Any]] = {"max_iters_at_radius": 2, "initial_batches": 2,
                                              "initial_batch_size": 16, "max_queries": 200}

    sphere_points: int = Field(32, ge=1)
    initial_radius: float = Field(2.0, gt=0)
    expansion: float = Field(1.3, gt=1)
    growth_threshold: float = Field(0.75, ge=-1, lt=1)
    max_step: float = Field(3.0, gt=0)
    clamp: float = Field(1.5, gt=0)
    max_iters_at_radius: int = Field(1000, ge=1)
    initial_batch_size: int = Field(256, ge=1)
    initial_batches: int = Field(100, ge=1)
    max_queries: int | None = Field(None, ge=1)

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        prior, device = self.prepare(target, prior)
        oracle = LabelOracle(target)
        del target  # from here on the attack sees labels only
        starts = self._start_points(oracle, prior, classes)
        start_queries = oracle.queries
        latents, radii, growths, trace = [], [], [], {}
        for label in classes:
            if label not in starts:  # never predicted: nothing to walk from
                latents.append(prior.sample_latents(1)[0].clamp(-self.clamp, self.clamp))
                radii.append(math.nan)
                growths.append(0)
                continue
            z, radius, grew, curves = self._walk(oracle, prior, label, starts[label])
            latents.append(z)
            radii.append(radius)
            growths.append(grew)
            if not trace:
                trace = curves
        with torch.no_grad():
            images = prior(torch.stack(latents)).clamp(0, 1).cpu()
        trace |= {"final_radius": radii, "radius_growths": growths,
                  "classes_without_start": [c for c in classes if c not in starts],
                  "start_queries": start_queries}
        return AttackOutput(images, torch.as_tensor(list(classes)), trace,
                            queries=oracle.queries)

    def _start_points(self, oracle: LabelOracle, prior: Any,
                      classes: Sequence[int]) -> dict[int, torch.Tensor]:
        """The first latent the target labels as each class (authors'
        ``gen_initial_points_targeted``)."""
        wanted, found = set(classes), {}
        for _ in range(self.initial_batches):
            z = prior.sample_latents(self.initial_batch_size).clamp(-self.clamp, self.clamp)
            with torch.no_grad():
                labels = oracle(prior(z).clamp(0, 1)).tolist()
            for latent, label in zip(z, labels, strict=True):
                if label in wanted and label not in found:
                    found[label] = latent
            if len(found) == len(wanted):
                break
        return found

    def _walk(self, oracle: LabelOracle, prior: Any, label: int,
              start: torch.Tensor) -> tuple[torch.Tensor, float, int, dict[str, list[float]]]:
        """One class's boundary-repulsion walk: (latent at the last radius growth, final
        radius, number of growths, curves per round)."""
        z, kept, radius = start.clone(), start.clone(), self.initial_radius
        iteration = last_growth = growths = 0
        budget_end = None if self.max_queries is None else oracle.queries + self.max_queries
        radius_curve, inside_curve = [], []
        while iteration - last_growth < self.max_iters_at_radius:
            if budget_end is not None and oracle.queries >= budget_end:
                break
            step = min(radius / 3, self.max_step)
            directions = sphere_directions(self.sphere_points, z.shape, radius, z.device)
            with torch.no_grad():
                inside = oracle(prior(z + directions).clamp(0, 1)) == label
            grew = radius_grows(inside, self.growth_threshold)
            if grew:
                # The authors grow the radius before the step, so g is divided by the new r.
                radius *= self.expansion
                last_growth, growths = iteration, growths + 1
            candidate = (z + step * repulsion_direction(inside, directions, radius)).clamp(
                -self.clamp, self.clamp)
            radius_curve.append(radius)
            inside_curve.append(float(inside.float().mean()))
            with torch.no_grad():
                if int(oracle(prior(candidate[None]).clamp(0, 1))[0]) != label:
                    continue  # the step left the class: rejected, not counted
            z = candidate
            if grew:
                kept = z.clone()
                continue
            iteration += 1
        return kept, radius, growths, {"radius": radius_curve, "inside_share": inside_curve}
