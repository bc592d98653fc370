"""The ``image`` pipeline: the model-inversion protocol on small image data sets (docs/protocol.md).

Targets learn the PRIVATE classes of ``data`` (one trial per defense setting x seed, all with
the same architecture and training settings); the attacker's prior may only see the PUBLIC
classes; an evaluation model of another architecture, trained once on the same private data,
judges attacks. Planning is split into :func:`plan_prerequisites` (the evaluation model and
each target-independent generator prior, trained on the public split only), :func:`plan_targets`
and :func:`plan_attacks` (one trial per target x attack setting, needing the target, the
evaluation model and the prior). A prior that depends on the target (KED-MI's GAN) is trained
inside its attack job and cached in that job's folder (see ``image_attack_tasks``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.attacks.priors import PRIORS
from lsmia_bench.benchmark.config import Strict, SuiteConfig, build_components
from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.metrics import METRICS
from lsmia_bench.benchmark.pipelines.base import Pipeline, Report
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.kernel.component import distinct_labels
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.metrics import known_metrics

TRAIN_TASK = "lsmia_bench.benchmark.pipelines.image_tasks:train_image_classifier"
PRIOR_TASK = "lsmia_bench.benchmark.pipelines.image_attack_tasks:train_image_prior"
ATTACK_TASK = "lsmia_bench.benchmark.pipelines.image_attack_tasks:attack_image_target"
#: Keyword arguments of a prior training function that the pipeline sets itself.
PIPELINE_PRIOR_ARGS = {"images", "target", "target_input_shape", "seed", "device", "progress"}


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


class Privacy(Strict):
    """How attacks are judged (docs/metrics.md). Defaults: the knowledge extraction student of the
    Plug & Play Attacks code (SGD lr 0.1, batch 32, 75 epochs) and PRDC with k = 3."""

    student_epochs: int = Field(75, ge=1)
    student_batch_size: int = Field(32, ge=2)
    student_lr: float = Field(0.1, gt=0)
    prdc_k: int = Field(3, ge=1)


class ImageConfig(SuiteConfig):
    pipeline: Literal["image"] = "image"
    data: ImageData
    target: Architecture
    training: ImageTraining
    evaluation: Evaluation
    #: Keyword arguments of each generator prior's training function, by prior kind
    #: (``attacks.priors.PRIORS``); a kind not listed trains with its defaults.
    priors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    prior_seed: int = 0
    privacy: Privacy = Field(default_factory=Privacy)
    #: The privacy metrics each attack is judged by, by registered name
    #: (``lsmia_bench.benchmark.metrics``); default: all of the image pipelines'. A metric
    #: that is not meaningful in the suite's setting is recorded as missing with its reason.
    metrics: list[str] = Field(default_factory=lambda: METRICS.for_pipeline("image"),
                               min_length=1)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str]) -> list[str]:
        return known_metrics(METRICS, metrics, "image")


def data_spec(config: ImageConfig) -> dict[str, Any]:
    """The ``data`` section as stored in job specs: the Olivetti data home made absolute (trials
    run elsewhere), and no data home for sources that need none."""
    data = config.data.model_dump()
    if config.data.source == "olivetti":
        from lsmia_bench.benchmark.data.olivetti import resolve_data_home

        data["data_home"] = str(resolve_data_home(config.data.data_home))
    else:
        data.pop("data_home")
    return data


def plan_prerequisites(config: ImageConfig, data: dict[str, Any] | None = None,
                       task: str = TRAIN_TASK, priors: bool = True) -> dict[str, Job]:
    """Role -> job: the evaluation model (trained once per suite on the private data) and,
    with ``priors``, each target-independent prior the attacks need.

    ``data``: the data section as stored in job specs (default :func:`data_spec`); ``task``:
    the training task (other pipelines pass their own)."""
    data = data_spec(config) if data is None else data
    evaluation = config.evaluation
    training = evaluation.training or config.training
    job = Job(
        stage="prerequisites", task=task,
        name=f"evaluation model {evaluation.name} seed={evaluation.seed}",
        spec={"data": data,
              "model": {"name": evaluation.name, "params": evaluation.params},
              "training": training.model_dump(), "defense": {"name": "none", "params": {}},
              "seed": evaluation.seed, "uncertainty": config.uncertainty.model_dump()},
        labels={"role": "evaluation", "architecture": evaluation.name,
                "seed": evaluation.seed},
    )
    jobs = {"evaluation": job}
    for kind in needed_prior_kinds(config) if priors else []:
        if PRIORS.get(kind).per_target:
            continue  # trained inside each attack job (it needs the target)
        jobs[f"prior:{kind}"] = Job(
            stage="prerequisites", task=PRIOR_TASK, name=f"prior {kind} (public split)",
            spec={"data": data,
                  "prior": {"kind": kind, "params": config.priors.get(kind, {})},
                  "seed": config.prior_seed},
            labels={"role": "prior", "prior": kind, "seed": config.prior_seed},
        )
    return jobs


def needed_prior_kinds(config: ImageConfig) -> list[str]:
    """The prior kinds the suite's attacks need, in order of first use."""
    kinds: list[str] = []
    for spec in config.attacks:
        cls = ATTACKS.get(spec.name)
        if cls.needs_prior and cls.prior_kind not in kinds:
            kinds.append(cls.prior_kind)
    return kinds


