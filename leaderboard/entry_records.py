"""Entry records: one JSON file per defense setting per suite, the shared leaderboard's rows.

``leaderboard/entries/<suite>/<entry>.json`` holds everything a reader needs to trust a row:
the trials of every seed (target metrics, each attack's metrics with their within-seed
intervals), the across-seed intervals and paired differences as the board computes them, the
suite configuration and its hash, the code version (git commit and dirty flag), package
versions, hardware, dates and the command that reproduces it. Records are written only by the
project's commands (``lsmia-bench leaderboard record``, ``lsmia-bench submit``): each carries a
digest of its own content, so a hand edit is detected, and consistency checks (per-seed values
against the summary, the configuration against its hash) catch a record edited and
re-digested carelessly.

This module is the schema and the file format only (pydantic, no MLflow, no board): the
writer is :mod:`leaderboard.publish`, the readers are the site builder and ``verify``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import TrialRecord

RECORD_KIND = "lsmia-bench entry record"
RECORD_FORMAT = 1
#: Where committed records live, relative to the ``lsmia_bench.leaderboard`` package (package
#: data; in a checkout, ``leaderboard/entries/``).
ENTRIES_FOLDER = "entries"
Status = Literal["canonical", "submission-self-reported", "submission-verified"]
STATUSES: tuple[str, ...] = ("canonical", "submission-self-reported", "submission-verified")
#: Metrics stored beside a metric ``m`` for its within-seed interval.
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high", "_n")
HEX = re.compile(r"^[0-9a-f]+$")
#: Relative tolerance of the consistency checks (means recomputed from per-seed values).
TOLERANCE = 1e-9


class RecordError(UserError):
    """A record that fails the schema, its digest or a consistency check (exit 2)."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        super().__init__(path, f"{len(problems)} problem(s)", "Records are written by "
                         "`lsmia-bench leaderboard record` or `lsmia-bench submit`, never by "
                         "hand: write it again with the command.",
                         problem="; ".join(problems[:8]) + (" ..." if len(problems) > 8 else ""))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("a finite number")
    return value


class TrialData(_Strict):
    """One trial as MLflow recorded it (the kernel's ``TrialRecord`` without figures)."""

    run_id: str
    job_key: str = Field(min_length=8)
    stage: Literal["targets", "attacks", "prerequisites"]
    status: Literal["finished", "cached"]
    name: str = ""
    task: str = ""
    started_ms: int = 0
    finished_at: str | None = None
    parent_run_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    spec: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    series: dict[str, list[float]] = Field(default_factory=dict)
    needs: dict[str, str] = Field(default_factory=dict)
    info: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        for key, value in metrics.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {key!r} is not finite")
        return metrics

    @classmethod
    def of(cls, trial: TrialRecord) -> TrialData:
        return cls(run_id=trial.run_id, job_key=trial.job_key, stage=trial.stage,  # type: ignore[arg-type]
                   status=trial.status, name=trial.name,  # type: ignore[arg-type]
                   task=trial.task, started_ms=trial.started_ms, finished_at=trial.finished_at,
                   parent_run_id=trial.parent_run_id, labels=dict(trial.labels),
                   spec=dict(trial.spec), metrics=dict(trial.metrics),
                   series={k: list(v) for k, v in trial.series.items()},
                   needs=dict(trial.needs), info=dict(trial.info), hardware=dict(trial.hardware),
                   versions=dict(trial.versions))

    def to_trial(self, suite: str) -> TrialRecord:
        return TrialRecord(
            run_id=self.run_id, suite=suite, stage=self.stage, job_key=self.job_key,
            status=self.status, started_ms=self.started_ms, labels=dict(self.labels),
            spec=dict(self.spec), metrics=dict(self.metrics),
            series={k: list(v) for k, v in self.series.items()}, needs=dict(self.needs),
            name=self.name, parent_run_id=self.parent_run_id, finished_at=self.finished_at,
            hardware=dict(self.hardware), versions=dict(self.versions), task=self.task,
            info=dict(self.info))


