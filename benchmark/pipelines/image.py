"""The ``image`` pipeline: the model-inversion protocol on small image data sets (DESIGN.md §3).

Targets learn the PRIVATE classes of ``data`` (one trial per defense setting x seed, all with
the same architecture and training settings); the attacker's prior may only see the PUBLIC
classes; an evaluation model of another architecture, trained once on the same private data,
judges attacks. Planning is split into :func:`plan_prerequisites`, :func:`plan_targets` and
:func:`plan_attacks` so that later stages can be added without touching the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator

from attacks import ATTACKS
from benchmark.config import ComponentSpec, Strict, SuiteConfig, build_components
from benchmark.errors import UserError
from benchmark.jobs import Job
from benchmark.pipelines.base import Pipeline, Report
from defenses import DEFENSES

TRAIN_TASK = "benchmark.pipelines.image_tasks:train_image_classifier"


class ImageData(Strict):
    source: Literal["digits", "olivetti"]
    private_classes: list[int] = Field(min_length=1)
    public_classes: list[int] = Field(min_length=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = 0
    image_size: int | None = Field(None, ge=4)
    data_home: str | None = None


class Architecture(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Augmentation(Strict):
    crop_padding: int = Field(0, ge=0)
    resized_crop_scale: tuple[float, float] | None = None
    horizontal_flip: bool = False
    brightness: float = Field(0.0, ge=0, lt=1)
    contrast: float = Field(0.0, ge=0, lt=1)

    @field_validator("resized_crop_scale")
    @classmethod
    def _scale_range(cls, scale: tuple[float, float] | None) -> tuple[float, float] | None:
        if scale is not None and not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError("[low, high] with 0 < low <= high <= 1")
        return scale


class Scheduler(Strict):
    milestones: list[float] = Field(default_factory=list)
    gamma: float = Field(0.1, gt=0, le=1)

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, milestones: list[float]) -> list[float]:
        if any(not 0 < m <= 1 for m in milestones):
            raise ValueError("fractions of training in (0, 1], e.g. [0.75, 0.9]")
        return milestones


class ImageTraining(Strict):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    augmentation: Augmentation = Field(default_factory=Augmentation)


class Evaluation(Architecture):
    training: ImageTraining | None = None
    seed: int = 0


class ImageConfig(SuiteConfig):
    pipeline: Literal["image"] = "image"
    data: ImageData
    target: Architecture
    training: ImageTraining
    evaluation: Evaluation


def data_spec(config: ImageConfig) -> dict[str, Any]:
    """The ``data`` section as stored in job specs: the Olivetti data home made absolute (trials
    run elsewhere), and no data home for sources that need none."""
    data = config.data.model_dump()
    if config.data.source == "olivetti":
        from benchmark.data.olivetti import resolve_data_home

        data["data_home"] = str(resolve_data_home(config.data.data_home))
    else:
        data.pop("data_home")
    return data


def plan_prerequisites(config: ImageConfig) -> dict[str, Job]:
    """Role -> job: the evaluation model (trained once per suite on the private data)."""
    evaluation = config.evaluation
    training = evaluation.training or config.training
    job = Job(
        stage="prerequisites", task=TRAIN_TASK,
        name=f"evaluation model {evaluation.name} seed={evaluation.seed}",
        spec={"data": data_spec(config),
              "model": {"name": evaluation.name, "params": evaluation.params},
              "training": training.model_dump(), "defense": {"name": "none", "params": {}},
              "seed": evaluation.seed},
        labels={"role": "evaluation", "architecture": evaluation.name,
                "seed": evaluation.seed},
    )
    return {"evaluation": job}


def plan_targets(config: ImageConfig) -> list[Job]:
    """One target per defense setting x seed, all with the same architecture and training."""
    jobs = []
    for seed in config.seeds:
        for defense_spec in config.defenses:
            for params, _ in defense_spec.settings():
                defense = DEFENSES.get(defense_spec.name)(**params)
                jobs.append(Job(
                    stage="targets", task=TRAIN_TASK,
                    name=f"target {config.target.name} {defense.label()} seed={seed}",
                    spec={"data": data_spec(config), "model": config.target.model_dump(),
                          "training": config.training.model_dump(),
                          "defense": {"name": defense_spec.name,
                                      "params": defense.model_dump()},
                          "seed": seed},
                    labels={"role": "target", "defense": defense.name,
                            "defense_label": defense.label(),
                            "strength": defense.strength_value(), "seed": seed,
                            "architecture": config.target.name},
                ))
    return jobs


def plan_attacks(config: ImageConfig, prerequisites: dict[str, Job],
                 targets: list[Job]) -> list[Job]:
    """Attack trials (target x attack); none yet: check() refuses a non-empty ``attacks``."""
    return []


class ImagePipeline(Pipeline):
    schema = ImageConfig

    def check(self, config: ImageConfig) -> None:
        from benchmark.data.images import load_image_splits
        from benchmark.models import build_classifier

        build_components(config.defenses, DEFENSES, "defenses")
        if config.evaluation.name == config.target.name:
            raise UserError("evaluation.name", config.evaluation.name,
                            f"Pick an architecture other than target.name "
                            f"({config.target.name!r}) for the evaluation model.",
                            problem="the evaluation model must be another architecture")
        if config.attacks:
            build_components(config.attacks, ATTACKS, "attacks")
            raise UserError("attacks", [a.name for a in config.attacks],
                            "Leave attacks empty (attacks: []) for image suites for now.",
                            problem="the image pipeline runs no attacks yet")
        splits = load_image_splits(data_spec(config))  # data present, classes valid
        channels, size, _ = splits.image_shape
        for field, arch in (("target", config.target), ("evaluation", config.evaluation)):
            build_classifier(arch.name, arch.params, channels, size, splits.num_classes,
                             field=field)

    def plan(self, config: ImageConfig) -> list[Job]:
        prerequisites = plan_prerequisites(config)
        targets = plan_targets(config)
        return [*prerequisites.values(), *targets,
                *plan_attacks(config, prerequisites, targets)]

    def report(self, config: ImageConfig, jobs: list[Job], outcomes: dict,
               out_dir: Path) -> Report:
        rows = [_row(job, outcomes.get(job.key)) for job in jobs if job.stage == "targets"]
        rows += [_row(job, outcomes.get(job.key)) for job in jobs
                 if job.labels.get("role") == "evaluation"]
        table = pd.DataFrame(rows, columns=REPORT_COLUMNS)
        files = draw_embeddings(jobs, outcomes, out_dir, config.name)
        return Report(table=table, files=files)


REPORT_COLUMNS = ["defense", "strength", "seed", "architecture", "test_accuracy", "ece",
                  "class_separation", "train_time_s", "status"]


def _row(job: Job, outcome: Any) -> dict[str, Any]:
    evaluation = job.labels.get("role") == "evaluation"
    row: dict[str, Any] = {
        "defense": "(evaluation model)" if evaluation else job.labels["defense_label"],
        "strength": None if evaluation else job.labels["strength"],
        "seed": job.labels["seed"], "architecture": job.labels["architecture"],
        "status": outcome.status if outcome else "missing",
    }
    if outcome is not None and outcome.result:
        metrics = outcome.result["metrics"]
        for key in ("test_accuracy", "ece", "class_separation"):
            row[key] = metrics.get(key)
        row["train_time_s"] = outcome.result.get("elapsed_s")
    return row


def draw_embeddings(jobs: list[Job], outcomes: dict, out_dir: Path, suite: str) -> list[Path]:
    """The PCA and t-SNE views of every finished target of the first seed, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.embedding import PROJECTION_TITLES, PROJECTIONS, draw_embedding

    done = [j for j in jobs if j.stage == "targets" and outcomes.get(j.key)
            and outcomes[j.key].ok and (outcomes[j.key].artifact_dir / "embedding.csv").is_file()]
    if not done:
        return []
    first_seed = done[0].labels["seed"]
    panels = [j for j in done if j.labels["seed"] == first_seed]
    fig, axes = plt.subplots(len(PROJECTIONS), len(panels), squeeze=False,
                             figsize=(3.2 * len(panels), 3.2 * len(PROJECTIONS)))
    for column, job in enumerate(panels):
        outcome = outcomes[job.key]
        table = pd.read_csv(outcome.artifact_dir / "embedding.csv")
        separation = outcome.result["metrics"].get("class_separation", float("nan"))
        for row, method in enumerate(PROJECTIONS):
            draw_embedding(axes[row][column], table, method,
                           f"{job.labels['defense_label']}\n{PROJECTION_TITLES[method]}, "
                           f"silhouette {separation:.3f}")
    fig.suptitle(f"{suite}: penultimate features of the private test data (seed {first_seed})",
                 fontsize=10)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "embeddings.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