def plan_targets(config: ImageConfig, data: dict[str, Any] | None = None,
                 task: str = TRAIN_TASK) -> list[Job]:
    """One target per defense setting x seed, all with the same architecture and training."""
    data = data_spec(config) if data is None else data
    # (the config's name for the defense, the defense) per setting, in the config's order
    settings = [(spec.name, DEFENSES.get(spec.name)(**params))
                for spec in config.defenses for params, _ in spec.settings()]
    labels = distinct_labels([defense for _, defense in settings])
    jobs = []
    for seed in config.seeds:
        for (name, defense), label in zip(settings, labels, strict=True):
            jobs.append(Job(
                stage="targets", task=task,
                name=f"target {config.target.name} {label} seed={seed}",
                spec={"data": data, "model": config.target.model_dump(),
                      "training": config.training.model_dump(),
                      "defense": {"name": name, "params": defense.model_dump()},
                      "seed": seed, "uncertainty": config.uncertainty.model_dump()},
                labels={"role": "target", "defense": defense.name, "defense_label": label,
                        "strength": defense.strength_value(), "seed": seed,
                        "architecture": config.target.name},
            ))
    return jobs


def attack_columns(config: ImageConfig) -> list[tuple[str, dict[str, Any], str]]:
    """(attack name, params, report column prefix) per attack setting; the prefix is the
    attack's name, numbered when one attack has several settings (``ppa_1``, ``ppa_2``)."""
    settings = [(spec.name, params) for spec in config.attacks
                for params, _ in spec.settings()]
    names = [name for name, _ in settings]
    out, seen = [], {}
    for name, params in settings:
        seen[name] = seen.get(name, 0) + 1
        prefix = name if names.count(name) == 1 else f"{name}_{seen[name]}"
        out.append((name, params, prefix))
    return out


