"""Black-box and label-only attacks: BREP-MI sees labels only, RLB-MI's reward is the authors'
formula, both count the images they send to the target.

A small digits target (private digits 0-4) and a WGAN-GP prior on the public digits 5-9 are
trained in the module's fixtures in a few seconds.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsmia_bench.attacks.brep_mi import BREPMI, radius_grows, repulsion_direction
from lsmia_bench.attacks.gmi import GMI
from lsmia_bench.attacks.oracles import LabelOracle
from lsmia_bench.attacks.priors.wgan_gp import train_wgan_gp
from lsmia_bench.attacks.rlb_mi import RLBMI, rlb_reward

PRIVATE = [0, 1, 2, 3, 4]


class LogitAccess(RuntimeError):
    """Raised when anything but the predicted label is read from the target's output."""


class GuardedLogits(torch.Tensor):
    """Logits that allow one thing only: argmax (what a label oracle asks)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.argmax, torch.argmax):
            plain = [a.as_subclass(torch.Tensor) if isinstance(a, GuardedLogits) else a
                     for a in args]
            return func(*plain, **(kwargs or {}))
        raise LogitAccess(f"the attack read the logits ({getattr(func, '__name__', func)})")


class CountingTarget(nn.Module):
    """Wraps a classifier: counts the images it is asked about; optionally guards its logits."""

    def __init__(self, model: nn.Module, guarded: bool) -> None:
        super().__init__()
        self.model, self.guarded, self.images = model, guarded, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        logits = self.model(x)
        return logits.detach().as_subclass(GuardedLogits) if self.guarded else logits


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small networks run fastest (and steadiest on a shared machine) on one thread."""


@pytest.fixture(scope="module")
def model(digits):
    images, labels, _ = digits
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 5))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(10):
        for index in torch.randperm(len(images)).split(64):
            loss = F.cross_entropy(net(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def prior(digits):
    return train_wgan_gp(digits[2], latent_dim=16, width=8, iterations=150, seed=0).prior(
        (8, 8), 1)


def test_brep_mi_sees_only_predicted_labels_and_counts_its_queries(model, prior):
    target = CountingTarget(model, guarded=True)
    torch.manual_seed(0)
    output = BREPMI(max_iters_at_radius=5, initial_batch_size=64, initial_batches=20).run(
        target, PRIVATE, prior)
    assert output.reconstructions.shape == (5, 1, 8, 8)
    assert output.labels.tolist() == PRIVATE
    assert output.queries == target.images > 0
    walked = [c for c in PRIVATE if c not in output.trace["classes_without_start"]]
    assert walked, "no class had a start point: the walk was never tested"
    # Every walked class ends inside its class, as the label oracle sees it.
    labels = LabelOracle(model)(output.reconstructions)
    assert all(int(labels[c]) == c for c in walked)
    # The guard is real: an attack that reads logits fails on this target.
    with pytest.raises(LogitAccess):
        GMI(iterations=1, restarts=1).run(CountingTarget(model, guarded=True), PRIVATE, prior)


def test_brep_mi_stops_at_its_query_budget(model, prior):
    target = CountingTarget(model, guarded=True)
    torch.manual_seed(0)
    attack = BREPMI(initial_batch_size=64, initial_batches=20, max_queries=99)
    output = attack.run(target, PRIVATE, prior)
    walked = len(PRIVATE) - len(output.trace["classes_without_start"])
    walks = output.queries - output.trace["start_queries"]
    # Each walk stops after the round (32 sphere points + 1 step) that crosses 99 queries.
    assert walked and 99 * walked <= walks < (99 + attack.sphere_points + 1) * walked


def test_repulsion_moves_away_from_outside_points_only():
    directions = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    inside = torch.tensor([True, True, False, True])
    # g = mean(s_i delta_i) / r = (-1 * (-2, 0)) / 4 / 2 = (0.25, 0)
    assert torch.allclose(repulsion_direction(inside, directions, 2.0), torch.tensor([0.25, 0]))
    assert torch.equal(repulsion_direction(torch.ones(4, dtype=torch.bool), directions, 2.0),
                       torch.zeros(2))


def test_radius_grows_when_29_of_32_points_are_inside():
    def inside(k: int) -> torch.Tensor:
        return torch.arange(32) < k

    assert radius_grows(inside(29), 0.75) and not radius_grows(inside(28), 0.75)


def test_rlb_reward_equals_the_formula_on_fixed_probabilities():
    state = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    action = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 0])
    reward = rlb_reward(state, action, labels)
    expected_first = 2 * math.log(0.6) + 2 * math.log(0.5) + 8 * math.log(0.6 - 0.3)
    # p_y below the best other class: the margin term is floored at 1e-7.
    expected_second = 2 * math.log(0.2) + 2 * math.log(0.1) + 8 * math.log(1e-7)
    assert reward.tolist() == pytest.approx([expected_first, expected_second], rel=1e-6)


def test_rlb_mi_keeps_its_most_confident_image_and_counts_its_queries(model, prior):
    model.zero_grad(set_to_none=True)
    target = CountingTarget(model, guarded=False)
    torch.manual_seed(0)
    attack = RLBMI(episodes=30, batch_size=8, hidden=16)
    output = attack.run(target, PRIVATE, prior)
    assert output.reconstructions.shape == (5, 1, 8, 8)
    assert output.queries == target.images == 30 * len(PRIVATE) * (2 * 1 + 1)
    assert not any(p.grad is not None for p in model.parameters())  # scores only
    # The kept image is the best test image seen: its p_y is the best recorded.
    best = torch.tensor(output.trace["class_best_confidence"])
    curve = output.trace["best_confidence"]
    assert len(curve) == 30 and curve == sorted(curve)
    probs = torch.softmax(model(output.reconstructions), dim=1)[range(5), PRIVATE]
    assert torch.allclose(probs, best, atol=1e-5)


def test_rlb_mi_scalar_noise_shares_one_sample_across_dimensions():
    from lsmia_bench.attacks.rlb_mi import _Actors

    torch.manual_seed(0)
    actors = _Actors(2, 6, 8, (-20.0, 2.0), scalar_noise=True)
    with torch.no_grad():
        actors.log_std.weight.zero_()
        actors.log_std.bias.fill_(0.0)  # std 1 everywhere
        actors.mu.weight.zero_()
        actors.mu.bias.zero_()  # mu 0: a = tanh(e)
        action, _ = actors.sample(torch.zeros(2, 3, 6))
    assert torch.allclose(action, action[:, :1, :1].expand_as(action))
    actors.scalar_noise = False
    with torch.no_grad():
        action, _ = actors.sample(torch.zeros(2, 3, 6))
    assert action.unique().numel() == action.numel()
