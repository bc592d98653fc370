"""Pinned to the authors' code (issue "The paper's setting, faithful"): PPA's lr schedule and
image clipping (github.com/LukasStruppek/Plug-and-Play-Attacks), GMI's restart choice
(github.com/AI-secure/GMI-Attack ``attack.py``), KED-MI's iterations
(github.com/SCccc21/Knowledge-Enriched-DMI ``recovery.py``), MI-Face's stopping rule
(Fredrikson et al., CCS 2015, Algorithm 1) and the PRDC definition the site states."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsmia_bench.attacks.ppa import PPA, final_selection_from_latents, initial_selection
from lsmia_bench.attacks.priors.base import GeneratorPrior
from lsmia_bench.benchmark.config import read_suite_file
from lsmia_bench.benchmark.pipelines import validate_raw_suite


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks on a shared 2-core machine run fastest on one thread."""


def suite_attack_params(suite: str, attack: str) -> dict:
    raw, source = read_suite_file(suite, None)
    config = validate_raw_suite(raw, source)
    return next(a.params for a in config.attacks if a.name == attack)


class BrightnessTarget(nn.Module):
    """Logits (10 * mean(x), 0); records the range of every input it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.seen: list[tuple[float, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.min().item(), x.max().item()))
        score = self.scale * x.flatten(1).mean(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


class Overshoot(nn.Module):
    """A one-pixel generator whose output 5 z leaves its nominal range [-1, 1]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (5 * z).view(-1, 1, 1, 1)


def _lrs(attack: PPA) -> list[float]:
    """The lr of each optimisation step, with the attack's scheduler stepped as in _optimise."""
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=attack.lr)
    scheduler = attack.make_lr_scheduler(optimizer)
    lrs = []
    for _ in range(attack.steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return lrs


def test_ppa_lr_scheduler_is_the_default_configs_multisteplr_and_off_on_faces():
    # default_attacking_local.yaml: Adam lr 0.005, MultiStepLR milestones [30, 40], gamma 0.1
    assert _lrs(PPA()) == pytest.approx([0.005] * 30 + [0.0005] * 10 + [0.00005] * 10)
    # FaceScrub_FFHQ.yaml / CelebA_FFHQ.yaml: no lr_scheduler, the lr stays 0.005
    assert PPA(lr_scheduler=False).make_lr_scheduler(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)) is None
    assert _lrs(PPA(lr_scheduler=False)) == [0.005] * 50
    faces = PPA(**suite_attack_params("faces", "ppa"))
    assert not faces.lr_scheduler and set(_lrs(faces)) == {faces.lr}


def test_ppa_clips_before_the_initial_selection_and_not_before_the_final_one():
    prior = GeneratorPrior(Overshoot(), 1, value_range=(-1, 1))
    target = BrightnessTarget()
    torch.manual_seed(0)
    latents, labels = initial_selection(prior, target, [0, 1], 40, 5, flip=False, batch_size=8)
    # the authors' find_initial_w: imgs clipped to [-1, 1], i.e. [0, 1] after rescaling
    assert min(lo for lo, _ in target.seen) == 0.0 and max(hi for _, hi in target.seen) == 1.0
    torch.manual_seed(0)
    pool = torch.randn(40, 1)
    with torch.no_grad():
        clipped = target((((5 * pool).clamp(-1, 1) + 1) / 2).view(-1, 1, 1, 1))
        unclipped = target(((5 * pool + 1) / 2).view(-1, 1, 1, 1))
    expected = [pool[clipped.softmax(1)[:, c].argsort(descending=True, stable=True)[:5]]
                for c in (0, 1)]
    assert torch.equal(latents, torch.cat(expected))
    not_clipped = pool[unclipped.softmax(1)[:, 0].argsort(descending=True, stable=True)[:5]]
    assert not torch.equal(latents[:5], not_clipped)  # clipping changes the choice here

    target.seen.clear()
    final_selection_from_latents(prior, latents, labels, target, lambda x: x, iterations=1,
                                 keep=2, batch_size=4)
    # the authors' final selection scores create_image's output, which is not clipped
    assert min(lo for lo, _ in target.seen) < 0.0 and max(hi for _, hi in target.seen) > 1.0


class TinyTarget(nn.Module):
    """A fixed random linear classifier on 4 x 4 grey images, with the logits scaled apart so
    that the highest logit and the highest softmax often belong to different restarts."""

    input_shape = (1, 4, 4)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(11)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4 * self.head(x.flatten(1))