def plan_attacks(config: ImageConfig, prerequisites: dict[str, Job], targets: list[Job],
                 data: dict[str, Any] | None = None, task: str = ATTACK_TASK,
                 prior: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> list[Job]:
    """One attack trial per target x attack setting, judged by the evaluation model.

    ``prior``: a generator the suite supplies (the faces suite's StyleGAN), put into the spec
    of every attack that needs a prior instead of a trained prior kind; ``extra``: more spec
    keys for the pipeline's attack task."""
    data = data_spec(config) if data is None else data
    jobs = []
    for target in targets:
        for name, params, prefix in attack_columns(config):
            cls = ATTACKS.get(name)
            attack = cls(**params)
            needs = {"target": target.key, "evaluation": prerequisites["evaluation"].key}
            spec: dict[str, Any] = {
                "attack": {"name": name, "params": attack.model_dump(mode="json")},
                "data": data, "privacy": config.privacy.model_dump(),
                "metrics": config.metrics,
                "student": config.target.model_dump(),  # xi's student: the target architecture
                "face_suite": config.data.source in FACE_SOURCES,
                "target_label": f"{target.labels['defense_label']} seed={target.labels['seed']}",
                "seed": target.labels["seed"],
                "uncertainty": config.uncertainty.model_dump(),
            }
            spec |= extra or {}
            if cls.needs_prior and prior is not None:
                spec["prior"] = prior
            elif cls.needs_prior:
                kind = cls.prior_kind
                if PRIORS.get(kind).per_target:
                    spec["prior"] = {"kind": kind, "params": config.priors.get(kind, {})}
                else:
                    needs["prior"] = prerequisites[f"prior:{kind}"].key
            jobs.append(Job(
                stage="attacks", task=task,
                name=f"attack {attack.label()} on {spec['target_label']}",
                spec=spec, needs=needs,
                labels=target.labels | {"role": "attack", "attack": name, "column": prefix},
            ))
    return jobs


#: Data sources of faces (delta_face applies).
FACE_SOURCES = {"olivetti", "facescrub", "celeba"}


def check_priors(config: ImageConfig) -> None:
    """Every attack that needs a prior names a registered kind (``attacks.priors.PRIORS``,
    plug-ins included) that loads; ``priors`` holds known kinds with arguments their training
    function takes."""
    import inspect

    for index, spec in enumerate(config.attacks):
        cls = ATTACKS.get(spec.name)
        if not cls.needs_prior:
            continue
        if cls.prior_kind is None or cls.prior_kind not in PRIORS:
            raise UserError(f"attacks[{index}].name", spec.name,
                            f"Set the attack's prior_kind to one of {PRIORS.names()}.",
                            problem="the attack needs a prior the pipeline cannot train")
        # A plug-in kind that fails to load or to name its training function fails here.
        PRIORS.get(cls.prior_kind, field=f"attacks[{index}].prior_kind").trainer(
            f"attacks[{index}].prior_kind")
    for kind, params in config.priors.items():
        if kind not in PRIORS:
            raise UserError("priors", kind, f"Use one of {PRIORS.names()}.",
                            problem="unknown prior kind")
        train = PRIORS.get(kind, field="priors").trainer(f"priors.{kind}")
        allowed = set(inspect.signature(train).parameters) - PIPELINE_PRIOR_ARGS
        for key in params:
            if key not in allowed:
                raise UserError(f"priors.{kind}.{key}", params[key],
                                f"Use one of {sorted(allowed)}.",
                                problem=f"unknown argument of the {kind} prior")


class ImagePipeline(Pipeline):
    schema = ImageConfig

    def check(self, config: ImageConfig) -> None:
        import torch

        from lsmia_bench.benchmark.data.images import load_image_splits
        from lsmia_bench.benchmark.models import build_classifier

        if config.evaluation.name == config.target.name:
            raise UserError("evaluation.name", config.evaluation.name,
                            f"Pick an architecture other than target.name "
                            f"({config.target.name!r}) for the evaluation model.",
                            problem="the evaluation model must be another architecture")
        splits = load_image_splits(data_spec(config))  # data present, classes valid
        channels, size, _ = splits.image_shape
        for field, arch in (("target", config.target), ("evaluation", config.evaluation)):
            build_classifier(arch.name, arch.params, channels, size, splits.num_classes,
                             field=field)

        def probe() -> tuple[Any, Any, Any, int]:
            """A fresh target and a few private training images, to run each defense once."""
            model = build_classifier(config.target.name, config.target.params, channels, size,
                                     splits.num_classes, field="target")
            rows = torch.linspace(0, len(splits.private_train) - 1, 8).long()  # all classes
            return (model, splits.private_train[rows], splits.private_train_labels[rows],
                    splits.num_classes)

        build_components(config.defenses, DEFENSES, "defenses", probe=probe)
        build_components(config.attacks, ATTACKS, "attacks")
        check_priors(config)

    def plan(self, config: ImageConfig) -> list[Job]:
        prerequisites = plan_prerequisites(config)
        targets = plan_targets(config)
        return [*prerequisites.values(), *targets,
                *plan_attacks(config, prerequisites, targets)]

    def report(self, config: ImageConfig, jobs: list[Job], outcomes: dict,
               out_dir: Path) -> Report:
        """The utility-privacy table (:func:`entry_report`), per-seed rows in ``per_seed.csv``."""
        report = entry_report(config, jobs, outcomes, out_dir)
        report.files += draw_embeddings(jobs, outcomes, out_dir, config.name)
        return report


TARGET_COLUMNS = ["defense", "strength", "seed", "test_accuracy", "ece", "class_separation"]
UTILITY_COLUMNS = ["test_accuracy", "ece", "class_separation"]
#: Target metrics that only some defenses record (``Defense.end_training``, e.g. DP-SGD's
#: epsilon, Trap-MID's trapdoor success): a column of the table where any target of the run
#: recorded it.
DEFENSE_COLUMNS = ["dp_epsilon", "trapdoor_success"]


def entry_report(config: ImageConfig, jobs: list[Job], outcomes: dict, out_dir: Path) -> Report:
    """One row per entry (target setting over its seeds; the evaluation model last) with each
    utility column and each attack's metrics that have a report column
    (``MetricSpec.column``) among the suite's ``metrics`` as ``<attack>_<column>``; per column
    its value, ``_ci_low``, ``_ci_high`` and ``_n`` (``benchmark.pipelines.aggregate``); per
    attack the paired difference of its ranking metric to ``none``. A metric missing with its
    reason in every trial of an attack is no column (the reasons: ``Report.missing`` and
    ``missing_metrics.json``). ``per_seed.csv`` keeps one row per trial."""
    import json

    from lsmia_bench.benchmark.metrics.intervals import bootstrap_settings
    from lsmia_bench.benchmark.pipelines.aggregate import (
        Entry,
        aggregate,
        difference,
        difference_fields,
        short_labels,
    )

    prefixes = [prefix for _, _, prefix in attack_columns(config)]
    suffixes = METRICS.columns(config.metrics)
    attacks: dict[str, list[Job]] = {}
    for job in jobs:
        if job.stage == "attacks":
            attacks.setdefault(job.needs["target"], []).append(job)
    targets = [job for job in jobs if job.stage == "targets"]
    evaluations = [job for job in jobs if job.labels.get("role") == "evaluation"]
    missing = _missing_columns(attacks, outcomes, suffixes)
    attack_cols = [f"{p}_{m}" for p in prefixes for m in suffixes if f"{p}_{m}" not in missing]
    recorded = {key for job in targets if (o := outcomes.get(job.key)) and o.result
                for key in o.result.get("metrics", {})}
    utility = [*UTILITY_COLUMNS, *(c for c in DEFENSE_COLUMNS if c in recorded)]
    columns = [*utility, *attack_cols]

    entries: dict[str, Entry] = {}
    for job in [*targets, *evaluations]:
        evaluation = job.labels.get("role") == "evaluation"
        label = "(evaluation model)" if evaluation else job.labels["defense_label"]
        entry = entries.setdefault(label, Entry(
            label, "(evaluation model)" if evaluation else job.labels["defense"],
            None if evaluation else job.labels["strength"]))
        cells, status = _cells(job, outcomes, attacks.get(job.key, []), suffixes, utility)
        entry.statuses += [f"seed {job.labels['seed']}: {status}"] if status != "finished" \
            else []
        if cells is not None:
            entry.seeds[int(job.labels["seed"])] = cells

    settings = bootstrap_settings(config.uncertainty.model_dump())
    ranking = {f"{p}_{METRICS.get(m).column}": f"{p.upper()} {METRICS.get(m).title}"
               for p in prefixes
               for m in [_ranking_metric(p, suffixes, missing)] if m is not None}
    labels = short_labels([e for e in entries.values() if e.defense != "(evaluation model)"])
    baseline = next((e for e in entries.values() if e.defense == "none"), None)
    rows = []
    for entry in entries.values():
        row: dict[str, Any] = {"entry": labels.get(entry.label, entry.label),
                               "defense": entry.label, "strength": entry.strength}
        row |= aggregate(entry, columns, settings)
        for column in ranking:
            found = None
            if baseline is not None and entry is not baseline \
                    and entry.defense != "(evaluation model)":
                found = difference(entry, baseline, column, settings)
            row |= difference_fields(column, found)
        row["status"] = "; ".join(entry.statuses) or "finished"
        rows.append(row)
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_seed = pd.DataFrame(
        [_row(job, outcomes, attacks.get(job.key, []), suffixes) for job in targets]
        + [_row(job, outcomes, [], suffixes) for job in evaluations],
        columns=[*TARGET_COLUMNS, *(f"{p}_{m}" for p in prefixes for m in suffixes),
                 "status"])
    per_seed.to_csv(out_dir / "per_seed.csv", index=False)
    files = [out_dir / "per_seed.csv"]
    if missing:
        (out_dir / "missing_metrics.json").write_text(json.dumps(missing, indent=2))
        files.append(out_dir / "missing_metrics.json")
    return Report(table=table, files=files, ranking=ranking, missing=missing,
                  level=config.uncertainty.level)


def _cells(job: Job, outcomes: dict, attacks: list[Job], suffixes: dict[str, str],
           utility: list[str] = UTILITY_COLUMNS) -> tuple[dict[str, Any] | None, str]:
    """A target trial's cells by report column (None when it did not finish) and a status."""
    from lsmia_bench.benchmark.pipelines.aggregate import cell

    outcome = outcomes.get(job.key)
    if outcome is None or not outcome.ok or not outcome.result:
        return None, outcome.status if outcome else "missing"
    result = outcome.result
    cells = {key: cell(result["metrics"], key, result.get("info"), outcome.artifact_dir)
             for key in utility}
    statuses = []
    for attack in attacks:
        found = outcomes.get(attack.key)
        prefix = attack.labels["column"]
        if found is None or not found.result or not found.ok:
            statuses.append(f"{prefix}: {found.status if found else 'missing'}")
            continue
        for suffix, metric in suffixes.items():
            cells[f"{prefix}_{suffix}"] = cell(found.result["metrics"], metric,
                                               found.result.get("info"), found.artifact_dir)
    return cells, "; ".join(statuses) or "finished"


def _missing_columns(attacks: dict[str, list[Job]], outcomes: dict,
                     suffixes: dict[str, str]) -> dict[str, str]:
    """Column -> reason for each attack column whose metric every finished trial of that
    attack recorded as missing (not meaningful in this suite)."""
    reasons: dict[str, set[str]] = {}
    valued: set[str] = set()
    for jobs in attacks.values():
        for job in jobs:
            outcome = outcomes.get(job.key)
            if outcome is None or not outcome.result:
                continue
            prefix = job.labels["column"]
            missing = (outcome.result.get("info") or {}).get("missing") or {}
            for suffix, metric in suffixes.items():
                column = f"{prefix}_{suffix}"
                if metric in outcome.result["metrics"]:
                    valued.add(column)
                elif metric in missing:
                    reasons.setdefault(column, set()).add(str(missing[metric]))
    return {column: "; ".join(sorted(found)) for column, found in reasons.items()
            if column not in valued}


def _ranking_metric(prefix: str, suffixes: dict[str, str], missing: dict[str, str]
                    ) -> str | None:
    """The attack's ranking metric: the registry's first ranking candidate that is a column
    of this suite's table."""
    by_metric = {metric: suffix for suffix, metric in suffixes.items()}
    for metric in METRICS.ranking():
        suffix = by_metric.get(metric)
        if suffix is not None and f"{prefix}_{suffix}" not in missing:
            return metric
    return None


def _row(job: Job, outcomes: dict, attacks: list[Job],
         suffixes: dict[str, str]) -> dict[str, Any]:
    """One report row; ``suffixes``: report column suffix -> recorded attack metric."""
    evaluation = job.labels.get("role") == "evaluation"
    outcome = outcomes.get(job.key)
    row: dict[str, Any] = {
        "defense": "(evaluation model)" if evaluation else job.labels["defense_label"],
        "strength": None if evaluation else job.labels["strength"],
        "seed": job.labels["seed"],
    }
    statuses = [outcome.status if outcome else "missing"]
    if outcome is not None and outcome.result:
        metrics = outcome.result["metrics"]
        for key in ("test_accuracy", "ece", "class_separation"):
            row[key] = metrics.get(key)
    for attack in attacks:
        result = outcomes.get(attack.key)
        prefix = attack.labels["column"]
        if result is None or not result.result:
            statuses.append(f"{prefix}: {result.status if result else 'missing'}")
            continue
        if not result.ok:
            statuses.append(f"{prefix}: {result.status}")
        for suffix, metric in suffixes.items():
            row[f"{prefix}_{suffix}"] = result.result["metrics"].get(metric)
    row["status"] = "; ".join(statuses)
    return row


def draw_embeddings(jobs: list[Job], outcomes: dict, out_dir: Path, suite: str) -> list[Path]:
    """The 2-D views (PCA) of every finished target of the first seed, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lsmia_bench.benchmark.embedding import PROJECTION_TITLES, PROJECTIONS, draw_embedding

    done = [j for j in jobs if j.stage == "targets" and outcomes.get(j.key)
            and outcomes[j.key].ok and (outcomes[j.key].artifact_dir / "embedding.csv").is_file()]
    if not done:
        return []
    first_seed = done[0].labels["seed"]
    panels = [j for j in done if j.labels["seed"] == first_seed]
    # One panel per target and projection, at most four panels to a row.
    cells = [(job, method) for job in panels for method in PROJECTIONS]
    columns = min(4, len(cells))
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, figsize=(3.2 * columns, 3.3 * rows))
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax, (job, method) in zip(axes.flat, cells, strict=False):
        outcome = outcomes[job.key]
        table = pd.read_csv(outcome.artifact_dir / "embedding.csv")
        separation = outcome.result["metrics"].get("class_separation", float("nan"))
        draw_embedding(ax, table, method,
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