class SeedResult(_Strict):
    """One training seed: its target and the attacks on it (attack name -> trial)."""

    seed: str = Field(min_length=1)
    target: TrialData
    attacks: dict[str, TrialData] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _joined(self) -> SeedResult:
        if self.target.stage != "targets":
            raise ValueError(f"seed {self.seed}: target.stage is {self.target.stage!r}, not "
                             "'targets'")
        if self.target.labels.get("seed", self.target.spec.get("seed")) != self.seed:
            raise ValueError(f"seed {self.seed}: the target's seed label is "
                             f"{self.target.labels.get('seed')!r}")
        for name, attack in self.attacks.items():
            if attack.stage != "attacks":
                raise ValueError(f"seed {self.seed}: attack {name}: stage {attack.stage!r}")
            if attack.needs.get("target") != self.target.job_key:
                raise ValueError(f"seed {self.seed}: attack {name} was not run on this seed's "
                                 "target (needs.target differs from target.job_key)")
        return self


class StatData(_Strict):
    """A metric over the seeds, as ``leaderboard.board.Stat`` computes it."""

    mean: float
    std: float | None = None
    n: int = Field(ge=1)
    low: float | None = None
    high: float | None = None
    units: int | None = None
    unit: str = ""
    level: float = Field(0.95, gt=0, lt=1)
    note: str = ""
    per_seed: dict[str, float]

    @model_validator(mode="after")
    def _consistent(self) -> StatData:
        values = list(self.per_seed.values())
        if len(values) != self.n:
            raise ValueError(f"n is {self.n} but {len(values)} per-seed value(s) are given")
        if not _close(statistics.fmean(values), self.mean):
            raise ValueError(f"mean {self.mean!r} is not the mean of the per-seed values "
                             f"{values!r}")
        if (self.low is None) != (self.high is None):
            raise ValueError("an interval needs both low and high")
        if self.low is not None and self.high is not None and not (
                self.low - _slack(self.low) <= self.mean <= self.high + _slack(self.high)):
            raise ValueError(f"mean {self.mean!r} lies outside its interval "
                             f"[{self.low!r}, {self.high!r}]")
        return self


class DifferenceData(_Strict):
    """Entry minus the `none` baseline, paired over seeds (``uncertainty.Difference``)."""

    estimate: float
    low: float
    high: float
    n: int = Field(ge=2)
    unit: str = "seeds"
    level: float = Field(0.95, gt=0, lt=1)
    verdict: Literal["lower", "higher", "no clear difference"]


class AttackSummary(_Strict):
    status: Literal["finished", "partial", "failed", "missing"]
    metrics: dict[str, StatData] = Field(default_factory=dict)
    missing: dict[str, str] = Field(default_factory=dict)
    paired: DifferenceData | None = None
    paired_note: str = ""


class BootstrapData(_Strict):
    level: float = Field(0.95, gt=0, lt=1)
    resamples: int = Field(2000, ge=1)
    method: Literal["percentile", "BCa", "basic"] = "percentile"
    seed: int = 0


class Summary(_Strict):
    """What the board computes from the seeds: intervals, paired differences, the ranking
    metric's value at the attack that decides (the worst one)."""

    target: dict[str, StatData]
    attacks: dict[str, AttackSummary] = Field(default_factory=dict)
    utility_paired: DifferenceData | None = None
    utility_paired_note: str = ""
    baseline_entry: str | None = None
    utility_drop: float | None = None
    ranking_metric: str = ""
    ranking_attack: str = ""
    privacy: float | None = None
    bootstrap: BootstrapData = Field(default_factory=BootstrapData)


class ConfigData(_Strict):
    """The suite configuration that produced the record, exactly as validated (its hash is
    ``SuiteConfig.config_hash()``: sha256 of its canonical JSON, 16 hex digits)."""

    source: str
    hash: str = Field(min_length=16, max_length=16)
    settings: dict[str, Any] = Field(min_length=1)
    overrides: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _hash_matches(self) -> ConfigData:
        computed = config_hash(self.settings)
        if computed != self.hash:
            raise ValueError(f"hash {self.hash!r} is not the hash of the settings "
                             f"({computed!r})")
        return self


class CodeVersion(_Strict):
    """The lsmia-bench code that produced the results: the git commit of its checkout (None
    for an installed package, which only a submission may use) and its package version."""

    commit: str | None
    dirty: bool
    version: str = Field(min_length=1)

    @field_validator("commit")
    @classmethod
    def _hex(cls, commit: str | None) -> str | None:
        if commit is not None and not (len(commit) == 40 and HEX.match(commit)):
            raise ValueError("a 40-digit hexadecimal git commit")
        return commit


