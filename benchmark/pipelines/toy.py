"""The ``toy`` pipeline: the paper's motivational 2-D example (docs/protocol.md).

Targets: the notebook's MLP trained full-batch with each defense. Attack: SGD on the input
from a point of class 0 toward class 2. Report: a table and a figure of decision regions,
training points and one attack trajectory per target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import Field, field_validator

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.benchmark.config import ComponentSpec, Strict, SuiteConfig, build_components
from lsmia_bench.benchmark.context import TaskContext, TaskResult, seed_everything
from lsmia_bench.benchmark.data.blobs import toy_blobs
from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.metrics import METRICS
from lsmia_bench.benchmark.metrics.intervals import bootstrap_settings, record_intervals
from lsmia_bench.benchmark.metrics.toy import ToyAttack
from lsmia_bench.benchmark.metrics.uncertainty import stratified_mean_interval
from lsmia_bench.benchmark.metrics.utility import accuracy, top_k_hits
from lsmia_bench.benchmark.models.mlp import ToyMLP
from lsmia_bench.benchmark.optimizers import MomentumSGD
from lsmia_bench.benchmark.pipelines.base import Pipeline, Report
from lsmia_bench.benchmark.training import predict, train_classifier
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.defenses.base import TrainingSetup
from lsmia_bench.kernel.component import distinct_labels
from lsmia_bench.kernel.metrics import Setting, evaluate, known_metrics


class BlobsData(Strict):
    source: Literal["blobs"] = "blobs"
    n_samples: int = Field(500, ge=3)
    centers: list[list[float]] = Field(
        default_factory=lambda: [[0.0, -10.0], [-10.0, 10.0], [10.0, 10.0]], min_length=2)
    cluster_std: float = Field(1.6, gt=0)
    random_state: int = 17
    test_random_state: int = 18


class ToyTraining(Strict):
    hidden: int = Field(20, ge=1)
    iterations: int = Field(5000, ge=1)
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    init_seed: int = 42


class ToyConfig(SuiteConfig):
    pipeline: Literal["toy"] = "toy"
    data: BlobsData = Field(default_factory=BlobsData)
    training: ToyTraining = Field(default_factory=ToyTraining)
    target_class: int = Field(2, ge=0)
    attacks: list[ComponentSpec] = Field(
        default_factory=lambda: [ComponentSpec(name="toy_sgd")], min_length=1)
    #: The attack metrics recorded and tabled (``lsmia_bench.benchmark.metrics``); default all
    #: of the toy pipeline's.
    metrics: list[str] = Field(default_factory=lambda: METRICS.for_pipeline("toy"),
                               min_length=1)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str]) -> list[str]:
        return known_metrics(METRICS, metrics, "toy")


class ToyPipeline(Pipeline):
    schema = ToyConfig

    def check(self, config: ToyConfig) -> None:
        build_components(config.defenses, DEFENSES, "defenses", probe=lambda: _probe(config))
        # Attacks are checked on the toy MLP and its 2-D points, the inputs they will get.
        build_components(config.attacks, ATTACKS, "attacks", probe=lambda: _probe(config))
        if config.target_class >= len(config.data.centers):
            from lsmia_bench.kernel.errors import UserError

            raise UserError("target_class", config.target_class,
                            f"Use a class index below {len(config.data.centers)}.",
                            problem="no such class")

    def plan(self, config: ToyConfig) -> list[Job]:
        # (the config's name for the defense, the defense) per setting, in the config's order
        settings = [(spec.name, DEFENSES.get(spec.name)(**params))
                    for spec in config.defenses for params, _ in spec.settings()]
        labels = distinct_labels([defense for _, defense in settings])
        jobs: list[Job] = []
        for seed in config.seeds:
            for (name, defense), label in zip(settings, labels, strict=True):
                target = Job(
                    stage="targets",
                    task="lsmia_bench.benchmark.pipelines.toy:train_target",
                    name=f"target {label} seed={seed}",
                    spec={"data": config.data.model_dump(),
                          "training": config.training.model_dump(),
                          "defense": {"name": name, "params": defense.model_dump()},
                          "seed": seed, "uncertainty": config.uncertainty.model_dump()},
                    labels={"defense": defense.name, "defense_label": label,
                            "strength": defense.strength_value(), "seed": seed},
                )
                jobs.append(target)
                jobs.extend(self._attacks(config, target))
        return jobs

    def _attacks(self, config: ToyConfig, target: Job) -> list[Job]:
        jobs = []
        for spec in config.attacks:
            for params, _ in spec.settings():
                attack = ATTACKS.get(spec.name)(**params)
                jobs.append(Job(
                    stage="attacks",
                    task="lsmia_bench.benchmark.pipelines.toy:attack_target",
                    name=f"attack {attack.label()} on {target.labels['defense_label']} "
                         f"seed={target.labels['seed']}",
                    spec={"attack": {"name": spec.name, "params": attack.model_dump()},
                          "data": config.data.model_dump(), "target_class": config.target_class,
                          "metrics": config.metrics},
                    needs={"target": target.key},
                    labels=target.labels | {"attack": attack.name},
                ))
        return jobs

    def report(self, config: ToyConfig, jobs: list[Job], outcomes: dict, out_dir: Path) -> Report:
        """One row per entry (defense setting x attack setting over its seeds): test accuracy
        and the suite's attack metrics, each with ``_ci_low``/``_ci_high``/``_n``
        (``benchmark.pipelines.aggregate``: over seeds with two or more; with one seed only
        test accuracy has an interval, over test points, since one attack run per trial leaves
        nothing to resample), and the ranking metric's paired difference to ``none`` when the
        suite has it."""
        from lsmia_bench.benchmark.metrics.intervals import bootstrap_settings
        from lsmia_bench.benchmark.pipelines.aggregate import (
            Entry,
            aggregate,
            cell,
            difference,
            difference_fields,
            short_labels,
        )

        # Each sweep's value goes under its own hyper-parameter's name (label smoothing's
        # "alpha"), read from the defenses' public metadata, so a plug-in's sweep gets a column
        # too; a defense without a strength (none) leaves it empty.
        strength_names = {cls.name: cls.strength for cls in
                          (DEFENSES.get(spec.name) for spec in config.defenses)}
        names = [name for name in config.metrics if name in METRICS]
        entries: dict[tuple[str, str], Entry] = {}
        attack_names: dict[tuple[str, str], str] = {}
        for job in jobs:
            if job.stage != "attacks":
                continue
            attack_spec = job.spec["attack"]
            key = (job.labels["defense_label"],
                   ATTACKS.get(attack_spec["name"])(**attack_spec["params"]).label())
            entry = entries.setdefault(key, Entry(job.labels["defense_label"],
                                                  job.labels["defense"],
                                                  job.labels["strength"]))
            attack_names[key] = key[1]
            target, attack = outcomes.get(job.needs["target"]), outcomes.get(job.key)
            if attack is None or not attack.ok or target is None or not target.result:
                entry.statuses.append(f"seed {job.labels['seed']}: "
                                      f"{attack.status if attack else 'missing'}")
                continue
            cells = {"test_accuracy": cell(target.result["metrics"], "test_accuracy",
                                           target.result.get("info"), target.artifact_dir)}
            cells |= {name: cell(attack.result["metrics"], name, attack.result.get("info"),
                                 attack.artifact_dir) for name in names}
            entry.seeds[int(job.labels["seed"])] = cells
        settings = bootstrap_settings(config.uncertainty.model_dump())
        ranked = next((name for name in METRICS.ranking() if name in names), None)
        ranking = {ranked: METRICS.get(ranked).title} if ranked else {}
        labels = short_labels(list({e.label: e for e in entries.values()}.values()))
        several = len(set(attack_names.values())) > 1
        rows = []
        for key, entry in entries.items():
            row: dict[str, Any] = {"entry": labels.get(entry.label, entry.label)
                                   + (f" {key[1]}" if several else ""),
                                   "defense": entry.label}
            strength = strength_names.get(entry.defense)
            if strength is not None:
                row[strength] = entry.strength
            row["attack"] = key[1]
            row |= aggregate(entry, ["test_accuracy", *names], settings)
            baseline = entries.get(next((k for k, e in entries.items()
                                         if e.defense == "none" and k[1] == key[1]), ("", "")))
            for column in ranking:
                found = None
                if baseline is not None and baseline is not entry:
                    found = difference(entry, baseline, column, settings)
                row |= difference_fields(column, found)
            row["status"] = "; ".join(entry.statuses) or "finished"
            rows.append(row)
        table = pd.DataFrame(rows)
        files = []
        if not table.empty:
            files = draw_toy_figure(config, jobs, outcomes, out_dir)
        return Report(table=table, files=files, ranking=ranking,
                      level=config.uncertainty.level)


def _probe(config: ToyConfig) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, int,
                                       frozenset[str]]:
    """A fresh toy MLP and a few points, to run each defense and attack once before any
    trial; the toy's training gives per-example access but no public split."""
    classes = len(config.data.centers)
    x, y = toy_blobs(4 * classes, config.data.centers, config.data.cluster_std,
                     random_state=config.data.random_state)
    return ToyMLP(2, config.training.hidden, classes), x, y, classes, frozenset({"examples"})


