"""Random search: an example outside attack for lsmia-bench (no gradients, no prior).

For each attacked class, draw ``candidates`` uniform random images ``rounds`` times and keep
the ``samples_per_class`` the target is most confident about. A weak baseline, which is the
point: a few lines that keep the attack contract (see ``attacks/base.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lsmia_bench.attacks import Attack, AttackOutput
from lsmia_bench.attacks.base import model_device


class RandomSearch(Attack):
    """Keep the random images the target is most confident about, per class.

    Arguments:
        candidates (int): random images drawn per class and round. (Default: 64)
        rounds (int): draws per class. (Default: 4)
        samples_per_class (int): reconstructions kept per class. (Default: 2)
        input_shape (tuple | None): (C, H, W) of the target's input; the image pipelines fill it.
    """

    name: ClassVar[str] = "random_search"
    paper: ClassVar[str] = "Baseline (no paper): uniform random search"
    paper_url: ClassVar[str] = "https://github.com/"
    summary: ClassVar[str] = "Best of uniform random images by target confidence (baseline)."
    #: A tiny run for the plug-in check made before any trial.
    probe_params: ClassVar[dict[str, Any]] = {"candidates": 4, "rounds": 1,
                                              "samples_per_class": 1}

    candidates: int = Field(64, ge=1, description="random images per class and round")
    rounds: int = Field(4, ge=1, description="draws per class")
    samples_per_class: int = Field(2, ge=1, description="reconstructions kept per class")
    input_shape: tuple[int, int, int] | None = Field(None, description="(C, H, W) of the input")

    def run(self, target: nn.Module, classes: Sequence[int],
            prior: nn.Module | None = None) -> AttackOutput:
        shape = self.input_shape or target.input_shape
        keep = min(self.samples_per_class, self.candidates * self.rounds)
        target.eval()
        device = model_device(target)
        finals, labels, best_confidence = [], [], []
        with torch.no_grad():
            for cls in classes:
                pool, scores = [], []
                for _ in range(self.rounds):
                    images = torch.rand(self.candidates, *shape, device=device)
                    pool.append(images)
                    scores.append(F.softmax(target(images), dim=1)[:, cls])
                confidence = torch.cat(scores)
                best = confidence.topk(keep).indices
                finals.append(torch.cat(pool)[best].cpu())
                labels += [cls] * keep
                best_confidence.append(confidence[best].mean().item())
        return AttackOutput(
            reconstructions=torch.cat(finals),
            labels=torch.tensor(labels, dtype=torch.long),
            trace={"best_confidence": best_confidence},
        )