class Provenance(_Strict):
    code: CodeVersion
    versions: dict[str, str] = Field(min_length=1)
    hardware: dict[str, Any] = Field(min_length=1)
    #: First trial's start and last trial's end (ISO 8601), and when the record was written.
    started_at: str = Field(min_length=10)
    finished_at: str = Field(min_length=10)
    recorded_at: str = Field(min_length=10)
    #: Shell commands, in order, that reproduce the record from an empty results folder.
    command: list[str] = Field(min_length=1)
    results: str = ""

    @field_validator("versions")
    @classmethod
    def _needed(cls, versions: dict[str, str]) -> dict[str, str]:
        missing = [k for k in ("python", "torch") if k not in versions]
        if missing:
            raise ValueError(f"the versions of {', '.join(missing)}")
        return versions

    @field_validator("hardware")
    @classmethod
    def _device(cls, hardware: dict[str, Any]) -> dict[str, Any]:
        if "device" not in hardware:
            raise ValueError("the device the trials ran on (hardware.device)")
        return hardware


class SubmissionData(_Strict):
    """Who submitted the entry and with which code (``lsmia-bench submit``)."""

    name: str = Field(min_length=2)
    metadata: dict[str, Any]
    defense: dict[str, Any]
    standard: bool = True


class VerificationData(_Strict):
    """A reviewer's ``lsmia-bench leaderboard verify`` of a submitted record."""

    verified_at: str = Field(min_length=10)
    commit: str = ""
    seed: str
    command: str


class EntryRecord(_Strict):
    kind: Literal["lsmia-bench entry record"]
    format: Literal[1]
    suite: str = Field(min_length=1)
    #: File stem: ``<label slug>-<entry id>``.
    entry: str = Field(min_length=1)
    entry_id: str = Field(min_length=12, max_length=12)
    label: str
    defense: str
    variant: str = ""
    strength: float | None = None
    architecture: str = ""
    #: The target's configuration without its seed (what identifies the entry).
    setting: dict[str, str] = Field(min_length=1)
    status: Status
    seeds: list[SeedResult] = Field(min_length=1)
    summary: Summary
    config: ConfigData
    provenance: Provenance
    submission: SubmissionData | None = None
    verification: VerificationData | None = None
    digest: str

    @model_validator(mode="after")
    def _consistent(self) -> EntryRecord:
        problems = []
        if entry_id(self.suite, self.setting) != self.entry_id:
            problems.append(f"entry_id {self.entry_id!r} is not the id of the setting "
                            f"({entry_id(self.suite, self.setting)!r})")
        names = [s.seed for s in self.seeds]
        if len(set(names)) != len(names):
            problems.append(f"a seed appears twice: {names}")
        if self.status == "canonical" and self.provenance.code.commit is None:
            problems.append("provenance.code.commit: a canonical record names the git commit "
                            "of the code that produced it")
        if self.status == "canonical" and self.submission is not None:
            problems.append("a canonical record has no submission section")
        if self.status != "canonical" and self.submission is None:
            problems.append(f"status {self.status!r} needs the submission section")
        if (self.status == "submission-verified") != (self.verification is not None):
            problems.append("the verification section goes with status submission-verified "
                            "(and only with it)")
        if self.config.settings.get("name") != self.suite:
            problems.append(f"config.settings.name is {self.config.settings.get('name')!r}, "
                            f"not the suite {self.suite!r}")
        problems += _summary_matches_seeds(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def trials(self) -> list[TrialRecord]:
        found = []
        for seed in self.seeds:
            found.append(seed.target.to_trial(self.suite))
            found += [a.to_trial(self.suite) for a in seed.attacks.values()]
        return found

    def content_digest(self) -> str:
        return content_digest(self.model_dump(mode="json"))

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=False,
                          ensure_ascii=False, allow_nan=False) + "\n"

    @property
    def file_name(self) -> str:
        return f"{self.entry}.json"


