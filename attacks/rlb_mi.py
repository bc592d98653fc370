"""RLB-MI: black-box model inversion by a soft actor-critic agent per class in latent space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from lsmia_bench.attacks.base import Attack, AttackOutput
from lsmia_bench.attacks.oracles import ScoreOracle
from lsmia_bench.kernel.component import ThreatModel


def rlb_reward(state_probs: torch.Tensor, action_probs: torch.Tensor, labels: torch.Tensor,
               weights: Sequence[float] = (2.0, 2.0, 8.0), floor: float = 1e-7) -> torch.Tensor:
    """r = 2 log p_y(G(z')) + 2 log p_y(G(a)) + 8 log max(1e-7, p_y(G(z')) - max_{k!=y} p_k(G(z'))).

    Probabilities (N, C) of the next state's and the action's images, labels (N,); shape (N,).
    p_y is kept above the smallest positive float so that an underflowed softmax gives a
    finite reward.
    """
    rows = torch.arange(len(labels), device=labels.device)
    tiny = torch.finfo(state_probs.dtype).tiny
    p_state = state_probs[rows, labels]
    p_action = action_probs[rows, labels]
    others = state_probs.clone()
    others[rows, labels] = -math.inf
    margin = (p_state - others.max(dim=1).values).clamp_min(floor)
    w_state, w_action, w_margin = weights
    return (w_state * p_state.clamp_min(tiny).log() + w_action * p_action.clamp_min(tiny).log()
            + w_margin * margin.log())


class _Linears(nn.Module):
    """K independent linear layers applied at once: (K, B, in) -> (K, B, out)."""

    def __init__(self, k: int, inputs: int, outputs: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(inputs)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(k, inputs, outputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, 1, outputs).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class _Actors(nn.Module):
    """K squashed-Gaussian policies, state -> (mu, log std) (authors' ``Actor``)."""

    def __init__(self, k: int, dim: int, hidden: int, log_std_range: tuple[float, float],
                 scalar_noise: bool) -> None:
        super().__init__()
        self.fc1, self.fc2 = _Linears(k, dim, hidden), _Linears(k, hidden, hidden)
        self.mu, self.log_std = _Linears(k, hidden, dim), _Linears(k, hidden, dim)
        self.log_std_range = log_std_range
        self.scalar_noise = scalar_noise

    def sample(self, state: torch.Tensor, epsilon: float = 1e-6
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """a = tanh(mu + e * std) and its log-probability, averaged over dimensions as the
        authors do: (K, B, D), (K, B, 1)."""
        x = torch.relu(self.fc2(torch.relu(self.fc1(state))))
        mu = self.mu(x)
        std = self.log_std(x).clamp(*self.log_std_range).exp()
        shape = (mu.shape[0], 1, 1) if self.scalar_noise else mu.shape
        pre = mu + torch.randn(shape, device=mu.device) * std
        action = torch.tanh(pre)
        log_prob = (torch.distributions.Normal(mu, std).log_prob(pre)
                    - torch.log(1 - action.pow(2) + epsilon)).mean(dim=-1, keepdim=True)
        return action, log_prob


class _Critics(nn.Module):
    """K Q-networks (state, action) -> value, initialised as the authors' ``Critic``."""

    def __init__(self, k: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = _Linears(k, 2 * dim, hidden), _Linears(k, hidden, hidden)
        self.fc3 = _Linears(k, hidden, 1)
        with torch.no_grad():  # authors' hidden_init: 1 / sqrt(weight.size(0)), the out size
            for layer in (self.fc1, self.fc2):
                layer.weight.uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
            self.fc3.weight.uniform_(-3e-3, 3e-3)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(torch.cat([state, action], dim=-1)))
        return self.fc3(torch.relu(self.fc2(x)))


class RLBMI(Attack):
    """One soft actor-critic agent per class learns where in the latent space the class lies.

    Paper: "Reinforcement Learning-Based Black-Box Model Inversion Attacks", Han et al., CVPR
    2023 (CVPR open access). Follows the authors' ``main.py``, ``attack.py``
    and ``SAC.py`` (github.com/HanGyojin/RLB-MI). An episode starts from a state z ~ N(0, I);
    the agent's action a = tanh(mu + e * std) is a latent; the next state is
    z' = alpha z + (1 - alpha) a and the reward is :func:`rlb_reward` on the target's
    probabilities for G(z') and G(a). SAC: twin critics with soft-updated targets, the actor
    trained against the first critic, a learned entropy coefficient with target entropy
    -dim(z) (log-probabilities averaged over dimensions, as the authors do), replay buffer
    sampled once the buffer holds more than a batch. After every episode one test rollout from
    a fresh z gives an image; the image with the highest p_y seen is the reconstruction.

    The target is reached only through a :class:`~attacks.oracles.ScoreOracle`
    (probabilities, no gradients); ``AttackOutput.queries`` counts the images it was asked
    about: (2 * episode_steps + 1) per episode and class.

    Deviations: the authors' actor draws ONE scalar noise sample e ~ N(0, 1) shared by every
    latent dimension (and every row of a training batch); we draw one per dimension, as SAC
    defines it (``scalar_noise=True`` restores theirs). Their two critics are built after
    resetting the same seed, so they start equal and, seeing the same batches, stay equal; ours
    start independently. The K agents (one per class) are trained side by side as batched
    networks; each has its own parameters, Adam state, buffer and batches.

    Arguments:
        episodes (int): episodes per class. (Default: 40000, authors, for 1000-class faces)
        episode_steps (int): steps per episode. (Default: 1, authors)
        diversity (float): alpha in z' = alpha z + (1 - alpha) a. (Default: 0, authors)
        gamma (float): discount. (Default: 0.99, authors)
        tau (float): soft update rate of the target critics. (Default: 0.01, authors)
        batch_size (int): replay batch. (Default: 256, authors)
        buffer_size (int): replay buffer capacity. (Default: 1e6, authors)
        lr (float): Adam step size of actor, critics and entropy coefficient.
            (Default: 5e-4, authors)
        hidden (int): width of the actor's and critics' two hidden layers.
            (Default: 256, authors)
        log_std_min, log_std_max (float): clamp of the actor's log std. (Default: -20, 2,
            authors)
        reward_weights (tuple): weights of the three reward terms. (Default: (2, 2, 8),
            authors)
        scalar_noise (bool): the authors' one noise sample for all dimensions.
            (Default: False, ours; see above)

    Shape: reconstructions (len(classes), C, H, W).
    Usage: ``RLBMI(episodes=500).run(target, [0, 1, 2], prior)``.
    """

    name: ClassVar[str] = "rlb_mi"
    paper: ClassVar[str] = (
        "Reinforcement Learning-Based Black-Box Model Inversion Attacks (Han et al., CVPR 2023)")
    paper_url: ClassVar[str] = (
        "https://openaccess.thecvf.com/content/CVPR2023/html/Han_Reinforcement_Learning-Based"
        "_Black-Box_Model_Inversion_Attacks_CVPR_2023_paper.html")
    summary: ClassVar[str] = "A soft actor-critic agent per class searches latents by scores."
    threat_model: ClassVar[ThreatModel] = "black-box"
    needs_prior: ClassVar[bool] = True
    prior_kind: ClassVar[str | None] = "wgan_gp"
    probe_params: ClassVar[dict[str, Any]] = {"episodes": 4, "batch_size": 2, "hidden": 8}

    episodes: int = Field(40000, ge=1)
    episode_steps: int = Field(1, ge=1)
    diversity: float = Field(0.0, ge=0, le=1)
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.01, gt=0, le=1)
    batch_size: int = Field(256, ge=1)
    buffer_size: int = Field(1_000_000, ge=1)
    lr: float = Field(5e-4, gt=0)
    hidden: int = Field(256, ge=1)
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    reward_weights: tuple[float, float, float] = (2.0, 2.0, 8.0)
    scalar_noise: bool = False

    def run(
        self, target: nn.Module, classes: Sequence[int], prior: nn.Module | None = None
    ) -> AttackOutput:
        prior, device = self.prepare(target, prior)
        oracle = ScoreOracle(target)
        del target  # from here on the attack sees probabilities only
        labels = torch.as_tensor(list(classes), device=device)
        agents = _Agents(self, len(labels), math.prod(prior.latent_shape), device)

        def probabilities(latents: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return oracle(prior(latents.reshape(-1, *prior.latent_shape)).clamp(0, 1))

        k = len(labels)
        best = torch.full((k,), -1.0, device=device)
        best_latents = torch.zeros(k, agents.dim, device=device)
        rewards, confidence, entropy = [], [], []
        for _ in range(self.episodes):
            state = torch.randn(k, 1, agents.dim, device=device)
            for step in range(self.episode_steps):
                with torch.no_grad():
                    action, _ = agents.actors.sample(state)
                next_state = self.diversity * state + (1 - self.diversity) * action
                probs = probabilities(torch.cat([next_state, action]))
                reward = rlb_reward(probs[:k], probs[k:], labels,
                                    self.reward_weights).reshape(k, 1, 1)
                done = float(step == self.episode_steps - 1)
                agents.remember(state, action, reward, next_state, done)
                agents.learn()
                state = next_state
            rewards.append(float(reward.mean()))
            test = torch.randn(k, 1, agents.dim, device=device)
            for _ in range(self.episode_steps):
                with torch.no_grad():
                    action, _ = agents.actors.sample(test)
                test = self.diversity * test + (1 - self.diversity) * action
            score = probabilities(test)[torch.arange(k), labels]
            better = score >= best  # the authors keep a later image of equal score
            best = torch.where(better, score, best)
            best_latents[better] = test[better, 0]
            confidence.append(float(best.mean()))
            entropy.append(float(agents.entropy_coefficient.mean()))
        with torch.no_grad():
            images = prior(best_latents.reshape(-1, *prior.latent_shape)).clamp(0, 1).cpu()
        trace = {"reward": rewards, "best_confidence": confidence,
                 "entropy_coefficient": entropy, "class_best_confidence": best.tolist()}
        return AttackOutput(images, labels.cpu(), trace, queries=oracle.queries)


class _Agents:
    """K independent SAC agents (authors' ``Agent``), trained side by side."""

    def __init__(self, attack: RLBMI, k: int, dim: int, device: torch.device) -> None:
        self.attack, self.k, self.dim = attack, k, dim
        log_std = (attack.log_std_min, attack.log_std_max)
        self.actors = _Actors(k, dim, attack.hidden, log_std, attack.scalar_noise).to(device)
        self.critics = nn.ModuleList(_Critics(k, dim, attack.hidden) for _ in range(2)).to(device)
        self.targets = nn.ModuleList(_Critics(k, dim, attack.hidden) for _ in range(2)).to(device)
        self.targets.load_state_dict(self.critics.state_dict())
        self.log_alpha = torch.zeros(k, 1, 1, device=device, requires_grad=True)
        self.entropy_coefficient = torch.ones(k, 1, 1, device=device)  # authors: alpha = 1
        self.target_entropy = -dim
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=attack.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=attack.lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=attack.lr)
        capacity = min(attack.buffer_size, attack.episodes * attack.episode_steps)
        self.buffer = torch.zeros(k, capacity, 3 * dim + 2, device=device)
        self.size = self.position = 0

    def remember(self, state: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                 next_state: torch.Tensor, done: float) -> None:
        """Store one transition per agent; the oldest is overwritten when the buffer is full."""
        done_column = torch.full_like(reward, done)
        row = torch.cat([state, action, reward, next_state, done_column], dim=-1)
        self.buffer[:, self.position] = row[:, 0]
        self.position = (self.position + 1) % self.buffer.shape[1]
        self.size = min(self.size + 1, self.buffer.shape[1])

    def learn(self) -> None:
        """One SAC update per agent on its own replay batch (authors' ``Agent.learn``)."""
        a, d = self.attack, self.dim
        if self.size <= a.batch_size:
            return
        picks = torch.rand(self.k, self.size, device=self.buffer.device).topk(a.batch_size)
        batch = self.buffer[:, :self.size].gather(
            1, picks.indices.unsqueeze(-1).expand(-1, -1, self.buffer.shape[-1]))
        state, action = batch[..., :d], batch[..., d:2 * d]
        reward, next_state, done = batch[..., 2 * d:2 * d + 1], batch[..., 2 * d + 1:-1], \
            batch[..., -1:]
        with torch.no_grad():
            next_action, next_log_prob = self.actors.sample(next_state)
            next_q = torch.min(*(t(next_state, next_action) for t in self.targets))
            q_target = reward + a.gamma * (1 - done) * (
                next_q - self.entropy_coefficient * next_log_prob)
        # Each agent's loss is its own batch mean; summing over agents keeps gradients apart.
        critic_loss = sum(0.5 * (c(state, action) - q_target).pow(2).mean(dim=(1, 2)).sum()
                          for c in self.critics)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        new_action, log_prob = self.actors.sample(state)
        alpha = self.log_alpha.exp().detach()
        alpha_loss = -(self.log_alpha * (log_prob + self.target_entropy).detach()).mean(
            dim=(1, 2)).sum()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()
        self.entropy_coefficient = alpha
        actor_loss = (alpha * log_prob - self.critics[0](state, new_action)).mean(
            dim=(1, 2)).sum()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        with torch.no_grad():
            for critic, target in zip(self.critics, self.targets, strict=True):
                for p, p_target in zip(critic.parameters(), target.parameters(), strict=True):
                    p_target.mul_(1 - a.tau).add_(a.tau * p)