def tiny_gan_prior() -> GeneratorPrior:
    torch.manual_seed(12)
    generator = nn.Sequential(nn.Linear(5, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    return GeneratorPrior(generator, 5, image_size=(4, 4), channels=1, discriminator=critic,
                          discriminator_kind="wgan")


def test_gmi_keeps_the_restart_with_the_highest_raw_logit_of_the_class():
    from lsmia_bench.attacks.gmi import GMI, best_restart, class_logit

    # the authors' rule on a fixed case: restart 0 has logits (5, 4.9) for class 0 (softmax
    # 0.52), restart 1 has (3, -5) (softmax 0.9997); score[i, i] keeps restart 0
    logits = torch.tensor([[5.0, 4.9], [3.0, -5.0]])
    logit = class_logit(logits, torch.tensor([0, 0])).view(2, 1)
    softmax = logits.softmax(1)[:, 0].view(2, 1)
    assert best_restart(logit).tolist() == [0] and best_restart(softmax).tolist() == [1]
    assert best_restart(torch.tensor([[1.0], [1.0], [0.5]])).tolist() == [0]  # first on ties

    classes, settings = [0, 1, 2], {"iterations": 3, "restarts": 6, "lr": 0.05}
    target, prior = TinyTarget().eval(), tiny_gan_prior()
    torch.manual_seed(5)
    every = GMI(keep_all_restarts=True, **settings).run(target, classes, prior)
    torch.manual_seed(5)
    best = GMI(**settings).run(target, classes, prior)
    logit = torch.tensor(best.trace["restart_logit"])  # (restarts, classes)
    confidence = torch.tensor(best.trace["restart_confidence"])
    chosen = logit.argmax(dim=0)
    assert not torch.equal(chosen, confidence.argmax(dim=0))  # the two rules disagree here
    per_class = every.reconstructions.view(len(classes), 6, 1, 4, 4)  # class-major
    assert torch.equal(best.reconstructions, per_class[torch.arange(3), chosen])
    with torch.no_grad():
        recomputed = class_logit(target(best.reconstructions), torch.tensor(classes))
    assert torch.allclose(recomputed, logit.max(dim=0).values)


def test_kedmi_runs_the_authors_recovery_iterations_by_default():
    from lsmia_bench.attacks.kedmi import KEDMI

    # recovery.py: dist_inversion(G, D, T, E, iden, ..., lr=2e-2, lamda=100, iter_times=2400,
    # num_seeds=5)
    attack = KEDMI()
    assert (attack.iterations, attack.lr, attack.identity_weight, attack.samples_per_class) == (
        2400, 0.02, 100.0, 5)


class SlowBrightness(nn.Module):
    """Logits (mean(x), 0) on 1 x 2 x 2 images: p_0 rises slowly from 0.5 as x brightens."""

    input_shape = (1, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1).mean(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def _mi_face_reference_steps(target: nn.Module, lr: float, iterations: int,
                             gamma: float | None) -> int:
    """Fredrikson et al. 2015, Algorithm 1 for class 0, x_0 = 0, AuxTerm = 0, PROCESS = clamp
    to [0, 1], no rising cost on this target: the step i at which it stops."""
    x = torch.zeros(1, *target.input_shape)
    for i in range(1, iterations + 1):
        x.requires_grad_(True)
        cost = 1 - target(x).softmax(1)[0, 0]
        grad, = torch.autograd.grad(cost, x)
        x = (x.detach() - lr * grad).clamp(0, 1)
        if gamma is not None and 1 - target(x).softmax(1)[0, 0].item() <= gamma:
            return i
    return iterations


def test_mi_face_stops_by_the_papers_gamma_only_when_asked():
    from lsmia_bench.attacks.mi_face import MIFace

    target = SlowBrightness()
    paper = MIFace(lr=5.0, iterations=200, patience=200, stop_cost=0.4).run(target, [0])
    expected = _mi_face_reference_steps(target, 5.0, 200, 0.4)
    assert 1 < expected < 200 and paper.trace["steps"] == [expected]
    # the paper's gamma 0.99 stops after the first step (p_y = 0.5 >= 1 % already)
    assert MIFace(stop_cost=0.99).run(target, [0]).trace["steps"] == [1]
    # the default has no cost threshold: the attack runs to its step limit here
    assert MIFace().stop_cost is None
    assert MIFace(lr=5.0, iterations=200, patience=200).run(target, [0]).trace["steps"] == [200]


def test_prdc_is_the_original_definition_and_the_site_says_so():
    import numpy as np

    from lsmia_bench.benchmark.metrics.privacy import prdc
    from lsmia_bench.leaderboard.columns import ATTACK_METRICS

    # Naeem et al. 2020: density = (1/(k M)) sum_j sum_i [y_j in B(x_i, r_k(x_i))], M the
    # number of generated samples (8 here), pooled over all classes; PPA's variant divides by
    # the number of real samples (10) instead
    real = np.arange(10.0).reshape(-1, 1)
    fake = np.array([[0.5], [4.5], [100.0], [200.0], [300.0], [400.0], [500.0], [600.0]])
    inside = 3 + 4  # 0.5 lies in the balls of reals 0-2, 4.5 in those of reals 3-6
    assert prdc(real, fake, k=3)["density"] == pytest.approx(inside / (3 * len(fake)))
    assert inside / (3 * len(fake)) != pytest.approx(inside / (3 * len(real)))
    for name in ("precision", "recall", "density", "coverage"):
        text = ATTACK_METRICS[name].hint  # the column's tooltip and the entry page's text
        assert "original definition of Naeem et al. (ICML 2020" in text
        assert "PPA's code computes a per-class variant" in text