def _seed_spec(spec: dict[str, Any]) -> int:
    return int(spec["seed"])


def _toy_data(data: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    args = (data["n_samples"], data["centers"], data["cluster_std"])
    x_train, y_train = toy_blobs(*args, random_state=data["random_state"])
    x_test, y_test = toy_blobs(*args, random_state=data["test_random_state"])
    return x_train, y_train, x_test, y_test


def _build_model(spec: dict[str, Any]) -> torch.nn.Module:
    num_classes = len(spec["data"]["centers"])
    # The same initial weights for every defense (the notebook seeds before building the MLP).
    torch.manual_seed(spec["training"]["init_seed"] + spec["seed"])
    return ToyMLP(2, spec["training"]["hidden"], num_classes)


def train_target(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                 ctx: TaskContext) -> TaskResult:
    """Train the toy MLP full-batch with the spec's defense; save it to ``out/model.pt``.

    Metrics: ``test_accuracy``, ``train_accuracy`` (eval mode, on the training points: the
    leaderboard's "Train acc."), ``final_train_loss``. Curves (every ``series_stride``-th
    iteration): ``train_loss``, ``train_accuracy_by_iteration`` (train mode, while training)
    and the defense's schedule, if any."""
    seed_everything(_seed_spec(spec))
    x_train, y_train, x_test, y_test = _toy_data(spec["data"])
    defense = DEFENSES.get(spec["defense"]["name"])(**spec["defense"]["params"])
    model = defense.wrap_model(_build_model(spec)).to(ctx.device)
    training = spec["training"]
    # torch.optim.SGD's update, bit for bit, at a fraction of its per-step cost.
    optimizer = MomentumSGD(model.parameters(), lr=training["lr"],
                            momentum=training["momentum"])
    setup = defense.prepare_training(TrainingSetup(
        model=model, optimizer=optimizer, batches=lambda: [(x_train, y_train)],
        epochs=training["iterations"], batch_size=len(x_train), train_size=len(x_train),
        num_classes=len(spec["data"]["centers"]), device=ctx.device, seed=_seed_spec(spec),
        examples=lambda index: (x_train[index], y_train[index]), test=(x_test, y_test)))
    history = train_classifier(
        setup.model, defense, setup.batches, setup.optimizer, training["iterations"],
        num_classes=len(spec["data"]["centers"]), ctx=ctx, state=setup.state,
    )
    defense_metrics = defense.end_training(setup)
    torch.save(model.state_dict(), out / "model.pt")
    test_hits = top_k_hits(predict(model, x_test), y_test, 1)
    test_acc = test_hits.mean().item()
    train_acc = accuracy(predict(model, x_train), y_train)
    # The running (train-mode, per-iteration) accuracy gets its own name: as "train_accuracy"
    # it shared MLflow's key with the metric below (eval-mode accuracy on the training points,
    # the leaderboard's "Train acc."), so that metric was read back as a curve.
    curves = history.as_series()
    curves["train_accuracy_by_iteration"] = curves.pop("train_accuracy")
    # A loss curve of 5000 points is too much for MLflow; keep every 50th iteration.
    stride = max(1, len(history.train_loss) // 100)
    series = {k: v[::stride] for k, v in curves.items()}
    metrics = {"test_accuracy": test_acc, "train_accuracy": train_acc,
               "final_train_loss": history.train_loss[-1]} | defense_metrics
    # Test accuracy's interval: test points resampled within their class. The attack's
    # metrics get none: one attack run per trial leaves nothing to resample.
    interval = stratified_mean_interval(test_hits.numpy(), y_test.numpy(),
                                        bootstrap_settings(spec.get("uncertainty")),
                                        "test points")
    units = record_intervals(metrics, {"test_accuracy": interval})
    return TaskResult(metrics=metrics, series=series,
                      info={"series_stride": stride, "interval_units": units})


def load_toy_target(spec: dict[str, Any], folder: Path) -> torch.nn.Module:
    defense = DEFENSES.get(spec["defense"]["name"])(**spec["defense"]["params"])
    model = defense.wrap_model(_build_model(spec))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def attack_target(spec: dict[str, Any], inputs: dict[str, Path], out: Path,
                  ctx: TaskContext) -> TaskResult:
    """Attack the target from ``inputs['target']`` toward the target class."""
    target_record = json.loads((inputs["target"] / "result.json").read_text())
    model = load_toy_target(target_record["job"]["spec"], inputs["target"]).to(ctx.device)
    attack = ATTACKS.get(spec["attack"]["name"])(**spec["attack"]["params"])
    cls = spec["target_class"]
    output = attack.run(model, [cls])
    run = output.trace["runs"][0]
    x_train, y_train, _, _ = _toy_data(spec["data"])
    trajectory = run["trajectory"]
    (out / "trajectory.json").write_text(json.dumps(
        {"trajectory": trajectory.tolist(), "confidence": run["confidence"]}))
    ctx.progress(1, 1)
    context = ToyAttack(output.reconstructions[:1], x_train[y_train == cls], run,
                        attack.confidence)
    names = spec.get("metrics") or METRICS.for_pipeline("toy")
    found = evaluate(METRICS, names, context, Setting(attacked_classes=1, reconstructions=1))
    return TaskResult(metrics=found.values, info={"missing": found.missing})


def draw_toy_figure(
    config: ToyConfig, jobs: list[Job], outcomes: dict, out_dir: Path
) -> list[Path]:
    """Decision regions, training points and the attack trajectory, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [j for j in jobs if j.stage == "attacks"
              and outcomes.get(j.key) and outcomes[j.key].result
              and outcomes.get(j.needs["target"]) and outcomes[j.needs["target"]].result]
    if not panels:
        return []
    x_train, y_train, _, _ = _toy_data(config.data.model_dump())
    lo, hi = x_train.min(0).values - 4, x_train.max(0).values + 4
    gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], 300), torch.linspace(lo[1], hi[1], 300),
                            indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    markers = ["o", "s", "p", "^", "v", "D"]
    for ax, job in zip(axes[0], panels, strict=True):
        target_out = outcomes[job.needs["target"]]
        model = load_toy_target(target_out.result["job"]["spec"], target_out.artifact_dir)
        # One forward pass over the whole grid (90 000 2-D points): batches of 512 cost
        # seconds in dispatch alone.
        regions = predict(model, grid, batch_size=len(grid)).argmax(1).reshape(gx.shape)
        ax.contourf(gx, gy, regions, alpha=0.25, levels=len(config.data.centers) - 1,
                    cmap="Pastel1")
        for cls in range(len(config.data.centers)):
            pts = x_train[y_train == cls]
            ax.scatter(pts[:, 0], pts[:, 1], s=8, marker=markers[cls % len(markers)],
                       label=f"class {cls}")
        path = json.loads((outcomes[job.key].artifact_dir / "trajectory.json").read_text())
        traj = torch.tensor(path["trajectory"])
        ax.plot(traj[:, 0], traj[:, 1], color="gold", lw=2, label="attack")
        ax.scatter(traj[-1:, 0], traj[-1:, 1], color="black", marker="x", s=60, zorder=5)
        metrics = outcomes[job.key].result["metrics"]
        ax.set_title(f"{job.labels['defense_label']}\n{int(metrics['steps'])} steps, "
                     f"distance {metrics['distance_nearest']:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "toy_attacks.png", out_dir / "toy_attacks.svg"]
    for file in files:
        fig.savefig(file, dpi=110)
    plt.close(fig)
    return files
