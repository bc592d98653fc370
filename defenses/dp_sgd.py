"""DP-SGD: differentially private training with Opacus (per-example clipping and Gaussian noise).

Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang: "Deep Learning with Differential
Privacy", CCS 2016. https://arxiv.org/abs/1607.00133
Library: Opacus (Yousefpour et al., "Opacus: User-Friendly Differential Privacy Library in
PyTorch", 2021, https://arxiv.org/abs/2109.12298; https://github.com/pytorch/opacus):
``GradSampleModule``, ``DPOptimizer``, the accountants, ``ModuleValidator.fix`` and
``UniformWithReplacementSampler``, as ``PrivacyEngine.make_private`` combines them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from lsmia_bench.defenses.base import Defense, TrainingSetup


def sample_rate(batch_size: int, train_size: int) -> float:
    """q = B / N: the probability that one example is in one Poisson-sampled batch."""
    return min(1.0, batch_size / train_size)


def make_dp_compatible(model: nn.Module) -> nn.Module:
    """The model with every BatchNorm replaced by GroupNorm (``ModuleValidator.fix``) and
    in-place ReLUs made out-of-place (Opacus's backward hooks refuse in-place changes of a
    hooked module's output)."""
    from opacus.validators import ModuleValidator

    fixed = ModuleValidator.fix(model)
    for module in fixed.modules():
        if isinstance(module, nn.ReLU | nn.LeakyReLU):
            module.inplace = False
    errors = ModuleValidator.validate(fixed, strict=False)
    if errors:
        raise ValueError(f"dp_sgd: Opacus cannot train this model: {errors[0]}")
    return fixed


class DPSGD(Defense):
    """DP-SGD: every example's gradient clipped to ``max_grad_norm``, Gaussian noise of std
    ``noise_multiplier * max_grad_norm`` added to their sum, batches Poisson-sampled.

    Paper: "Deep Learning with Differential Privacy", Abadi et al., CCS 2016
    (https://arxiv.org/abs/1607.00133), implemented with Opacus (not a hand-written clipper):
    BatchNorm is replaced by GroupNorm (``ModuleValidator.fix``, in :meth:`wrap_model`, so a
    loaded target has the same structure), the model is wrapped in a ``GradSampleModule``, the
    suite's optimiser in a ``DPOptimizer`` (so DP-Adam where the suite trains with Adam), and
    each batch includes every private training example independently with probability
    q = batch_size / N (``UniformWithReplacementSampler``; about N / batch_size steps per
    epoch), as the accountant assumes. After training the accountant's epsilon at ``delta``
    is recorded with the target as ``dp_epsilon`` (and ``delta`` as ``dp_delta``).

    Arguments:
        noise_multiplier (float): noise std over the clipping norm, > 0. (Default: 1.0, as in
            Opacus's MNIST example ``--sigma``)
        max_grad_norm (float): per-example clipping norm C, > 0. (Default: 1.0, Opacus's MNIST
            example ``-c``)
        delta (float): the delta of the reported (epsilon, delta), in (0, 1). (Default: 1e-5,
            Opacus's MNIST example; below 1 / N for our data sets)
        target_epsilon (float | None): when set, the noise multiplier is chosen so that training
            ends at this epsilon (``opacus.accountants.utils.get_noise_multiplier``) and
            ``noise_multiplier`` is ignored. (Default: None)
        accountant (str): "rdp" (Mironov 2017), "prv" (Gopi et al. 2021) or "gdp" (Dong et al.
            2019). (Default: "rdp", the moments accountant of the paper in its RDP form)
    """

    name: ClassVar[str] = "dp_sgd"
    paper: ClassVar[str] = "Deep Learning with Differential Privacy (Abadi et al., CCS 2016)"
    paper_url: ClassVar[str] = "https://arxiv.org/abs/1607.00133"
    summary: ClassVar[str] = "Opacus DP-SGD: per-example clipping + noise; epsilon recorded."
    strength: ClassVar[str | None] = "noise_multiplier"

    noise_multiplier: float = Field(1.0, gt=0.0, description="noise std / clipping norm")
    max_grad_norm: float = Field(1.0, gt=0.0, description="per-example clipping norm C")
    delta: float = Field(1e-5, gt=0.0, lt=1.0, description="delta of the reported epsilon")
    target_epsilon: float | None = Field(None, gt=0.0, description="choose the noise for this "
                                         "final epsilon (ignores noise_multiplier)")
    accountant: Literal["rdp", "prv", "gdp"] = Field("rdp", description="privacy accountant")

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return make_dp_compatible(model)

    def noise_for(self, rate: float, epochs: int) -> float:
        """The noise multiplier of a run: ``noise_multiplier``, or the one that reaches
        ``target_epsilon`` after ``epochs`` epochs at sample rate ``rate``."""
        if self.target_epsilon is None:
            return self.noise_multiplier
        from opacus.accountants.utils import get_noise_multiplier

        return float(get_noise_multiplier(target_epsilon=self.target_epsilon,
                                          target_delta=self.delta, sample_rate=rate,
                                          epochs=epochs, accountant=self.accountant))

    def prepare_training(self, setup: TrainingSetup) -> TrainingSetup:
        from opacus import GradSampleModule
        from opacus.accountants.utils import create_accountant
        from opacus.optimizers import DPOptimizer
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        if setup.examples is None:
            raise ValueError("dp_sgd: this pipeline gives no per-example access to the "
                             "training data, which Poisson sampling needs")
        rate = sample_rate(setup.batch_size, setup.train_size)
        noise = self.noise_for(rate, setup.epochs)
        module = GradSampleModule(setup.model)
        noise_generator = torch.Generator(device=setup.device).manual_seed(setup.seed)
        optimizer = DPOptimizer(setup.optimizer, noise_multiplier=noise,
                                max_grad_norm=self.max_grad_norm,
                                expected_batch_size=setup.batch_size, loss_reduction="mean",
                                generator=noise_generator)
        accountant = create_accountant(self.accountant)
        optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=rate))
        sampler = UniformWithReplacementSampler(
            num_samples=setup.train_size, sample_rate=rate,
            generator=torch.Generator().manual_seed(setup.seed))
        examples = setup.examples

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for index in sampler:
                yield examples(torch.as_tensor(index, dtype=torch.long))

        setup.state.update(accountant=accountant, noise_multiplier=noise, sample_rate=rate)
        return dataclasses.replace(setup, model=module, optimizer=optimizer, batches=batches)

    def end_training(self, setup: TrainingSetup) -> dict[str, float]:
        setup.model.to_standard_module()  # removes Opacus's hooks from the trained model
        epsilon = setup.state["accountant"].get_epsilon(delta=self.delta)
        return {"dp_epsilon": float(epsilon), "dp_delta": self.delta,
                "dp_noise_multiplier": float(setup.state["noise_multiplier"])}
