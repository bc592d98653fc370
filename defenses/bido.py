"""BiDO: Bilateral Dependency Optimization.

Peng, Liu, Zhang, Lan, Ye, Liu, Han: "Bilateral Dependency Optimization: Defending Against
Model-inversion Attacks", KDD 2022. https://arxiv.org/abs/2206.05483
Authors' code: https://github.com/AlanPeng0897/Defend_MI (``BiDO/engine.py``
``multilayer_hsic``, ``BiDO/hsic.py``, ``BiDO/train_HSIC.py``; README for the lambdas).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from lsmia_bench.defenses.base import Defense, LossInputs
from lsmia_bench.defenses.dependence import (
    coco_from_centered,
    doubly_centered,
    hsic_resolvent,
    kernel_matrix,
    normalized_hsic_from_resolvents,
)

#: (lambda_x, lambda_y) from the authors' README: CelebA with HSIC (0.05, 0.5) (also
#: (0.05, 1.0) and (0.05, 2.5)); MNIST with COCO (1, 50).
AUTHORS_LAMBDAS: dict[str, tuple[float, float]] = {"hsic": (0.05, 0.5), "coco": (1.0, 50.0)}


class BiDO(Defense):
    """BiDO: loss = CE + sum_l (lambda_x * dep(X, Z_l) - lambda_y * dep(Y, Z_l)).

    Paper: "Bilateral Dependency Optimization: Defending Against Model-inversion Attacks",
    Peng et al., KDD 2022 (https://arxiv.org/abs/2206.05483). For each hidden layer l, the
    dependence between the layer's activations Z_l and the inputs X is pushed down (less to
    invert) and the dependence between Z_l and the one-hot labels Y pushed up (keeps utility).
    dep is measured per batch on flattened inputs and activations
    (:mod:`defenses.dependence`).

    Kernels as in the authors' code (``hsic_objective`` / ``coco_objective``): activations and
    inputs always use the Gaussian kernel ``exp(-||a - b||^2 / (2 sigma^2 d))``; ``label_kernel``
    (the authors' ``--ktype``) is the kernel on the one-hot labels.

    Arguments:
        measure (str): "hsic" (normalised HSIC) or "coco". (Default: "hsic", the authors'
            ``--measure`` default and their CelebA setting)
        lambda_x (float): weight of dep(X, Z_l), >= 0. (Default: 0.05 for HSIC, the authors'
            CelebA value; 1.0 when measure is "coco", their MNIST value)
        lambda_y (float): weight of dep(Y, Z_l), >= 0. (Default: 0.5 for HSIC, CelebA; the
            authors also use 1.0 and 2.5 (test accuracy 80.4 / 70.1 / 56.2 %); 50.0 for COCO,
            MNIST)
        label_kernel (str): "linear" or "gaussian" kernel on the one-hot labels.
            (Default: "linear", the authors' ``--ktype`` default)
        sigma (float): Gaussian kernel width, > 0. (Default: 5.0, the authors' ``sigma=5.``)
        layers (list[str] | None): submodules whose outputs are the Z_l; None means the model's
            ``hidden_layers``. (Default: None; the authors use every block of their VGG16,
            including the penultimate features)
    """

    name: ClassVar[str] = "bido"
    paper: ClassVar[str] = ("Bilateral Dependency Optimization: Defending Against "
                            "Model-inversion Attacks (Peng et al., KDD 2022)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2206.05483"
    summary: ClassVar[str] = "CE + lx*dep(X,Z) - ly*dep(Y,Z) per hidden layer (HSIC/COCO)."
    strength: ClassVar[str | None] = "lambda_y"

    measure: Literal["hsic", "coco"] = Field("hsic", description="dependence measure")
    lambda_x: float = Field(AUTHORS_LAMBDAS["hsic"][0], ge=0.0,
                            description="weight of dep(X, Z); COCO default 1.0")
    lambda_y: float = Field(AUTHORS_LAMBDAS["hsic"][1], ge=0.0,
                            description="weight of dep(Y, Z); COCO default 50.0")
    label_kernel: Literal["linear", "gaussian"] = Field(
        "linear", description="kernel on the one-hot labels (authors' ktype)")
    sigma: float = Field(5.0, gt=0.0, description="Gaussian kernel width")
    layers: list[str] | None = Field(None, description="hidden layers; None: the model's "
                                     "hidden_layers")

    @field_validator("measure", "label_kernel", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _authors_lambdas_for_measure(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        measure = data.get("measure", "hsic")
        measure = measure.lower() if isinstance(measure, str) else measure
        if measure not in AUTHORS_LAMBDAS:
            return data
        lambda_x, lambda_y = AUTHORS_LAMBDAS[measure]
        return {"lambda_x": lambda_x, "lambda_y": lambda_y} | data

    def feature_layers(self, model: nn.Module) -> list[str]:
        layers = list(self.layers) if self.layers is not None else list(
            getattr(model, "hidden_layers", []))
        if not layers:
            raise ValueError("bido needs hidden layers: the model declares no hidden_layers; "
                             "set the defense's 'layers' parameter")
        known = dict(model.named_modules())
        missing = [name for name in layers if name not in known]
        if missing:
            raise ValueError(f"bido: the model has no submodules {missing}; its hidden_layers "
                             f"are {getattr(model, 'hidden_layers', [])}")
        return layers

    def dependencies(self, batch: LossInputs) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(dep(X, Z_l), dep(Y, Z_l)) for every hidden layer, in the order of feature_layers."""
        x = batch.inputs.reshape(len(batch.inputs), -1).to(batch.logits.dtype)
        y = F.one_hot(batch.targets, batch.num_classes).to(batch.logits.dtype)
        names = (self.feature_layers(batch.model) if batch.model is not None
                 else list(batch.features))
        hiddens = [batch.feature(name) for name in names]
        k_x = kernel_matrix(x, "gaussian", self.sigma)
        k_y = kernel_matrix(y, self.label_kernel, self.sigma)
        pairs = []
        if self.measure == "hsic":
            r_x, r_y = hsic_resolvent(k_x), hsic_resolvent(k_y)
            for hidden in hiddens:
                r_z = hsic_resolvent(kernel_matrix(hidden, "gaussian", self.sigma))
                pairs.append((normalized_hsic_from_resolvents(r_z, r_x),
                              normalized_hsic_from_resolvents(r_z, r_y)))
        else:
            c_x, c_y = doubly_centered(k_x), doubly_centered(k_y)
            for hidden in hiddens:
                c_z = doubly_centered(kernel_matrix(hidden, "gaussian", self.sigma))
                pairs.append((coco_from_centered(c_z, c_x), coco_from_centered(c_z, c_y)))
        return pairs

    def loss(self, batch: LossInputs) -> torch.Tensor:
        total = F.cross_entropy(batch.logits, batch.targets)
        for dep_x, dep_y in self.dependencies(batch):
            total = total + self.lambda_x * dep_x - self.lambda_y * dep_y
        return total