def _summary_matches_seeds(record: EntryRecord) -> list[str]:
    """Every per-seed value in the summary is the seed's trial metric (an altered number is
    caught even when the digest was recomputed by hand)."""
    problems = []
    seeds = {s.seed: s for s in record.seeds}
    for key, stat in record.summary.target.items():
        for seed, value in stat.per_seed.items():
            trial = seeds.get(seed)
            actual = trial.target.metrics.get(key) if trial else None
            if actual is None or not _close(actual, value):
                problems.append(f"summary.target.{key}: seed {seed} is {value!r}, its target "
                                f"trial says {actual!r}")
    for attack, result in record.summary.attacks.items():
        for key, stat in result.metrics.items():
            for seed, value in stat.per_seed.items():
                trial = seeds[seed].attacks.get(attack) if seed in seeds else None
                actual = trial.metrics.get(key) if trial else None
                if actual is None or not _close(actual, value):
                    problems.append(f"summary.attacks.{attack}.{key}: seed {seed} is {value!r}, "
                                    f"its attack trial says {actual!r}")
    return problems


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-12)


def _slack(value: float) -> float:
    return abs(value) * TOLERANCE + 1e-12


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def content_digest(data: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the record's canonical JSON without its ``digest`` field."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def config_hash(settings: dict[str, Any]) -> str:
    """``SuiteConfig.config_hash()`` of a dumped configuration (``benchmark.jobs.content_hash``)."""
    from lsmia_bench.benchmark.jobs import content_hash

    return content_hash(settings)


def entry_id(suite: str, setting: dict[str, str]) -> str:
    """The board's id of an entry: hash of the suite and the target's setting."""
    text = json.dumps([suite, setting], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def sealed(data: dict[str, Any]) -> EntryRecord:
    """Validate a record's content and set its digest (what the commands write)."""
    body = {k: v for k, v in data.items() if k != "digest"}
    record = EntryRecord.model_validate(body | {"digest": "sha256:" + "0" * 64})
    record.digest = record.content_digest()
    return EntryRecord.model_validate(record.model_dump(mode="json"))


def parse_record(data: Any, where: str = "record") -> EntryRecord:
    """A record from its parsed JSON, or :class:`RecordError` naming every problem: the
    fields the schema refuses (with their location), then the digest."""
    if not isinstance(data, dict):
        raise RecordError(where, [f"not a JSON object (a {type(data).__name__})"])
    try:
        record = EntryRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError(where, [_problem(e) for e in exc.errors()]) from None
    if record.content_digest() != record.digest:
        raise RecordError(where, [f"digest: {record.digest!r} is not the digest of the "
                                  f"content ({record.content_digest()!r}); the record was "
                                  "edited after it was written"])
    return record


def _problem(error: Any) -> str:
    location = ".".join(str(p) for p in error.get("loc", ())) or "(record)"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "required field is missing"
    elif error.get("type") == "extra_forbidden":
        message = "unknown field (not part of the record format)"
    return f"{location}: {message}"


def read_record(path: Path, located: bool = True) -> EntryRecord:
    """Read and validate one record file; :class:`RecordError` when it is not a valid record.
    With ``located``, the file must also lie at ``<suite>/<entry>.json`` (committed records)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    except ValueError as exc:
        raise RecordError(str(path), [f"not valid JSON: {exc}"]) from None
    record = parse_record(data, str(path))
    expected = Path(record.suite) / record.file_name
    if located and (path.name != record.file_name or path.parent.name != record.suite):
        raise RecordError(str(path), [f"a record of this content lies at "
                                      f"<entries>/{expected.as_posix()}"])
    return record


def committed_folder() -> Path:
    """The records shipped with the package (``leaderboard/entries/`` of a checkout)."""
    return Path(str(package_files("lsmia_bench.leaderboard") / ENTRIES_FOLDER))


def record_files(folder: Path) -> list[Path]:
    """``<folder>/<suite>/<entry>.json``, sorted; an absent folder has none."""
    folder = Path(folder)
    return sorted(folder.glob("*/*.json")) if folder.is_dir() else []


def read_folder(folder: Path) -> tuple[list[EntryRecord], list[RecordError]]:
    """Every valid record of a folder, and the errors of the others."""
    records, errors = [], []
    for file in record_files(folder):
        try:
            records.append(read_record(file))
        except RecordError as exc:
            errors.append(exc)
    return records, errors
