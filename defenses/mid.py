"""MID: Mutual Information regularization based Defense (a variational information bottleneck).

Wang, Kong, Zhang, Yu, Sanghavi, Jia: "Improving Robustness to Model Inversion Attacks via
Mutual Information Regularization", AAAI 2021. https://arxiv.org/abs/2009.05241
Authors' code: https://github.com/Jiachen-T-Wang/mi-defense (``gmi/target/model.py``
``VGG16_vib``, ``gmi/target/engine.py`` ``train_vib``, ``gmi/target/train_vib.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lsmia_bench.defenses.base import Defense, LossInputs

#: The authors compute std = softplus(s - 5): a small initial noise scale.
STD_SHIFT = 5.0


def split_statistics(statistics: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, std) = (s[:, :k], softplus(s[:, k:] - 5)) from the encoder output s of width 2k."""
    return statistics[:, :k], F.softplus(statistics[:, k:] - STD_SHIFT)


def log_softplus(x: torch.Tensor) -> torch.Tensor:
    """log(softplus(x)), equal to x where softplus(x) would underflow to 0 in float32."""
    safe = torch.log(F.softplus(x.clamp_min(-15.0)))
    return torch.where(x < -15.0, x, safe)


def gaussian_kl_to_standard_normal(mu: torch.Tensor, std: torch.Tensor,
                                   log_std: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu, std^2) || N(0, I)) = mean_b 0.5 * sum_j (mu^2 + std^2 - 1 - 2 log std).

    Summed over the k code dimensions and averaged once over the batch, as in the authors'
    ``info_loss = -0.5 * (1 + 2 * std.log() - mu.pow(2) - std.pow(2)).sum(dim=1).mean()``.
    """
    if log_std is None:
        log_std = torch.log(std)
    return (0.5 * (mu.pow(2) + std.pow(2) - 1.0 - 2.0 * log_std)).sum(dim=1).mean()


class VariationalBottleneck(nn.Module):
    """A classifier with a stochastic code between its features and a new head.

    ``encoder`` (the authors' ``st_layer``) maps the base model's penultimate features
    (``feature_dim``) to 2k statistics: the code's mean ``mu`` and ``std = softplus(s - 5)``.
    In train mode ``forward`` samples ``z = mu + std * eps`` (eps ~ N(0, I)); in eval mode it
    uses ``z = mu``. ``head`` (the authors' ``fc_layer``) maps the code to logits. The base
    model's own head is replaced by ``nn.Identity`` (it is not used). ``embed`` returns ``mu``.
    """

    def __init__(self, base: nn.Module, k: int) -> None:
        super().__init__()
        old_head = base.head
        base.head = nn.Identity()
        self.base = base
        self.k = k
        self.encoder = nn.Linear(base.feature_dim, 2 * k)
        self.head = nn.Linear(k, old_head.out_features, bias=old_head.bias is not None)
        self.feature_dim = k
        self.hidden_layers = [f"base.{name}" for name in getattr(base, "hidden_layers", [])]

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, std) of the code for inputs ``x``."""
        return split_statistics(self.encoder(self.base.embed(x)), self.k)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the code's mean."""
        return self.statistics(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, std = self.statistics(x)
        z = mu + std * torch.randn_like(std) if self.training else mu
        return self.head(z)


class MID(Defense):
    """MID: a variational information bottleneck, loss = CE + beta * KL(q(z|x) || N(0, I)).

    Paper: "Improving Robustness to Model Inversion Attacks via Mutual Information
    Regularization", Wang et al., AAAI 2021 (https://arxiv.org/abs/2009.05241). The model's
    penultimate features go through a linear encoder to the mean and std (softplus(s - 5)) of
    a k-dimensional Gaussian code, k = feature_dim // 2; training samples the code, evaluation
    (and so every attack) uses its mean. The KL term bounds I(X; Z).

    The KL is read from the encoder's output, which the training loop captures because
    :meth:`feature_layers` names it: ``batch.features["encoder"]`` holds the 2k statistics of
    the same forward pass that produced the logits.

    Arguments:
        beta (float): weight of the KL term, >= 0. (Default: 0.003, ``beta`` in the authors'
            ``gmi/target/train_vib.py``; the paper's CelebA sweep uses 0.003, 0.01, 0.02 with
            VGG16 test accuracies 77.6 / 67.7 / 59.2 %)
        bottleneck_dim (int | None): code size k; None means feature_dim // 2.
            (Default: None, the authors' ``self.k = self.feat_dim // 2``)

    Deviation: the authors' ``predict`` also samples at test time; here evaluation is
    deterministic (z = mu), as in Alemi et al.'s VIB and as lsmia-bench's issue asks, so that
    attacks and accuracy see one fixed model.
    """

    name: ClassVar[str] = "mid"
    paper: ClassVar[str] = ("Improving Robustness to Model Inversion Attacks via Mutual "
                            "Information Regularization (Wang et al., AAAI 2021)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2009.05241"
    summary: ClassVar[str] = "Variational bottleneck: CE + beta * KL(q(z|x) || N(0,I))."
    strength: ClassVar[str | None] = "beta"

    beta: float = Field(0.003, ge=0.0, description="weight of the KL term (authors: 0.003)")
    bottleneck_dim: int | None = Field(None, ge=1, description="code size k; None: "
                                       "feature_dim // 2 (authors)")

    def wrap_model(self, model: nn.Module) -> nn.Module:
        feature_dim = int(model.feature_dim)
        k = self.bottleneck_dim or max(1, feature_dim // 2)
        return VariationalBottleneck(model, k)

    def feature_layers(self, model: nn.Module) -> list[str]:
        return ["encoder"]

    def loss(self, batch: LossInputs) -> torch.Tensor:
        statistics = batch.feature("encoder")
        k = statistics.shape[1] // 2
        mu, std = split_statistics(statistics, k)
        kl = gaussian_kl_to_standard_normal(mu, std, log_softplus(statistics[:, k:] - STD_SHIFT))
        return F.cross_entropy(batch.logits, batch.targets) + self.beta * kl
