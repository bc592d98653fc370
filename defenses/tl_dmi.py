"""TL-DMI: Transfer Learning based Defense against Model Inversion.

Ho, Koh, Chandrasegaran, Nguyen, Cheung: "Model Inversion Robustness: Can Transfer
Learning Help?", CVPR 2024. https://arxiv.org/abs/2405.05588
Authors' code: https://github.com/hosytuyen/TL-DMI (``models/classify.py`` ``VGG16_TL``,
``config/celeba/training_classifiers/classify.json`` ``freeze_layers``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lsmia_bench.defenses.base import Defense, PublicData, TrainingSetup


def default_trainable_from(model: nn.Module) -> str:
    """The first fine-tuned submodule of lsmia-bench's architectures (docs/defenses.md):
    everything registered before it is pre-trained on public data and frozen.

    The authors freeze VGG16's first 8 of 13 convolutions and IR-152's units 0-46 of 50 (all
    but the last stage); here every architecture keeps its last stage trainable, as for IR-152.
    """
    base = model
    prefix = ""
    while hasattr(base, "base") and isinstance(base.base, nn.Module):  # a wrapped model (MID)
        base, prefix = base.base, prefix + "base."
    kind = type(base).__name__
    if kind == "SmallResNet":
        return f"{prefix}stages.{len(base.stages) - 1}"
    if kind == "SmallCNN":
        return f"{prefix}blocks.{len(base.blocks) - 1}"
    if kind in ("ResNet18", "ResNet50", "ResNet152"):
        return f"{prefix}net.layer4"
    if kind in ("DenseNet121", "DenseNet169"):
        return f"{prefix}net.features.denseblock4"
    if kind == "InceptionV3":
        return f"{prefix}net.Mixed_7a"
    raise ValueError(f"tl_dmi has no default freeze point for a {kind}; set the defense's "
                     f"'trainable_from' to the first submodule to fine-tune")


def frozen_parameter_names(model: nn.Module, trainable_from: str) -> list[str]:
    """Names of the parameters registered before submodule ``trainable_from`` (frozen)."""
    if trainable_from not in dict(model.named_modules()):
        raise ValueError(f"tl_dmi: the model has no submodule {trainable_from!r} "
                         f"(trainable_from); its top-level submodules are "
                         f"{[name for name, _ in model.named_children()]}")
    frozen = []
    for name, _ in model.named_parameters():
        if name == trainable_from or name.startswith(trainable_from + "."):
            break
        frozen.append(name)
    return frozen


def pretrain_on_public(model: nn.Module, public: PublicData, optimizer: torch.optim.Optimizer,
                       epochs: int, batch_size: int, seed: int, device: torch.device) -> None:
    """Train ``model`` in place on the public split with a temporary head of public classes;
    the private head is put back unchanged (its initial weights)."""
    private_head = model.head
    model.head = nn.Linear(private_head.in_features, public.num_classes).to(device)
    trainer = type(optimizer)(model.parameters(), **optimizer.defaults)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(public.images), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:  # BatchNorm cannot train on a single image
                continue
            inputs, targets = public.images[index].to(device), public.labels[index].to(device)
            loss = F.cross_entropy(model(inputs), targets)
            trainer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.step()
    model.head = private_head


class TLDMI(Defense):
    """TL-DMI: pre-train on public data, freeze the early layers, fine-tune the rest privately.

    Paper: "Model Inversion Robustness: Can Transfer Learning Help?", Ho et al., CVPR 2024
    (https://arxiv.org/abs/2405.05588). Early layers learnt from public data only carry less
    private information for an inversion to exploit; only the later layers see private data.

    Before training, the model (with a temporary head for the public classes) is trained on the
    suite's PUBLIC split with the suite's optimiser settings and batch size; then the
    parameters registered before ``trainable_from`` are frozen (``requires_grad = False``, so
    they get no gradient and the optimiser skips them) and the model is fine-tuned on the
    private data with the suite's training. The loss is cross-entropy.

    Arguments:
        trainable_from (str | None): name of the first submodule that is fine-tuned;
            parameters registered before it are frozen. None: the architecture's default, all
            but the last stage (docs/defenses.md; the authors: VGG16 from the 9th of 13
            convolutions, IR-152 from unit 47 of 50).
        pretrain_epochs (int | None): epochs over the public split; None: the suite's epochs.
            (Default: None)
        pretrain (bool): pre-train on the public split. False keeps the model's own initial
            weights (ImageNet weights of a torchvision network on ``faces``, where the pipeline
            gives no public split). (Default: True)
    """

    name: ClassVar[str] = "tl_dmi"
    paper: ClassVar[str] = ("Model Inversion Robustness: Can Transfer Learning Help? "
                            "(Ho et al., CVPR 2024)")
    paper_url: ClassVar[str] = "https://arxiv.org/abs/2405.05588"
    summary: ClassVar[str] = "Pre-train on public data, freeze early layers, fine-tune the rest."

    trainable_from: str | None = Field(None, description="first fine-tuned submodule; None: "
                                       "the architecture's default (all but the last stage)")
    pretrain_epochs: int | None = Field(None, ge=1, description="epochs on the public split; "
                                        "None: the suite's epochs")
    pretrain: bool = Field(True, description="pre-train on the public split first")

    def prepare_training(self, setup: TrainingSetup) -> TrainingSetup:
        model = setup.model
        if self.pretrain:
            if setup.public is None:
                raise ValueError("tl_dmi: this pipeline gives no public split to pre-train on; "
                                 "set pretrain: false to fine-tune from the model's own "
                                 "(for example ImageNet) weights")
            pretrain_on_public(model, setup.public, setup.optimizer,
                               self.pretrain_epochs or setup.epochs, setup.batch_size,
                               setup.seed, setup.device)
        start = self.trainable_from or default_trainable_from(model)
        frozen = set(frozen_parameter_names(model, start))
        for name, parameter in model.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)
        setup.state["frozen"] = sorted(frozen)
        # The suite's optimiser has not stepped yet; clearing its state is a no-op kept so
        # that frozen parameters can never carry momentum into fine-tuning.
        setup.optimizer.state.clear()
        return setup

    def end_training(self, setup: TrainingSetup) -> dict[str, float]:
        frozen = set(setup.state.get("frozen", []))
        total = sum(p.numel() for p in setup.model.parameters())
        fixed = sum(p.numel() for n, p in setup.model.named_parameters() if n in frozen)
        return {"frozen_parameter_share": fixed / max(total, 1)}

